import CShims
import XCTest
@testable import TensorCore

/// oneDNN's Winograd kernel behind `ChannelsLastConv2D` (3×3, stride 1, at least 48
/// channels in and out) against its direct kernels on the same weights: the same values up
/// to the rounding of the Winograd transforms, the same bits for every thread count, and
/// the layers it is chosen for.
final class WinogradConvolutionTests: XCTestCase {
    struct Case {
        let input: [Int]
        let outputs: Int
        let padding: Padding2D
        let activation: FusedActivation
    }

    static let cases: [Case] = [
        // ResNet50's and InceptionV3's geometries, scaled down: "same" and "valid" padding,
        // channel counts that are not multiples of 16, batch 2, maps not multiples of the tile.
        Case(input: [1, 48, 12, 12], outputs: 48, padding: .symmetric(1), activation: .relu),
        Case(input: [2, 48, 11, 12], outputs: 56, padding: .zero, activation: .none),
        Case(input: [3, 64, 7, 7], outputs: 64, padding: .symmetric(1), activation: .relu),
        Case(input: [1, 49, 13, 11], outputs: 50, padding: .symmetric(1), activation: .none),
        Case(input: [1, 80, 15, 15], outputs: 96, padding: .zero, activation: .relu),
    ]

    func output(_ conv: ChannelsLastConv2D, _ input: [Float], shape: [Int]) throws -> [Float] {
        let count = conv.outputShape(input: shape).reduce(1, *)
        return try [Float](unsafeUninitializedCapacity: count) { out, initialized in
            try input.withUnsafeBufferPointer { x in try conv.apply(x, inputShape: shape, into: out) }
            initialized = count
        }
    }

    func testWinogradMatchesDirectKernels() throws {
        // oneDNN's x86 Winograd kernels are AVX-512 only.
        try XCTSkipUnless(rc_use_avx512() != 0, "no AVX-512: oneDNN has no Winograd kernel here")
        var generator = SeededGenerator(seed: 5)
        for item in Self.cases {
            let channels = item.input[1]
            let weights = Tensor.randomUniform(shape: [item.outputs, channels, 3, 3], lower: -0.2, upper: 0.2, generator: &generator)
            let bias = Tensor.randomUniform(shape: [item.outputs], lower: -0.5, upper: 0.5, generator: &generator)
            let config = Conv2DConfig(stride: 1, padding: item.padding)
            let input = Tensor.randomUniform(shape: [item.input.reduce(1, *)], lower: -1, upper: 1, generator: &generator).scalars
            let winograd = ChannelsLastConv2D(weights: weights, bias: bias, config: config, activation: item.activation)
            let direct = ChannelsLastConv2D(weights: weights, bias: bias, config: config, activation: item.activation, winograd: false)
            let label = "\(item.input) → \(item.outputs), \(item.padding), \(item.activation)"
            XCTAssertTrue(try winograd.runsWinograd(inputShape: item.input), label)
            XCTAssertFalse(try direct.runsWinograd(inputShape: item.input), label)
            let expected = try output(direct, input, shape: item.input)
            let actual = try output(winograd, input, shape: item.input)
            XCTAssertEqual(actual.count, expected.count, label)
            // Measured: ≈ 1e-6 of the largest output for 9 × 512 inputs (F(4, 3) and F(2, 3)).
            let worst = zip(actual, expected).map { abs($0 - $1) }.max() ?? 0
            let scale = expected.map(abs).max() ?? 1
            XCTAssertLessThanOrEqual(worst, 1e-5 * scale, "\(label): max |Δ| \(worst) of \(scale)")
            XCTAssertGreaterThan(worst, 0, "\(label): a different algorithm rounds differently somewhere")
            if item.activation == .relu { XCTAssertEqual(actual.min(), 0, label) }
        }
    }

