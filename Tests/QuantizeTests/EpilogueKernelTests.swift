import CShims
import XCTest
@testable import ModelZoo
@testable import Quantize
import TensorCore

/// The AVX-512 epilogues are a faster spelling of the portable C ones (the definition of each
/// scheme's arithmetic, checked against TFLite and PyTorch elsewhere): same bytes on random
/// and extreme inputs, every channel count, every tail length.
final class EpilogueKernelTests: XCTestCase {
    var generator = SystemRandomNumberGenerator()

    /// Runs `body` with the portable kernels and with the run-time choice, returning both outputs.
    func bothPaths(_ count: Int, _ body: (UnsafeMutablePointer<UInt8>) -> Void) -> ([UInt8], [UInt8]) {
        var portable = [UInt8](repeating: 0, count: count), chosen = [UInt8](repeating: 0, count: count)
        rc_force_generic(1)
        portable.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
        rc_force_generic(0)
        chosen.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
        return (portable, chosen)
    }

    func accumulators(_ count: Int) -> [Int32] {
        let extremes: [Int32] = [Int32.min, Int32.max, 0, -1, 1, 1 << 30, -(1 << 30)]
        return (0..<count).map { i in i % 11 == 0 ? extremes[(i / 11) % extremes.count] : Int32.random(in: -(1 << 20)...(1 << 20), using: &generator) }
    }

    func testRequantizationPathsAgree() {
        for channels in [1, 3, 16, 17, 40, 64, 80, 130] {
            let pixels = 37
            let acc = accumulators(pixels * channels)
            let bias = (0..<channels).map { _ in Int32.random(in: -5000...5000, using: &generator) }
            // Multipliers in [2^30, 2^31) with right shifts 0…31 and small left shifts, as
            // FixedPointMultiplier produces; a zero multiplier (dead channel) too.
            let multipliers = (0..<channels).map { c in c == 2 ? 0 : Int32.random(in: (1 << 30)...Int32.max, using: &generator) }
            let left = (0..<channels).map { c in Int32(c % 3 == 0 ? Int.random(in: 0...2, using: &generator) : 0) }
            let right = (0..<channels).map { c in Int32(c % 5 == 1 ? 31 : Int.random(in: 0...20, using: &generator)) }
            // Some scales above 1, so that extreme accumulators scale past the int32 range
            // in both directions (the vector path limits only the upper side).
            let scales = (0..<channels).map { c in Float.random(in: c % 4 == 3 ? 1...4 : 1e-6...0.5, using: &generator) }
            for (zero, lo, hi) in [(Int32(0), Int32(0), Int32(255)), (128, 128, 255), (3, 0, 200)] {
                let (a, b) = bothPaths(pixels * channels) { out in
                    rc_requantize_tflite(acc, pixels, channels, bias, multipliers, left, right, zero, lo, hi, out)
                }
                XCTAssertEqual(a, b, "tflite requantize, \(channels) channels")
                let (c, d) = bothPaths(pixels * channels) { out in
                    rc_requantize_float(acc, pixels, channels, bias, scales, zero, lo, hi, out)
                }
                XCTAssertEqual(c, d, "float requantize, \(channels) channels")
            }
        }
    }

