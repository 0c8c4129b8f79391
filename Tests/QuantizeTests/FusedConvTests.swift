import CShims
import XCTest
@testable import Quantize
import TensorCore

/// The fused 1×1 and stem convolutions (`FusedInt8Conv`) against the two-pass path it
/// replaces — oneDNN's int32 accumulators, then `Requantizer` (checked against TFLite and
/// PyTorch layer by layer elsewhere): same bytes for both schemes, strides, batches, every
/// tail of pixels and channels,
/// input zero points 0…255, fused clamps, one and two threads, VNNI and portable C.
final class FusedConvTests: XCTestCase {
    var generator = SeededGenerator(seed: 41)

    override func tearDown() {
        rc_force_generic(0)
        Threading.setThreads(ProcessInfo.processInfo.activeProcessorCount)
    }

    func testFusedGemmEqualsAccumulateThenRequantize() throws {
        // (input [N, C, H, W], output channels, kernel, stride, padding): pointwise layers, and
        // stems (k×k on at most four channels, window rows read in place from a padded copy)
        // with Keras's and symmetric padding, windows wider than the image, window rows of
        // 9, 14, 15 and 21 bytes (read as 12, 16, 16 and 24, the extra weights zero), 16 and 64.
        let same = Padding2D.symmetric(1), keras = Padding2D(top: 0, bottom: 1, left: 0, right: 1)
        let geometries: [([Int], Int, Int, (Int, Int), Padding2D)] = [
            ([1, 4, 1, 1], 1, 1, (1, 1), .zero), ([1, 16, 5, 1], 24, 1, (1, 1), .zero), ([2, 36, 2, 4], 48, 1, (1, 1), .zero),
            ([1, 260, 7, 7], 50, 1, (1, 1), .zero), ([1, 64, 13, 10], 100, 1, (1, 1), .zero), ([1, 1024, 3, 6], 17, 1, (1, 1), .zero),
            ([1, 32, 9, 9], 40, 1, (2, 2), .zero), ([2, 16, 11, 10], 33, 1, (2, 2), .zero), ([1, 20, 8, 17], 16, 1, (1, 2), .zero),
            ([3, 8, 12, 7], 96, 1, (3, 1), .zero),
            ([1, 3, 15, 17], 32, 5, (2, 2), keras), ([2, 3, 20, 20], 64, 7, (2, 2), Padding2D.symmetric(3)),
            ([1, 2, 19, 19], 8, 7, (1, 1), same), ([1, 4, 6, 6], 5, 4, (1, 1), .zero), ([1, 3, 11, 11], 32, 5, (2, 2), .zero),
            ([1, 3, 4, 5], 16, 7, (1, 1), Padding2D.symmetric(3)), ([1, 4, 20, 20], 8, 16, (3, 3), Padding2D.symmetric(5)),
            ([1, 3, 13, 12], 32, 3, (2, 2), keras), ([2, 3, 9, 10], 16, 3, (1, 1), same), ([1, 3, 15, 15], 24, 3, (2, 2), .zero),
        ]
        for (inputShape, outputs, kernel, (strideH, strideW), padding) in geometries {
            XCTAssertTrue(kernel == 1 || FusedInt8Conv.isStem([outputs, inputShape[1], kernel, kernel]), "\(inputShape) \(kernel)×\(kernel) is a stem")
            let config = Conv2DConfig(strideH: strideH, strideW: strideW, padding: padding, dilationH: 1, dilationW: 1, groups: 1)
            let inputs = inputShape[1]
            let weightShape = [outputs, inputs, kernel, kernel]
            let weights = (0..<weightShape.reduce(1, *)).map { i in
                i % 13 == 0 ? Int8(i % 2 == 0 ? -127 : 127) : Int8.random(in: -127...127, using: &generator)
            }
            let weightScales = (0..<outputs).map { _ in Float.random(in: 1e-3...2e-2, using: &generator) / Float(kernel) }
            for scheme in QuantizationScheme.allCases {
                for inputZeroPoint in [Int32(0), 37, 128, 255] {
                    let x = (0..<inputShape.reduce(1, *)).map { _ in UInt8.random(in: 0...255, using: &generator) }
                    let bias = (0..<outputs).map { _ in Int32.random(in: -20000...20000, using: &generator) }
                    let layer = QuantizedLayer(weights: weights, weightShape: weightShape, weightScales: weightScales, bias: bias)
                    let input = AffineQuantization(scale: 0.02, zeroPoint: inputZeroPoint)
                    // Output scales small enough to saturate some values and large enough that
                    // most land inside; a zero point, fused clamps, and a multiplier above 1
                    // (TFLite's left shift).
                    for (outputScale, zeroPoint, clamp) in [(Float(0.5), Int32(128), FusedClamp.none), (0.04, 7, .relu6), (3e-3, 0, .relu), (1e-4, 128, .none)] {
                        let output = AffineQuantization(scale: outputScale, zeroPoint: zeroPoint)
                        let requantizer = Requantizer(layer: layer, input: input, output: output, clamp: clamp, scheme: scheme)
                        let value = QuantizedValue(buffer: IntegerBuffer(x), shape: inputShape)
                        let reference = try twoPass(value, layer: layer, config: config, inputZeroPoint: inputZeroPoint, requantizer: requantizer)
                        let fused = FusedInt8Conv(weights: weights, shape: weightShape, config: config, inputZeroPoint: inputZeroPoint,
                                                  requantizer: requantizer)
                        let label = "\(scheme) \(inputShape)→\(outputs), \(kernel)×\(kernel) stride \(strideH)×\(strideW) \(padding), zp \(inputZeroPoint), out scale \(outputScale)"
                        assertEveryPath(fused.apply(value), equals: reference, shape: config.outputShape(input: inputShape, weight: weightShape), label)
                    }
                }
            }
        }
    }

