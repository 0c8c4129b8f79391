import TensorCore

/// The `networks` benchmark suite: full-size networks with seeded weights, forward latency
/// at batch 1 and 8 and forward + input-gradient latency at batch 8.
public enum NetworkBenchmarks {
    public static func run(repeats: Int, backend: KernelBackend = .onednn, filter: String? = nil,
                           progress: (BenchmarkResult) -> Void = { _ in }) throws -> [BenchmarkResult] {
        var results: [BenchmarkResult] = []
        let threads = Threading.threads
        for architecture in Architecture.allCases {
            for flavor in Flavor.allCases {
                let tag = "\(architecture.rawValue)/\(flavor.rawValue)"
                if let filter, !tag.contains(filter) { continue }
                let definition = try NetworkDefinition(ModelConfig(architecture: architecture, flavor: flavor))
                let model = try Model(randomlyInitialized: definition, seed: 1)
                let executor = Executor(backend: backend)
                var generator = SeededGenerator(seed: 2)
                let size = definition.config.inputSize
                for batch in [1, 8] {
                    let images = Tensor.randomUniform(shape: [batch, 3, size, size], generator: &generator)
                    let ms = Benchmark.medianMilliseconds(repeats: repeats, warmup: 1) { _ = model.logits(images, executor: executor) }
                    let result = BenchmarkResult(name: "forward/\(tag)/b\(batch)", implementation: backend.rawValue,
                                                 threads: threads, batch: batch, ms: ms, gflops: nil)
                    results.append(result)
                    progress(result)
                }
                let images = Tensor.randomUniform(shape: [8, 3, size, size], generator: &generator)
                let labels = (0..<8).map { $0 * 97 % definition.config.numClasses }
                let ms = Benchmark.medianMilliseconds(repeats: repeats, warmup: 1) {
                    _ = model.inputGradient(images, executor: executor) { Softmax.crossEntropy(logits: $0, labels: labels).gradient }
                }
                let result = BenchmarkResult(name: "input_gradient/\(tag)/b8", implementation: backend.rawValue,
                                             threads: threads, batch: 8, ms: ms, gflops: nil)
                results.append(result)
                progress(result)
            }
        }
        return results
    }
}