    /// The one-floor form of TFLite's requantization (right shifts 1…22 on every lane of a
    /// vector) against the scalar gemmlowp definition: extreme accumulators, multipliers
    /// 2^30 and 2^30 + 1 (exact ties at every odd accumulator), zero points up to 255.
    func testSingleFloorRequantizationMatchesGemmlowp() {
        let channels = 48, pixels = 200
        var acc = accumulators(pixels * channels)
        for i in stride(from: 0, to: acc.count, by: 5) { acc[i] = Int32(i % 4096) - 2048 }
        let bias = (0..<channels).map { c in c % 4 == 0 ? 0 : Int32.random(in: -5000...5000, using: &generator) }
        let multipliers = (0..<channels).map { c in
            c % 3 == 0 ? Int32(1 << 30) : (c % 3 == 1 ? Int32((1 << 30) + 1) : Int32.random(in: (1 << 30)...Int32.max, using: &generator))
        }
        let left = (0..<channels).map { c in Int32(c % 7 == 0 ? 1 : 0) }
        let right = (0..<channels).map { c in Int32(1 + c % 22) }
        // Clamps from at or above the zero point (ReLU, ReLU6) take the code without the sign
        // correction; the others keep it.
        for (zero, lo, hi) in [(Int32(0), Int32(0), Int32(255)), (255, 0, 255), (128, 100, 200), (77, 77, 255), (128, 140, 200)] {
            var ours = [UInt8](repeating: 0, count: pixels * channels)
            rc_requantize_tflite(acc, pixels, channels, bias, multipliers, left, right, zero, lo, hi, &ours)
            var expected = [UInt8](repeating: 0, count: pixels * channels)
            for p in 0..<pixels { for c in 0..<channels {
                let v = rc_tflite_multiply(acc[p * channels + c] &+ bias[c], multipliers[c], left[c], right[c]) &+ zero
                expected[p * channels + c] = UInt8(Swift.min(Swift.max(v, lo), hi))
            } }
            XCTAssertEqual(ours, expected, "zero point \(zero), clamp \(lo)…\(hi)")
        }
    }

    func testAdditionPathsAgree() {
        for count in [1, 15, 16, 33, 1000] {
            let x = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let y = (0..<count).map { i in i % 7 == 0 ? UInt8(255) : UInt8.random(in: 0...255, using: &generator) }
            let (a, b) = bothPaths(count) { out in
                rc_add_tflite(x, y, count, 3, 250, 20, 1_518_500_250, 1, 1_073_741_824, 0, 1_900_000_000, 18, 7, 0, 255, out)
            }
            XCTAssertEqual(a, b, "tflite add, \(count) values")
            // A ReLU after the add: the lower clamp at the output zero point.
            let (r, s) = bothPaths(count) { out in
                rc_add_tflite(x, y, count, 3, 250, 20, 1_518_500_250, 1, 1_073_741_824, 0, 1_900_000_000, 18, 7, 7, 255, out)
            }
            XCTAssertEqual(r, s, "tflite add with ReLU, \(count) values")
            let (c, d) = bothPaths(count) { out in
                rc_add_qnnpack(x, y, count, -123_456, 1_800_000, 2_500_000, 21, (1 << 21) - 1, ((1 << 21) - 1) >> 1, 12, 12, 255, out)
            }
            XCTAssertEqual(c, d, "qnnpack add, \(count) values")
        }
        // The add's input rescaling (32-bit lanes) against the scalar definition, for every
        // input and zero point, multipliers of both signs, every right shift up to 20; half
        // of the draws where the vector path applies (left 8…22, right ≤ left − 8, multiplier ≥ 2^30),
        // a quarter with a power-of-two multiplier, half of those with no right shift (the
        // exact-shift case, left + log2(multiplier) ≥ 31).
        let all = (0...255).map { UInt8($0) }
        for round in 0..<64 {
            let inRange = round % 2 == 0
            let left = Int32.random(in: inRange ? 8...22 : 1...22, using: &generator)
            var multiplier = Int32.random(in: inRange ? (1 << 30)...Int32.max : Int32.min + 1...Int32.max, using: &generator)
            var right = Int32.random(in: inRange ? 0...(left - 8) : 0...20, using: &generator)
            if round % 8 < 2 { multiplier = 1 << Int32.random(in: (31 - left)...30, using: &generator) }
            if round % 8 == 0 { right = 0 }
            let zero = Int32.random(in: 0...255, using: &generator)
            var rescaled = [Int32](repeating: 0, count: 256)
            rc_tflite_rescale_input(all, 256, zero, left, multiplier, right, &rescaled)
            XCTAssertEqual(rescaled, all.map { rc_tflite_multiply((Int32($0) - zero) << left, multiplier, 0, right) },
                           "input rescale, multiplier \(multiplier), shifts \(left) / \(right), zero point \(zero)")
        }
        // Every pair of inputs, under random TFLite parameters (multipliers in [2^30, 2^31)
        // as QuantizeMultiplier gives, right shifts 0…20, any zero points), half of them in
        // the ranges the vector path takes (inputs 0…12, output 1…22). Half of the rounds give
        // one input TFLite's multiplier for the larger input scale (½: 2^30, no shift), the
        // first or the second; every other round clamps below at the output zero point (a ReLU).
        let x = (0..<65536).map { UInt8($0 & 255) }, y = (0..<65536).map { UInt8($0 >> 8) }
        for round in 0..<32 {
            let multiplier = { Int32.random(in: (1 << 30)...Int32.max, using: &self.generator) }
            let inputShift = { Int32.random(in: round % 2 == 0 ? 0...12 : 0...20, using: &self.generator) }
            let outputShift = { Int32.random(in: round % 2 == 0 ? 1...22 : 0...20, using: &self.generator) }
            let zero = { Int32.random(in: 0...255, using: &self.generator) }
            var parameters = (zero(), zero(), multiplier(), inputShift(), multiplier(), inputShift(), multiplier(), outputShift(), zero())
            switch round % 8 {
            case 0, 1: (parameters.2, parameters.3) = (1 << 30, 0)
            case 2, 3: (parameters.4, parameters.5) = (1 << 30, 0)
            default: break
            }
            let lower = round % 4 < 2 ? 0 : parameters.8
            let (a, b) = bothPaths(65536) { out in
                rc_add_tflite(x, y, 65536, parameters.0, parameters.1, 20, parameters.2, parameters.3, parameters.4, parameters.5,
                              parameters.6, parameters.7, parameters.8, lower, 255, out)
            }
            XCTAssertEqual(a, b, "tflite add, every input pair, parameters \(parameters), lower clamp \(lower)")
        }
    }

