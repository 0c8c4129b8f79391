import ArgumentParser
import Evaluation
import Foundation

struct Study: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a whole study from a config file: prepare, select, attack, convert, evaluate, report.",
        discussion: """
        The config (JSON or YAML; see Docs/STUDY.md and Examples/paper-grid.yaml) names the \
        data, the selection, the models (architecture, flavour, weights), the attacks with \
        their parameters and the engines (pc, mobile-fp32, mobile-int8 = the flavour's own \
        scheme, mobile-int8-tflite, mobile-int8-qnnpack). Every problem in the config is \
        reported at once, with its path, before any work starts.

        The work is cut into units (model × attack × chunk of selected samples); each finished \
        unit is written atomically to --out and recorded in manifest.json. --resume continues \
        a stopped run without recomputing finished units; the report is the same as an \
        uninterrupted run's. --shard i/N runs every N-th unit so N machines can share a study; \
        'robustctl merge' combines their folders. Same config and seed give the same results, \
        byte for byte, whatever --threads is.
        """)

    @Option(help: "Study config, JSON or YAML.")
    var config: String

    @Option(help: "Output folder.")
    var out: String

    @Flag(help: "Continue the study in --out, skipping finished units.")
    var resume = false

    @Option(help: "Run only shard i of N (1-based), e.g. 2/4.")
    var shard: String?

    @Flag(help: "Only check the config and print the plan.")
    var checkOnly = false

    @Option(help: .hidden)
    var stopAfter: Int?

    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        if let shard, StudyShard(shard) == nil { throw ValidationError("--shard takes i/N with 1 ≤ i ≤ N, got '\(shard)'") }
    }

    func run() throws {
        compute.apply()
        let study: StudyConfig
        do { study = try StudyConfig.read(config) } catch let error as StudyConfigError { throw CommandError(error.description) }
        let engines = study.engines.map(\.name).joined(separator: ", ")
        print("study '\(study.title)': \(study.models.count) models × \(study.attacks.count) attacks × \(study.engines.count) engines (\(engines)); "
              + "\(study.selection.reuse.map { "selection from \($0)" } ?? "\(study.selection.count) samples")")
        if checkOnly { return }
        let directory = try prepareOutputDirectory(out)
        let runner = StudyRunner(config: study, directory: directory, shard: shard.flatMap(StudyShard.init) ?? .whole, resume: resume) { print($0) }
        do {
            guard let report = try runner.run(stopAfter: stopAfter) else { return }
            print("")
            print(report.successTableMarkdown)
            print("report: \(directory.appendingPathComponent("report/report.md").path)")
        } catch {
            // Whatever stopped the run (a missing file, an unreadable image, a full disk), the
            // units finished so far are on disk.
            throw CommandError("\(error)" + (FileManager.default.fileExists(atPath: directory.appendingPathComponent("manifest.json").path)
                ? " (finished units are kept; fix the cause and rerun with --resume)" : ""))
        }
    }
}
