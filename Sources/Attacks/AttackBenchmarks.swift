import ModelZoo
import TensorCore

/// The `attacks` benchmark suite: FGSM and BIM wall time on full-size networks with seeded
/// weights, batch 8 and 32; for the Boundary attack (batch 8, 100 steps) the time per step,
/// the part of it outside model calls, the initialisation's time and the model calls per second.
public enum AttackBenchmarks {
    public static func run(repeats: Int, batches: [Int] = [8, 32], filter: String? = nil,
                           progress: (BenchmarkResult) -> Void = { _ in }) throws -> [BenchmarkResult] {
        var results: [BenchmarkResult] = []
        for architecture in Architecture.allCases {
            for flavor in Flavor.allCases {
                let tag = "\(architecture.rawValue)/\(flavor.rawValue)"
                if let filter, !tag.contains(filter) { continue }
                let model = try Model(randomlyInitialized: NetworkDefinition(ModelConfig(architecture: architecture, flavor: flavor)), seed: 1)
                var generator = SeededGenerator(seed: 3)
                for batch in batches {
                    let size = model.config.inputSize
                    let images = Tensor.randomUniform(shape: [batch, 3, size, size], generator: &generator)
                    let labels = (0..<batch).map { $0 * 37 % model.config.numClasses }
                    for attack in [GradientAttack.fgsm(), .bim()] {
                        let ms = Benchmark.medianMilliseconds(repeats: repeats, warmup: 1) {
                            _ = attack.perturb(model: model, images: images, labels: labels)
                        }
                        let result = BenchmarkResult(name: "\(attack.name)/\(tag)/b\(batch)", implementation: "onednn",
                                                     threads: Threading.threads, batch: batch, ms: ms, gflops: nil)
                        results.append(result)
                        progress(result)
                    }
                    if batch == batches.first {
                        // Boundary: model calls per second and time per step, and the share of
                        // the steps (after initialisation) spent outside model calls.
                        let steps = 100
                        let output = BoundaryAttack(steps: steps).run(model: model, images: images, labels: labels)
                        let stepping = output.stepping
                        for (name, ms) in [("boundary_step", stepping.seconds * 1000 / Double(steps)),
                                           ("boundary_overhead", (stepping.seconds - stepping.modelSeconds) * 1000 / Double(steps)),
                                           ("boundary_init", output.initialization.seconds * 1000)] {
                            let result = BenchmarkResult(name: "\(name)/\(tag)/b\(batch)", implementation: "onednn",
                                                         threads: Threading.threads, batch: batch, ms: ms, gflops: nil)
                            results.append(result)
                            progress(result)
                        }
                        let calls = output.initialization.modelCalls + stepping.modelCalls
                        let result = BenchmarkResult(name: "boundary_call/\(tag)/b\(batch)", implementation: "onednn",
                                                     threads: Threading.threads, batch: batch, ms: output.totalSeconds * 1000 / Double(calls),
                                                     gflops: nil, callsPerSecond: Double(calls) / output.totalSeconds)
                        results.append(result)
                        progress(result)
                    }
                }
            }
        }
        return results
    }
}
