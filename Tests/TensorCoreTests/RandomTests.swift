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
        var again = SeededGenerator(seed: 11)
        var repeated = [Float](repeating: 0, count: 1000)
        repeated.withUnsafeMutableBufferPointer { again.fillNormal($0) }
        XCTAssertEqual(Array(values.prefix(1000)), repeated)
    }
}
