import Foundation

/// Vargha–Delaney A12: the probability that a value drawn from x exceeds one from y
/// (ties count half).
public enum VarghaDelaney {
    public enum Magnitude: String, Codable, Sendable {
        case negligible, small, medium, large
    }

    public struct Result: Codable, Hashable, Sendable {
        public var a: Double
        public var magnitude: Magnitude
    }

    /// Unpaired A12 over all m·n pairs. - Complexity: O((m + n) log(m + n)).
    public static func unpaired(_ x: [Double], _ y: [Double]) -> Result {
        precondition(!x.isEmpty && !y.isEmpty, "Vargha–Delaney A needs two non-empty samples")
        let sortedY = y.sorted()
        var wins = 0.0
        for value in x {
            let below = lowerBound(sortedY, value), notAbove = upperBound(sortedY, value)
            wins += Double(below) + 0.5 * Double(notAbove - below)
        }
        return result(wins / (Double(x.count) * Double(y.count)))
    }

    /// Paired A12: the share of pairs where x exceeds y (ties half).
    public static func paired(_ x: [Double], _ y: [Double]) -> Result {
        precondition(x.count == y.count && !x.isEmpty, "paired Vargha–Delaney A needs samples of equal, non-zero length")
        let wins = zip(x, y).reduce(0.0) { $0 + ($1.0 > $1.1 ? 1 : ($1.0 == $1.1 ? 0.5 : 0)) }
        return result(wins / Double(x.count))
    }

    /// Vargha & Delaney's thresholds on max(A, 1 − A): 0.56, 0.64, 0.71.
    public static func magnitude(_ a: Double) -> Magnitude {
        let scaled = Swift.max(a, 1 - a)
        if scaled < 0.56 { return .negligible }
        if scaled < 0.64 { return .small }
        if scaled < 0.71 { return .medium }
        return .large
    }

    static func result(_ a: Double) -> Result { Result(a: a, magnitude: magnitude(a)) }

    static func lowerBound(_ sorted: [Double], _ value: Double) -> Int {
        var low = 0, high = sorted.count
        while low < high { let mid = (low + high) / 2; if sorted[mid] < value { low = mid + 1 } else { high = mid } }
        return low
    }

    static func upperBound(_ sorted: [Double], _ value: Double) -> Int {
        var low = 0, high = sorted.count
        while low < high { let mid = (low + high) / 2; if sorted[mid] <= value { low = mid + 1 } else { high = mid } }
        return low
    }
}

/// McNemar's exact test for two classifiers' paired binary outcomes on the same samples.
public enum McNemar {
    public struct Result: Codable, Hashable, Sendable {
        /// min(b, c), the smaller discordant count.
        public var statistic: Double
        public var pvalue: Double
        /// Pairs where only x is 1 / only y is 1.
        public var b: Int
        public var c: Int
    }

    /// - Parameters: x, y: per-sample outcomes (true = success), same samples in the same order.
    public static func exact(_ x: [Bool], _ y: [Bool]) -> Result {
        precondition(x.count == y.count, "McNemar's test needs paired outcomes")
        let b = zip(x, y).filter { $0 && !$1 }.count, c = zip(x, y).filter { !$0 && $1 }.count
        let n = b + c
        let p = n == 0 ? 1 : Swift.min(1, 2 * binomialCDF(Swift.min(b, c), n: n))
        return Result(statistic: Double(Swift.min(b, c)), pvalue: p, b: b, c: c)
    }

    /// P(X ≤ k) for X ~ Binomial(n, 1/2), summed in log space (exact to double rounding).
    static func binomialCDF(_ k: Int, n: Int) -> Double {
        var total = 0.0
        let logHalf = Double(n) * log(0.5)
        for i in 0...k { total += exp(lgamma(Double(n + 1)) - lgamma(Double(i + 1)) - lgamma(Double(n - i + 1)) + logHalf) }
        return total
    }
}

/// Proportions: success rates with intervals, and bootstrap intervals for differences.
public enum Proportion {
    /// The Wilson score interval for successes out of n at the given confidence.
    public static func wilson(successes: Int, n: Int, z: Double = 1.959963984540054) -> (low: Double, high: Double) {
        guard n > 0 else { return (0, 1) }
        let p = Double(successes) / Double(n), nn = Double(n)
        let centre = (p + z * z / (2 * nn)) / (1 + z * z / nn)
        let half = z / (1 + z * z / nn) * (p * (1 - p) / nn + z * z / (4 * nn * nn)).squareRoot()
        return (Swift.max(0, centre - half), Swift.min(1, centre + half))
    }

    /// Percentile bootstrap interval of rate(x) − rate(y) for paired outcomes, resampling
    /// samples with a seeded generator (same seed → same interval).
    public static func bootstrapDifference(_ x: [Bool], _ y: [Bool], resamples: Int = 10_000, confidence: Double = 0.95,
                                           seed: UInt64) -> (low: Double, high: Double) {
        precondition(x.count == y.count && !x.isEmpty, "bootstrap needs paired, non-empty outcomes")
        var state = seed &+ 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {   // splitmix64: small, seedable, identical on every platform
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        let n = x.count
        var differences: [Double] = []
        differences.reserveCapacity(resamples)
        for _ in 0..<resamples {
            var delta = 0
            for _ in 0..<n {
                let i = Int(next() % UInt64(n))
                delta += (x[i] ? 1 : 0) - (y[i] ? 1 : 0)
            }
            differences.append(Double(delta) / Double(n))
        }
        differences.sort()
        let alpha = (1 - confidence) / 2
        let low = differences[Swift.min(Swift.max(Int((alpha * Double(resamples)).rounded(.down)), 0), resamples - 1)]
        let high = differences[Swift.min(Swift.max(Int(((1 - alpha) * Double(resamples)).rounded(.up)) - 1, 0), resamples - 1)]
        return (low, high)
    }
}