    /// Batch 2 on 1, 2 and 3 threads (oneDNN's F(2, 3) kernel, not used, differs here).
    func testWinogradResultsDoNotDependOnTheThreadCount() throws {
        try XCTSkipUnless(rc_use_avx512() != 0, "no AVX-512: oneDNN has no Winograd kernel here")
        defer { Threading.setThreads(ProcessInfo.processInfo.activeProcessorCount) }
        var generator = SeededGenerator(seed: 6)
        let shape = [2, 64, 12, 12]
        let weights = Tensor.randomUniform(shape: [64, 64, 3, 3], lower: -0.2, upper: 0.2, generator: &generator)
        let bias = Tensor.randomUniform(shape: [64], lower: -0.5, upper: 0.5, generator: &generator)
        let input = Tensor.randomUniform(shape: [shape.reduce(1, *)], lower: -1, upper: 1, generator: &generator).scalars
        var outputs: [[Float]] = []
        for threads in [1, 2, 3] {
            Threading.setThreads(threads)
            // A new layer each time: plans are built (and kernels chosen) under each count.
            let conv = ChannelsLastConv2D(weights: weights, bias: bias, config: Conv2DConfig(stride: 1, padding: .symmetric(1)), activation: .relu)
            XCTAssertTrue(try conv.runsWinograd(inputShape: shape))
            outputs.append(try output(conv, input, shape: shape))
        }
        XCTAssertEqual(outputs[0], outputs[1])
        XCTAssertEqual(outputs[0], outputs[2])
    }

    /// An image's output is the same alone or in a batch (`evaluate --batch-size` must not
    /// change predictions).
    func testWinogradResultsDoNotDependOnTheBatch() throws {
        try XCTSkipUnless(rc_use_avx512() != 0, "no AVX-512: oneDNN has no Winograd kernel here")
        var generator = SeededGenerator(seed: 7)
        let single = [1, 64, 16, 16], batch = [3, 64, 16, 16]
        let weights = Tensor.randomUniform(shape: [64, 64, 3, 3], lower: -0.2, upper: 0.2, generator: &generator)
        let bias = Tensor.randomUniform(shape: [64], lower: -0.5, upper: 0.5, generator: &generator)
        let conv = ChannelsLastConv2D(weights: weights, bias: bias, config: Conv2DConfig(stride: 1, padding: .symmetric(1)), activation: .none)
        let images = Tensor.randomUniform(shape: [batch.reduce(1, *)], lower: -1, upper: 1, generator: &generator).scalars
        XCTAssertTrue(try conv.runsWinograd(inputShape: single))
        let together = try output(conv, images, shape: batch)
        let perImage = single.reduce(1, *)
        for image in 0..<3 {
            let alone = try output(conv, Array(images[(image * perImage)..<((image + 1) * perImage)]), shape: single)
            XCTAssertEqual(alone, Array(together[(image * perImage)..<((image + 1) * perImage)]), "image \(image)")
        }
    }

    func testWinogradOnlyWhereItPays() throws {
        let config = Conv2DConfig(stride: 1, padding: .symmetric(1))
        func uses(_ weightShape: [Int], _ config: Conv2DConfig, _ activation: FusedActivation) -> Bool {
            ChannelsLastConv2D(weights: Tensor(shape: weightShape), bias: Tensor(shape: [weightShape[0]]), config: config,
                               activation: activation).winograd
        }
        XCTAssertTrue(uses([64, 64, 3, 3], config, .relu))
        XCTAssertTrue(uses([192, 80, 3, 3], Conv2DConfig(), .none))
        // Too thin to repay the reorders, no clip in oneDNN's Winograd kernels, not 3×3 stride 1.
        XCTAssertFalse(uses([32, 64, 3, 3], config, .relu))
        XCTAssertFalse(uses([64, 32, 3, 3], config, .relu))
        XCTAssertFalse(uses([64, 64, 3, 3], config, .relu6))
        XCTAssertFalse(uses([64, 64, 3, 3], Conv2DConfig(stride: 2, padding: .symmetric(1)), .relu))
        XCTAssertFalse(uses([64, 64, 5, 5], Conv2DConfig(stride: 1, padding: .symmetric(2)), .relu))
        XCTAssertFalse(uses([64, 64, 1, 3], Conv2DConfig(), .relu))
        XCTAssertFalse(uses([64, 1, 3, 3], Conv2DConfig(stride: 1, padding: .symmetric(1), groups: 64), .relu))
        // Small maps: below 128 output pixels per call the transformed weights cost more than
        // the arithmetic saved.
        let conv = ChannelsLastConv2D(weights: Tensor(shape: [64, 64, 3, 3]), bias: Tensor(shape: [64]), config: config, activation: .relu)
        XCTAssertFalse(try conv.runsWinograd(inputShape: [1, 64, 8, 8]))
        if rc_use_avx512() != 0 { XCTAssertTrue(try conv.runsWinograd(inputShape: [2, 64, 8, 8])) }
    }
}
