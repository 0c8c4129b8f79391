#if canImport(Glibc)
import Glibc
#endif
import Foundation
import TensorCore

/// Rehearses a read through a C library that may crash on a damaged file (libhdf5 1.10
/// dereferences corrupt offsets: one changed byte in a Keras file's B-tree can make it
/// segfault), in a forked child process, so that the caller can refuse the file instead of
/// crashing.
///
/// The child runs the same code on the same bytes as the parent then does, so a read that
/// survives in the child survives in the parent (both take the same path through the library).
/// The child uses one thread (OpenMP's pool does not survive a fork), never returns to the
/// caller and leaves with `_exit`, flushing nothing of the parent's.
enum CrashIsolation {
    enum Outcome: Equatable {
        /// The rehearsal finished (the read succeeded or threw).
        case finished
        /// The child died of this signal.
        case crashed(signal: Int32)
        /// No child could be run, or it did not finish within the time limit; the caller
        /// reads in process as before.
        case unavailable
    }

    /// Runs `body` in a forked child and reports how the child ended.
    /// - Parameter limit: seconds to wait before the child is killed (a fork-related hang).
    static func rehearse(limit: TimeInterval = 120, _ body: () throws -> Void) -> Outcome {
        let child = fork()
        if child == 0 {
            Threading.setThreads(1)
            do { try body(); _exit(0) } catch { _exit(1) }
        }
        guard child > 0 else { return .unavailable }
        let deadline = Date().addingTimeInterval(limit)
        var status: Int32 = 0
        while true {
            let result = waitpid(child, &status, WNOHANG)
            if result == child { break }
            if result < 0 && errno != EINTR { return .unavailable }
            if Date() > deadline {
                kill(child, SIGKILL)
                _ = waitpid(child, &status, 0)
                return .unavailable
            }
            usleep(1000)
        }
        // WIFSIGNALED / WTERMSIG (macros, not imported): low seven bits, neither 0 (exited)
        // nor 0x7f (stopped).
        let signal = status & 0x7f
        return signal != 0 && signal != 0x7f ? .crashed(signal: signal) : .finished
    }
}
