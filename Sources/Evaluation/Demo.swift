import Attacks
import Foundation
import ModelZoo
import Quantize
import TensorCore

/// The whole study on the built-in dataset: what `robustctl demo` runs.
///
/// Steps, each written to the output folder as it finishes (so `resume` skips it):
/// models (shipped weights, else trained here) → selection of samples every model
/// classifies correctly → FGSM, BIM and Boundary adversarials on the PC engine (8-bit PNG)
/// → mobile conversion (fp32, int8-tflite, int8-qnnpack, calibrated on training images)
/// → evaluation of every adversarial set on every engine → the comparison report.
public struct DemoPlan: Codable, Hashable, Sendable {
    public var models: [ModelConfig]
    public var samples: Int
    /// Validation images screened for the selection.
    public var pool: Int
    public var epsilon: Float
    public var bimSteps: Int
    public var boundarySteps: Int
    public var calibrationImages: Int
    public var trainCount: Int
    public var training: TrainingOptions
    public var seed: UInt64

    /// The default demo (or its one-minute `quick` variant): all demo models at 75 px.
    public static func standard(quick: Bool) -> DemoPlan {
        let size = 75
        let models: [ModelConfig] = quick
            ? [ModelConfig(architecture: .resnet50, flavor: .torch, widthMultiplier: 0.125, inputSize: size, numClasses: 10),
               ModelConfig(architecture: .resnet50, flavor: .keras, widthMultiplier: 0.125, inputSize: size, numClasses: 10)]
            : Flavor.allCases.flatMap { flavor in
                [ModelConfig(architecture: .mobilenetV2, flavor: flavor, widthMultiplier: 0.35, inputSize: size, numClasses: 10),
                 ModelConfig(architecture: .resnet50, flavor: flavor, widthMultiplier: 0.125, inputSize: size, numClasses: 10),
                 ModelConfig(architecture: .inceptionV3, flavor: flavor, widthMultiplier: 0.0625, inputSize: size, numClasses: 10)]
            }
        return DemoPlan(models: models, samples: quick ? 12 : 50, pool: quick ? 200 : 500, epsilon: 0.03,
                        bimSteps: 10, boundarySteps: quick ? 25 : 100, calibrationImages: quick ? 16 : 200,
                        trainCount: quick ? 1200 : 6000,
                        training: TrainingOptions(epochs: quick ? 2 : 8, batchSize: 64, learningRate: 0.003, optimizer: .adam,
                                                  weightDecay: 0, seed: 1, batchNormMomentum: 0.01),
                        seed: 0)
    }

    static func tag(_ config: ModelConfig) -> String { "\(config.architecture.rawValue)/\(config.flavor.rawValue)" }
    static func fileStem(_ config: ModelConfig) -> String { "\(config.architecture.rawValue)_\(config.flavor.rawValue)" }
}

public final class DemoRunner {
    public let plan: DemoPlan
    public let directory: URL
    public let resume: Bool
    /// Folder of shipped weights (`<architecture>_<flavor>.safetensors|h5`); missing ones are trained.
    public let shippedWeights: URL?
    let log: (String) -> Void

    public init(plan: DemoPlan, directory: URL, resume: Bool, shippedWeights: URL?, log: @escaping (String) -> Void) {
        self.plan = plan; self.directory = directory; self.resume = resume; self.shippedWeights = shippedWeights; self.log = log
    }

    func path(_ components: String...) -> URL {
        components.reduce(directory) { $0.appendingPathComponent($1) }
    }

    /// Loads a finished step's JSON when resuming, else computes and writes it atomically.
    func step<T: Codable>(_ file: URL, _ compute: () throws -> T) throws -> T {
        if resume, let data = try? Data(contentsOf: file), let value = try? JSONDecoder().decode(T.self, from: data) { return value }
        let value = try compute()
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try encoder.encode(value).write(to: file, options: .atomic)
        return value
    }

