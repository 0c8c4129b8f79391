import ArgumentParser
import CShims
import Foundation
import TensorCore

@main
struct RobustCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "robustctl",
        abstract: "Measure how the adversarial robustness of image classifiers changes from PC to mobile.",
        discussion: """
        The workflow of Eslami & Hemmati's study: prepare -> select -> attack (PC) -> \
        convert (mobile, optionally int8) -> evaluate -> compare. Each step is a subcommand; \
        `study` runs them all from one config file, and `demo` runs a built-in study offline.
        """,
        subcommands: [Models.self, Prepare.self, Select.self, Predict.self, Attack.self, Convert.self, Evaluate.self, Compare.self, Stats.self, Study.self, Merge.self, Train.self, Demo.self, Bench.self]
    )
}

/// Options every compute-heavy subcommand takes.
struct ComputeOptions: ParsableArguments {
    @Option(help: "Threads for OpenBLAS, oneDNN and robustctl's own loops (default: all cores).")
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
    }

    func apply() {
        // Progress lines (epochs, demo steps) should reach a log file or pipe as they happen.
        rc_line_buffer_stdout()
        let cores = ProcessInfo.processInfo.activeProcessorCount
        if let threads, threads > cores {
            // Allowed (results do not depend on it), but every parallel loop then waits on
            // threads that share a core, and measured times say so.
            printError("warning: --threads \(threads) is more than this machine's \(cores) cores; the work and its timings will be slower")
        }
        Threading.setThreads(threads ?? cores)
    }
}

/// Writes a line to standard error.
func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// A failure while running a command: ArgumentParser prints it as one line, "Error: …",
/// and exits with status 1 (no usage text, which is for mistakes in the arguments).
struct CommandError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
