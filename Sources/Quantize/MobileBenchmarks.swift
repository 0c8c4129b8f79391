import ModelZoo
import TensorCore

/// The `mobile` benchmark suite: full-size networks with seeded weights converted to the
/// mobile engine — fp32 and int8 in both schemes — inference latency at batch 1.
///
/// A network's three engines are timed in turns (`runsPerTurn` runs each, after one warm-up
/// run) until each has `repeats` runs, and each reports the median of its runs: the VM's
/// slow phases last minutes, and timed one after the other the engines could fall in
/// different phases, which moved the int8/fp32 ratios by up to 10 %.
public enum MobileBenchmarks {
    static let runsPerTurn = 5

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
                var times = [[Double]](repeating: [], count: engines.count)
                var failure: Error?
                var runsLeft = repeats
                while runsLeft > 0, failure == nil {
                    let runs = Swift.min(runsPerTurn, runsLeft)
                    for index in engines.indices {
                        times[index] += Benchmark.milliseconds(repeats: runs, warmup: 1) {
                            do { _ = try engines[index].logits(image) } catch { failure = error }
                        }
                    }
                    runsLeft -= runs
                }
                if let failure { throw failure }
                for (engine, engineTimes) in zip(engines, times) {
                    let result = BenchmarkResult(name: "mobile/\(tag)/b1", implementation: engine.model.precision.description,
                                                 threads: threads, batch: 1, ms: Benchmark.median(engineTimes), gflops: nil)
                    results.append(result)
                    progress(result)
                }
            }
        }
        return results
    }
}
