import XCTest
@testable import TensorCore

/// The channels-last input gradient against the `Executor`'s NCHW backward pass (itself
/// checked against finite differences in `ExecutorTests`) on both of its kernel backends.
final class ChannelsLastGradientTests: XCTestCase {
    /// Every step kind the channels-last program has: an unfolded zero padding, a standalone
    /// ReLU6, add+ReLU, max pooling over a map with many ties (integer weights on a coarse
    /// input grid), ceil-mode average pooling that counts padding, concat, linear.
    static func makeNetwork() -> (Graph, Parameters) {
        var g = Graph()
        var generator = SeededGenerator(seed: 3)
        var parameters: Parameters = [:]
        func param(_ name: String, _ shape: [Int], integers: Bool = false) -> String {
            let values = Tensor.randomUniform(shape: shape, lower: -0.5, upper: 0.5, generator: &generator)
            parameters[name] = integers ? values.map { ($0 * 3).rounded() } : values
            return name
        }
        let normalised = g.add("normalise", .affine(scale: [4, 4, 4], shift: [-2, -2, -2]), inputs: [0])
        let stem = g.add("stem", .conv2d(Conv2DConfig(padding: .symmetric(1)), weight: param("stem.weight", [8, 3, 3, 3], integers: true),
                                         bias: nil), inputs: [normalised])
        let pooled = g.add("pool", .maxPool(Pool2DConfig(kernel: 3, stride: 2, padding: .symmetric(1))), inputs: [stem])
        let pointwise = g.add("pw", .conv2d(Conv2DConfig(), weight: param("pw.weight", [8, 8, 1, 1]), bias: param("pw.bias", [8])),
                              inputs: [pooled])
        let clipped = g.add("pw.relu6", .relu6, inputs: [pointwise])
        let spatial = g.add("conv", .conv2d(Conv2DConfig(padding: .symmetric(1)), weight: param("conv.weight", [8, 8, 3, 3]), bias: nil),
                            inputs: [pooled])
        let sum = g.add("add", .add, inputs: [clipped, spatial])
        let rectified = g.add("add.relu", .relu, inputs: [sum])
        let padded = g.add("pad", .zeroPad(Padding2D(top: 1, bottom: 0, left: 1, right: 0)), inputs: [rectified])
        let averaged = g.add("avg", .avgPool(Pool2DConfig(kernel: 3, stride: 2, padding: .symmetric(1), ceilMode: true,
                                                          countIncludesPadding: true)), inputs: [padded])
        let joined = g.add("concat", .concat, inputs: [averaged, averaged])
        let global = g.add("gap", .globalAvgPool, inputs: [joined])
        let flat = g.add("flatten", .flatten, inputs: [global])
        g.add("fc", .linear(weight: param("fc.weight", [5, 16]), bias: param("fc.bias", [5])), inputs: [flat])
        return (g, parameters)
    }

    func assertGradientsAgree(_ graph: Graph, _ parameters: Parameters, input: Tensor, labels: [Int],
                              file: StaticString = #filePath, line: UInt = #line) throws {
        let program = try XCTUnwrap(ChannelsLastInference(graph: graph, parameters: parameters), file: file, line: line)
        let seed = { (logits: Tensor) in Softmax.crossEntropy(logits: logits, labels: labels).gradient }
        let (output, gradient) = try program.inputGradient(input, outputGradient: seed)
        XCTAssertGreaterThan(gradient.maxAbs(), 0, "a zero gradient would prove nothing", file: file, line: line)
        for backend in KernelBackend.allCases {
            let pass = Executor(backend: backend).forwardForGradient(graph, parameters: parameters, input: input)
            assertClose(output, pass.output, absolute: 1e-5, relative: 1e-5, "\(backend) output", file: file, line: line)
            assertClose(gradient, pass.backward(seed(pass.output), target: .input).input, absolute: 1e-6, relative: 1e-4,
                        "\(backend) input gradient", file: file, line: line)
        }
    }

    func testAgreesWithExecutorOnEveryStepKind() throws {
        let (graph, parameters) = Self.makeNetwork()
        // A grid of quarter grey levels: the integer stem then ties inside pooling windows.
        var generator = SeededGenerator(seed: 5)
        let x = Tensor.randomUniform(shape: [2, 3, 9, 9], lower: 0, upper: 1, generator: &generator).map { ($0 * 4).rounded() / 4 }
        let stem = Executor().forward(Graph.prefix(of: graph, through: 2), parameters: parameters, input: x)
        XCTAssertGreaterThan(Set(stem.scalars).count, 3)
        XCTAssertLessThan(Set(stem.scalars).count, stem.count / 4, "the stem's values should repeat, so pooling windows tie")
        try assertGradientsAgree(graph, parameters, input: x, labels: [1, 4])
    }

