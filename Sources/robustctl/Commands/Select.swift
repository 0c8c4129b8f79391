import ArgumentParser
import Attacks
import Evaluation
import Foundation
import ModelZoo

struct Select: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Select samples every model classifies correctly, drawn at random with a seed.",
        discussion: """
        The paper's selection step. Give each model with its own --model, --flavor and \
        --weights (repeat the three options, in the same order; --width-multiplier, \
        --input-size and --num-classes take one value for all models or one per model). \
        Every image of --dataset (a folder with labels.csv, as 'prepare' writes) is classified \
        by every model on the PC engine; of those all models get right, --count are drawn \
        with --seed. --out receives labels.csv (the selection, usable by 'attack' with \
        --input DATASET) and selection.json (indices, per-model accuracy, seed).
        """)

    @Option(help: "Folder with labels.csv and the images it names.")
    var dataset: String

    @Option(name: .customLong("model"), help: "Architecture (repeat per model).")
    var models: [Architecture] = []

    @Option(name: .customLong("flavor"), help: "Flavour (repeat per model).")
    var flavors: [Flavor] = []

    @Option(name: .customLong("weights"), help: "Weight file (repeat per model).")
    var weights: [String] = []

    @Option(name: .customLong("width-multiplier"), help: "Width multiplier: one value, or one per model.")
    var widths: [Double] = []

    @Option(name: .customLong("input-size"), help: "Input size: one value, or one per model.")
    var inputSizes: [Int] = []

    @Option(name: .customLong("num-classes"), help: "Classes: one value, or one per model.")
    var classes: [Int] = []

    @Option(help: "How many samples to select.")
    var count: Int = 3000

    @Option(help: "Seed of the random draw.")
    var seed: UInt64 = 0

    @Option(help: "Output folder.")
    var out: String

    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        if models.isEmpty { throw ValidationError("give at least one --model with its --flavor and --weights") }
        if flavors.count != models.count || weights.count != models.count {
            throw ValidationError("give one --flavor and one --weights per --model (got \(models.count) models, \(flavors.count) flavours, \(weights.count) weight files)")
        }
        for (name, values) in [("--width-multiplier", widths.count), ("--input-size", inputSizes.count), ("--num-classes", classes.count)]
            where values > 1 && values != models.count {
            throw ValidationError("\(name) takes one value or one per model (\(models.count))")
        }
        if count < 1 { throw ValidationError("--count must be at least 1") }
    }

    func value<T>(_ values: [T], _ index: Int, default fallback: T) -> T {
        values.isEmpty ? fallback : (values.count == 1 ? values[0] : values[index])
    }

    func run() throws {
        compute.apply()
        let classifiers: [any ImageClassifier] = try models.indices.map { i in
            let config = ModelConfig(architecture: models[i], flavor: flavors[i], widthMultiplier: value(widths, i, default: 1),
                                     inputSize: inputSizes.isEmpty ? nil : value(inputSizes, i, default: 0),
                                     numClasses: value(classes, i, default: 1000))
            return try Model(config: config, weights: weights[i])
        }
        let labelsPath = (dataset as NSString).appendingPathComponent("labels.csv")
        let entries = try LabelFile.read(labelsPath, classes: classifiers.map(\.config.numClasses).min()!)
        let items = entries.map { Evaluator.Item(path: (dataset as NSString).appendingPathComponent($0.file), name: $0.file, label: $0.label) }
        if let missing = items.first(where: { !FileManager.default.fileExists(atPath: $0.path) }) {
            throw CommandError("\(missing.path) is listed in \(labelsPath) but does not exist")
        }
        warnIfPreparedForAnotherSize(dataset, firstImage: items[0].path, models: classifiers.map(\.config))
        try refuseOverwriting(input: labelsPath, with: (out as NSString).appendingPathComponent("labels.csv"), option: "the dataset's")
        let directory = try prepareOutputDirectory(out)
        var progress = ProgressLine(total: items.count, label: "model 1/\(models.count)")
        var current = 0
        let result = try Selection.select(classifiers, items: items, count: count, seed: seed) { model, done in
            if model != current { current = model; progress = ProgressLine(total: items.count, label: "model \(model + 1)/\(models.count)") }
            progress.update(done)
        }
        try LabelFile.write(result.indices.map { entries[$0] }, to: directory.appendingPathComponent("labels.csv"))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(result).write(to: directory.appendingPathComponent("selection.json"), options: .atomic)
        print("selected \(result.indices.count) of \(result.eligible) images all \(models.count) models classify correctly "
              + "(of \(items.count)); accuracy " + result.accuracy.keys.sorted().map { "\($0) \(String(format: "%.1f%%", result.accuracy[$0]! * 100))" }.joined(separator: ", "))
    }
}
