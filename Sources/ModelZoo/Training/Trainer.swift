import Foundation
import TensorCore

/// How a network is trained.
public struct TrainingOptions: Codable, Hashable, Sendable {
    public enum Schedule: String, Codable, Sendable, CaseIterable {
        /// lr · ½(1 + cos(π · step / total)).
        case cosine
        /// lr × 0.1 after 50 % and again after 75 % of the epochs.
        case step
    }

    public var epochs: Int
    public var batchSize: Int
    public var learningRate: Float
    public var optimizer: Optimizer.Kind
    public var momentum: Float
    public var weightDecay: Float
    public var schedule: Schedule
    public var seed: UInt64
    /// Random 4-pixel-shift crops and horizontal flips.
    public var augment: Bool
    /// Batch-norm momentum for training (weight of each new batch, PyTorch's convention);
    /// nil keeps the flavour's own. Keras's MobileNetV2 uses 0.001 (Keras 0.999), too slow
    /// for running statistics to settle in a short training run.
    public var batchNormMomentum: Float?

    public init(epochs: Int, batchSize: Int = 64, learningRate: Float = 0.05, optimizer: Optimizer.Kind = .sgd, momentum: Float = 0.9,
                weightDecay: Float = 5e-4, schedule: Schedule = .cosine, seed: UInt64 = 0, augment: Bool = true,
                batchNormMomentum: Float? = nil) {
        self.epochs = epochs; self.batchSize = batchSize; self.learningRate = learningRate; self.optimizer = optimizer
        self.momentum = momentum; self.weightDecay = weightDecay; self.schedule = schedule; self.seed = seed; self.augment = augment
        self.batchNormMomentum = batchNormMomentum
    }

    func learningRate(step: Int, totalSteps: Int) -> Float {
        switch schedule {
        case .cosine: return learningRate * Float(0.5 * (1 + cos(Double.pi * Double(step) / Double(Swift.max(totalSteps, 1)))))
        case .step:
            let progress = Double(step) / Double(Swift.max(totalSteps, 1))
            return learningRate * (progress >= 0.75 ? 0.01 : (progress >= 0.5 ? 0.1 : 1))
        }
    }
}

/// What one epoch achieved.
public struct EpochReport: Codable, Hashable, Sendable {
    public var epoch: Int
    public var trainLoss: Double
    public var trainAccuracy: Double
    public var validationAccuracy: Double?
    public var learningRate: Double
    public var seconds: Double

    enum CodingKeys: String, CodingKey {
        case epoch, seconds
        case trainLoss = "train_loss", trainAccuracy = "train_accuracy", validationAccuracy = "validation_accuracy"
        case learningRate = "learning_rate"
    }
}

/// Trains a zoo network on the PC engine: batch norm in training mode (running statistics
/// updated), softmax cross-entropy, SGD with momentum or Adam. Deterministic for a given
/// seed and thread count.
public enum Trainer {
    /// The loss stopped being a finite number: the weights are NaN or infinite from here on.
    public struct Diverged: Error, CustomStringConvertible, Equatable {
        public let epoch: Int
        /// The batch of the epoch (from 1) whose loss was not finite.
        public let batch: Int
        public var description: String {
            "training diverged in epoch \(epoch), batch \(batch) (the loss is NaN or infinite): lower the learning rate"
        }
    }