    /// Concatenation (`rc_concat_u8`): copies and 256-entry lookups, channel counts below,
    /// at and above one 64-byte vector, against the naive definition on both paths.
    func testConcatenationPathsAgreeWithNaiveDefinition() {
        let channels = [3, 64, 70, 130, 1], pixels = 9
        let sources: [[UInt8]?] = channels.map { c in (0..<(c * pixels)).map { _ in UInt8.random(in: 0...255, using: &generator) } }
        let tables: [[UInt8]?] = channels.indices.map { i in
            i % 2 == 1 ? nil : (0..<256).map { _ in UInt8.random(in: 0...255, using: &generator) }
        }
        let total = channels.reduce(0, +)
        var expected: [UInt8] = []
        for p in 0..<pixels {
            for (i, c) in channels.enumerated() {
                let row = sources[i]![(p * c)..<((p + 1) * c)]
                expected += tables[i].map { table in row.map { table[Int($0)] } } ?? Array(row)
            }
        }
        let (portable, chosen) = bothPaths(total * pixels) { out in
            withPointers(sources) { s in withPointers(tables) { t in
                // Two calls, so that a range that does not start at pixel 0 is covered too.
                rc_concat_u8(s, channels, t, channels.count, total, 0, 4, out)
                rc_concat_u8(s, channels, t, channels.count, total, 4, pixels, out)
            } }
        }
        XCTAssertEqual(portable, expected, "portable C")
        XCTAssertEqual(chosen, expected, "vector code")
    }

    /// Calls `body` with the arrays' base addresses (NULL for nil) as a C array.
    func withPointers(_ arrays: [[UInt8]?], _ body: (UnsafePointer<UnsafePointer<UInt8>?>) -> Void) {
        func nest(_ rest: ArraySlice<[UInt8]?>, _ collected: [UnsafePointer<UInt8>?]) {
            guard let first = rest.first else { return collected.withUnsafeBufferPointer { body($0.baseAddress!) } }
            guard let array = first else { return nest(rest.dropFirst(), collected + [nil]) }
            array.withUnsafeBufferPointer { nest(rest.dropFirst(), collected + [$0.baseAddress]) }
        }
        nest(arrays[...], [])
    }

