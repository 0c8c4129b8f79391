import Foundation

/// One benchmark measurement, in the JSON schema `robustctl bench --json` prints.
public struct BenchmarkResult: Codable, Sendable, Equatable {
    public var name: String
    public var implementation: String
    public var threads: Int
    public var batch: Int
    /// Median wall time of one run, in milliseconds.
    public var ms: Double
    /// Achieved GFLOP/s, where the operation has a FLOP count.
    public var gflops: Double?
    /// Model calls per second, for decision-based attacks (each call evaluates a whole batch).
    public var callsPerSecond: Double?

    public init(name: String, implementation: String, threads: Int, batch: Int, ms: Double, gflops: Double?,
                callsPerSecond: Double? = nil) {
        self.name = name; self.implementation = implementation; self.threads = threads
        self.batch = batch; self.ms = ms; self.gflops = gflops; self.callsPerSecond = callsPerSecond
    }
}

public enum Benchmark {
    /// Median wall time of `body` over `repeats` runs after `warmup` untimed runs, in ms.
    public static func medianMilliseconds(repeats: Int, warmup: Int = 2, _ body: () -> Void) -> Double {
        median(milliseconds(repeats: Swift.max(repeats, 1), warmup: warmup, body))
    }

    /// Wall times of `repeats` runs of `body` after `warmup` untimed runs, in ms.
    public static func milliseconds(repeats: Int, warmup: Int, _ body: () -> Void) -> [Double] {
        for _ in 0..<warmup { body() }
        return (0..<repeats).map { _ in
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        }
    }

    /// The median of `times` (the mean of the middle two for an even count).
    /// - Precondition: `times` is not empty.
    public static func median(_ times: [Double]) -> Double {
        precondition(!times.isEmpty, "median of no measurements")
        let sorted = times.sorted()
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }
}