    public func run() throws -> StudyReport {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let size = plan.models[0].inputSize
        precondition(plan.models.allSatisfy { $0.inputSize == size }, "demo models share one input size")
        let models = try plan.models.map { try model($0) }

        // Selection: the first `samples` validation images every model gets right.
        let pool = try BuiltinDataset(name: "shapes", split: .validation, imageSize: size, count: plan.pool, seed: plan.seed)
        struct Selection: Codable { var indices: [Int]; var accuracy: [String: Double] }
        let selection = try step(path("selection.json")) { () -> Selection in
            let (images, labels) = try pool.batch(Array(0..<pool.count), size: size)
            var correct = [Bool](repeating: true, count: pool.count)
            var accuracy: [String: Double] = [:]
            for model in models {
                let predictions = model.predictions(images)
                for i in 0..<pool.count where predictions[i] != labels[i] { correct[i] = false }
                accuracy[DemoPlan.tag(model.config)] = Double(zip(predictions, labels).filter { $0 == $1 }.count) / Double(pool.count)
            }
            let indices = Array(correct.indices.filter { correct[$0] }.prefix(plan.samples))
            log("selection: \(indices.count) of \(pool.count) validation images classified correctly by all \(models.count) models "
                + "(accuracy " + accuracy.keys.sorted().map { "\($0) \(String(format: "%.0f%%", accuracy[$0]! * 100))" }.joined(separator: ", ") + ")")
            return Selection(indices: indices, accuracy: accuracy)
        }
        guard !selection.indices.isEmpty else {
            throw DemoError("no validation image is classified correctly by every model; the models are not trained well enough")
        }
        let (clean, labels) = try pool.batch(selection.indices, size: size)

        var cells: [StudyCell] = []
        let training = try BuiltinDataset(name: "shapes", split: .train, imageSize: size, count: plan.calibrationImages, seed: plan.seed &+ 1)
        for model in models {
            let tag = DemoPlan.tag(model.config), stem = DemoPlan.fileStem(model.config)
            let engines = try self.engines(model, calibration: training)
            let attacks: [(String, (Model, Tensor, [Int]) -> AttackResult)] = [
                ("fgsm", { GradientAttack.fgsm(epsilon: self.plan.epsilon).attack(model: $0, images: $1, labels: $2, seed: self.plan.seed) }),
                ("bim", { GradientAttack.bim(epsilon: self.plan.epsilon, steps: self.plan.bimSteps).attack(model: $0, images: $1, labels: $2, seed: self.plan.seed) }),
                ("boundary", { BoundaryAttack(steps: self.plan.boundarySteps).attack(model: $0, images: $1, labels: $2, seed: self.plan.seed) }),
            ]
            for (attack, run) in attacks {
                let folder = path("adversarials", stem, attack)
                struct Generated: Codable { var seconds: Double }
                let generated = try step(folder.appendingPathComponent("generation.json")) { () -> Generated in
                    let start = Date()
                    let result = run(model, clean, labels)
                    let seconds = Date().timeIntervalSince(start) / Double(labels.count)
                    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                    for row in 0..<labels.count {
                        try ImageCodec.writePNG(RGBImage(tensor: result.adversarials.slice(row)), to: folder.appendingPathComponent("\(row).png").path)
                    }
                    log("\(tag) \(attack): \(labels.count) adversarials (\(String(format: "%.3f", seconds)) s/image on the PC engine)")
                    return Generated(seconds: seconds)
                }
                // The study evaluates the 8-bit PNGs, as a phone would receive them.
                let adversarials = Tensor.concatenateBatch(try (0..<labels.count).map {
                    try ImageCodec.read(folder.appendingPathComponent("\($0).png").path).tensor()
                })
                for (engineName, classifier) in engines {
                    let cell = try step(path("cells", "\(stem)_\(attack)_\(engineName).json")) { () -> StudyCell in
                        var predictions: [Int] = [], times: [Double] = []
                        for row in 0..<labels.count {
                            let image = adversarials.slice(row).reshaped([1, 3, size, size])
                            let start = DispatchTime.now().uptimeNanoseconds
                            let logits = try classifier.classify(image)
                            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
                            predictions.append(Model.argmax(logits)[0])
                        }
                        return StudyCell(model: tag, attack: attack, engine: engineName, success: zip(predictions, labels).map { $0 != $1 },
                                         inferenceMs: Evaluator.median(times), generationSeconds: generated.seconds)
                    }
                    cells.append(cell)
                }
            }
        }
        let report = StudyReport(cells: cells, title: "robustctl demo (built-in shapes dataset)")
        try report.write(to: path("report"))
        return report
    }

