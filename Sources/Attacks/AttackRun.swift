import Foundation
import ModelZoo
import TensorCore

/// What happened to one sample.
public struct SampleOutcome: Codable, Sendable, Equatable {
    public var label: Int
    /// The model's top-1 on the clean input.
    public var cleanPrediction: Int
    /// Top-1 on the float adversarial, and whether it differs from the label (Foolbox's
    /// `Misclassification` criterion).
    public var prediction: Int
    public var success: Bool
    /// The same after rounding the adversarial to the 8-bit grid, as a PNG stores it.
    public var predictionUInt8: Int
    public var successUInt8: Bool
    /// Distances between the float adversarial and the input, in [0, 1] pixel units.
    public var linf: Float
    public var l2: Float
    /// Distances after 8-bit rounding.
    public var linfUInt8: Float
    public var l2UInt8: Float
    /// Model evaluations spent on this sample (a gradient counts as one).
    public var queries: Int
    /// Wall time of the batch this sample was in, divided by the batch size.
    public var seconds: Double

    enum CodingKeys: String, CodingKey {
        case label, prediction, success
        case cleanPrediction = "clean_prediction"
        case predictionUInt8 = "prediction_uint8"
        case successUInt8 = "success_uint8"
        case linf, l2
        case linfUInt8 = "linf_uint8"
        case l2UInt8 = "l2_uint8"
        case queries, seconds
    }
}

/// Adversarials for a batch and what happened to each sample.
public struct AttackResult: Sendable {
    /// Float adversarials, [N, 3, S, S] in [0, 1].
    public var adversarials: Tensor
    public var outcomes: [SampleOutcome]
}

extension GradientAttack {
    /// Runs the attack and measures every sample before and after 8-bit rounding.
    public func attack(model: Model, images: Tensor, labels: [Int], seed: UInt64 = 0, uint8Aware: Bool = false,
                       executor: Executor = Executor()) -> AttackResult {
        let start = DispatchTime.now().uptimeNanoseconds
        let adversarials = perturb(model: model, images: images, labels: labels, seed: seed, uint8Aware: uint8Aware, executor: executor)
        // Each step is one gradient evaluation; measuring adds the clean, float and 8-bit calls.
        return AttackResult(model: model, images: images, labels: labels, adversarials: adversarials,
                            queries: [Int](repeating: steps + 3, count: labels.count), start: start, executor: executor)
    }
}

extension BoundaryAttack {
    /// Runs the attack and measures every sample before and after 8-bit rounding. A sample
    /// whose initialisation failed keeps its input and counts as not adversarial.
    public func attack(model: Model, images: Tensor, labels: [Int], seed: UInt64 = 0,
                       executor: Executor = Executor()) -> AttackResult {
        let start = DispatchTime.now().uptimeNanoseconds
        let output = run(model: model, images: images, labels: labels, seed: seed, executor: executor)
        return AttackResult(model: model, images: images, labels: labels, adversarials: output.adversarials,
                            queries: output.queries.map { $0 + 3 }, start: start, executor: executor)
    }
}

extension AttackResult {
    /// Measures adversarials: predictions and distances before and after 8-bit rounding.
    init(model: Model, images: Tensor, labels: [Int], adversarials: Tensor, queries: [Int], start: UInt64, executor: Executor) {
        let clean = model.predictions(images, executor: executor)
        let rounded = AttackResult.roundedToUInt8(adversarials)
        let predictions = model.predictions(adversarials, executor: executor)
        let predictionsUInt8 = model.predictions(rounded, executor: executor)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / Double(max(labels.count, 1))
        let distances = AttackResult.distances(adversarials, images)
        let distancesUInt8 = AttackResult.distances(rounded, images)
        self.adversarials = adversarials
        outcomes = labels.indices.map { i in
            SampleOutcome(label: labels[i], cleanPrediction: clean[i], prediction: predictions[i], success: predictions[i] != labels[i],
                          predictionUInt8: predictionsUInt8[i], successUInt8: predictionsUInt8[i] != labels[i],
                          linf: distances[i].linf, l2: distances[i].l2, linfUInt8: distancesUInt8[i].linf, l2UInt8: distancesUInt8[i].l2,
                          queries: queries[i], seconds: seconds)
        }
    }

    /// Every value moved to the nearest multiple of 1/255 (ties to even), as a PNG stores it.
    public static func roundedToUInt8(_ images: Tensor) -> Tensor {
        images.map { Float(RGBImage.quantize($0)) / 255 }
    }

    /// Per-sample L∞ and L2 distances.
    public static func distances(_ a: Tensor, _ b: Tensor) -> [(linf: Float, l2: Float)] {
        let delta = a - b
        let n = delta.count / delta.shape[0]
        return delta.withUnsafeBufferPointer { values in
            (0..<delta.shape[0]).map { sample in
                var maximum: Float = 0, squares: Double = 0
                for i in (sample * n)..<((sample + 1) * n) {
                    maximum = max(maximum, abs(values[i]))
                    squares += Double(values[i]) * Double(values[i])
                }
                return (maximum, Float(squares.squareRoot()))
            }
        }
    }
}
