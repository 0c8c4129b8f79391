import Foundation
import ModelZoo
import TensorCore

/// The Boundary attack (Brendel, Rauber & Bethge 2018) with Foolbox 3's `BoundaryAttack`
/// semantics: decision-based (only the model's top-1 is used), started from an adversarial
/// found by `LinearSearchBlendedUniformNoiseAttack` (1000 directions, 50 blending steps),
/// then `steps` rounds of an orthogonal (spherical) step and a step towards the original,
/// keeping a candidate when it is adversarial and closer. Step sizes adapt every
/// `statisticsInterval` rounds from success queues of 100 (spherical) and 30 (towards the
/// original) entries, exactly as Foolbox tracks them; a sample stops when its source step
/// falls below `sourceStepConvergence`.
///
/// Deliberate differences from Foolbox, named in Docs/ATTACKS.md: a sample whose
/// initialisation fails is reported as failed and the others go on (Foolbox aborts the
/// batch); each sample draws its own Gaussian direction (Foolbox shares one across the
/// batch, so samples influence each other); random numbers come from the seeded generator.
public struct BoundaryAttack: Hashable, Sendable, Codable {
    public var steps: Int
    public var sphericalStep: Float
    public var sourceStep: Float
    public var sourceStepConvergence: Float
    public var stepAdaptation: Float
    public var statisticsInterval: Int
    public var initDirections: Int
    public var initSteps: Int

    /// Defaults as in the study (5000 steps; Foolbox's own default is 25000) and Foolbox.
    public init(steps: Int = 5000, sphericalStep: Float = 0.01, sourceStep: Float = 0.01, sourceStepConvergence: Float = 1e-7,
                stepAdaptation: Float = 1.5, statisticsInterval: Int = 10, initDirections: Int = 1000, initSteps: Int = 50) {
        self.steps = steps; self.sphericalStep = sphericalStep; self.sourceStep = sourceStep
        self.sourceStepConvergence = sourceStepConvergence; self.stepAdaptation = stepAdaptation
        self.statisticsInterval = statisticsInterval; self.initDirections = initDirections; self.initSteps = initSteps
    }

    /// The adversarials, which samples have a valid (adversarial) result, and the model
    /// evaluations each sample cost.
    public struct Output: Sendable {
        public var adversarials: Tensor
        public var initialized: [Bool]
        public var queries: [Int]
    }

    /// A fixed-length queue of success flags; NaN marks an empty slot, as Foolbox's ArrayQueue.
    struct SuccessQueue {
        var values: [Double]
        var next = 0
        init(length: Int) { values = [Double](repeating: .nan, count: length) }
        mutating func append(_ success: Bool) { values[next] = success ? 1 : 0; next = (next + 1) % values.count }
        var isFull: Bool { !values.contains { $0.isNaN } }
        var mean: Double { let present = values.filter { !$0.isNaN }; return present.reduce(0, +) / Double(max(present.count, 1)) }
        mutating func clear() { values = [Double](repeating: .nan, count: values.count) }
    }

