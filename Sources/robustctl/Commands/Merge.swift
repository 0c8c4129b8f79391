import ArgumentParser
import Evaluation
import Foundation

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Combine the output folders of a sharded study into one, with its report.",
        discussion: """
        Give the --out folders of 'robustctl study --shard i/N' runs of one config. Their units \
        (and adversarial PNGs) are copied into --out and the report is written as an unsharded \
        run would write it. Refuses folders of different configs or selections, names the units \
        none of them has finished, and names a damaged unit; everything is checked before \
        anything is written, and the merged folder appears whole (built beside --out, then \
        renamed into place).
        """)

    @Argument(help: "Shard output folders.")
    var inputs: [String]

    @Option(help: "Output folder (new, or empty).")
    var out: String

    func validate() throws {
        if inputs.isEmpty { throw ValidationError("give the shard folders to merge") }
    }

    func run() throws {
        do {
            let report = try StudyMerge.merge(inputs.map { URL(fileURLWithPath: $0) }, into: URL(fileURLWithPath: out)) { print($0) }
            print(report.successTableMarkdown)
            print("report: \((out as NSString).appendingPathComponent("report/report.md"))")
        } catch let error as StudyError { throw CommandError(error.description) }
    }
}
