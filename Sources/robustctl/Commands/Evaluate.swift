import ArgumentParser
import Attacks
import Evaluation
import Foundation
import ModelZoo
import Quantize
import TensorCore

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify a labelled folder on the PC or mobile engine: accuracy, success rate, latency.",
        discussion: """
        The paper's step 3. For a folder of adversarial examples, the success rate (the share \
        no longer classified as the label) is the attack's success on that engine. Latency is \
        the median per-image time of the classifier call alone (batch 1 unless --batch-size), \
        on --threads threads. --out writes the full result (every sample) as JSON, atomically.
        """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var compute: ComputeOptions

    @Option(help: "Folder holding the images named in --labels.")
    var input: String

    @Option(help: "CSV with header file,label (label = class index): the one given to 'attack', or for its output the labels.csv it writes.")
    var labels: String

    @Option(help: "Images per classifier call.")
    var batchSize: Int = 1

    @Option(help: "auto: resize only images of another size; always; never.")
    var resize: ResizePolicy = .auto

    @Option(help: "Name of the adversarial set (e.g. fgsm), recorded in the result for 'compare'.")
    var attack: String?

    @Option(help: "Write the result (with every sample) to this JSON file.")
    var out: String?

    @Flag(help: "Print the result as JSON.")
    var json = false

    func validate() throws {
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
    }

    func run() throws {
        compute.apply()
        if let out {
            let inputs = [(labels, "--labels"), modelOptions.weights.map { ($0, "--weights") }, modelOptions.mobile.map { ($0, "--mobile") }]
            for case let (input, option)? in inputs { try refuseOverwriting(input: input, with: out, option: option) }
            try checkOutputFile(out)
        }
        let classifier = try modelOptions.loadClassifier()
        let entries = try LabelFile.read(labels, classes: classifier.config.numClasses)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: input, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CommandError("--input \(input) is not a folder")
        }
        let items = entries.map { Evaluator.Item(path: (input as NSString).appendingPathComponent($0.file), name: $0.file, label: $0.label) }
        if let missing = items.first(where: { !FileManager.default.fileExists(atPath: $0.path) }) {
            // Attack output: the PNGs carry other extensions' names, listed in its own labels.csv.
            let png = LabelFile.adversarialName(missing.path)
            let hint = FileManager.default.fileExists(atPath: png) ? " (\(png) does: for 'attack' output pass --labels \((input as NSString).appendingPathComponent("labels.csv")))" : ""
            throw CommandError("\(missing.path) is listed in \(labels) but does not exist" + hint)
        }
        if resize == .auto { warnIfPreparedForAnotherSize(input, firstImage: items[0].path, models: [classifier.config]) }
        let progress = ProgressLine(total: items.count, label: "evaluating")
        var result = try Evaluator.run(classifier, items: items, batchSize: batchSize, policy: resize) { progress.update($0) }
        result.attack = attack
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(result)
        if let out {
            do { try data.write(to: URL(fileURLWithPath: out), options: .atomic) } catch {
                throw CommandError("cannot write \(out): \(FileFailure.writeReason(out, error))")
            }
        }
        if json {
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(String(format: "%@ %@ %@: %d samples, accuracy %.2f%%, success rate %.2f%%, %.2f ms/image (median, batch %d, %d threads)",
                         result.engine, result.flavor.rawValue, result.architecture.rawValue, result.samples.count,
                         result.accuracy * 100, result.successRate * 100, result.inferenceMsPerImage, result.batchSize, result.threads))
        }
    }
}
