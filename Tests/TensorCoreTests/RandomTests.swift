import CShims
import Foundation
import XCTest
@testable import TensorCore

final class RandomTests: XCTestCase {
    /// The ziggurat sampler against the standard normal distribution: moments, the
    /// probability of ±1σ, ±2σ and the tail beyond the ziggurat's base, and determinism.
    func testFillNormalFollowsTheStandardNormal() {
        var generator = SeededGenerator(seed: 11)
        var values = [Float](repeating: 0, count: 2_000_000)
        values.withUnsafeMutableBufferPointer { generator.fillNormal($0) }
        let n = Double(values.count)
        let mean = values.reduce(0.0) { $0 + Double($1) } / n
        let variance = values.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / n
        let kurtosis = values.reduce(0.0) { $0 + pow(Double($1) - mean, 4) } / n / (variance * variance)
        XCTAssertEqual(mean, 0, accuracy: 0.003)
        XCTAssertEqual(variance, 1, accuracy: 0.004)
        XCTAssertEqual(kurtosis, 3, accuracy: 0.02)
        func share(_ predicate: (Float) -> Bool) -> Double { Double(values.filter(predicate).count) / n }
        XCTAssertEqual(share { abs($0) < 1 }, 0.682689, accuracy: 0.0015)
        XCTAssertEqual(share { abs($0) < 2 }, 0.954500, accuracy: 0.0008)
        XCTAssertEqual(share { abs($0) > 3.44262 }, 5.7617e-4, accuracy: 0.0001)
        XCTAssertEqual(share { $0 > 0 }, 0.5, accuracy: 0.0015)
        // Kolmogorov–Smirnov against Φ: D < 1.63 / √n is the 1 % critical value.
        let sorted = values.sorted()
        var largestGap = 0.0
        for (rank, value) in sorted.enumerated() where rank % 97 == 0 {
            let cdf = 0.5 * (1 + erf(Double(value) / 2.0.squareRoot()))
            largestGap = max(largestGap, abs(cdf - Double(rank) / n), abs(cdf - Double(rank + 1) / n))
        }
        XCTAssertLessThan(largestGap, 1.63 / n.squareRoot())
        var again = SeededGenerator(seed: 11)
        var repeated = [Float](repeating: 0, count: 1000)
        repeated.withUnsafeMutableBufferPointer { again.fillNormal($0) }
        XCTAssertEqual(Array(values.prefix(1000)), repeated)
    }

    /// The sampler is counter-based: any stretch of a stream equals that stretch of the whole
    /// stream (whatever the alignment to the 16-lane kernel), and the portable C gives the
    /// same bits as the AVX-512 kernel, rejection-path samples included.
    func testNormalStreamIsCounterBasedAndTheSameWithoutAVX512() {
        let key: UInt64 = 0x1234_5678_9ABC_DEF0, count = 100_003
        func draw(first: Int, count: Int) -> [Float] {
            [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                rc_fill_normal(key, UInt64(first), buffer.baseAddress!, count)
                initialized = count
            }
        }
        let stream = draw(first: 0, count: count)
        for (first, length) in [(0, 5), (3, 40), (17, 1000), (99_000, 1003)] {
            XCTAssertEqual(draw(first: first, count: length), Array(stream[first..<(first + length)]), "stretch at \(first)")
        }
        rc_force_generic(1)
        let generic = draw(first: 0, count: count)
        rc_force_generic(0)
        XCTAssertEqual(generic.map(\.bitPattern), stream.map(\.bitPattern))
        // About 1.2 % of samples leave the fast path; the comparison above covers them.
        XCTAssertGreaterThan(stream.filter { abs($0) > 3.44262 }.count, 20)
        // Neighbouring keys give uncorrelated streams (|r| < 4/√n).
        let other = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            rc_fill_normal(key + 1, 0, buffer.baseAddress!, count)
            initialized = count
        }
        let correlation = zip(stream, other).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } / Double(count)
        XCTAssertLessThan(abs(correlation), 4 / Double(count).squareRoot())
    }
}
