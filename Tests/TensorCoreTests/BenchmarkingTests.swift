import XCTest
@testable import TensorCore

final class BenchmarkingTests: XCTestCase {
    func testMedianOfOddAndEvenCounts() {
        XCTAssertEqual(Benchmark.median([3, 1, 2]), 2)
        XCTAssertEqual(Benchmark.median([4, 1, 3, 2]), 2.5)
        XCTAssertEqual(Benchmark.median([7]), 7)
    }

    func testMillisecondsTimesEveryRunAfterTheWarmUp() {
        var calls = 0
        let times = Benchmark.milliseconds(repeats: 3, warmup: 2) { calls += 1 }
        XCTAssertEqual(calls, 5)
        XCTAssertEqual(times.count, 3)
        XCTAssertTrue(times.allSatisfy { $0 >= 0 })
    }
}