    /// Depthwise: 3×3 (stride 1 and 2, symmetric and Keras's asymmetric padding), 5×5 and
    /// 1×3 kernels, channel counts with and without a 64- and 16-channel tail, borders.
    func testFusedDepthwiseEqualsAccumulateThenRequantize() throws {
        let same = Padding2D.symmetric(1), keras = Padding2D(top: 0, bottom: 1, left: 0, right: 1)
        // (input [N, C, H, W], kernel [kh, kw], stride, padding)
        let geometries: [([Int], [Int], Int, Padding2D)] = [
            ([1, 16, 6, 6], [3, 3], 1, same), ([1, 144, 9, 11], [3, 3], 1, same), ([2, 96, 10, 10], [3, 3], 2, keras),
            ([1, 200, 7, 9], [3, 3], 2, same), ([1, 40, 12, 10], [3, 3], 1, .zero), ([1, 64, 5, 4], [3, 3], 1, same),
            ([1, 24, 9, 9], [5, 5], 2, Padding2D.symmetric(2)), ([1, 19, 6, 8], [1, 3], 1, Padding2D(top: 0, bottom: 0, left: 1, right: 1)),
            ([1, 32, 2, 3], [3, 3], 1, same),
        ]
        var shiftsSeen: Set<String> = []
        defer { XCTAssertEqual(shiftsSeen, ["left", "none", "beyond 22", "within"]) }
        for (inputShape, kernel, stride, padding) in geometries {
            let channels = inputShape[1]
            let weightShape = [channels, 1, kernel[0], kernel[1]]
            let config = Conv2DConfig(stride: stride, padding: padding, groups: channels)
            let weights = (0..<weightShape.reduce(1, *)).map { i in
                i % 11 == 0 ? Int8(i % 2 == 0 ? -127 : 127) : Int8.random(in: -127...127, using: &generator)
            }
            let weightScales = (0..<channels).map { _ in Float.random(in: 1e-2...5e-2, using: &generator) }
            for scheme in QuantizationScheme.allCases {
                for inputZeroPoint in [Int32(0), 100, 255] {
                    let x = (0..<inputShape.reduce(1, *)).map { i in i % 17 == 0 ? UInt8(255) : UInt8.random(in: 0...255, using: &generator) }
                    let bias = (0..<channels).map { _ in Int32.random(in: -2000...2000, using: &generator) }
                    let layer = QuantizedLayer(weights: weights, weightShape: weightShape, weightScales: weightScales, bias: bias)
                    let input = AffineQuantization(scale: 0.02, zeroPoint: inputZeroPoint)
                    // In the TFLite scheme: right shifts in the one-floor range with and without
                    // the sign test (no clamp below the zero point; ReLU6, ReLU), a multiplier
                    // above 1 (TFLite's left shift) and right shifts past 22 — each of the VNNI
                    // kernel's requantization modes (QNNPACK's scheme takes its float one).
                    for (outputScale, zeroPoint, clamp) in [(Float(0.5), Int32(128), FusedClamp.none), (0.02, 0, .relu6), (1e-3, 9, .relu),
                                                            (1e-4, 128, .none), (3000, 120, .none)] {
                        let requantizer = Requantizer(layer: layer, input: input, output: AffineQuantization(scale: outputScale, zeroPoint: zeroPoint),
                                                      clamp: clamp, scheme: scheme)
                        shiftsSeen.formUnion(requantizer.leftShifts.map { $0 > 0 ? "left" : "none" } + requantizer.rightShifts.map { $0 > 22 ? "beyond 22" : "within" })
                        let value = QuantizedValue(buffer: IntegerBuffer(x), shape: inputShape)
                        let reference = try twoPass(value, layer: layer, config: config, inputZeroPoint: inputZeroPoint, requantizer: requantizer)
                        let fused = FusedDepthwiseConv(weights: weights, shape: weightShape, config: config, inputZeroPoint: inputZeroPoint,
                                                       requantizer: requantizer)
                        let label = "\(scheme) depthwise \(inputShape) \(kernel) stride \(stride) \(padding), zp \(inputZeroPoint), out scale \(outputScale)"
                        assertEveryPath(fused.apply(value), equals: reference, shape: config.outputShape(input: inputShape, weight: weightShape), label)
                    }
                }
            }
        }
    }

