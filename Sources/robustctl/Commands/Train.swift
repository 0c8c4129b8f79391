import ArgumentParser
import Foundation
import ModelZoo
import TensorCore

extension Optimizer.Kind: ExpressibleByArgument {}
extension TrainingOptions.Schedule: ExpressibleByArgument {}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a zoo network on the PC engine and write its weights.",
        discussion: """
        Trains from scratch with batch norm in training mode, softmax cross-entropy, SGD with \
        momentum (PyTorch's rule) or Adam, a cosine or step learning-rate schedule, and random \
        4-pixel shifts and horizontal flips. Deterministic for a given --seed and --threads.

        --dataset builtin:shapes is the procedural dataset (10 classes of figures and textures, \
        generated from the seed; --train-count / --validation-count samples). A folder is an \
        ImageFolder: DIR/<class>/*.png|jpg, or DIR/train/<class>/… with DIR/val/<class>/… for \
        validation.

        Weights are written in the flavour's own format and key names: safetensors for torch, \
        Keras .h5 (save_weights layout) for keras — both readable by 'predict', 'attack', \
        'convert' and by the reference frameworks.
        """)

    @Option(name: .long, help: "Architecture: \(Architecture.allCases.map(\.rawValue).joined(separator: ", ")).")
    var model: Architecture

    @Option(help: "Framework flavour: torch or keras.")
    var flavor: Flavor

    @Option(help: "Channel width multiplier.")
    var widthMultiplier: Double = 1

    @Option(help: "Input size in pixels (default: the dataset's image size).")
    var inputSize: Int?

    @Option(help: "Number of classes (default: the dataset's).")
    var numClasses: Int?

    @Option(help: "builtin:NAME (\(BuiltinDataset.names.joined(separator: ", "))) or an ImageFolder directory.")
    var dataset: String

    @Option(help: "Built-in dataset: training samples.")
    var trainCount: Int = 6000

    @Option(help: "Built-in dataset: validation samples.")
    var validationCount: Int = 1000

    @Option(help: "Built-in dataset: image size in pixels.")
    var imageSize: Int = 96

    @Option(help: "Training epochs.")
    var epochs: Int

    @Option(help: "Batch size.")
    var batchSize: Int = 64

    @Option(help: "Peak learning rate.")
    var lr: Float = 0.05

    @Option(help: "sgd or adam.")
    var optimizer: Optimizer.Kind = .sgd

    @Option(help: "SGD momentum.")
    var momentum: Float = 0.9

    @Option(help: "L2 weight decay.")
    var weightDecay: Float = 5e-4

    @Option(help: "cosine or step.")
    var schedule: TrainingOptions.Schedule = .cosine

    @Option(help: "Seed for initialisation, data order, augmentation and the built-in dataset.")
    var seed: UInt64 = 0

    @Option(help: "Batch-norm momentum while training (weight of each batch, PyTorch convention; default: the flavour's own).")
    var bnMomentum: Float?

    @Flag(help: "Turn off shifts and flips.")
    var noAugment = false

    @OptionGroup var compute: ComputeOptions

    @Option(help: "Weight file to write (.safetensors for torch, .h5 for keras).")
    var out: String

    @Flag(help: "Print one JSON object per epoch.")
    var json = false

    func validate() throws {
        if epochs < 1 { throw ValidationError("--epochs must be at least 1") }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
        if !(lr > 0 && lr.isFinite) { throw ValidationError("--lr must be a positive number") }
        if !(0..<1).contains(momentum) { throw ValidationError("--momentum must be in [0, 1)") }
        if !(weightDecay >= 0 && weightDecay.isFinite) { throw ValidationError("--weight-decay must be a number of at least 0") }
        if let bnMomentum, !(bnMomentum > 0 && bnMomentum <= 1) { throw ValidationError("--bn-momentum must be in (0, 1]") }
        if trainCount < 1 || validationCount < 0 { throw ValidationError("--train-count must be at least 1, --validation-count at least 0") }
    }

    func sources() throws -> (train: any LabeledImageSource, validation: (any LabeledImageSource)?) {
        if dataset.hasPrefix("builtin:") {
            let name = String(dataset.dropFirst("builtin:".count))
            do {
                let train = try BuiltinDataset(name: name, split: .train, imageSize: imageSize, count: trainCount, seed: seed)
                let validation = validationCount > 0
                    ? try BuiltinDataset(name: name, split: .validation, imageSize: imageSize, count: validationCount, seed: seed) : nil
                return (train, validation)
            } catch where error is BuiltinDataset.UnknownDataset || error is BuiltinDataset.InvalidParameter {
                throw CommandError("\(error)")
            }
        }
        do {
            let trainFolder = (dataset as NSString).appendingPathComponent("train"), valFolder = (dataset as NSString).appendingPathComponent("val")
            if FileManager.default.fileExists(atPath: trainFolder) && FileManager.default.fileExists(atPath: valFolder) {
                return (try ImageFolderDataset(directory: trainFolder), try ImageFolderDataset(directory: valFolder))
            }
            return (try ImageFolderDataset(directory: dataset), nil)
        } catch let error as ImageFolderDataset.FolderError {
            throw CommandError("\(error)")
        }
    }

    func run() throws {
        compute.apply()
        let (train, validation) = try sources()
        let builtinSize = dataset.hasPrefix("builtin:") ? imageSize : nil
        let config = ModelConfig(architecture: model, flavor: flavor, widthMultiplier: widthMultiplier,
                                 inputSize: inputSize ?? builtinSize ?? model.defaultInputSize, numClasses: numClasses ?? train.classNames.count)
        let definition: NetworkDefinition
        do { definition = try NetworkDefinition(config) } catch let error as ModelError { throw CommandError("\(error)") }
        if config.numClasses < train.classNames.count {
            throw CommandError("--num-classes \(config.numClasses) is fewer than the dataset's \(train.classNames.count) classes")
        }
        let expectedExtension = flavor == .torch ? "safetensors" : "h5"
        if (out as NSString).pathExtension.lowercased() != expectedExtension {
            throw CommandError("--out for the \(flavor.rawValue) flavour must be a .\(expectedExtension) file")
        }
        try checkOutputFile(out)
        let options = TrainingOptions(epochs: epochs, batchSize: batchSize, learningRate: lr, optimizer: optimizer, momentum: momentum,
                                      weightDecay: weightDecay, schedule: schedule, seed: seed, augment: !noAugment,
                                      batchNormMomentum: bnMomentum)
        var progress = ProgressLine(total: (train.count + batchSize - 1) / batchSize, label: "epoch 1/\(epochs)")
        let trained = try Trainer.train(definition, on: train, validation: validation, options: options,
                                        onBatch: { done, _ in progress.update(done) },
                                        onEpoch: { report in
            if json {
                printJSON(report)
            } else {
                print(String(format: "epoch %d/%d  loss %.4f  train %.1f%%%@  lr %.4g  %.1fs", report.epoch, epochs, report.trainLoss,
                             report.trainAccuracy * 100, report.validationAccuracy.map { String(format: "  validation %.1f%%", $0 * 100) } ?? "",
                             report.learningRate, report.seconds))
            }
            progress = ProgressLine(total: (train.count + batchSize - 1) / batchSize, label: "epoch \(report.epoch + 1)/\(epochs)")
        })
        // The flavour's own checkpoint: every parameter the definition reads, by its key.
        let tensors = Dictionary(uniqueKeysWithValues: definition.parameters.map { ($0.name, trained.parameters[$0.name]!) })
        if flavor == .torch {
            try SafeTensors.write(tensors, to: out, metadata: ["format": "pt", "architecture": model.rawValue, "producer": "robustctl train"])
        } else {
            try KerasWeights.write(tensors, definition: definition, to: out)
        }
        if !json { print("wrote \(out)") }
    }
}
