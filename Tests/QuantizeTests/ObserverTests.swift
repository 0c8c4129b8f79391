import XCTest
@testable import Quantize
import TensorCore

/// The observers' counting kernels against a plain transcription of the reference algorithm.
final class ObserverTests: XCTestCase {
    /// torch.histc's CPU kernel, value by value: the interpolated position, then an
    /// upper_bound over the edges from position − 1 to position + 1 (clipped to the edges),
    /// minus one, clamped to the bins.
    static func referenceHistc(_ values: [Float], bins: Int, low: Float, high: Float) -> [Double] {
        let edges = HistogramObserver.linspace(low, high, count: bins + 1)
        var counts = [Double](repeating: 0, count: bins)
        for value in values where value >= low && value <= high {
            let position = Int((value - low) * Float(bins) / (high - low))
            var index = Swift.max(0, position - 1)
            while index < Swift.min(position + 2, bins + 1) && edges[index] <= value { index += 1 }
            counts[Swift.min(Swift.max(index - 1, 0), bins - 1)] += 1
        }
        return counts
    }

    /// Zeros after a ReLU, the range's ends, values on every edge and just beside it, values
    /// outside the range and NaNs, in tensors large enough to be counted in parts (any
    /// thread count gives the same counts).
    func testHistcCountsAsTheReferenceDoes() {
        var generator = SeededGenerator(seed: 7)
        for (bins, low, high) in [(2048, Float(0), Float(6)), (2048, Float(-3.7), Float(11.3)), (7, Float(-1), Float(1e-3)),
                                  (2048, Float(1000), Float(1000.25))] {
            let edges = HistogramObserver.linspace(low, high, count: bins + 1)
            var values: [Float] = [low, high, .nan, low - 1, high + 1, -.infinity, .infinity]
            for edge in edges { values += [edge, edge.nextUp, edge.nextDown] }
            while values.count < 200_000 {
                let value = Float.random(in: (low - 0.1 * (high - low))...(high + 0.1 * (high - low)), using: &generator)
                values.append(Bool.random(using: &generator) ? Swift.max(value, low) : value)
            }
            let expected = Self.referenceHistc(values, bins: bins, low: low, high: high)
            for threads in [1, 2] {
                Threading.setThreads(threads)
                let counts = HistogramObserver.histc(Tensor(shape: [values.count], scalars: values), bins: bins, low: low, high: high)
                XCTAssertEqual(counts, expected, "\(bins) bins over [\(low), \(high)], \(threads) threads")
            }
        }
        Threading.setThreads(ProcessInfo.processInfo.activeProcessorCount)
    }

    /// A range wider than float32 can span (high − low = ∞) counts every value somewhere
    /// instead of trapping on a NaN position.
    func testHistcOverARangeWiderThanFloat32Counts() {
        let values: [Float] = [-3e38, -1, 0, 1, 3e38, 2.9e38]
        let counts = HistogramObserver.histc(Tensor(shape: [values.count], scalars: values), bins: 2048, low: -3e38, high: 3e38)
        XCTAssertEqual(counts.reduce(0, +), Double(values.count))
    }

    /// The extremes ignore infinities and NaNs and are the same for any thread count.
    func testFiniteExtremesInParts() {
        var values = (0..<300_000).map { Float($0 % 1000) * 0.01 - 2 }
        values[12] = .nan
        values[150_000] = .infinity
        values[299_999] = -.infinity
        values[250_001] = -7.5
        for threads in [1, 2] {
            Threading.setThreads(threads)
            let extremes = finiteExtremes(Tensor(shape: [values.count], scalars: values))
            XCTAssertEqual(extremes?.0, -7.5)
            XCTAssertEqual(extremes?.1, Float(999) * 0.01 - 2)
        }
        XCTAssertNil(finiteExtremes(Tensor(shape: [3], scalars: [.nan, .infinity, -.infinity])))
        Threading.setThreads(ProcessInfo.processInfo.activeProcessorCount)
    }
}
