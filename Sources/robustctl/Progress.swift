import Foundation

/// A one-line progress display with ETA on standard error, silent when it is not a terminal.
struct ProgressLine {
    let total: Int
    let label: String
    let start = Date()
    let enabled = isatty(STDERR_FILENO) != 0

    func update(_ done: Int) {
        guard enabled else { return }
        let elapsed = Date().timeIntervalSince(start)
        let eta = done > 0 ? elapsed / Double(done) * Double(total - done) : 0
        let line = String(format: "\r%@ %d/%d  %.0f%%  elapsed %.0fs  ETA %.0fs ", label, done, total,
                          Double(done) / Double(max(total, 1)) * 100, elapsed, eta)
        FileHandle.standardError.write(Data(line.utf8))
        if done == total { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
