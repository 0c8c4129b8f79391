import ModelZoo
import TensorCore

/// The `mobile` benchmark suite: full-size networks with seeded weights converted to the
/// mobile engine — fp32 and int8 in both schemes — inference latency at batch 1.
public enum MobileBenchmarks {
    public static func run(repeats: Int, filter: String? = nil, progress: (BenchmarkResult) -> Void = { _ in }) throws -> [BenchmarkResult] {
        var results: [BenchmarkResult] = []
        let threads = Threading.threads
        for architecture in Architecture.allCases {
            for flavor in Flavor.allCases {
                let tag = "\(architecture.rawValue)/\(flavor.rawValue)"
                if let filter, !tag.contains(filter) { continue }
                let model = try Model(randomlyInitialized: NetworkDefinition(ModelConfig(architecture: architecture, flavor: flavor)), seed: 1)
                var generator = SeededGenerator(seed: 2)
                let size = model.config.inputSize
                let image = Tensor.randomUniform(shape: [1, 3, size, size], generator: &generator)
                let calibration = Tensor.randomUniform(shape: [4, 3, size, size], generator: &generator)
                var engines = [MobileEngine(try MobileConverter.convert(model, labels: [], sourceWeights: "seeded"))]
                for scheme in QuantizationScheme.allCases {
                    var calibrator = try Calibrator(model: model, scheme: scheme, observer: .minmax)
                    try calibrator.observe(calibration)
                    engines.append(MobileEngine(try calibrator.finish(labels: [], sourceWeights: "seeded")))
                }
                for engine in engines {
                    var failure: Error?
                    let ms = Benchmark.medianMilliseconds(repeats: repeats) {
                        do { _ = try engine.logits(image) } catch { failure = error }
                    }
                    if let failure { throw failure }
                    let result = BenchmarkResult(name: "mobile/\(tag)/b1", implementation: engine.model.precision.description,
                                                 threads: threads, batch: 1, ms: ms, gflops: nil)
                    results.append(result)
                    progress(result)
                }
            }
        }
        return results
    }
}
