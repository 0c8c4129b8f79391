import Synchronization

/// A cache of freed large buffers, by size.
///
/// Networks and attacks allocate the same tensor sizes over and over. Large allocations
/// from `malloc` come from fresh `mmap` pages, and touching them costs a page fault per
/// 4 KiB — at 56×56×64 floats, more than the data movement itself. Reusing freed buffers
/// of the same size removes that cost. Small buffers go straight to the allocator.
public final class BufferPool: Sendable {
    public static let shared = BufferPool()

    /// Buffers below this size are not pooled.
    static let minimumPooledBytes = 64 * 1024

    private struct State {
        /// Addresses of free buffers by byte size (stored as integers: raw pointers are not Sendable).
        var free: [Int: [UInt]] = [:]
        var cachedBytes = 0
        var limitBytes = 2 << 30
    }

    private let state = Mutex(State())

    /// The most memory kept for reuse; beyond it freed buffers go back to the system.
    public var limitBytes: Int {
        get { state.withLock { $0.limitBytes } }
        set {
            let released: [UInt] = state.withLock { state in
                state.limitBytes = newValue
                guard state.cachedBytes > newValue else { return [] }
                let all = state.free.values.flatMap { $0 }
                state.free = [:]
                state.cachedBytes = 0
                return all
            }
            released.forEach { UnsafeMutableRawPointer(bitPattern: $0)!.deallocate() }
        }
    }

    /// Bytes currently cached for reuse.
    public var cachedBytes: Int { state.withLock { $0.cachedBytes } }

    @usableFromInline func take(bytes: Int) -> UnsafeMutableRawPointer {
        if bytes >= Self.minimumPooledBytes {
            let reused: UInt? = state.withLock { state in
                guard let address = state.free[bytes]?.popLast() else { return nil }
                state.cachedBytes -= bytes
                return address
            }
            if let reused { return UnsafeMutableRawPointer(bitPattern: reused)! }
        }
        return UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
    }

    @usableFromInline func give(_ buffer: UnsafeMutableRawPointer, bytes: Int) {
        if bytes >= Self.minimumPooledBytes {
            let address = UInt(bitPattern: buffer)
            let kept = state.withLock { state -> Bool in
                guard state.cachedBytes + bytes <= state.limitBytes else { return false }
                state.free[bytes, default: []].append(address)
                state.cachedBytes += bytes
                return true
            }
            if kept { return }
        }
        buffer.deallocate()
    }
}