    public func run(model: Model, images: Tensor, labels: [Int], seed: UInt64 = 0, executor: Executor = Executor()) -> Output {
        let n = labels.count, size = images.count / max(n, 1)
        var generator = SeededGenerator(seed: seed)
        var queries = [Int](repeating: 0, count: n)
        func adversarial(_ candidates: [[Float]], _ samples: [Int]) -> [Bool] {
            guard !samples.isEmpty else { return [] }
            let batch = Tensor(shape: [samples.count] + Array(images.shape.dropFirst()), scalars: candidates.flatMap { $0 })
            for sample in samples { queries[sample] += 1 }
            return zip(model.predictions(batch, executor: executor), samples).map { $0 != labels[$1] }
        }
        let originals = (0..<n).map { Array(images.scalars[($0 * size)..<(($0 + 1) * size)]) }

        // LinearSearchBlendedUniformNoiseAttack: a uniform-noise image the model misclassifies...
        var noise = [[Float]](repeating: [], count: n)
        var found = [Bool](repeating: false, count: n)
        for _ in 0..<initDirections where found.contains(false) {
            let pending = (0..<n).filter { !found[$0] }
            let draws = pending.map { _ in (0..<size).map { _ in generator.nextUniform() } }
            for (sample, (draw, isAdversarial)) in zip(pending, zip(draws, adversarial(draws, pending))) where noise[sample].isEmpty || isAdversarial {
                noise[sample] = draw
                found[sample] = isAdversarial
            }
        }
        // ...then the smallest blend (1 − ε)·x + ε·noise on a grid of initSteps + 1 that is.
        var best = originals
        var blend = [Float](repeating: 1, count: n)
        var searching = (0..<n).filter { found[$0] }
        for step in 0...initSteps where !searching.isEmpty {
            let epsilon = Float(step) / Float(initSteps)
            let candidates = searching.map { sample in zip(originals[sample], noise[sample]).map { (1 - epsilon) * $0 + epsilon * $1 } }
            for (sample, isAdversarial) in zip(searching, adversarial(candidates, searching)) where isAdversarial { blend[sample] = epsilon }
            searching = searching.filter { blend[$0] == 1 && epsilon < 1 }
            if step == initSteps { break }
        }
        var initialized = [Bool](repeating: false, count: n)
        for sample in 0..<n where found[sample] {
            best[sample] = zip(originals[sample], noise[sample]).map { (1 - blend[sample]) * $0 + blend[sample] * $1 }
            initialized[sample] = true
        }

        var sphericalSteps = [Float](repeating: sphericalStep, count: n)
        var sourceSteps = [Float](repeating: sourceStep, count: n)
        var sphericalStats = [SuccessQueue](repeating: SuccessQueue(length: 100), count: n)
        var stepStats = [SuccessQueue](repeating: SuccessQueue(length: 30), count: n)
        for step in 1...max(steps, 1) where steps > 0 {
            let active = (0..<n).filter { initialized[$0] && !(sourceSteps[$0] < sourceStepConvergence) }
            if active.isEmpty { break }
            let updateStatistics = step % statisticsInterval == 0
            var candidates: [[Float]] = [], spherical: [[Float]] = [], sourceNorms: [Float] = []
            for sample in active {
                let proposal = propose(original: originals[sample], current: best[sample], sphericalStep: sphericalSteps[sample],
                                       sourceStep: sourceSteps[sample], generator: &generator)
                candidates.append(proposal.candidate)
                spherical.append(proposal.spherical)
                sourceNorms.append(proposal.sourceNorm)
            }
            let isAdversarial = adversarial(candidates, active)
            let sphericalAdversarial = updateStatistics ? adversarial(spherical, active) : []
            for (position, sample) in active.enumerated() {
                if updateStatistics {
                    sphericalStats[sample].append(sphericalAdversarial[position])
                    stepStats[sample].append(isAdversarial[position])
                }
                // In theory closer by construction; limited precision can break that.
                if isAdversarial[position] && distance(originals[sample], candidates[position]) < sourceNorms[position] {
                    best[sample] = candidates[position]
                }
                guard updateStatistics else { continue }
                if sphericalStats[sample].isFull {
                    let probability = sphericalStats[sample].mean
                    if probability > 0.5 {
                        sphericalSteps[sample] *= stepAdaptation
                        sourceSteps[sample] *= stepAdaptation
                        sphericalStats[sample].clear()
                    } else if probability < 0.2 {
                        sphericalSteps[sample] /= stepAdaptation
                        sourceSteps[sample] /= stepAdaptation
                        sphericalStats[sample].clear()
                    }
                }
                if stepStats[sample].isFull {
                    let probability = stepStats[sample].mean
                    if probability > 0.25 {
                        sourceSteps[sample] *= stepAdaptation
                        stepStats[sample].clear()
                    } else if probability < 0.1 {
                        sourceSteps[sample] /= stepAdaptation
                        stepStats[sample].clear()
                    }
                }
            }
        }
        return Output(adversarials: Tensor(shape: images.shape, scalars: best.flatMap { $0 }), initialized: initialized, queries: queries)
    }

    func distance(_ a: [Float], _ b: [Float]) -> Float {
        var squares: Float = 0
        for i in a.indices { let d = a[i] - b[i]; squares += d * d }
        return squares.squareRoot()
    }

    /// Foolbox's `draw_proposals` for one sample.
    func propose(original: [Float], current: [Float], sphericalStep: Float, sourceStep: Float,
                 generator: inout SeededGenerator) -> (candidate: [Float], spherical: [Float], sourceNorm: Float) {
        let d = original.count
        var unnormalized = [Float](repeating: 0, count: d)
        for i in 0..<d { unnormalized[i] = original[i] - current[i] }
        let sourceNorm = unnormalized.reduce(0) { $0 + $1 * $1 }.squareRoot()
        // Gaussian direction made orthogonal to the source direction, scaled to
        // sphericalStep · ‖source‖.
        var eta = (0..<d).map { _ in generator.nextNormal() }
        var dot: Float = 0
        for i in 0..<d { dot += eta[i] * unnormalized[i] / sourceNorm }
        for i in 0..<d { eta[i] -= dot * unnormalized[i] / sourceNorm }
        let etaNorm = eta.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let scale = sphericalStep * sourceNorm / etaNorm
        // Back onto the sphere around the original (Pythagoras), then clip.
        let sphereFactor = (sphericalStep * sphericalStep + 1).squareRoot()
        var spherical = [Float](repeating: 0, count: d)
        for i in 0..<d { spherical[i] = min(max(original[i] + (eta[i] * scale - unnormalized[i]) / sphereFactor, 0), 1) }
        // A step of sourceStep · ‖source‖ towards the original, corrected for the clip.
        var newDirection = [Float](repeating: 0, count: d)
        for i in 0..<d { newDirection[i] = original[i] - spherical[i] }
        let newNorm = newDirection.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let length = max(sourceStep * sourceNorm + newNorm - sourceNorm, 0) / newNorm
        var candidate = [Float](repeating: 0, count: d)
        for i in 0..<d { candidate[i] = min(max(spherical[i] + length * newDirection[i], 0), 1) }
        return (candidate, spherical, sourceNorm)
    }
}