    /// A depthwise layer and the 1×1 projection reading it as one kernel give the bytes of the
    /// two layers in turn, with the depthwise rows taken in chunks of several rows per
    /// projection call: maps narrow enough for several rows per chunk, bands that end in a
    /// partial chunk, one and two threads (hence two and four bands), both schemes.
    func testDepthwiseProjectionEqualsLayersInTurn() throws {
        // (input [N, C, H, W], depthwise stride, projection outputs): 40 × 64 rows make chunks
        // of 6 (16 KiB), 20 × 200 chunks of 4, 7 × 96 whole bands, 112 × 16 one row.
        let geometries: [([Int], Int, Int)] = [([1, 64, 40, 40], 1, 24), ([2, 200, 20, 20], 1, 40), ([1, 96, 14, 14], 2, 32),
                                               ([1, 16, 12, 112], 1, 8)]
        for (inputShape, stride, outputs) in geometries {
            let channels = inputShape[1]
            let config = Conv2DConfig(stride: stride, padding: .symmetric(1), groups: channels)
            let depthwiseShape = [channels, 1, 3, 3], projectShape = [outputs, channels, 1, 1]
            let depthwiseWeights = (0..<depthwiseShape.reduce(1, *)).map { _ in Int8.random(in: -127...127, using: &generator) }
            let projectWeights = (0..<projectShape.reduce(1, *)).map { _ in Int8.random(in: -127...127, using: &generator) }
            for scheme in QuantizationScheme.allCases {
                let x = (0..<inputShape.reduce(1, *)).map { _ in UInt8.random(in: 0...255, using: &generator) }
                let value = QuantizedValue(buffer: IntegerBuffer(x), shape: inputShape)
                let depthwiseLayer = QuantizedLayer(weights: depthwiseWeights, weightShape: depthwiseShape,
                                                    weightScales: (0..<channels).map { _ in Float.random(in: 1e-2...5e-2, using: &generator) },
                                                    bias: (0..<channels).map { _ in Int32.random(in: -2000...2000, using: &generator) })
                let middle = AffineQuantization(scale: 0.05, zeroPoint: 0)
                let depthwise = FusedDepthwiseConv(weights: depthwiseWeights, shape: depthwiseShape, config: config, inputZeroPoint: 37,
                                                   requantizer: Requantizer(layer: depthwiseLayer, input: AffineQuantization(scale: 0.02, zeroPoint: 37),
                                                                            output: middle, clamp: .relu6, scheme: scheme))
                let projectLayer = QuantizedLayer(weights: projectWeights, weightShape: projectShape,
                                                  weightScales: (0..<outputs).map { _ in Float.random(in: 1e-3...1e-2, using: &generator) },
                                                  bias: (0..<outputs).map { _ in Int32.random(in: -20000...20000, using: &generator) })
                let project = FusedInt8Conv(weights: projectWeights, shape: projectShape, config: Conv2DConfig(), inputZeroPoint: 0,
                                            requantizer: Requantizer(layer: projectLayer, input: middle, output: AffineQuantization(scale: 0.1, zeroPoint: 120),
                                                                     clamp: .none, scheme: scheme))
                XCTAssertTrue(project.projects)
                let reference = project.apply(depthwise.apply(value))
                XCTAssertGreaterThan(Set(reference.buffer.array).count, 20, "projected values spread")
                assertEveryPath(depthwise.apply(value, projectingWith: project), equals: reference.buffer.array, shape: reference.shape,
                                "\(scheme) depthwise \(inputShape) stride \(stride) + projection to \(outputs)")
            }
        }
    }

