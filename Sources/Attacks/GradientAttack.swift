import Foundation
import ModelZoo
import TensorCore

/// The norm an attack's perturbation budget is measured in.
public enum PerturbationNorm: String, Sendable, Codable, CaseIterable {
    case linf
    case l2
}

/// Foolbox 3's gradient attacks (`BaseGradientDescent`): FGSM / FGM, BIM and PGD, in L∞ or L2.
///
/// Starting from x₀ (or, with a random start, a uniform draw in the ε-ball clipped to [0, 1]),
/// each of `steps` steps moves along the normalised gradient of the summed cross-entropy,
/// `x ← clip(project(x + stepsize · normalize(∇ₓ loss), x₀, ε), 0, 1)`, with stepsize
/// `relativeStepsize · ε` unless an absolute one is given. L∞ normalises by `sign`, L2 by the
/// per-sample L2 norm (floored at 1e-12); projection clips to the ε-ball. The one deliberate
/// deviation from Foolbox: the random start comes from robustctl's seeded generator, not the
/// framework's RNG, so runs are reproducible byte for byte.
public struct GradientAttack: Hashable, Sendable, Codable {
    public var name: String
    public var norm: PerturbationNorm
    public var epsilon: Float
    public var relativeStepsize: Float
    public var absoluteStepsize: Float?
    public var steps: Int
    public var randomStart: Bool

    public init(name: String, norm: PerturbationNorm, epsilon: Float, relativeStepsize: Float, absoluteStepsize: Float? = nil,
                steps: Int, randomStart: Bool) {
        self.name = name; self.norm = norm; self.epsilon = epsilon; self.relativeStepsize = relativeStepsize
        self.absoluteStepsize = absoluteStepsize; self.steps = steps; self.randomStart = randomStart
    }

    /// Foolbox `LinfFastGradientAttack`; ε 0.005 as in the study.
    public static func fgsm(epsilon: Float = 0.005) -> GradientAttack {
        GradientAttack(name: "fgsm", norm: .linf, epsilon: epsilon, relativeStepsize: 1, steps: 1, randomStart: false)
    }

    /// Foolbox `LinfBasicIterativeAttack`: 10 steps of 0.2 ε, no random start.
    public static func bim(epsilon: Float = 0.005, steps: Int = 10) -> GradientAttack {
        GradientAttack(name: "bim", norm: .linf, epsilon: epsilon, relativeStepsize: 0.2, steps: steps, randomStart: false)
    }

    /// Foolbox `LinfPGD`: 40 steps of 0.01/0.3 ε from a random start.
    public static func pgd(epsilon: Float = 0.005, steps: Int = 40, randomStart: Bool = true) -> GradientAttack {
        GradientAttack(name: "pgd", norm: .linf, epsilon: epsilon, relativeStepsize: 0.01 / 0.3, steps: steps, randomStart: randomStart)
    }

    /// Foolbox `L2FastGradientAttack`.
    public static func fgmL2(epsilon: Float) -> GradientAttack {
        GradientAttack(name: "fgm_l2", norm: .l2, epsilon: epsilon, relativeStepsize: 1, steps: 1, randomStart: false)
    }

    /// Foolbox `L2BasicIterativeAttack`.
    public static func bimL2(epsilon: Float, steps: Int = 10) -> GradientAttack {
        GradientAttack(name: "bim_l2", norm: .l2, epsilon: epsilon, relativeStepsize: 0.2, steps: steps, randomStart: false)
    }

    /// Foolbox `L2PGD`: 50 steps of 0.025/0.3 ε from a random start.
    public static func pgdL2(epsilon: Float, steps: Int = 50, randomStart: Bool = true) -> GradientAttack {
        GradientAttack(name: "pgd_l2", norm: .l2, epsilon: epsilon, relativeStepsize: 0.025 / 0.3, steps: steps, randomStart: randomStart)
    }

    /// The gradient of Σₙ cross-entropy(model(x)ₙ, labelₙ) with respect to the pixels x —
    /// the summed loss Foolbox differentiates.
    public static func lossGradient(model: Model, images: Tensor, labels: [Int], executor: Executor = Executor()) -> Tensor {
        model.inputGradient(images, executor: executor) { logits in
            Softmax.crossEntropy(logits: logits, labels: labels).gradient * Float(labels.count)
        }.gradient
    }

    /// Runs the attack on a batch of [N, 3, S, S] images in [0, 1].
    /// - Parameter uint8Aware: return images on the 8-bit grid that are adversarial there:
    ///   after the usual steps, samples whose rounded image is not adversarial take up to
    ///   `max(steps, 10)` further signed-gradient steps of at least one grey level, rounded
    ///   and projected onto the grid points of the ε-ball after each.
    /// - Returns: the adversarial images (within ε of the inputs and in [0, 1]).
    public func perturb(model: Model, images: Tensor, labels: [Int], seed: UInt64 = 0, uint8Aware: Bool = false,
                        executor: Executor = Executor()) -> Tensor {
        let x = perturbFloat(model: model, images: images, labels: labels, seed: seed, executor: executor)
        return uint8Aware ? snapToGrid(x, model: model, images: images, labels: labels, executor: executor) : x
    }

