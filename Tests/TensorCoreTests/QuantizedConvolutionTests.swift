import CShims
import XCTest
@testable import TensorCore

final class QuantizedConvolutionTests: XCTestCase {
    /// Σ (x − zp)·w with padded cells equal to zp, by direct loops over NHWC/OIHW.
    func naive(_ x: [UInt8], _ shape: [Int], _ w: [Int8], _ wShape: [Int], _ config: Conv2DConfig, zeroPoint: Int32) -> [Int32] {
        let (n, c, h, width) = (shape[0], shape[1], shape[2], shape[3])
        let out = config.outputShape(input: shape, weight: wShape)
        let (o, oh, ow) = (out[1], out[2], out[3])
        let perGroupIn = c / config.groups, perGroupOut = o / config.groups
        var result = [Int32](repeating: 0, count: out.reduce(1, *))
        for b in 0..<n { for y in 0..<oh { for xx in 0..<ow { for oc in 0..<o {
            var acc: Int32 = 0
            let g = oc / perGroupOut
            for ic in 0..<perGroupIn { for ky in 0..<wShape[2] { for kx in 0..<wShape[3] {
                let iy = y * config.strideH - config.padding.top + ky * config.dilationH
                let ix = xx * config.strideW - config.padding.left + kx * config.dilationW
                guard iy >= 0, iy < h, ix >= 0, ix < width else { continue }
                let channel = g * perGroupIn + ic
                let value = Int32(x[((b * h + iy) * width + ix) * c + channel]) - zeroPoint
                acc += value * Int32(w[((oc * perGroupIn + ic) * wShape[2] + ky) * wShape[3] + kx])
            } } }
            result[((b * oh + y) * ow + xx) * o + oc] = acc
        } } } }
        return result
    }

    func testMatchesIntegerLoopsOnEveryGeometry() throws {
        var generator = SeededGenerator(seed: 7)
        let cases: [(input: [Int], weight: [Int], config: Conv2DConfig)] = [
            ([2, 16, 9, 9], [32, 16, 3, 3], Conv2DConfig(stride: 1, padding: .symmetric(1))),
            ([1, 3, 11, 11], [8, 3, 3, 3], Conv2DConfig(stride: 2, padding: Padding2D(top: 0, bottom: 1, left: 0, right: 1))),
            ([1, 32, 8, 8], [32, 1, 3, 3], Conv2DConfig(stride: 1, padding: .symmetric(1), groups: 32)),
            ([2, 32, 9, 9], [32, 1, 3, 3], Conv2DConfig(stride: 2, padding: .symmetric(1), groups: 32)),
            ([1, 24, 7, 7], [40, 24, 1, 1], Conv2DConfig()),
            ([1, 16, 10, 10], [16, 8, 3, 3], Conv2DConfig(stride: 1, padding: .symmetric(2), dilation: 2, groups: 2)),
            ([3, 64, 1, 1], [10, 64, 1, 1], Conv2DConfig()),
        ]
        for (index, item) in cases.enumerated() {
            for zeroPoint: Int32 in [0, 37, 255] {
                let x = (0..<item.input.reduce(1, *)).map { _ in UInt8(generator.next() % 256) }
                let w = (0..<item.weight.reduce(1, *)).map { _ in Int8(truncatingIfNeeded: Int(generator.next() % 255) - 127) }
                let conv = QuantizedConv2D(weights: w, shape: item.weight, config: item.config, inputZeroPoint: zeroPoint)
                let outShape = conv.outputShape(input: item.input)
                let output = IntegerBuffer<Int32>(count: outShape.reduce(1, *))
                try conv.accumulate(IntegerBuffer(x), inputShape: item.input, into: output)
                let expected = naive(x, item.input, w, item.weight, item.config, zeroPoint: zeroPoint)
                XCTAssertEqual(output.array, expected, "case \(index) zero point \(zeroPoint)")
            }
        }
    }

    /// oneDNN's uint8 output (`requantize`) equals QNNPACK's requantization of the int32
    /// accumulators — clamp(round_even(float(acc + bias) · scale), 0, 255), the portable C of
    /// `rc_requantize_float` — on two million outputs: scales that are not powers of two
    /// (where computing (acc + bias)·s as acc·s + bias·s would round differently about once
    /// in 10⁵), exact ties (scale ½, odd sums), dense and depthwise kernels, input zero points.
    func testRequantizingConvolutionEqualsQNNPACKArithmetic() throws {
        var generator = SeededGenerator(seed: 11)
        let cases: [(input: [Int], weight: [Int], config: Conv2DConfig, zeroPoint: Int32)] = [
            ([1, 64, 64, 128], [256, 64, 1, 1], Conv2DConfig(), 0),
            ([1, 96, 40, 40], [96, 1, 3, 3], Conv2DConfig(stride: 1, padding: .symmetric(1), groups: 96), 17),
            ([1, 32, 20, 20], [64, 32, 3, 3], Conv2DConfig(stride: 2, padding: .symmetric(1)), 131),
        ]
        var compared = 0
        for item in cases {
            let (o, perOutput) = (item.weight[0], item.weight.dropFirst().reduce(1, *))
            let x = (0..<item.input.reduce(1, *)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            let w = (0..<(o * perOutput)).map { _ in Int8(truncatingIfNeeded: Int(generator.next() % 61) - 30) }
            let bias = (0..<o).map { _ in Int32(Int(generator.next() % 20_001) - 10_000) }
            let scales: [Float] = (0..<o).map { c in
                c % 4 == 0 ? 0.5 : 1 / Float(Int(generator.next() % 4000) + 3) * (c % 4 == 1 ? 1 : 7.3)
            }
            let accumulate = QuantizedConv2D(weights: w, shape: item.weight, config: item.config, inputZeroPoint: item.zeroPoint)
            let fused = QuantizedConv2D(weights: w, shape: item.weight, config: item.config, inputZeroPoint: item.zeroPoint,
                                        requantization: .init(scales: scales, bias: bias))
            XCTAssertLessThan(QuantizedConv2D.accumulatorBound(weights: w, outputChannels: o, inputZeroPoint: item.zeroPoint) + 10_000, 1 << 24)
            let outputCount = accumulate.outputShape(input: item.input).reduce(1, *)
            let input = IntegerBuffer(x), accumulators = IntegerBuffer<Int32>(count: outputCount)
            try accumulate.accumulate(input, inputShape: item.input, into: accumulators)
            var expected = [UInt8](repeating: 0, count: outputCount)
            rc_force_generic(1)
            accumulators.withUnsafeBufferPointer { acc in
                rc_requantize_float(acc.baseAddress!, outputCount / o, o, bias, scales, 0, 0, 255, &expected)
            }
            rc_force_generic(0)
            let output = IntegerBuffer<UInt8>(count: outputCount)
            try fused.requantize(input, inputShape: item.input, into: output)
            let actual = output.array
            let differing = zip(actual, expected).filter { $0 != $1 }.count
            XCTAssertEqual(differing, 0, "\(item.weight): \(differing) of \(outputCount) outputs differ")
            compared += outputCount
        }
        XCTAssertGreaterThan(compared, 2_000_000)
    }
}