    /// Right shifts from 18 to 25 within one layer, so that groups of sixteen channels take
    /// the kernels' precomputed one-floor constants (shifts 1…22 on every channel) or derive the
    /// two-rounding form (any channel beyond 22), with accumulators near their extremes
    /// (K = 1024 of ±127 · 255) so that the requantized values spread beyond the zero point.
    func testFusedGemmWithEveryRightShiftOnExtremeAccumulators() throws {
        let (inputs, outputs) = (1024, 72)
        let inputShape = [1, inputs, 2, 9]
        let weightShape = [outputs, inputs, 1, 1]
        let weights = (0..<(outputs * inputs)).map { i in (i / inputs) % 5 == 0 ? Int8(127) : (i % 3 == 0 ? Int8(-127) : Int8(127)) }
        // Weight scales 1e-4…1e-2, geometrically: effective scales 2^-25.6 … 2^-19 below.
        let weightScales = (0..<outputs).map { c in Float(1e-4) * Float(pow(100, Double((c * 37) % outputs) / Double(outputs - 1))) }
        let layer = QuantizedLayer(weights: weights, weightShape: weightShape, weightScales: weightScales,
                                   bias: (0..<outputs).map { _ in Int32.random(in: -20000...20000, using: &generator) })
        let requantizer = Requantizer(layer: layer, input: AffineQuantization(scale: 0.02, zeroPoint: 0),
                                      output: AffineQuantization(scale: 104, zeroPoint: 128), clamp: .none, scheme: .tflite)
        XCTAssertEqual(Set(requantizer.rightShifts).min(), 18)
        XCTAssertEqual(Set(requantizer.rightShifts).max(), 25)
        let x = (0..<inputShape.reduce(1, *)).map { i in i % 7 == 0 ? UInt8.random(in: 0...255, using: &generator) : (i % 2 == 0 ? 255 : 0) }
        let value = QuantizedValue(buffer: IntegerBuffer(x), shape: inputShape)
        let reference = try twoPass(value, layer: layer, config: Conv2DConfig(), inputZeroPoint: 0, requantizer: requantizer)
        XCTAssertGreaterThan(Set(reference).count, 12, "requantized values spread")
        let fused = FusedInt8Conv(weights: weights, shape: weightShape, config: Conv2DConfig(), inputZeroPoint: 0, requantizer: requantizer)
        assertEveryPath(fused.apply(value), equals: reference, shape: [1, outputs, 2, 9], "right shifts 18…25")
    }