    /// Int8 average pooling, both paths, against window sums taken naively and each scheme's
    /// scalar rounding (`averagePoolValue`, checked by hand in ArithmeticTests): padded and
    /// unpadded windows, divisors with and without padding, channel tails, both schemes.
    func testAveragePoolPathsAgreeWithNaiveWindows() {
        let padded = Padding2D(top: 1, bottom: 1, left: 1, right: 1)
        let configs = [Pool2DConfig(kernel: 3, stride: 1, padding: padded, countIncludesPadding: false),
                       Pool2DConfig(kernel: 3, stride: 1, padding: padded, countIncludesPadding: true),
                       Pool2DConfig(kernel: 3, stride: 2), Pool2DConfig(kernel: 2, stride: 2, ceilMode: true)]
        for channels in [5, 16, 37, 50] {
            let shape = [2, channels, 7, 9]
            let values: [UInt8] = (0..<shape.reduce(1, *)).map { (i: Int) -> UInt8 in
                i % 13 == 0 ? UInt8(i % 2 * 255) : UInt8.random(in: 0...255, using: &generator)
            }
            let input = QuantizedValue(buffer: IntegerBuffer(values), shape: shape)
            for config in configs {
                for scheme in QuantizationScheme.allCases {
                    let q = AffineQuantization(scale: Float.random(in: 0.01...0.2, using: &generator), zeroPoint: Int32.random(in: 0...255, using: &generator))
                    let outShape = config.outputShape(input: shape)
                    let spans = Pooling.averageSpans(config, height: 7, width: 9, outputHeight: outShape[2], outputWidth: outShape[3])
                    var expected: [UInt8] = []
                    for b in 0..<2 { for y in 0..<outShape[2] { for x in 0..<outShape[3] { for c in 0..<channels {
                        let (rows, columns) = (spans.rows.ranges[y], spans.columns.ranges[x])
                        var sum: Int32 = 0
                        for iy in rows { for ix in columns { sum += Int32(values[((b * 7 + iy) * 9 + ix) * channels + c]) } }
                        expected.append(Int8Kernels.averagePoolValue(sum: sum, valid: Int32(rows.count * columns.count),
                                                                     divisor: Int32(spans.rows.counts[y] * spans.columns.counts[x]), q, scheme: scheme))
                    } } } }
                    rc_force_generic(1)
                    let portable = Int8Kernels.averagePool(input, config, q, scheme: scheme).buffer.array
                    rc_force_generic(0)
                    let chosen = Int8Kernels.averagePool(input, config, q, scheme: scheme).buffer.array
                    XCTAssertEqual(portable, expected, "portable, \(scheme), \(config), \(channels) channels")
                    XCTAssertEqual(chosen, expected, "run-time choice, \(scheme), \(config), \(channels) channels")
                }
            }
        }
    }

    /// Int8 max pooling (`rc_max_pool_u8`), both paths, against the largest value of each
    /// window's cells inside the map taken naively: padding (skipped, so a window's zeros are
    /// its own), strides, ceil mode, channel counts below, at and above 64 with tails, and
    /// values 0 and 255 in every window row.
    func testMaxPoolPathsAgreeWithNaiveWindows() {
        let configs = [Pool2DConfig(kernel: 3, stride: 2, padding: .symmetric(1)), Pool2DConfig(kernel: 3, stride: 1, padding: .symmetric(1)),
                       Pool2DConfig(kernel: 3, stride: 2), Pool2DConfig(kernel: 2, stride: 2, ceilMode: true),
                       Pool2DConfig(kernel: 3, stride: 2, padding: Padding2D(top: 1, bottom: 1, left: 1, right: 1))]
        for channels in [3, 64, 100, 131] {
            let (height, width) = (7, 9), shape = [2, channels, 7, 9]
            let values: [UInt8] = (0..<shape.reduce(1, *)).map { (i: Int) -> UInt8 in
                i % 11 == 0 ? UInt8(i % 2 * 255) : UInt8.random(in: 0...200, using: &generator)
            }
            let input = QuantizedValue(buffer: IntegerBuffer(values), shape: shape)
            for config in configs {
                let outShape = config.outputShape(input: shape)
                var expected: [UInt8] = []
                for b in 0..<2 { for y in 0..<outShape[2] { for x in 0..<outShape[3] { for c in 0..<channels {
                    let top = y * config.strideH - config.padding.top, left = x * config.strideW - config.padding.left
                    var best: UInt8 = 0
                    for iy in max(top, 0)..<min(top + config.kernelH, height) {
                        for ix in max(left, 0)..<min(left + config.kernelW, width) {
                            best = max(best, values[((b * height + iy) * width + ix) * channels + c])
                        }
                    }
                    expected.append(best)
                } } } }
                rc_force_generic(1)
                let portable = Int8Kernels.maxPool(input, config).buffer.array
                rc_force_generic(0)
                let chosen = Int8Kernels.maxPool(input, config)
                XCTAssertEqual(chosen.shape, outShape)
                XCTAssertEqual(portable, expected, "portable, \(config), \(channels) channels")
                XCTAssertEqual(chosen.buffer.array, expected, "run-time choice, \(config), \(channels) channels")
            }
        }
    }

