import Foundation

/// The Wilcoxon signed-rank test, computed as `scipy.stats.wilcoxon` (SciPy 1.17) does.
public enum Wilcoxon {
    /// How zero differences are treated.
    public enum ZeroMethod: String, Codable, Sendable, CaseIterable {
        /// Zeros are dropped before ranking.
        case wilcox
        /// Zeros are ranked, then their ranks dropped (mean and variance adjusted).
        case pratt
        /// Zeros are ranked and their ranks split between the positive and negative sums.
        case zsplit
    }

    public enum Alternative: String, Codable, Sendable, CaseIterable {
        case twoSided = "two-sided", greater, less
    }

    public enum Method: String, Codable, Sendable, CaseIterable {
        /// SciPy's rule: n > 50 → asymptotic; no ties and no zeros → exact; otherwise
        /// n ≤ 13 → exhaustive permutation; otherwise asymptotic.
        case auto, exact, asymptotic
    }

    public struct Result: Codable, Hashable, Sendable {
        /// min(R+, R−) for two-sided, R+ otherwise.
        public var statistic: Double
        public var pvalue: Double
        /// The method actually used ("exact", "asymptotic" or "permutation").
        public var method: String
    }

    public enum TestError: Error, CustomStringConvertible, Equatable {
        case lengthMismatch(Int, Int)
        case empty
        case allZero
        public var description: String {
            switch self {
            case let .lengthMismatch(a, b): "paired samples differ in length (\(a) and \(b))"
            case .empty: "no observations"
            case .allZero: "every difference is zero"
            }
        }
    }

    /// Tests the paired differences x − y (or x alone, for a one-sample test: y = nil).
    public static func test(_ x: [Double], _ y: [Double]? = nil, zeroMethod: ZeroMethod = .wilcox, correction: Bool = false,
                            alternative: Alternative = .twoSided, method: Method = .auto) throws -> Result {
        if let y, y.count != x.count { throw TestError.lengthMismatch(x.count, y.count) }
        let d = y.map { zip(x, $0).map { $0 - $1 } } ?? x
        guard !d.isEmpty else { throw TestError.empty }
        let zeros = d.filter { $0 == 0 }.count
        if zeroMethod == .wilcox && zeros == d.count { throw TestError.allZero }
        var method = method
        if method == .auto && d.count > 50 { method = .asymptotic }
        let s = statistic(d, zeroMethod: zeroMethod)
        var chosen = method.rawValue
        if method == .auto {
            if !(s.hasTies || zeros > 0) { chosen = "exact" }
            else if d.count <= 13 { chosen = "permutation" }
            else { chosen = "asymptotic" }
        }
        var p: Double
        switch chosen {
        case "asymptotic":
            var z = (s.rPlus - s.mean) / s.standardError
            if correction {
                let sign: Double = alternative == .greater ? 1 : (alternative == .less ? -1 : (z > 0 ? 1 : (z < 0 ? -1 : 0)))
                z -= sign * 0.5 / s.standardError
            }
            switch alternative {
            case .less: p = normalCDF(z)
            case .greater: p = normalSF(z)
            case .twoSided: p = 2 * normalSF(abs(z))
            }
        case "exact":
            let distribution = exactDistribution(Int(s.count))
            switch alternative {
            case .less: p = distribution.cdf(Int(s.rPlus.rounded(.up)))
            case .greater: p = distribution.sf(Int(s.rPlus.rounded(.down)))
            case .twoSided:
                p = Swift.min(Swift.max(2 * Swift.min(distribution.sf(Int(s.rPlus.rounded(.down))), distribution.cdf(Int(s.rPlus.rounded(.up)))), 0), 1)
            }
        default:
            p = permutationPValue(d, observed: s.rPlus, zeroMethod: zeroMethod, alternative: alternative)
        }
        let statistic = alternative == .twoSided ? Swift.min(s.rPlus, s.rMinus) : s.rPlus
        return Result(statistic: statistic, pvalue: p, method: chosen)
    }

    struct Statistic {
        var rPlus, rMinus, mean, standardError, count: Double
        var hasTies: Bool
    }

