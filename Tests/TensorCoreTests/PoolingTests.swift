import XCTest
@testable import TensorCore

final class PoolingTests: XCTestCase {
    /// The definition: windows over the padded input; max ignores padding, average divides
    /// by the PyTorch divisor (padded cells inside the padding count when asked).
    func naivePool(_ x: Tensor, _ c: Pool2DConfig, max isMax: Bool) -> Tensor {
        let shape = c.outputShape(input: x.shape)
        let (h, w) = (x.shape[2], x.shape[3])
        var out = Tensor(shape: shape)
        for n in 0..<shape[0] { for ch in 0..<shape[1] { for oy in 0..<shape[2] { for ox in 0..<shape[3] {
            var best = -Float.infinity, sum: Float = 0, inside = 0, padded = 0
            for ky in 0..<c.kernelH { for kx in 0..<c.kernelW {
                let y = oy * c.strideH - c.padding.top + ky, xx = ox * c.strideW - c.padding.left + kx
                if y >= -c.padding.top && y < h + c.padding.bottom && xx >= -c.padding.left && xx < w + c.padding.right { padded += 1 }
                guard y >= 0, y < h, xx >= 0, xx < w else { continue }
                best = Swift.max(best, x[n, ch, y, xx]); sum += x[n, ch, y, xx]; inside += 1
            } }
            out[n, ch, oy, ox] = isMax ? best : sum / Float(c.countIncludesPadding ? padded : inside)
        } } } }
        return out
    }

    static let configs: [Pool2DConfig] = [
        Pool2DConfig(kernel: 3, stride: 2),
        Pool2DConfig(kernel: 3, stride: 2, ceilMode: true),
        Pool2DConfig(kernel: 3, stride: 1, padding: .symmetric(1)),
        Pool2DConfig(kernel: 3, stride: 1, padding: .symmetric(1), countIncludesPadding: false),
        Pool2DConfig(kernel: 2, stride: 2, padding: Padding2D(top: 0, bottom: 1, left: 0, right: 1), ceilMode: false),
        Pool2DConfig(kernel: 3, stride: 2, padding: .symmetric(1), ceilMode: true),
    ]

    func testOutputExtentsFollowPyTorch() {
        // torch.nn.MaxPool2d(3, 2, ceil_mode=True) on 112 → 56; floor mode → 55.
        XCTAssertEqual(Pool2DConfig(kernel: 3, stride: 2, ceilMode: true).outputShape(input: [1, 1, 112, 112]), [1, 1, 56, 56])
        XCTAssertEqual(Pool2DConfig(kernel: 3, stride: 2).outputShape(input: [1, 1, 112, 112]), [1, 1, 55, 55])
        // A last window starting in the trailing padding is dropped: k2 s2 p1 ceil on 4 → 3.
        XCTAssertEqual(Pool2DConfig(kernel: 2, stride: 2, padding: .symmetric(1), ceilMode: true).outputShape(input: [1, 1, 4, 4]), [1, 1, 3, 3])
    }

    func testForwardMatchesDefinition() {
        for (number, config) in Self.configs.enumerated() {
            let x = random([2, 3, 9, 8], seed: UInt64(number))
            assertClose(Pooling.max(x, config: config).output, naivePool(x, config, max: true), "max \(number)")
            assertClose(Pooling.average(x, config: config), naivePool(x, config, max: false), "avg \(number)")
        }
        // Corner of a 3x3/1/pad-1 average: 4 real cells; divisor 9 with padding counted, 4 without.
        let ones = Tensor(shape: [1, 1, 4, 4], repeating: 1)
        XCTAssertEqual(Pooling.average(ones, config: Self.configs[2])[0, 0, 0, 0], 4.0 / 9.0, accuracy: 1e-6)
        XCTAssertEqual(Pooling.average(ones, config: Self.configs[3])[0, 0, 0, 0], 1.0, accuracy: 1e-6)
    }

    func testBackwardMatchesFiniteDifferences() {
        for (number, config) in Self.configs.enumerated() {
            // Distinct, well-separated values so no finite-difference step changes a max winner.
            var generator = SeededGenerator(seed: UInt64(number))
            let values = (0..<(2 * 3 * 9 * 8)).map { Float($0) * 0.05 }.shuffled(using: &generator)
            let x = Tensor(shape: [2, 3, 9, 8], scalars: values)
            let outputShape = config.outputShape(input: x.shape)
            let r = random(outputShape, seed: UInt64(50 + number))
            let (_, argmax) = Pooling.max(x, config: config)
            assertGradientMatches(Pooling.maxBackward(r, argmax: argmax, inputShape: x.shape),
                                  { projection(Pooling.max($0, config: config).output, r) }, at: x, step: 1e-3, "max \(number)")
            assertGradientMatches(Pooling.averageBackward(r, inputShape: x.shape, config: config),
                                  { projection(Pooling.average($0, config: config), r) }, at: x, step: 1e-3, "avg \(number)")
        }
        let x = random([2, 4, 5, 3], seed: 3), r = random([2, 4, 1, 1], seed: 4)
        assertGradientMatches(Pooling.globalAverageBackward(r, inputShape: x.shape), { projection(Pooling.globalAverage($0), r) }, at: x, "global")
        assertClose(Pooling.globalAverage(x).reshaped([8]), Tensor(shape: [8], scalars: (0..<8).map { p in
            x.scalars[(p * 15)..<((p + 1) * 15)].reduce(0, +) / 15 }))
    }
}
