import Attacks
import Foundation
import ModelZoo
import Quantize
import TensorCore

/// The whole study on the built-in dataset: what `robustctl demo` runs.
///
/// Models (shipped weights, else trained here), then a study (`StudyRunner`, so `resume`
/// skips finished units): selection of samples every model classifies correctly → FGSM,
/// BIM and Boundary adversarials on the PC engine (8-bit PNG) → mobile conversion (fp32,
/// int8-tflite, int8-qnnpack, calibrated on training images) → evaluation of every
/// adversarial set on every engine → the comparison report.
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

}

/// Runs the demo: resolves each model's weights (shipped, else trained here), then runs the
/// plan as a study (`StudyRunner`) on the built-in dataset.
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

    /// The study the demo runs, given each model's weight file.
    public func studyConfig(weights: [String]) -> StudyConfig {
        let size = plan.models[0].inputSize
        precondition(plan.models.allSatisfy { $0.inputSize == size }, "demo models share one input size")
        let models = zip(plan.models, weights).map { StudyConfig.ModelSpec(config: $0, weights: $1) }
        return StudyConfig(
            title: "robustctl demo (built-in shapes dataset)", seed: plan.seed,
            data: .init(prepared: [:], source: "builtin:shapes", groundTruth: nil, synsets: nil, size: size, count: plan.pool,
                        split: "validation", sourceSeed: plan.seed),
            selection: .init(count: plan.samples, seed: plan.seed, reuse: nil), models: models,
            attacks: [.init(name: "fgsm", gradient: .fgsm(epsilon: plan.epsilon), boundary: nil, uint8Aware: false),
                      .init(name: "bim", gradient: .bim(epsilon: plan.epsilon, steps: plan.bimSteps), boundary: nil, uint8Aware: false),
                      .init(name: "boundary", gradient: nil, boundary: BoundaryAttack(steps: plan.boundarySteps), uint8Aware: false)],
            engines: [.pc, .mobileFP32] + QuantizationScheme.allCases.map { .mobileInt8($0) },
            calibration: .init(images: "builtin:shapes", count: plan.calibrationImages, observer: nil, allowFewer: false),
            chunkSize: plan.samples, attackBatchSize: plan.samples)
    }

    public func run() throws -> StudyReport {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let weights = try plan.models.map { try self.weights($0) }
        let study = StudyRunner(config: studyConfig(weights: weights), directory: directory, resume: resume, log: log)
        guard let report = try study.run() else { throw DemoError("the demo study did not finish") }
        return report
    }

    /// The model's weight file: from a finished run (resume), shipped, or trained now.
    func weights(_ config: ModelConfig) throws -> String {
        let stem = config.fileStem
        let ext = config.flavor == .torch ? "safetensors" : "h5"
        let destination = path("models", "\(stem).\(ext)")
        if resume, FileManager.default.fileExists(atPath: destination.path) { return destination.path }
        if let shipped = shippedWeights?.appendingPathComponent("\(stem).\(ext)"), FileManager.default.fileExists(atPath: shipped.path) {
            log("\(config.tag): shipped weights \(shipped.lastPathComponent)")
            return shipped.path
        }
        log("\(config.tag): no shipped weights; training (\(plan.training.epochs) epochs on \(plan.trainCount) images)")
        let definition = try NetworkDefinition(config)
        let train = try BuiltinDataset(name: "shapes", split: .train, imageSize: config.inputSize, count: plan.trainCount, seed: plan.seed &+ 2)
        let model = try Trainer.train(definition, on: train, options: plan.training)
        log("\(config.tag): trained, validation accuracy " + String(format: "%.1f%%",
                   try Trainer.accuracy(model, on: BuiltinDataset(name: "shapes", split: .validation, imageSize: config.inputSize,
                                                                  count: plan.pool, seed: plan.seed)) * 100))
        let tensors = Dictionary(uniqueKeysWithValues: definition.parameters.map { ($0.name, model.parameters[$0.name]!) })
        try FileManager.default.createDirectory(at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
        if config.flavor == .torch { try SafeTensors.write(tensors, to: destination.path) } else {
            try KerasWeights.write(tensors, definition: definition, to: destination.path)
        }
        return destination.path
    }
}



public struct DemoError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