    public static func train(_ definition: NetworkDefinition, on train: some LabeledImageSource,
                             validation: (any LabeledImageSource)? = nil, options: TrainingOptions,
                             initialParameters: Parameters? = nil,
                             onBatch: ((_ done: Int, _ total: Int) -> Void)? = nil,
                             onEpoch: ((EpochReport) -> Void)? = nil) throws -> Model {
        precondition(options.epochs >= 1 && options.batchSize >= 1, "epochs and batch size must be at least 1")
        let size = definition.config.inputSize
        var parameters = initialParameters ?? definition.randomParameters(seed: options.seed)
        var optimizer = Optimizer(kind: options.optimizer, momentum: options.momentum, weightDecay: options.weightDecay)
        let executor = Executor()
        let trainingGraph = options.batchNormMomentum.map { override in
            definition.graph.mappingOperations { operation in
                guard case let .batchNorm(scale, shift, mean, variance, epsilon, _) = operation else { return operation }
                return .batchNorm(scale: scale, shift: shift, mean: mean, variance: variance, epsilon: epsilon, momentum: override)
            }
        } ?? definition.graph
        let batchesPerEpoch = (train.count + options.batchSize - 1) / options.batchSize
        let totalSteps = batchesPerEpoch * options.epochs
        var step = 0
        var model = try Model(definition: definition, tensors: parameters, source: "training")
        for epoch in 1...options.epochs {
            let start = Date()
            var generator = SeededGenerator(seed: options.seed &+ UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15)
            var order = Array(0..<train.count)
            for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(generator.next() % UInt64(i + 1))) }
            var lossSum = 0.0, correct = 0, seen = 0, learningRate: Float = 0
            for batchStart in stride(from: 0, to: order.count, by: options.batchSize) {
                let indices = Array(order[batchStart..<Swift.min(batchStart + options.batchSize, order.count)])
                var (images, labels) = try train.batch(indices, size: size)
                if options.augment { images = augment(images, generator: &generator) }
                let pass = executor.forwardForGradient(trainingGraph, parameters: parameters, input: images,
                                                       mode: .training(seed: options.seed &+ UInt64(step)))
                let (loss, seed) = Softmax.crossEntropy(logits: pass.output, labels: labels)
                guard loss.isFinite else { throw Diverged(epoch: epoch, batch: step - (epoch - 1) * batchesPerEpoch + 1) }
                let gradients = pass.backward(seed, target: .inputAndParameters)
                learningRate = options.learningRate(step: step, totalSteps: totalSteps)
                optimizer.step(&parameters, gradients: gradients.parameters, learningRate: learningRate)
                for (name, value) in pass.updatedBuffers { parameters[name] = value }
                lossSum += Double(loss) * Double(labels.count)
                correct += zip(Model.argmax(pass.output), labels).filter { $0 == $1 }.count
                seen += labels.count
                step += 1
                onBatch?(step - (epoch - 1) * batchesPerEpoch, batchesPerEpoch)
            }
            model = try Model(definition: definition, tensors: parameters, source: "training")
            let validationAccuracy = try validation.map { try accuracy(model, on: $0, batchSize: options.batchSize) }
            onEpoch?(EpochReport(epoch: epoch, trainLoss: lossSum / Double(seen), trainAccuracy: Double(correct) / Double(seen),
                                 validationAccuracy: validationAccuracy, learningRate: Double(learningRate),
                                 seconds: Date().timeIntervalSince(start)))
        }
        return model
    }

    /// Top-1 accuracy of a model on a labelled source (inference mode).
    public static func accuracy(_ model: Model, on source: any LabeledImageSource, batchSize: Int = 64) throws -> Double {
        var correct = 0
        for start in stride(from: 0, to: source.count, by: batchSize) {
            let (images, labels) = try source.batch(Array(start..<Swift.min(start + batchSize, source.count)), size: model.config.inputSize)
            correct += zip(model.predictions(images), labels).filter { $0 == $1 }.count
        }
        return Double(correct) / Double(Swift.max(source.count, 1))
    }

    /// Per image: a random shift of up to 4 pixels (zero fill) and a horizontal flip with
    /// probability ½.
    static func augment(_ images: Tensor, generator: inout SeededGenerator) -> Tensor {
        let (n, c, h, w) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
        let shifts = (0..<n).map { _ in (Int(generator.next() % 9) - 4, Int(generator.next() % 9) - 4, generator.next() % 2 == 0) }
        return Tensor.build(shape: images.shape) { out in
            images.withUnsafeBufferPointer { source in
                for b in 0..<n {
                    let (dy, dx, flip) = shifts[b]
                    for ch in 0..<c {
                        let plane = (b * c + ch) * h * w
                        for y in 0..<h {
                            let sy = y + dy
                            for x in 0..<w {
                                let tx = flip ? w - 1 - x : x
                                let sx = tx + dx
                                out[plane + y * w + x] = (sy >= 0 && sy < h && sx >= 0 && sx < w) ? source[plane + sy * w + sx] : 0
                            }
                        }
                    }
                }
            }
        }
    }
}