    /// The model's weights: from a finished run (resume), shipped, or trained now.
    func model(_ config: ModelConfig) throws -> Model {
        let stem = DemoPlan.fileStem(config)
        let ext = config.flavor == .torch ? "safetensors" : "h5"
        let destination = path("models", "\(stem).\(ext)")
        if resume, FileManager.default.fileExists(atPath: destination.path) { return try Model(config: config, weights: destination.path) }
        if let shipped = shippedWeights?.appendingPathComponent("\(stem).\(ext)"), FileManager.default.fileExists(atPath: shipped.path) {
            log("\(DemoPlan.tag(config)): shipped weights \(shipped.lastPathComponent)")
            return try Model(config: config, weights: shipped.path)
        }
        log("\(DemoPlan.tag(config)): no shipped weights; training (\(plan.training.epochs) epochs on \(plan.trainCount) images)")
        let definition = try NetworkDefinition(config)
        let train = try BuiltinDataset(name: "shapes", split: .train, imageSize: config.inputSize, count: plan.trainCount, seed: plan.seed &+ 2)
        let model = try Trainer.train(definition, on: train, options: plan.training)
        let tensors = Dictionary(uniqueKeysWithValues: definition.parameters.map { ($0.name, model.parameters[$0.name]!) })
        try FileManager.default.createDirectory(at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
        if config.flavor == .torch { try SafeTensors.write(tensors, to: destination.path) } else {
            try KerasWeights.write(tensors, definition: definition, to: destination.path)
        }
        return model
    }

    /// The PC model and its three mobile forms (written as .mobile files).
    func engines(_ model: Model, calibration: BuiltinDataset) throws -> [(String, any ImageClassifier)] {
        let stem = DemoPlan.fileStem(model.config)
        var result: [(String, any ImageClassifier)] = [("pc", model)]
        let fp32Path = path("mobile", "\(stem)-fp32.mobile")
        if !(resume && FileManager.default.fileExists(atPath: fp32Path.path)) {
            try FileManager.default.createDirectory(at: fp32Path.deletingLastPathComponent(), withIntermediateDirectories: true)
            try MobileFile.write(try MobileConverter.convert(model, labels: BuiltinDataset.shapeClasses, sourceWeights: stem), to: fp32Path.path)
        }
        result.append(("mobile-fp32", MobileEngine(try MobileFile.read(fp32Path.path))))
        for scheme in QuantizationScheme.allCases {
            let file = path("mobile", "\(stem)-int8-\(scheme.rawValue).mobile")
            if !(resume && FileManager.default.fileExists(atPath: file.path)) {
                var calibrator = try Calibrator(model: model, scheme: scheme)
                for start in stride(from: 0, to: calibration.count, by: 16) {
                    try calibrator.observe(calibration.batch(Array(start..<Swift.min(start + 16, calibration.count)), size: model.config.inputSize).images)
                }
                try MobileFile.write(try calibrator.finish(labels: BuiltinDataset.shapeClasses, sourceWeights: stem), to: file.path)
            }
            result.append(("mobile-int8-\(scheme.rawValue)", MobileEngine(try MobileFile.read(file.path))))
        }
        return result
    }
}

public struct DemoError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
