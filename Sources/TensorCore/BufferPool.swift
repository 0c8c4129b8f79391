import Synchronization

/// A cache of freed large buffers, by size.
///
/// Networks and attacks allocate the same tensor sizes over and over. Large allocations
/// from `malloc` come from fresh `mmap` pages, and touching them costs a page fault per
/// 4 KiB — at 56×56×64 floats, more than the data movement itself. Reusing freed buffers
/// removes that cost. A request takes the smallest free buffer of at least its size and
/// less than twice it (best fit), so that layers of different sizes share buffers: an
/// inference then touches a few recently used, cache-warm buffers instead of one per
/// distinct size (MobileNetV2's fp32 depthwise layers ran up to 2× faster in-network).
/// Small buffers go straight to the allocator.
public final class BufferPool: Sendable {
    public static let shared = BufferPool()

    /// Buffers below this size are not pooled.
    static let minimumPooledBytes = 64 * 1024

    private struct State {
        /// Addresses of free buffers by byte size (stored as integers: raw pointers are not Sendable).
        var free: [Int: [UInt]] = [:]
        /// The byte size of each pooled-size buffer handed out, where it exceeds the request.
        var capacity: [UInt: Int] = [:]
        /// When each size was last taken or given back, on `clock`.
        var lastUse: [Int: UInt64] = [:]
        var clock: UInt64 = 0
        var cachedBytes = 0
        var limitBytes = 2 << 30

        /// Marks `bytes` as just used.
        mutating func touch(_ bytes: Int) {
            clock += 1
            lastUse[bytes] = clock
        }

        /// Frees cached buffers of the least recently used other sizes until one more buffer
        /// of `bytes` fits under the limit; returns their addresses.
        mutating func makeRoom(for bytes: Int) -> [UInt] {
            guard cachedBytes + bytes > limitBytes else { return [] }
            var released: [UInt] = []
            for (victim, _) in lastUse.sorted(by: { $0.value < $1.value }) where victim != bytes {
                guard cachedBytes + bytes > limitBytes else { break }
                let addresses = free.removeValue(forKey: victim) ?? []
                lastUse[victim] = nil
                cachedBytes -= victim * addresses.count
                released += addresses
            }
            return released
        }
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
                state.lastUse = [:]
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
                // Best fit: the smallest cached size in [bytes, 2·bytes).
                var best: Int?
                for (size, addresses) in state.free where size >= bytes && size < 2 * bytes && !addresses.isEmpty {
                    if size < best ?? .max { best = size }
                }
                guard let size = best, let address = state.free[size]!.popLast() else {
                    state.touch(bytes)
                    return nil
                }
                state.touch(size)
                state.cachedBytes -= size
                if size != bytes { state.capacity[address] = size }
                return address
            }
            if let reused { return UnsafeMutableRawPointer(bitPattern: reused)! }
        }
        return UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
    }

    @usableFromInline func give(_ buffer: UnsafeMutableRawPointer, bytes requested: Int) {
        if requested >= Self.minimumPooledBytes {
            let address = UInt(bitPattern: buffer)
            // A pool full of sizes nobody asks for any more (a Boundary run's, before a
            // gradient attack's) would send every new size to fresh pages: evict those first.
            let (kept, released) = state.withLock { state -> (Bool, [UInt]) in
                let bytes = state.capacity.removeValue(forKey: address) ?? requested
                state.touch(bytes)
                let released = state.makeRoom(for: bytes)
                guard state.cachedBytes + bytes <= state.limitBytes else { return (false, released) }
                state.free[bytes, default: []].append(address)
                state.cachedBytes += bytes
                return (true, released)
            }
            released.forEach { UnsafeMutableRawPointer(bitPattern: $0)!.deallocate() }
            if kept { return }
        }
        buffer.deallocate()
    }
}