    /// Input quantization (NCHW float → NHWC uint8), both paths, against the scalar
    /// definition `AffineQuantization.quantize`: exact ties (k + ½)·s of both signs, values
    /// that saturate at either end, channel interleaving with a pixel tail — on three channels
    /// (the RGB kernel), four (the general one), and images large enough that the two threads'
    /// shares meet inside an image.
    func testInputQuantizationPathsAgree() {
        for shape in [[2, 3, 9, 13], [2, 4, 9, 13], [3, 3, 45, 61], [1, 3, 1, 5]] {
            let (images, channels, plane) = (shape[0], shape[1], shape[2] * shape[3])
            for scheme in QuantizationScheme.allCases {
                let q = AffineQuantization(scale: 0.0173, zeroPoint: 117)
                let values: [Float] = (0..<shape.reduce(1, *)).map { (i: Int) -> Float in
                    switch i % 4 {
                    case 0: return (Float(i % 300 - 150) + 0.5) * q.scale
                    case 1: return Float.random(in: -3...3, using: &generator)
                    default: return Float.random(in: -1...1, using: &generator)
                    }
                }
                let input = Tensor(shape: shape, scalars: values)
                var expected = [UInt8](repeating: 0, count: values.count)
                for b in 0..<images { for c in 0..<channels { for p in 0..<plane {
                    expected[(b * plane + p) * channels + c] = q.quantize(values[(b * channels + c) * plane + p], scheme: scheme)
                } } }
                rc_force_generic(1)
                let portable = Int8Kernels.quantize(input, q, scheme: scheme).buffer.array
                rc_force_generic(0)
                let chosen = Int8Kernels.quantize(input, q, scheme: scheme).buffer.array
                XCTAssertEqual(portable, expected, "portable, \(shape), \(scheme)")
                XCTAssertEqual(chosen, expected, "run-time choice, \(shape), \(scheme)")
            }
        }
    }

    /// The preprocessing folded into the input quantization (channel permutation + affine)
    /// gives the bytes of the float executor's ops followed by the quantization, on both paths.
    func testInputQuantizationWithPreprocessingEqualsExecutorThenQuantize() {
        let shape = [2, 3, 9, 13]
        var seeded = SeededGenerator(seed: 5)
        let images = Tensor.randomUniform(shape: shape, generator: &seeded)
        for kind in [ModelZoo.Preprocessing.kerasCaffe, .kerasTF, .torchImageNet] {
            var graph = Graph()
            _ = kind.append(to: &graph, input: 0)
            let folded = ChannelPreprocessing(graph)
            XCTAssertNotNil(folded, "\(kind)")
            let expectedFloat = Executor().forward(graph, parameters: Parameters(), input: images)
            for scheme in QuantizationScheme.allCases {
                let q = AffineQuantization(scale: 0.0173, zeroPoint: 117)
                let expected = Int8Kernels.quantize(expectedFloat, q, scheme: scheme).buffer.array
                rc_force_generic(1)
                XCTAssertEqual(Int8Kernels.quantize(images, q, scheme: scheme, preprocessing: folded).buffer.array, expected, "portable, \(kind), \(scheme)")
                rc_force_generic(0)
                XCTAssertEqual(Int8Kernels.quantize(images, q, scheme: scheme, preprocessing: folded).buffer.array, expected, "\(kind), \(scheme)")
            }
        }
        // Anything else stays with the executor.
        var graph = Graph()
        let a = graph.add("a", .affine(scale: [1, 2, 3], shift: [0, 0, 0]), inputs: [0])
        _ = graph.add("b", .affine(scale: [1, 2, 3], shift: [1, 1, 1]), inputs: [a])
        XCTAssertNil(ChannelPreprocessing(graph))
    }
}
