import CShims
import XCTest
@testable import TensorCore

/// robustctl's own 1×1 and depthwise float kernels (`ThinConvolution`) against oneDNN's
/// channels-last convolution on the same weights, and the AVX-512 kernels against their
/// portable C twins (the same summation order, so the same bits).
final class ThinConvolutionTests: XCTestCase {
    struct Case {
        let input: [Int]
        let weight: [Int]
        let config: Conv2DConfig
        let activation: FusedActivation
    }

    static let pointwiseCases: [Case] = [
        // MobileNetV2's expand / project shapes, channel tails (not multiples of 16 or 48),
        // pixel tails (rows not multiples of 8), stride 2 (ResNet50's downsampling 1×1), batch 2.
        Case(input: [1, 16, 12, 12], weight: [96, 16, 1, 1], config: Conv2DConfig(), activation: .relu6),
        Case(input: [1, 96, 9, 9], weight: [24, 96, 1, 1], config: Conv2DConfig(), activation: .none),
        Case(input: [2, 37, 7, 11], weight: [53, 37, 1, 1], config: Conv2DConfig(), activation: .relu),
        Case(input: [1, 64, 13, 13], weight: [130, 64, 1, 1], config: Conv2DConfig(stride: 2), activation: .none),
        Case(input: [3, 1280, 1, 1], weight: [10, 1280, 1, 1], config: Conv2DConfig(), activation: .none),
    ]

    static let depthwiseCases: [Case] = [
        Case(input: [1, 32, 14, 14], weight: [32, 1, 3, 3], config: Conv2DConfig(stride: 1, padding: .symmetric(1), groups: 32), activation: .relu6),
        // Keras's stride-2 layers: ZeroPadding2D((0, 1), (0, 1)) folded into the convolution.
        Case(input: [1, 96, 15, 16], weight: [96, 1, 3, 3],
             config: Conv2DConfig(strideH: 2, strideW: 2, padding: Padding2D(top: 0, bottom: 1, left: 0, right: 1), dilationH: 1, dilationW: 1, groups: 96),
             activation: .relu6),
        Case(input: [2, 40, 9, 7], weight: [40, 1, 3, 3], config: Conv2DConfig(stride: 2, padding: .symmetric(1), groups: 40), activation: .relu),
        Case(input: [1, 24, 5, 5], weight: [24, 1, 3, 3], config: Conv2DConfig(stride: 1, padding: .zero, groups: 24), activation: .none),
        Case(input: [1, 48, 6, 3], weight: [48, 1, 3, 3], config: Conv2DConfig(stride: 1, padding: .symmetric(1), groups: 48), activation: .none),
        // Other kernel sizes take the general path.
        Case(input: [1, 20, 11, 10], weight: [20, 1, 5, 5], config: Conv2DConfig(stride: 1, padding: .symmetric(2), groups: 20), activation: .relu),
        Case(input: [1, 16, 9, 9], weight: [16, 1, 3, 3], config: Conv2DConfig(stride: 3, padding: .symmetric(1), groups: 16), activation: .none),
    ]

    /// First layers on few channels (the direct kernel): MobileNetV2's stem with Keras's
    /// bottom/right padding and with torchvision's symmetric one, ResNet50's 7 × 7, InceptionV3's
    /// unpadded stem; channel tails (40 = 16 + 16 + 8, 70 = a 64-channel block and 6),
    /// four input channels, stride 1, batch 2, and a map narrower than the window (every
    /// column a border column).
    static let directCases: [Case] = [
        Case(input: [1, 3, 30, 30], weight: [32, 3, 3, 3],
             config: Conv2DConfig(strideH: 2, strideW: 2, padding: Padding2D(top: 0, bottom: 1, left: 0, right: 1), dilationH: 1, dilationW: 1, groups: 1),
             activation: .relu6),
        Case(input: [1, 3, 33, 31], weight: [32, 3, 3, 3], config: Conv2DConfig(stride: 2, padding: .symmetric(1)), activation: .relu6),
        Case(input: [1, 3, 40, 38], weight: [64, 3, 7, 7], config: Conv2DConfig(stride: 2, padding: .symmetric(3)), activation: .none),
        Case(input: [2, 3, 35, 35], weight: [40, 3, 3, 3], config: Conv2DConfig(stride: 2), activation: .relu),
        Case(input: [1, 4, 17, 29], weight: [70, 4, 3, 3], config: Conv2DConfig(stride: 1, padding: .symmetric(1)), activation: .none),
        Case(input: [1, 1, 9, 5], weight: [16, 1, 5, 7], config: Conv2DConfig(stride: 1, padding: Padding2D(top: 2, bottom: 2, left: 3, right: 3)),
             activation: .none),
    ]