    func testAgreesWithExecutorOnFusedResidualNetwork() throws {
        // The Executor tests' network, folded for inference: a Keras-style zero padding folded
        // into a strided convolution, fused ReLU6, depthwise, residual add, both poolings.
        let (graph, parameters) = ExecutorTests.makeNetwork()
        let (fused, fusedParameters) = InferenceFusion.fuse(graph, parameters: parameters)
        var generator = SeededGenerator(seed: 1)
        let x = Tensor.randomUniform(shape: [2, 3, 8, 8], lower: 0, upper: 1, generator: &generator)
        try assertGradientsAgree(fused, fusedParameters, input: x, labels: [4, 0])
    }

    /// Keras's ResNet50 stem: a convolution with its ReLU, a zero padding, a 3×3 stride-2
    /// max pool. The pool reads the unpadded map when the padded values are a ReLU's output
    /// (≥ 0, so the padded zeros never win), and only then: after a convolution without
    /// activation the padded zeros beat negative windows, and the pad must stay a copy.
    func testZeroPaddingIsFoldedIntoAMaxPoolOnlyAfterAReLU() throws {
        for activation in [FusedActivation.relu, .relu6, .none] {
            var g = Graph()
            var generator = SeededGenerator(seed: 9)
            let parameters: Parameters = [
                "stem.weight": Tensor.randomUniform(shape: [6, 3, 3, 3], lower: -0.5, upper: 0.5, generator: &generator),
                "stem.bias": Tensor.randomUniform(shape: [6], lower: -0.5, upper: 0.1, generator: &generator),
                "fc.weight": Tensor.randomUniform(shape: [4, 6], lower: -0.5, upper: 0.5, generator: &generator),
            ]
            let stem = g.add("stem", .fusedConv2d(Conv2DConfig(stride: 2, padding: .symmetric(1)), weight: "stem.weight", bias: "stem.bias",
                                                  activation: activation), inputs: [0])
            let padded = g.add("pad", .zeroPad(Padding2D(top: 1, bottom: 1, left: 1, right: 1)), inputs: [stem])
            let pooled = g.add("pool", .maxPool(Pool2DConfig(kernel: 3, stride: 2)), inputs: [padded])
            let global = g.add("gap", .globalAvgPool, inputs: [pooled])
            let flat = g.add("flatten", .flatten, inputs: [global])
            g.add("fc", .linear(weight: "fc.weight", bias: nil), inputs: [flat])
            let program = try XCTUnwrap(ChannelsLastInference(graph: g, parameters: parameters))
            let folded: Bool
            if case .identity? = program.steps[padded] { folded = true } else { folded = false }
            XCTAssertEqual(folded, activation != .none, "\(activation)")
            // Mostly negative sums: many windows whose ReLU output is all zeros (ties with the
            // padding), and negative windows at the border without a ReLU.
            let x = Tensor.randomUniform(shape: [2, 3, 12, 11], lower: 0, upper: 1, generator: &generator)
            let features = Executor().forward(g.prefixGraph(through: pooled), parameters: parameters, input: x)
            let values = try program.forwardSteps(ChannelsLastKernels.toChannelsLast(x), keeping: [stem, pooled]).values
            let ours = ChannelsLastKernels.toChannelsFirst(values[pooled]!)
            XCTAssertEqual(ours.shape, features.shape)
            XCTAssertLessThanOrEqual(zip(ours.scalars, features.scalars).map { abs($0 - $1) }.max()!, 1e-6, "\(activation)")
            if activation == .none {
                // What the fold would give here: different maxima.
                let skipping = Pool2DConfig(kernel: 3, stride: 2, padding: .symmetric(1))
                let wrong = ChannelsLastKernels.toChannelsFirst(ChannelsLastKernels.maxPool(values[stem]!, skipping))
                XCTAssertGreaterThan(zip(wrong.scalars, features.scalars).map { abs($0 - $1) }.max()!, 1e-3)
            }
            try assertGradientsAgree(g, parameters, input: x, labels: [1, 3])
        }
    }
}

private extension Graph {
    /// The first nodes up to `last`, with `last` as the output.
    func prefixGraph(through last: Int) -> Graph { Graph.prefix(of: self, through: last) }

    static func prefix(of graph: Graph, through last: Int) -> Graph {
        var prefix = Graph()
        for node in graph.nodes.dropFirst().prefix(last) { prefix.add(node.name, node.operation, inputs: node.inputs) }
        return prefix
    }
}
