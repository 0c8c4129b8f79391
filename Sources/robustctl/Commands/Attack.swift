import ArgumentParser
import Attacks
import Foundation
import ModelZoo
import TensorCore

struct Attack: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate adversarial examples on the PC engine and write them as 8-bit PNG files.",
        discussion: """
        Attacks follow Foolbox 3.3 semantics (untargeted misclassification, pixels in [0, 1], \
        preprocessing inside the model). Defaults: --epsilon 0.005 (the study's); BIM 10 \
        steps, PGD 40 steps with a random start; Boundary 5000 steps (the study's; Foolbox's \
        own default is 25000), spherical and source steps 0.01. Each adversarial is written as <name>.png \
        in --out with labels.csv naming them (what 'evaluate --input OUT --labels \
        OUT/labels.csv' reads), and manifest.json records every sample's success before and \
        after 8-bit rounding, its L-inf and L2 distances, queries and time.
        """)

    enum Kind: String, ExpressibleByArgument, CaseIterable { case fgsm, bim, pgd, boundary }

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var compute: ComputeOptions

    @Option(help: "Attack: \(Kind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var attack: Kind

    @Option(help: "L-inf budget in [0, 1] pixel units (gradient attacks).")
    var epsilon: Float = 0.005

    @Option(help: "Iterations (BIM: 10, PGD: 40, Boundary: 5000 by default).")
    var steps: Int?

    @Option(help: "Seed for every random choice (PGD's random start).")
    var seed: UInt64 = 0

    @Option(help: "Images per model call.")
    var batchSize: Int = 8

    @Flag(help: "Return adversarials that stay adversarial after 8-bit rounding (default off, as in the study).")
    var uint8Aware = false

    @Option(help: "Folder holding the images named in --labels.")
    var input: String

    @Option(help: "CSV with header file,label (label = class index).")
    var labels: String

    @Option(help: "Output folder for the PNG adversarials and manifest.json.")
    var out: String

    @Option(help: "auto: resize only images of another size; always; never.")
    var resize: ResizePolicy = .auto

    @Flag(help: "Print the manifest as JSON on standard output.")
    var json = false

    func validate() throws {
        if modelOptions.mobile != nil { throw ValidationError("attacks run on the PC engine: give --model/--flavor/--weights, not --mobile") }
        if !(epsilon > 0 && epsilon.isFinite) { throw ValidationError("--epsilon must be a positive number") }
        if let steps, steps < 1 { throw ValidationError("--steps must be at least 1") }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
    }

    struct Manifest: Encodable {
        struct Sample: Encodable {
            let file: String
            let output: String
            let outcome: SampleOutcome
            enum CodingKeys: String, CodingKey { case file, output }
            func encode(to encoder: Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(file, forKey: .file)
                try container.encode(output, forKey: .output)
                try outcome.encode(to: encoder)
            }
        }
        struct Totals: Encodable {
            let samples: Int
            let success_rate: Double
            let success_rate_uint8: Double
            let seconds: Double
        }
        let attack: AttackParameters
        let seed: UInt64
        let uint8_aware: Bool
        let model: ModelConfig
        let weights: String
        let samples: [Sample]
        let totals: Totals
    }

    func run() throws {
        compute.apply()
        let model = try modelOptions.load()
        let entries = try LabelFile.read(labels, classes: model.config.numClasses)
        let inputDirectory = URL(fileURLWithPath: input)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: input, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CommandError("--input \(input) is not a folder")
        }
        let files = entries.map { inputDirectory.appendingPathComponent($0.file).path }
        if let missing = files.first(where: { !FileManager.default.fileExists(atPath: $0) }) {
            throw CommandError("\(missing) is listed in \(labels) but does not exist")
        }
        if resize == .auto { warnIfPreparedForAnotherSize(input, firstImage: files[0], models: [model.config]) }
        let outputs = entries.map { LabelFile.adversarialName($0.file) }
        var writers: [String: String] = [:]
        for (entry, output) in zip(entries, outputs) {
            if let other = writers.updateValue(entry.file, forKey: output) {
                throw CommandError("\(other) and \(entry.file) in \(labels) would both be written as \(output)")
            }
        }
        // An adversarial written over an input image (--out the --input folder) would replace
        // the dataset it was made from.
        let inputPaths = Set(files.map { URL(fileURLWithPath: $0).resolvingSymlinksInPath().path })
        let outputFolder = URL(fileURLWithPath: out).resolvingSymlinksInPath()
        if let (entry, output) = zip(entries, outputs).first(where: { inputPaths.contains(outputFolder.appendingPathComponent($1).resolvingSymlinksInPath().path) }) {
            throw CommandError("--out \(out) would write the adversarial of \(entry.file) over an input image (\(output)); choose another --out")
        }
        try refuseOverwriting(input: labels, with: outputFolder.appendingPathComponent("labels.csv").path, option: "--labels")
        let outputDirectory = try prepareOutputDirectory(out)
        let parameters: AttackParameters
        switch attack {
        case .fgsm: parameters = .gradient(.fgsm(epsilon: epsilon))
        case .bim: parameters = .gradient(.bim(epsilon: epsilon, steps: steps ?? 10))
        case .pgd: parameters = .gradient(.pgd(epsilon: epsilon, steps: steps ?? 40))
        case .boundary: parameters = .boundary(BoundaryAttack(steps: steps ?? 5000, uint8Aware: uint8Aware))
        }
        let progress = ProgressLine(total: entries.count, label: attack.rawValue)
        let start = Date()
        var samples: [Manifest.Sample] = []
        for batchStart in stride(from: 0, to: entries.count, by: batchSize) {
            let batch = Array(batchStart..<min(batchStart + batchSize, entries.count))
            let images = try ImageInput.load(batch.map { files[$0] }, config: model.config, policy: resize)
            // Each batch gets its own seed so results do not depend on the batch size's history.
            let batchLabels = batch.map { entries[$0].label }, batchSeed = seed &+ UInt64(batchStart)
            let result: AttackResult
            switch parameters {
            case let .gradient(attack):
                result = attack.attack(model: model, images: images, labels: batchLabels, seed: batchSeed, uint8Aware: uint8Aware)
            case let .boundary(attack): result = attack.attack(model: model, images: images, labels: batchLabels, seed: batchSeed)
            }
            for (row, index) in batch.enumerated() {
                let name = outputs[index]
                let destination = outputDirectory.appendingPathComponent(name)
                try FileManager.default.createDirectory(at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
                try ImageCodec.writePNG(RGBImage(tensor: result.adversarials.slice(row)), to: destination.path)
                samples.append(Manifest.Sample(file: entries[index].file, output: name, outcome: result.outcomes[row]))
            }
            progress.update(samples.count)
        }
        let count = Double(samples.count)
        let manifest = Manifest(attack: parameters, seed: seed, uint8_aware: uint8Aware, model: model.config, weights: modelOptions.weights!, samples: samples,
                                totals: .init(samples: samples.count,
                                              success_rate: Double(samples.filter(\.outcome.success).count) / count,
                                              success_rate_uint8: Double(samples.filter(\.outcome.successUInt8).count) / count,
                                              seconds: Date().timeIntervalSince(start)))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        let data = try encoder.encode(manifest)
        try LabelFile.write(zip(entries, outputs).map { LabelFile.Entry(file: $1, label: $0.label) },
                            to: outputDirectory.appendingPathComponent("labels.csv"))
        // The manifest last: its presence marks a finished run.
        try data.write(to: outputDirectory.appendingPathComponent("manifest.json"), options: .atomic)
        if json {
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(String(format: "%@: %d samples, success %.1f%% (float), %.1f%% (8-bit PNG); wrote %@",
                         attack.rawValue, samples.count, manifest.totals.success_rate * 100,
                         manifest.totals.success_rate_uint8 * 100, outputDirectory.path))
        }
    }
}

/// The attack and its parameters, as recorded in the manifest.
enum AttackParameters: Encodable {
    case gradient(GradientAttack)
    case boundary(BoundaryAttack)

    func encode(to encoder: Encoder) throws {
        switch self {
        case let .gradient(attack): try attack.encode(to: encoder)
        case let .boundary(attack):
            var container = encoder.container(keyedBy: NameKey.self)
            try container.encode("boundary", forKey: .name)
            try attack.encode(to: encoder)
        }
    }

    enum NameKey: String, CodingKey { case name }
}
