import Foundation
import Synchronization

/// Progress with an ETA on standard error: one line redrawn in place on a terminal; otherwise
/// (a log file, `nohup`) a plain line every `ROBUSTCTL_PROGRESS_SECONDS` (default 60) from
/// then on, and a last one at the end, so that an hours-long attack or calibration shows in
/// its log that it is alive while short runs stay quiet.
final class ProgressLine: Sendable {
    let total: Int
    let label: String
    private let start = Date()
    private let terminal = isatty(STDERR_FILENO) != 0
    /// When the last plain line was written (non-terminal output only).
    private let lastPlainLine = Mutex<Date?>(nil)
    static let plainInterval = ProcessInfo.processInfo.environment["ROBUSTCTL_PROGRESS_SECONDS"].flatMap(TimeInterval.init)
        .map { Swift.max($0, 0) } ?? 60

    init(total: Int, label: String) {
        self.total = total
        self.label = label
    }

    func update(_ done: Int) {
        let now = Date()
        let elapsed = now.timeIntervalSince(start)
        if !terminal {
            // Most updates of a logged run write nothing: decide before formatting.
            let due = lastPlainLine.withLock { last -> Bool in
                let wanted = elapsed >= Self.plainInterval
                    && (last.map { now.timeIntervalSince($0) >= Self.plainInterval || done == total } ?? true)
                if wanted { last = now }
                return wanted
            }
            if due { FileHandle.standardError.write(Data((line(done, elapsed) + "\n").utf8)) }
            return
        }
        FileHandle.standardError.write(Data(("\r" + line(done, elapsed) + " " + (done == total ? "\n" : "")).utf8))
    }

    private func line(_ done: Int, _ elapsed: TimeInterval) -> String {
        let eta = done > 0 ? elapsed / Double(done) * Double(total - done) : 0
        return String(format: "%@ %d/%d  %.0f%%  elapsed %.0fs  ETA %.0fs", label, done, total,
                      Double(done) / Double(max(total, 1)) * 100, elapsed, eta)
    }
}
