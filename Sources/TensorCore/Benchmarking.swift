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
        for _ in 0..<warmup { body() }
        var times: [Double] = []
        for _ in 0..<Swift.max(repeats, 1) {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        times.sort()
        return times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
    }
}