    /// QNNPACK's float epilogue keeps the limit that guards its float → int32 conversion where
    /// a layer's accumulators, scaled, can pass 2³⁰ (here up to 2³², where the conversion would
    /// overflow), and drops it where they cannot: both give the two-pass bytes, in the 1×1 and
    /// the depthwise kernels.
    func testFloatEpilogueLimitIsKeptWhereScaledAccumulatorsCanOverflow() throws {
        let layers: [(weightShape: [Int], inputShape: [Int], config: Conv2DConfig)] = [
            ([48, 1024, 1, 1], [1, 1024, 2, 9], Conv2DConfig()),
            ([64, 1, 3, 3], [1, 64, 5, 6], Conv2DConfig(stride: 1, padding: .symmetric(1), groups: 64)),
        ]
        for (weightShape, inputShape, config) in layers {
            let perChannel = weightShape[1] * weightShape[2] * weightShape[3]
            // Channels of all +127 and all −127 weights, inputs mostly 255: accumulators near
            // both extremes.
            let weights = (0..<weightShape.reduce(1, *)).map { i in (i / perChannel) % 2 == 0 ? Int8(127) : -127 }
            let layer = QuantizedLayer(weights: weights, weightShape: weightShape, weightScales: [1e-2],
                                       bias: Array(repeating: 0, count: weightShape[0]))
            let x = (0..<inputShape.reduce(1, *)).map { i in i % 5 == 0 ? UInt8.random(in: 0...255, using: &generator) : 255 }
            let value = QuantizedValue(buffer: IntegerBuffer(x), shape: inputShape)
            let input = AffineQuantization(scale: 0.02, zeroPoint: 0)
            // Effective scale 2e-4 / output scale: the largest accumulator scaled to 2⁻⁶ of its
            // own size, or to 2³².
            let largest = Float(perChannel * 127 * 255)
            for (outputScale, bounded) in [(Float(1e-2), true), (2e-4 * largest / 0x1p32, false)] {
                let requantizer = Requantizer(layer: layer, input: input, output: AffineQuantization(scale: outputScale, zeroPoint: 128),
                                              clamp: .none, scheme: .qnnpack)
                XCTAssertEqual(requantizer.floatBounded, bounded, "\(weightShape), output scale \(outputScale)")
                let reference = try twoPass(value, layer: layer, config: config, inputZeroPoint: 0, requantizer: requantizer)
                if !bounded { XCTAssertTrue(reference.contains(255) && reference.contains(0), "values saturate both ways") }
                let shape = config.outputShape(input: inputShape, weight: weightShape)
                let label = "\(weightShape), output scale \(outputScale)"
                if weightShape[1] == 1 {
                    let fused = FusedDepthwiseConv(weights: weights, shape: weightShape, config: config, inputZeroPoint: 0, requantizer: requantizer)
                    assertEveryPath(fused.apply(value), equals: reference, shape: shape, label)
                } else {
                    let fused = FusedInt8Conv(weights: weights, shape: weightShape, config: config, inputZeroPoint: 0, requantizer: requantizer)
                    assertEveryPath(fused.apply(value), equals: reference, shape: shape, label)
                }
            }
        }
    }

    /// The TFLite single floor's sign test runs in 32-bit lanes only where the layer's
    /// accumulators (with the bias) stay below 2³⁰: a layer well inside takes that form, layers
    /// with a bias of 2³⁰ − 1 keep the 64-bit one (2·acc would overflow), and all give the
    /// two-pass bytes — among them a layer whose other channels have right shifts of 4 and
    /// multipliers of exactly 2³⁰, so that the sign test's rounding ties occur often.
    func testSignTestIn32BitLanesOnlyWhereAccumulatorsAllowIt() throws {
        let (inputs, outputs) = (64, 48)
        let inputShape = [1, inputs, 8, 16]
        let x = (0..<inputShape.reduce(1, *)).map { i in i % 3 == 0 ? UInt8.random(in: 0...255, using: &generator) : 255 }
        let value = QuantizedValue(buffer: IntegerBuffer(x), shape: inputShape)
        // Channel 0: all +127, so that with a bias of 2³⁰ − 1 its accumulators pass 2³⁰.
        func weights(_ range: ClosedRange<Int8>) -> [Int8] {
            (0..<(outputs * inputs)).map { i in i / inputs == 0 ? 127 : Int8.random(in: range, using: &generator) }
        }
        let small = (0..<outputs).map { _ in Int32.random(in: -2000...2000, using: &generator) }
        let nearLimit = (0..<outputs).map { c in c == 0 ? Int32(1 << 30) - 1 : Int32.random(in: -(1 << 30) + (1 << 22)...(1 << 30) - (1 << 22), using: &generator) }
        // (weights, weight scales, bias, input scale, output scale, narrow): effective scales
        // input · weight / output scale. 1.5 · 2⁻²³ keeps right shifts at 22, within the single
        // floor, for values spread by biases up to ±2³⁰; 2⁻⁵ is a multiplier of 2³⁰ and a right
        // shift of 4.
        let cases: [([Int8], [Float], [Int32], Float, Float, Bool)] = [
            (weights(-127...127), [1e-2], small.map { $0 * 10 }, 0.02, 0.05, true),
            (weights(-127...127), [1e-2], nearLimit, 0.02, Float(2e-4 * 0x1p23 / 1.5), false),
            (weights(-3...3), [0x1.8p-21] + Array(repeating: 0.125, count: outputs - 1), small.enumerated().map { $0 == 0 ? Int32(1 << 30) - 1 : $1 },
             0.25, 1, false),
        ]
        for (weights, weightScales, bias, inputScale, outputScale, narrow) in cases {
            let layer = QuantizedLayer(weights: weights, weightShape: [outputs, inputs, 1, 1], weightScales: weightScales, bias: bias)
            let requantizer = Requantizer(layer: layer, input: AffineQuantization(scale: inputScale, zeroPoint: 0),
                                          output: AffineQuantization(scale: outputScale, zeroPoint: 128), clamp: .none, scheme: .tflite)
            let label = "bias up to \(bias.map(\.magnitude).max()!), right shifts \(Set(requantizer.rightShifts).sorted())"
            XCTAssertTrue(requantizer.rightShifts.allSatisfy { (1...22).contains($0) } && requantizer.leftShifts.allSatisfy { $0 == 0 }, label)
            let groupSize = requantizer.prepared.count / 3
            XCTAssertEqual((0..<3).map { requantizer.prepared[$0 * groupSize + 2] }, Array(repeating: narrow ? 1 : 0, count: 3), label)
            let reference = try twoPass(value, layer: layer, config: Conv2DConfig(), inputZeroPoint: 0, requantizer: requantizer)
            XCTAssertGreaterThan(Set(reference).count, 20, "requantized values spread, \(label)")
            let fused = FusedInt8Conv(weights: weights, shape: layer.weightShape, config: Conv2DConfig(), inputZeroPoint: 0, requantizer: requantizer)
            assertEveryPath(fused.apply(value), equals: reference, shape: [1, outputs, 8, 16], label)
        }
    }

