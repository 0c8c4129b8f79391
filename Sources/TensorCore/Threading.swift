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
        withCallback(body) { context, callback in rc_parallel_for(count, chunks, Int32(threads), context, callback) }
    }

    /// Runs `body` once per item of `0..<count`, each call with a one-item range, on the
    /// same pool: each thread works through its contiguous share in order, then takes the
    /// items still left in the others' shares (`rc_parallel_for_balanced`).
    ///
    /// For work items of uneven cost (a last, narrower channel panel) and for a VM that
    /// deschedules one thread for a while: `parallelFor`'s fixed split leaves the other core
    /// idle at the join, here it costs at most one item. Items should be coarse (microseconds),
    /// as each takes an atomic increment. Runs inline with one thread or one item.
    /// `body` must be safe to call concurrently on distinct items.
    public static func parallelForBalanced(_ count: Int, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let threads = self.threads
        if threads <= 1 || count == 1 {
            body(0..<count)
            return
        }
        withCallback(body) { context, callback in rc_parallel_for_balanced(count, Int32(threads), context, callback) }
    }

    /// Hands `body` to C as a context pointer and a callback that calls it.
    private static func withCallback(_ body: (Range<Int>) -> Void,
                                     _ run: (UnsafeMutableRawPointer, @convention(c) (UnsafeMutableRawPointer?, Int, Int) -> Void) -> Void) {
        withoutActuallyEscaping(body) { body in
            var box = body
            withUnsafeMutablePointer(to: &box) { pointer in
                run(UnsafeMutableRawPointer(pointer)) { context, begin, end in
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