    /// Output of `conv` on NHWC `input` (and `residual`, when given).
    func run(_ conv: ChannelsLastConv2D, _ input: [Float], shape: [Int], residual: [Float]? = nil) throws -> [Float] {
        let count = conv.outputShape(input: shape).reduce(1, *)
        return try [Float](unsafeUninitializedCapacity: count) { out, initialized in
            try input.withUnsafeBufferPointer { x in
                if let residual {
                    try residual.withUnsafeBufferPointer { r in try conv.apply(x, inputShape: shape, residual: r, into: out) }
                } else {
                    try conv.apply(x, inputShape: shape, into: out)
                }
            }
            initialized = count
        }
    }

    func assertNear(_ actual: [Float], _ expected: [Float], inputs: Int, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, message, file: file, line: line)
        let scale = expected.map(abs).max() ?? 1
        // Float sums of `inputs` products in a different order.
        let tolerance = 4 * Float(inputs).squareRoot() * Float.ulpOfOne * Swift.max(scale, 1)
        let worst = zip(actual, expected).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, tolerance, "\(message): max |Δ| \(worst)", file: file, line: line)
    }

    func random(_ count: Int, _ generator: inout SeededGenerator, scale: Float = 1) -> [Float] {
        Tensor.randomUniform(shape: [count], lower: -scale, upper: scale, generator: &generator).scalars
    }

    func testOwnKernelsMatchOneDNN() throws {
        var generator = SeededGenerator(seed: 21)
        for (index, item) in (Self.pointwiseCases + Self.depthwiseCases + Self.directCases).enumerated() {
            let weights = Tensor.randomUniform(shape: item.weight, lower: -1, upper: 1, generator: &generator)
            let bias = Tensor.randomUniform(shape: [item.weight[0]], lower: -1, upper: 1, generator: &generator)
            let own = ChannelsLastConv2D(weights: weights, bias: bias, config: item.config, activation: item.activation)
            XCTAssertNotNil(own.thin, "case \(index) runs on an own kernel")
            let reference = ChannelsLastConv2D(weights: weights, bias: bias, config: item.config, activation: item.activation, ownKernels: false)
            let x = random(item.input.reduce(1, *), &generator)
            for threads in [1, 2] {
                let previous = Threading.threads
                Threading.setThreads(threads)
                defer { Threading.setThreads(previous) }
                assertNear(try run(own, x, shape: item.input), try run(reference, x, shape: item.input),
                            inputs: item.weight[1] * item.weight[2] * item.weight[3], "case \(index), \(threads) threads")
            }
        }
    }

    /// The 1×1 kernel adds a residual before the clamp: conv + residual, as oneDNN's
    /// convolution followed by the add.
    func testPointwiseResidualEqualsConvolutionThenAdd() throws {
        var generator = SeededGenerator(seed: 22)
        for item in Self.pointwiseCases where item.activation == .none {
            let weights = Tensor.randomUniform(shape: item.weight, lower: -1, upper: 1, generator: &generator)
            let bias = Tensor.randomUniform(shape: [item.weight[0]], lower: -1, upper: 1, generator: &generator)
            let own = ChannelsLastConv2D(weights: weights, bias: bias, config: item.config, activation: .none)
            XCTAssertTrue(own.fusesResidual)
            let reference = ChannelsLastConv2D(weights: weights, bias: bias, config: item.config, activation: .none, ownKernels: false)
            XCTAssertFalse(reference.fusesResidual)
            let x = random(item.input.reduce(1, *), &generator)
            let residual = random(own.outputShape(input: item.input).reduce(1, *), &generator)
            let expected = zip(try run(reference, x, shape: item.input), residual).map { $0 + $1 }
            assertNear(try run(own, x, shape: item.input, residual: residual), expected, inputs: item.weight[1], "\(item.weight)")
        }
    }

    /// The AVX-512 kernels and the portable C add the same products in the same order.
    func testVectorKernelsEqualPortableC() throws {
        try XCTSkipUnless(rc_use_avx512() != 0, "no AVX-512 on this machine")
        var generator = SeededGenerator(seed: 23)
        for item in Self.pointwiseCases + Self.depthwiseCases + Self.directCases {
            let weights = Tensor.randomUniform(shape: item.weight, lower: -1, upper: 1, generator: &generator)
            let bias = Tensor.randomUniform(shape: [item.weight[0]], lower: -1, upper: 1, generator: &generator)
            let own = ChannelsLastConv2D(weights: weights, bias: bias, config: item.config, activation: item.activation)
            let x = random(item.input.reduce(1, *), &generator)
            let residual = own.fusesResidual ? random(own.outputShape(input: item.input).reduce(1, *), &generator) : nil
            let vector = try run(own, x, shape: item.input, residual: residual)
            rc_force_generic(1)
            defer { rc_force_generic(0) }
            let portable = try run(own, x, shape: item.input, residual: residual)
            XCTAssertEqual(vector, portable, "\(item.weight) \(item.config)")
        }
    }

    /// NaN inputs stay NaN through the fused clamps (as through oneDNN's eltwise ops).
    func testNaNPropagatesThroughTheClamp() throws {
        // Last outputs: 16 inputs × ½ = 8, clamped to 6; a corner's 4 taps × ½ = 2.
        for (item, last) in [(Self.pointwiseCases[0], Float(6)), (Self.depthwiseCases[0], 2)] {
            let weights = Tensor(shape: item.weight, repeating: 0.5)
            let own = ChannelsLastConv2D(weights: weights, bias: Tensor(shape: [item.weight[0]]), config: item.config, activation: .relu6)
            var x = [Float](repeating: 1, count: item.input.reduce(1, *))
            x[0] = .nan
            let output = try run(own, x, shape: item.input)
            XCTAssertTrue(output[0].isNaN, "\(item.weight): the output reading the NaN")
            XCTAssertEqual(output.last, last, "\(item.weight): an output far from the NaN")
        }
    }

    /// MobileNetV2-style blocks — 1×1 expansion (ReLU6), Keras zero padding, 3×3 depthwise
    /// stride 2 (ReLU6), projection, then a stride-1 block whose projection feeds a residual
    /// add + ReLU (ResNet style) — whose expanded maps (32 × 32 × 128 floats, 512 KiB) are
    /// large enough to run fused.
    static func makeBlocks() -> (Graph, Parameters) {
        var n = SeededNetwork(seed: 24)
        func block(_ name: String, _ input: Int, inputs: Int, expanded: Int, outputs: Int, stride: Int) -> Int {
            let expand = n.graph.add("\(name).expand", .conv2d(Conv2DConfig(), weight: n.param("\(name).expand.weight", [expanded, inputs, 1, 1]),
                                                                bias: nil), inputs: [input])
            var x = n.graph.add("\(name).expand.relu6", .relu6, inputs: [n.normalised("\(name).expand.bn", expand, expanded)])
            var padding = Padding2D.symmetric(1)
            if stride == 2 {
                x = n.graph.add("\(name).pad", .zeroPad(Padding2D(top: 0, bottom: 1, left: 0, right: 1)), inputs: [x])
                padding = .zero
            }
            let depthwise = n.graph.add("\(name).depthwise", .conv2d(Conv2DConfig(stride: stride, padding: padding, groups: expanded),
                                                                      weight: n.param("\(name).depthwise.weight", [expanded, 1, 3, 3]),
                                                                      bias: nil), inputs: [x])
            let clipped = n.graph.add("\(name).depthwise.relu6", .relu6, inputs: [n.normalised("\(name).depthwise.bn", depthwise, expanded)])
            return n.graph.add("\(name).project", .conv2d(Conv2DConfig(), weight: n.param("\(name).project.weight", [outputs, expanded, 1, 1]),
                                                           bias: n.param("\(name).project.bias", [outputs])), inputs: [clipped])
        }
        let first = block("block1", 0, inputs: 16, expanded: 128, outputs: 32, stride: 2)
        let second = block("block2", first, inputs: 32, expanded: 512, outputs: 32, stride: 1)
        let sum = n.graph.add("add", .add, inputs: [first, second])
        n.graph.add("add.relu", .relu, inputs: [sum])
        return InferenceFusion.fuse(n.graph, parameters: n.parameters)
    }

    /// The fused blocks — expansion (on large maps), depthwise and projection in one kernel, the
    /// second with the residual add — give the bits of the layers in turn, and the network
    /// agrees with the NCHW executor.
    func testFusedBlocksEqualLayerByLayer() throws {
        let (graph, parameters) = Self.makeBlocks()
        let program = try XCTUnwrap(ChannelsLastInference(graph: graph, parameters: parameters))
        XCTAssertEqual(program.expandDepthwise.count, 2, "both blocks are fusion candidates")
        XCTAssertEqual(program.residualConvolutions.count, 1, "the second projection adds the residual")
        XCTAssertEqual(program.projections.count, 2, "both projections run inside the fused kernels")
        XCTAssertEqual(program.projections.values.filter { $0.residual != nil }.count, 1, "one of them with the residual add")
        var generator = SeededGenerator(seed: 25)
        // At 9² the expanded maps are too small for the expansion to be fused: the depthwise
        // layer and its projection still run as one kernel, reading the expansion's output.
        for (batch, size) in [(1, 32), (2, 33), (2, 9)] {
            let x = Tensor.randomUniform(shape: [batch, 16, size, size], lower: -1, upper: 1, generator: &generator)
            XCTAssertEqual(ThinConvolution.fusionPays(expandedShape: [1, 128, size, size]), size > 9)
            XCTAssertEqual(ThinConvolution.fusionPays(expandedShape: [1, 512, (size + 1) / 2, (size + 1) / 2]), size > 9)
            try assertFusedEqualsLayered(program, graph, parameters, x, "batch \(batch), \(size)²")
        }
    }

    /// On one and two threads: the program's fused run gives the bits of its layers in turn
    /// (and of the portable C kernels), and agrees with the NCHW executor.
    func assertFusedEqualsLayered(_ program: ChannelsLastInference, _ graph: Graph, _ parameters: Parameters, _ x: Tensor, _ label: String,
                                  file: StaticString = #filePath, line: UInt = #line) throws {
        for threads in [1, 2] {
            let previous = Threading.threads
            Threading.setThreads(threads)
            defer { Threading.setThreads(previous) }
            let fused = try program.run(x)
            // Asking to keep a value turns the fusion off.
            let layered = ChannelsLastKernels.toChannelsFirst(try program.forwardSteps(ChannelsLastKernels.toChannelsLast(x), keeping: [graph.output]).values[graph.output]!)
            XCTAssertEqual(fused.shape, layered.shape, file: file, line: line)
            XCTAssertEqual(fused.scalars, layered.scalars, "\(label), \(threads) threads", file: file, line: line)
            assertClose(fused, Executor().forward(graph, parameters: parameters, input: x), absolute: 1e-4, relative: 1e-4)
            if rc_use_avx512() != 0 {
                rc_force_generic(1)
                defer { rc_force_generic(0) }
                XCTAssertEqual(try program.run(x).scalars, fused.scalars, "portable C, \(label), \(threads) threads", file: file, line: line)
            }
        }
    }

    /// MobileNetV2's first block: the stem (3 × 3, stride 2, Keras's bottom/right padding, BN,
    /// ReLU6) on the direct kernel feeding a 3 × 3 depthwise layer and its projection — the
    /// stem's rows are produced inside the fused kernel, its map (64 × 64 × 32 floats, 512 KiB,
    /// at 128²) never stored.
    func testStemFusedIntoTheFirstBlockEqualsLayerByLayer() throws {
        var n = SeededNetwork(seed: 26)
        let padded = n.graph.add("pad", .zeroPad(Padding2D(top: 0, bottom: 1, left: 0, right: 1)), inputs: [0])
        let stem = n.graph.add("stem", .conv2d(Conv2DConfig(stride: 2), weight: n.param("stem.weight", [32, 3, 3, 3]), bias: nil),
                               inputs: [padded])
        let stemOut = n.graph.add("stem.relu6", .relu6, inputs: [n.normalised("stem.bn", stem, 32)])
        let depthwise = n.graph.add("depthwise", .conv2d(Conv2DConfig(stride: 1, padding: .symmetric(1), groups: 32),
                                                          weight: n.param("depthwise.weight", [32, 1, 3, 3]), bias: nil), inputs: [stemOut])
        let clipped = n.graph.add("depthwise.relu6", .relu6, inputs: [n.normalised("depthwise.bn", depthwise, 32)])
        n.graph.add("project", .conv2d(Conv2DConfig(), weight: n.param("project.weight", [16, 32, 1, 1]), bias: n.param("project.bias", [16])),
                    inputs: [clipped])
        let (g, parameters) = InferenceFusion.fuse(n.graph, parameters: n.parameters)
        let program = try XCTUnwrap(ChannelsLastInference(graph: g, parameters: parameters))
        XCTAssertEqual(program.expandDepthwise.count, 1, "the stem and the depthwise layer are a fusion candidate")
        XCTAssertEqual(program.projections.count, 1, "the projection runs inside the fused kernel")
        for (batch, size) in [(1, 128), (2, 131)] {
            XCTAssertTrue(ThinConvolution.fusionPays(expandedShape: [1, 32, (size + 1) / 2, (size + 1) / 2]))
            let x = Tensor.randomUniform(shape: [batch, 3, size, size], lower: 0, upper: 1, generator: &n.generator)
            try assertFusedEqualsLayered(program, g, parameters, x, "batch \(batch), \(size)²")
        }
    }
}

/// A graph under construction with seeded random parameters, for the fused-block tests.
struct SeededNetwork {
    var graph = Graph()
    var parameters: Parameters = [:]
    var generator: SeededGenerator

    init(seed: UInt64) { generator = SeededGenerator(seed: seed) }

    /// A parameter of `shape`, uniform in [lower, lower + 1); returns its name.
    mutating func param(_ name: String, _ shape: [Int], lower: Float = -0.5) -> String {
        parameters[name] = Tensor.randomUniform(shape: shape, lower: lower, upper: lower + 1, generator: &generator)
        return name
    }

    /// A batch norm on `input`, as in the real networks: InferenceFusion folds it and fuses the ReLU6.
    mutating func normalised(_ name: String, _ input: Int, _ channels: Int) -> Int {
        let operation = Operation.batchNorm(scale: param("\(name).weight", [channels], lower: 0.5), shift: param("\(name).bias", [channels]),
                                            mean: param("\(name).mean", [channels]), variance: param("\(name).var", [channels], lower: 0.5),
                                            epsilon: 1e-3, momentum: 0.1)
        return graph.add(name, operation, inputs: [input])
    }
}
