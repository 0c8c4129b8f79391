import CBLAS
import CShims
import Foundation
import Synchronization

/// The one thread-count setting of the process.
///
/// It drives OpenBLAS, oneDNN (through OpenMP) and robustctl's own parallel loops, so
/// the three never oversubscribe the cores. The default is the number of active cores.
public enum Threading {
    private static let current = Mutex<Int>(ProcessInfo.processInfo.activeProcessorCount)

    /// The number of threads compute kernels use.
    public static var threads: Int { current.withLock { $0 } }

    /// Sets the thread count for every compute library.
    /// - Precondition: `count >= 1`.
    public static func setThreads(_ count: Int) {
        precondition(count >= 1, "thread count must be at least 1, got \(count)")
        current.withLock { $0 = count }
        openblas_set_num_threads(Int32(count))
        rc_set_omp_threads(Int32(count))
    }

    /// Applies the setting to OpenMP for the calling thread; OpenMP's thread count is a
    /// per-thread variable, so every thread that enters oneDNN calls this first.
    static func applyToOpenMP() {
        let count = threads
        if rc_get_omp_max_threads() != Int32(count) { rc_set_omp_threads(Int32(count)) }
    }

    /// Runs `body` over `0..<count` split into at most `threads` contiguous chunks, on the
    /// OpenMP pool shared with oneDNN and OpenBLAS. Runs inline when one chunk suffices.
    /// `body` must be safe to call concurrently on disjoint ranges.
    public static func parallelFor(_ count: Int, minimumChunk: Int = 1,
                                   _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let threads = self.threads
        let chunks = Swift.min(threads, Swift.max(1, count / Swift.max(minimumChunk, 1)))
        if chunks <= 1 {
            body(0..<count)
            return
        }
        withoutActuallyEscaping(body) { body in
            var box = body
            withUnsafeMutablePointer(to: &box) { pointer in
                rc_parallel_for(count, chunks, Int32(threads), UnsafeMutableRawPointer(pointer)) { context, begin, end in
                    let body = context!.assumingMemoryBound(to: ((Range<Int>) -> Void).self).pointee
                    body(begin..<end)
                }
            }
        }
    }
}

/// Wraps a value (typically a buffer pointer) for a `Threading.parallelFor` body whose
/// concurrent use the caller has made safe: each worker touches disjoint elements.
public struct UncheckedSendable<Value>: @unchecked Sendable {
    public let value: Value
    public init(_ value: Value) { self.value = value }
}