    /// scipy.stats._wilcoxon._wilcoxon_statistic.
    static func statistic(_ d: [Double], zeroMethod: ZeroMethod) -> Statistic {
        // Zeros are left out of the ranking for 'wilcox' (SciPy marks them NaN, which sorts last).
        let ranked = zeroMethod == .wilcox ? d.indices.filter { d[$0] != 0 } : Array(d.indices)
        let order = ranked.sorted { abs(d[$0]) < abs(d[$1]) || (abs(d[$0]) == abs(d[$1]) && $0 < $1) }
        var rank = [Double](repeating: 0, count: d.count)
        var tieCounts: [Double] = []
        var start = 0
        while start < order.count {
            var end = start + 1
            while end < order.count && abs(d[order[end]]) == abs(d[order[start]]) { end += 1 }
            let average = Double(start + 1 + end) / 2
            for position in start..<end { rank[order[position]] = average }
            tieCounts.append(Double(end - start))
            start = end
        }
        let count = Double(ranked.count)
        var rPlus = 0.0, rMinus = 0.0
        for i in ranked {
            if d[i] > 0 { rPlus += rank[i] } else if d[i] < 0 { rMinus += rank[i] }
        }
        let hasTies = tieCounts.contains { $0 > 1 }
        if zeroMethod == .zsplit {
            let zeroRanks = ranked.filter { d[$0] == 0 }.reduce(0.0) { $0 + rank[$1] } / 2
            rPlus += zeroRanks
            rMinus += zeroRanks
        }
        var mean = count * (count + 1) * 0.25
        var variance = count * (count + 1) * (2 * count + 1)
        if zeroMethod == .pratt {
            let zeros = Double(d.filter { $0 == 0 }.count)
            mean -= zeros * (zeros + 1) * 0.25
            variance -= zeros * (zeros + 1) * (2 * zeros + 1)
            // The zero group (lowest |d|, first in sorted order) leaves the tie correction.
            if zeros > 0, !tieCounts.isEmpty { tieCounts[0] = 0 }
        }
        let tieCorrection = tieCounts.reduce(0) { $0 + $1 * $1 * $1 - $1 }
        let standardError = ((variance - tieCorrection / 2) / 24).squareRoot()
        return Statistic(rPlus: rPlus, rMinus: rMinus, mean: mean, standardError: standardError, count: count, hasTies: hasTies)
    }

    /// The null distribution of R+ for n untied, non-zero differences (scipy's
    /// WilcoxonDistribution): counts of subsets of {1…n} by their sum, over 2ⁿ.
    struct ExactDistribution {
        let pmf: [Double]
        let mean: Double

        /// Sums from the nearer tail, as scipy does, for accuracy.
        func cdf(_ k: Int) -> Double { Double(k) <= mean ? lower(k) : 1 - upper(k + 1) }
        func sf(_ k: Int) -> Double { Double(k) <= mean ? upper(k) : 1 - lower(k - 1) }

        /// P(R ≤ k), summed directly.
        func lower(_ k: Int) -> Double { k < 0 ? 0 : pmf.prefix(k + 1).reduce(0, +) }
        /// P(R ≥ k), summed directly.
        func upper(_ k: Int) -> Double { k >= pmf.count ? 0 : pmf.suffix(from: Swift.max(k, 0)).reduce(0, +) }
    }

    static func exactDistribution(_ n: Int) -> ExactDistribution {
        let maximum = n * (n + 1) / 2
        var counts = [Double](repeating: 0, count: maximum + 1)
        counts[0] = 1
        if n > 0 {
            for value in 1...n {
                for sum in stride(from: maximum, through: value, by: -1) { counts[sum] += counts[sum - value] }
            }
        }
        let total = pow(2.0, Double(n))
        return ExactDistribution(pmf: counts.map { $0 / total }, mean: Double(n * (n + 1)) / 4)
    }

    /// scipy.stats.permutation_test over all 2ⁿ sign assignments of d (n ≤ 13).
    static func permutationPValue(_ d: [Double], observed: Double, zeroMethod: ZeroMethod, alternative: Alternative) -> Double {
        let n = d.count
        let gamma = abs(Double.ulpOfOne * 100 * observed)
        var lessOrEqual = 0.0, greaterOrEqual = 0.0
        let total = 1 << n
        for mask in 0..<total {
            let flipped = d.indices.map { (mask >> $0) & 1 == 1 ? -d[$0] : d[$0] }
            let value = statistic(flipped, zeroMethod: zeroMethod).rPlus
            if value <= observed + gamma { lessOrEqual += 1 }
            if value >= observed - gamma { greaterOrEqual += 1 }
        }
        let pLess = lessOrEqual / Double(total), pGreater = greaterOrEqual / Double(total)
        switch alternative {
        case .less: return Swift.min(pLess, 1)
        case .greater: return Swift.min(pGreater, 1)
        case .twoSided: return Swift.min(2 * Swift.min(pLess, pGreater), 1)
        }
    }
}

/// Standard normal upper tail, as scipy's ndtr(−x).
func normalSF(_ x: Double) -> Double { 0.5 * erfc(x / 2.0.squareRoot()) }
func normalCDF(_ x: Double) -> Double { 0.5 * erfc(-x / 2.0.squareRoot()) }
