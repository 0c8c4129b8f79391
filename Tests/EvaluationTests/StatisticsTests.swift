import Foundation
import XCTest
@testable import Evaluation

/// Statistics against SciPy (fixture: Tools/reference/make_stats_fixtures.py).
final class StatisticsTests: XCTestCase {
    struct Fixture: Decodable {
        struct WilcoxonCase: Decodable {
            struct Expected: Decodable {
                let zero_method: String, correction: Bool, alternative: String, method: String
                let statistic: Double, pvalue: Double
            }
            let x: [Double]
            let y: [Double]?
            let results: [Expected]
        }
        struct VDACase: Decodable { let x: [Double]; let y: [Double]; let paired: Bool; let a: Double }
        struct McNemarCase: Decodable { let x: [Int]; let y: [Int]; let b: Int; let c: Int; let statistic: Double; let pvalue: Double }
        let scipy: String
        let wilcoxon: [WilcoxonCase]
        let vda: [VDACase]
        let mcnemar: [McNemarCase]
    }

    static let fixture: Fixture = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/statistics.json")
        return try! JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }()

    func testWilcoxonEqualsSciPyOnEveryCase() throws {
        var compared = 0
        var methods = Set<String>()
        for item in Self.fixture.wilcoxon {
            for expected in item.results {
                let result = try Wilcoxon.test(item.x, item.y, zeroMethod: Wilcoxon.ZeroMethod(rawValue: expected.zero_method)!,
                                               correction: expected.correction,
                                               alternative: Wilcoxon.Alternative(rawValue: expected.alternative)!,
                                               method: Wilcoxon.Method(rawValue: expected.method)!)
                let label = "n=\(item.x.count) \(expected.zero_method) correction=\(expected.correction) \(expected.alternative) \(expected.method) → \(result.method)"
                XCTAssertEqual(result.statistic, expected.statistic, accuracy: 1e-10 * Swift.max(1, abs(expected.statistic)), label)
                XCTAssertEqual(result.pvalue, expected.pvalue, accuracy: 1e-10, label)
                methods.insert(result.method)
                compared += 1
            }
        }
        XCTAssertGreaterThan(compared, 1500)
        XCTAssertEqual(methods, ["exact", "asymptotic", "permutation"], "every branch of SciPy's method choice is exercised")
    }

    func testVarghaDelaneyEqualsMannWhitneyU() {
        for item in Self.fixture.vda {
            let result = item.paired ? VarghaDelaney.paired(item.x, item.y) : VarghaDelaney.unpaired(item.x, item.y)
            XCTAssertEqual(result.a, item.a, accuracy: 1e-12)
        }
        XCTAssertEqual(VarghaDelaney.magnitude(0.5), .negligible)
        XCTAssertEqual(VarghaDelaney.magnitude(0.44), .small)      // max(A, 1 − A) = 0.56
        XCTAssertEqual(VarghaDelaney.magnitude(0.70), .medium)
        XCTAssertEqual(VarghaDelaney.magnitude(0.29), .large)
    }

    func testMcNemarEqualsBinomialTest() {
        for item in Self.fixture.mcnemar {
            let result = McNemar.exact(item.x.map { $0 == 1 }, item.y.map { $0 == 1 })
            XCTAssertEqual(result.b, item.b)
            XCTAssertEqual(result.c, item.c)
            XCTAssertEqual(result.statistic, item.statistic)
            XCTAssertEqual(result.pvalue, item.pvalue, accuracy: 1e-10, "b=\(item.b) c=\(item.c)")
        }
    }

    func testWilsonIntervalAndSeededBootstrap() {
        // Wilson (1927) for 8/10 at 95 %: [0.4902, 0.9433] (Newcombe 1998, Table I style values).
        let interval = Proportion.wilson(successes: 8, n: 10)
        XCTAssertEqual(interval.low, 0.4901624, accuracy: 1e-6)
        XCTAssertEqual(interval.high, 0.9433178, accuracy: 1e-6)
        XCTAssertEqual(Proportion.wilson(successes: 0, n: 20).low, 0)
        // Bootstrap: same seed, same interval; it contains the observed difference.
        let x = (0..<200).map { $0 % 3 != 0 }, y = (0..<200).map { $0 % 2 == 0 }
        let a = Proportion.bootstrapDifference(x, y, resamples: 2000, seed: 7)
        let b = Proportion.bootstrapDifference(x, y, resamples: 2000, seed: 7)
        XCTAssertEqual(a.low, b.low)
        XCTAssertEqual(a.high, b.high)
        let observed = Double(x.filter { $0 }.count - y.filter { $0 }.count) / 200
        XCTAssertLessThanOrEqual(a.low, observed)
        XCTAssertGreaterThanOrEqual(a.high, observed)
    }

    func testBadInputsAreErrors() {
        XCTAssertThrowsError(try Wilcoxon.test([1, 2], [1])) { XCTAssertEqual($0 as? Wilcoxon.TestError, .lengthMismatch(2, 1)) }
        XCTAssertThrowsError(try Wilcoxon.test([1, 2], [1, 2])) { XCTAssertEqual($0 as? Wilcoxon.TestError, .allZero) }
        XCTAssertThrowsError(try Wilcoxon.test([])) { XCTAssertEqual($0 as? Wilcoxon.TestError, .empty) }
    }
}