    /// Fully connected layers take the same kernel: rank-2 [N, C] values keep their rank.
    func testFullyConnectedShapeIsKept() throws {
        let (batch, inputs, outputs) = (3, 20, 10)
        let weights = (0..<(outputs * inputs)).map { _ in Int8.random(in: -127...127, using: &generator) }
        let layer = QuantizedLayer(weights: weights, weightShape: [outputs, inputs, 1, 1], weightScales: [0.01], bias: Array(repeating: 5, count: outputs))
        let requantizer = Requantizer(layer: layer, input: AffineQuantization(scale: 0.05, zeroPoint: 10),
                                      output: AffineQuantization(scale: 0.1, zeroPoint: 128), clamp: .none, scheme: .tflite)
        let value = QuantizedValue(buffer: IntegerBuffer((0..<(batch * inputs)).map { _ in UInt8.random(in: 0...255, using: &generator) }),
                                   shape: [batch, inputs])
        let fused = FusedInt8Conv(weights: weights, shape: layer.weightShape, config: Conv2DConfig(), inputZeroPoint: 10, requantizer: requantizer).apply(value)
        XCTAssertEqual(fused.shape, [batch, outputs])
        XCTAssertEqual(fused.buffer.array, try twoPass(QuantizedValue(buffer: value.buffer, shape: [batch, inputs, 1, 1]), layer: layer,
                                                       config: Conv2DConfig(), inputZeroPoint: 10, requantizer: requantizer))
    }

    /// `result()`'s bytes and shape on one and two threads, then with the portable C kernels.
    private func assertEveryPath(_ result: @autoclosure () -> QuantizedValue, equals reference: [UInt8], shape: [Int], _ label: String) {
        for threads in [1, 2] {
            Threading.setThreads(threads)
            let value = result()
            XCTAssertEqual(value.shape, shape, label)
            XCTAssertEqual(value.buffer.array, reference, "\(label), \(threads) threads")
        }
        rc_force_generic(1)
        XCTAssertEqual(result().buffer.array, reference, "\(label), portable C")
        rc_force_generic(0)
    }

    private func twoPass(_ value: QuantizedValue, layer: QuantizedLayer, config: Conv2DConfig, inputZeroPoint: Int32,
                         requantizer: Requantizer) throws -> [UInt8] {
        let conv = QuantizedConv2D(weights: layer.weights, shape: layer.weightShape, config: config, inputZeroPoint: inputZeroPoint)
        let outputShape = conv.outputShape(input: value.shape)
        let accumulators = IntegerBuffer<Int32>(count: outputShape.reduce(1, *))
        try conv.accumulate(value.buffer, inputShape: value.shape, into: accumulators)
        let output = IntegerBuffer<UInt8>(count: accumulators.count)
        requantizer.apply(accumulators, pixels: accumulators.count / outputShape[1], into: output)
        return output.array
    }
}