    func perturbFloat(model: Model, images: Tensor, labels: [Int], seed: UInt64, executor: Executor) -> Tensor {
        precondition(labels.count == images.shape[0], "\(labels.count) labels for \(images.shape[0]) images")
        let stepsize = absoluteStepsize ?? relativeStepsize * epsilon
        var x = images
        if randomStart {
            var generator = SeededGenerator(seed: seed)
            x = (images + randomPoint(shape: images.shape, generator: &generator)).clamped(lower: 0, upper: 1)
        }
        for _ in 0..<steps {
            let gradient = Self.lossGradient(model: model, images: x, labels: labels, executor: executor)
            x = (x + normalize(gradient) * stepsize)
            x = project(x, onto: images).clamped(lower: 0, upper: 1)
        }
        return x
    }

    /// Rounds to the 8-bit grid and keeps stepping, on the grid, the samples that rounding
    /// made non-adversarial.
    func snapToGrid(_ x: Tensor, model: Model, images: Tensor, labels: [Int], executor: Executor) -> Tensor {
        var current = gridProject(x, onto: images)
        let n = current.count / current.shape[0]
        let stepsize = max(absoluteStepsize ?? relativeStepsize * epsilon, 1 / 255)
        for _ in 0..<max(steps, 10) {
            let pending = zip(model.predictions(current, executor: executor), labels).map { $0 == $1 }
            guard pending.contains(true) else { break }
            let gradient = Self.lossGradient(model: model, images: current, labels: labels, executor: executor)
            let stepped = gridProject(current + normalize(gradient) * stepsize, onto: images)
            current = Tensor.build(shape: current.shape) { out in
                current.withUnsafeBufferPointer { old in stepped.withUnsafeBufferPointer { new in
                    for sample in pending.indices {
                        let source = pending[sample] ? new : old
                        for i in (sample * n)..<((sample + 1) * n) { out[i] = source[i] }
                    }
                } }
            }
        }
        return current
    }

    /// The nearest 8-bit grid point inside the ε-ball around `x0` and inside [0, 1]
    /// (L∞: per pixel; L2: rounded after the usual projection).
    func gridProject(_ x: Tensor, onto x0: Tensor) -> Tensor {
        let projected = norm == .l2 ? project(x, onto: x0) : x
        return Tensor.build(shape: x.shape) { out in
            projected.withUnsafeBufferPointer { values in x0.withUnsafeBufferPointer { origin in
                for i in values.indices {
                    var level = (values[i] * 255).rounded(.toNearestOrEven)
                    if norm == .linf {
                        level = min(max(level, ((origin[i] - epsilon) * 255 - 1e-4).rounded(.up)), ((origin[i] + epsilon) * 255 + 1e-4).rounded(.down))
                    }
                    out[i] = min(max(level, 0), 255) / 255
                }
            } }
        }
    }

    /// A point of the ε-ball: uniform per coordinate (L∞), or uniform in the L2 ball
    /// (Voelker et al.: the first n coordinates of a point uniform on the (n+2)-sphere).
    func randomPoint(shape: [Int], generator: inout SeededGenerator) -> Tensor {
        switch norm {
        case .linf:
            return Tensor.randomUniform(shape: shape, lower: -epsilon, upper: epsilon, generator: &generator)
        case .l2:
            let n = shape.dropFirst().reduce(1, *)
            return Tensor.build(shape: shape) { out in
                for sample in 0..<shape[0] {
                    let values = (0..<(n + 2)).map { _ in Double(generator.nextNormal()) }
                    let radius = values.reduce(0) { $0 + $1 * $1 }.squareRoot()
                    for i in 0..<n { out[sample * n + i] = Float(values[i] / radius) * epsilon }
                }
            }
        }
    }

    /// sign(g) for L∞; g / max(‖g‖₂, 1e-12) per sample for L2.
    func normalize(_ gradient: Tensor) -> Tensor {
        switch norm {
        case .linf: return gradient.sign()
        case .l2: return scalePerSample(gradient) { 1 / max($0, 1e-12) }
        }
    }

    /// x₀ + clip(x − x₀) to the ε-ball.
    func project(_ x: Tensor, onto x0: Tensor) -> Tensor {
        let delta = x - x0
        switch norm {
        case .linf: return x0 + delta.clamped(lower: -epsilon, upper: epsilon)
        case .l2: return x0 + scalePerSample(delta) { min(1, epsilon / max($0, 1e-12)) }
        }
    }

    /// Multiplies each sample by factor(its L2 norm).
    func scalePerSample(_ tensor: Tensor, _ factor: (Float) -> Float) -> Tensor {
        let n = tensor.count / tensor.shape[0]
        return Tensor.build(shape: tensor.shape) { out in
            tensor.withUnsafeBufferPointer { values in
                for sample in 0..<tensor.shape[0] {
                    let range = (sample * n)..<((sample + 1) * n)
                    var squares: Double = 0
                    for i in range { squares += Double(values[i]) * Double(values[i]) }
                    let scale = factor(Float(squares.squareRoot()))
                    for i in range { out[i] = values[i] * scale }
                }
            }
        }
    }
}
