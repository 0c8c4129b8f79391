import CShims
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
    /// Judge candidates by their 8-bit rounding, so the result stays adversarial as a PNG.
    public var uint8Aware: Bool

    /// Defaults as in the study (5000 steps; Foolbox's own default is 25000) and Foolbox.
    public init(steps: Int = 5000, sphericalStep: Float = 0.01, sourceStep: Float = 0.01, sourceStepConvergence: Float = 1e-7,
                stepAdaptation: Float = 1.5, statisticsInterval: Int = 10, initDirections: Int = 1000, initSteps: Int = 50,
                uint8Aware: Bool = false) {
        self.steps = steps; self.sphericalStep = sphericalStep; self.sourceStep = sourceStep
        self.sourceStepConvergence = sourceStepConvergence; self.stepAdaptation = stepAdaptation
        self.statisticsInterval = statisticsInterval; self.initDirections = initDirections; self.initSteps = initSteps
        self.uint8Aware = uint8Aware
    }

    /// The adversarials, which samples have a valid (adversarial) result, and the model
    /// evaluations each sample cost.
    public struct Output: Sendable {
        public var adversarials: Tensor
        public var initialized: [Bool]
        public var queries: [Int]
        /// Where the time went in the initialisation (blended uniform noise) and in the steps.
        public var initialization: Timing
        public var stepping: Timing
        /// Wall time inside model calls, and in the whole run (the rest is the attack's own
        /// work: random directions, projections, bookkeeping).
        public var modelSeconds: Double { initialization.modelSeconds + stepping.modelSeconds }
        public var totalSeconds: Double { initialization.seconds + stepping.seconds }
    }

    /// Wall time of one phase of the attack, the part of it spent inside model calls, and
    /// the number of model calls (each evaluates a whole batch of candidates).
    public struct Timing: Sendable {
        public var seconds: Double = 0
        public var modelSeconds: Double = 0
        public var modelCalls = 0
        /// The share of the phase spent outside model calls.
        public var overhead: Double { seconds > 0 ? (seconds - modelSeconds) / seconds : 0 }
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
        // One generator per sample: results do not depend on the thread count or on the
        // other samples of the batch.
        var generators = (0..<n).map { SeededGenerator(seed: seed &+ UInt64($0) &* 0x9E37_79B9_7F4A_7C15) }
        var queries = [Int](repeating: 0, count: n)
        var phaseStart = DispatchTime.now().uptimeNanoseconds
        var modelNanoseconds: UInt64 = 0, modelCalls = 0
        /// The time since the last phase ended.
        func endPhase() -> Timing {
            let now = DispatchTime.now().uptimeNanoseconds
            defer { phaseStart = now; modelNanoseconds = 0; modelCalls = 0 }
            return Timing(seconds: Double(now - phaseStart) / 1e9, modelSeconds: Double(modelNanoseconds) / 1e9, modelCalls: modelCalls)
        }
        let rowShape = Array(images.shape.dropFirst())
        func adversarial(_ candidates: [[Float]], _ samples: [Int]) -> [Bool] {
            guard !samples.isEmpty else { return [] }
            return adversarial(Tensor.build(shape: [samples.count] + rowShape) { out in
                for (row, candidate) in candidates.enumerated() {
                    candidate.withUnsafeBufferPointer { (out.baseAddress! + row * size).update(from: $0.baseAddress!, count: size) }
                }
            }, samples)
        }
        /// Whether each row of `batch` (one per sample) is adversarial; counts the queries.
        func adversarial(_ batch: Tensor, _ samples: [Int]) -> [Bool] {
            guard !samples.isEmpty else { return [] }
            var batch = batch
            if uint8Aware { batch = AttackResult.roundedToUInt8(batch) }
            for sample in samples { queries[sample] += 1 }
            modelCalls += 1
            let callStart = DispatchTime.now().uptimeNanoseconds
            defer { modelNanoseconds += DispatchTime.now().uptimeNanoseconds - callStart }
            return zip(model.predictions(batch, executor: executor), samples).map { $0 != labels[$1] }
        }
        let originals = (0..<n).map { Array(images.scalars[($0 * size)..<(($0 + 1) * size)]) }

        // LinearSearchBlendedUniformNoiseAttack: a uniform-noise image the model misclassifies...
        var noise = [[Float]](repeating: [], count: n)
        var found = [Bool](repeating: false, count: n)
        for _ in 0..<initDirections where found.contains(false) {
            let pending = (0..<n).filter { !found[$0] }
            let draws = pending.map { sample in
                [Float](unsafeUninitializedCapacity: size) { buffer, count in
                    generators[sample].fillUniform(buffer)
                    count = size
                }
            }
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

        let initialization = endPhase()

        var sphericalSteps = [Float](repeating: sphericalStep, count: n)
        var sourceSteps = [Float](repeating: sourceStep, count: n)
        var sphericalStats = [SuccessQueue](repeating: SuccessQueue(length: 100), count: n)
        var stepStats = [SuccessQueue](repeating: SuccessQueue(length: 30), count: n)
        for step in 1...max(steps, 1) where steps > 0 {
            let active = (0..<n).filter { initialized[$0] && !(sourceSteps[$0] < sourceStepConvergence) }
            if active.isEmpty { break }
            let updateStatistics = step % statisticsInterval == 0
            // Proposals are drawn straight into the model's input batches.
            var norms = [(source: Float, candidate: Float)](repeating: (0, 0), count: active.count)
            var candidates = Tensor(shape: [0])
            let spherical = Tensor.build(shape: [active.count] + rowShape) { sphericalRows in
                candidates = Tensor.build(shape: [active.count] + rowShape) { candidateRows in
                    norms.withUnsafeMutableBufferPointer { norms in
                        generators.withUnsafeMutableBufferPointer { generators in
                            let (out, rngs) = (UncheckedSendable(norms), UncheckedSendable(generators))
                            let (sphericalOut, candidateOut) = (UncheckedSendable(sphericalRows), UncheckedSendable(candidateRows))
                            Threading.parallelFor(active.count) { range in
                                for position in range {
                                    let sample = active[position]
                                    out.value[position] = propose(
                                        original: originals[sample], current: best[sample],
                                        sphericalStep: sphericalSteps[sample], sourceStep: sourceSteps[sample], generator: &rngs.value[sample],
                                        spherical: UnsafeMutableBufferPointer(rebasing: sphericalOut.value[(position * size)..<((position + 1) * size)]),
                                        candidate: UnsafeMutableBufferPointer(rebasing: candidateOut.value[(position * size)..<((position + 1) * size)]))
                                }
                            }
                        }
                    }
                }
            }
            let isAdversarial = adversarial(candidates, active)
            let sphericalAdversarial = updateStatistics ? adversarial(spherical, active) : []
            for (position, sample) in active.enumerated() {
                if updateStatistics {
                    sphericalStats[sample].append(sphericalAdversarial[position])
                    stepStats[sample].append(isAdversarial[position])
                }
                // In theory closer by construction; limited precision can break that.
                if isAdversarial[position] && norms[position].candidate < norms[position].source {
                    candidates.withUnsafeBufferPointer { rows in
                        best[sample].withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: rows.baseAddress! + position * size, count: size) }
                    }
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
        var adversarials = Tensor(shape: images.shape, scalars: best.flatMap { $0 })
        if uint8Aware { adversarials = AttackResult.roundedToUInt8(adversarials) }
        return Output(adversarials: adversarials, initialized: initialized, queries: queries,
                      initialization: initialization, stepping: endPhase())
    }

    /// Foolbox's `draw_proposals` for one sample: a Gaussian draw into `spherical`, then three
    /// vectorised passes over the image in C (`rc_boundary_propose`).
    /// - Parameters:
    ///   - spherical, candidate: room for one image each; receive the two proposals.
    /// - Returns: ‖original − current‖ and ‖original − candidate‖.
    /// - Complexity: O(d), no allocation.
    func propose(original: [Float], current: [Float], sphericalStep: Float, sourceStep: Float, generator: inout SeededGenerator,
                 spherical: UnsafeMutableBufferPointer<Float>, candidate: UnsafeMutableBufferPointer<Float>) -> (source: Float, candidate: Float) {
        let d = original.count
        precondition(current.count == d && spherical.count == d && candidate.count == d, "boundary proposal: image sizes differ")
        generator.fillNormal(spherical)
        var sourceNorm: Float = 0, distance: Float = 0
        original.withUnsafeBufferPointer { x0 in current.withUnsafeBufferPointer { x in
            rc_boundary_propose(x0.baseAddress!, x.baseAddress!, spherical.baseAddress!, candidate.baseAddress!, d,
                                sphericalStep, sourceStep, &sourceNorm, &distance)
        } }
        return (sourceNorm, distance)
    }
}
