import XCTest
@testable import TensorCore

final class ExecutorTests: XCTestCase {
    /// A small network with every structural feature: a residual add, a shared input
    /// read by three branches, a channel concat, padding ops and both pooling kinds.
    static func makeNetwork() -> (Graph, Parameters) {
        var g = Graph()
        var generator = SeededGenerator(seed: 42)
        var parameters: Parameters = [:]
        func param(_ name: String, _ shape: [Int], scale: Float = 0.5, offset: Float = 0) -> String {
            parameters[name] = Tensor.randomUniform(shape: shape, lower: offset - scale, upper: offset + scale, generator: &generator)
            return name
        }
        let normalised = g.add("normalise", .affine(scale: [2, 2, 2], shift: [-1, -1, -1]), inputs: [0])
        let bgr = g.add("bgr", .permuteChannels([2, 1, 0]), inputs: [normalised])
        let padded = g.add("pad", .zeroPad(Padding2D(top: 0, bottom: 1, left: 0, right: 1)), inputs: [bgr])
        let stem = g.add("stem", .conv2d(Conv2DConfig(stride: 2), weight: param("stem.weight", [4, 3, 3, 3]), bias: nil), inputs: [padded])
        let bn = g.add("stem.bn", .batchNorm(scale: param("bn.weight", [4], offset: 1), shift: param("bn.bias", [4]),
                                             mean: param("bn.running_mean", [4], scale: 0.1),
                                             variance: param("bn.running_var", [4], scale: 0.2, offset: 1),
                                             epsilon: 1e-3, momentum: 0.1), inputs: [stem])
        let act = g.add("stem.relu6", .relu6, inputs: [bn])
        let depthwise = g.add("dw", .conv2d(Conv2DConfig(stride: 1, padding: .symmetric(1), groups: 4),
                                            weight: param("dw.weight", [4, 1, 3, 3]), bias: param("dw.bias", [4])), inputs: [act])
        let residual = g.add("residual", .add, inputs: [depthwise, act])
        let branchA = g.add("branch_a", .conv2d(Conv2DConfig(), weight: param("a.weight", [3, 4, 1, 1]), bias: param("a.bias", [3])), inputs: [residual])
        let branchB = g.add("branch_b", .maxPool(Pool2DConfig(kernel: 3, stride: 1, padding: .symmetric(1))), inputs: [residual])
        let branchC = g.add("branch_c", .avgPool(Pool2DConfig(kernel: 3, stride: 1, padding: .symmetric(1), countIncludesPadding: false)), inputs: [residual])
        let joined = g.add("concat", .concat, inputs: [branchA, branchB, branchC])
        let relu = g.add("relu", .relu, inputs: [joined])
        let pooled = g.add("pool", .globalAvgPool, inputs: [relu])
        let flat = g.add("flatten", .flatten, inputs: [pooled])
        let dropped = g.add("dropout", .dropout(probability: 0.2), inputs: [flat])
        g.add("fc", .linear(weight: param("fc.weight", [5, 11], scale: 1), bias: param("fc.bias", [5])), inputs: [dropped])
        return (g, parameters)
    }

    func testForwardAgreesAcrossBackendsAndWithGradientPass() {
        let (graph, parameters) = Self.makeNetwork()
        let x = random([2, 3, 8, 8], seed: 1, lower: 0, upper: 1)
        let fast = Executor(backend: .onednn).forward(graph, parameters: parameters, input: x)
        let reference = Executor(backend: .reference).forward(graph, parameters: parameters, input: x)
        assertClose(fast, reference, absolute: 1e-5)
        let pass = Executor().forwardForGradient(graph, parameters: parameters, input: x)
        assertClose(pass.output, fast, absolute: 1e-6)
        XCTAssertEqual(graph.parameterNames.count, 11)
    }

    func testFullGradientsMatchFiniteDifferencesInBothModes() {
        let (graph, parameters) = Self.makeNetwork()
        let x = random([2, 3, 8, 8], seed: 1, lower: 0, upper: 1)
        let labels = [1, 3]
        for mode in [ExecutionMode.inference, .training(seed: 5)] {
            let executor = Executor()
            func loss(_ input: Tensor, _ parameters: Parameters) -> Double {
                let logits = executor.forwardForGradient(graph, parameters: parameters, input: input, mode: mode).output
                return Double(Softmax.crossEntropy(logits: logits, labels: labels).loss)
            }
            let pass = executor.forwardForGradient(graph, parameters: parameters, input: x, mode: mode)
            let seed = Softmax.crossEntropy(logits: pass.output, labels: labels).gradient
            let gradients = pass.backward(seed, target: .inputAndParameters)
            assertGradientMatches(gradients.input, { loss($0, parameters) }, at: x, step: 1e-3, tolerance: 3e-2, "input \(mode)")
            XCTAssertEqual(Set(gradients.parameters.keys), Set(graph.trainableParameterNames))
            for name in graph.trainableParameterNames {
                assertGradientMatches(gradients.parameters[name]!, { value in
                    var changed = parameters
                    changed[name] = value
                    return loss(x, changed)
                }, at: parameters[name]!, step: 1e-3, tolerance: 3e-2, "\(name) \(mode)")
            }
            // Asking only for the input gradient computes no parameter gradient and the same input gradient.
            let inputOnly = pass.backward(seed, target: .input)
            XCTAssertTrue(inputOnly.parameters.isEmpty)
            assertClose(inputOnly.input, gradients.input, absolute: 1e-7)
        }
    }

    /// Folding batch norm into convolutions and fusing activations changes neither the
    /// outputs nor the input gradients of inference.
    func testInferenceFusionPreservesOutputsAndInputGradients() {
        let (graph, parameters) = Self.makeNetwork()
        let (fused, fusedParameters) = InferenceFusion.fuse(graph, parameters: parameters)
        XCTAssertTrue(fused.nodes.contains { if case .fusedConv2d(_, _, _, .relu6) = $0.operation { return true }; return false })
        XCTAssertFalse(fused.nodes.contains { if case .batchNorm = $0.operation { return true }; return false })
        XCTAssertLessThan(fused.nodes.count, graph.nodes.count)
        let x = random([2, 3, 8, 8], seed: 1, lower: 0, upper: 1)
        let labels = [4, 0]
        for backend in KernelBackend.allCases {
            let executor = Executor(backend: backend)
            let plain = executor.forwardForGradient(graph, parameters: parameters, input: x)
            let folded = executor.forwardForGradient(fused, parameters: fusedParameters, input: x)
            assertClose(folded.output, plain.output, absolute: 1e-5, relative: 1e-5, "\(backend) output")
            assertClose(executor.forward(fused, parameters: fusedParameters, input: x), plain.output, absolute: 1e-5, relative: 1e-5)
            let seed = Softmax.crossEntropy(logits: plain.output, labels: labels).gradient
            assertClose(folded.backward(seed).input, plain.backward(seed).input, absolute: 1e-6, relative: 1e-4, "\(backend) input gradient")
        }
    }

    func testTrainingModeUpdatesRunningStatisticsAndIsDeterministic() {
        let (graph, parameters) = Self.makeNetwork()
        let x = random([2, 3, 8, 8], seed: 1, lower: 0, upper: 1)
        let first = Executor().forwardForGradient(graph, parameters: parameters, input: x, mode: .training(seed: 9))
        let second = Executor().forwardForGradient(graph, parameters: parameters, input: x, mode: .training(seed: 9))
        XCTAssertEqual(first.output, second.output)
        XCTAssertEqual(Set(first.updatedBuffers.keys), ["bn.running_mean", "bn.running_var"])
        XCTAssertNotEqual(first.updatedBuffers["bn.running_mean"], parameters["bn.running_mean"])
        let other = Executor().forwardForGradient(graph, parameters: parameters, input: x, mode: .training(seed: 10))
        XCTAssertNotEqual(first.output, other.output, "a different dropout seed draws a different mask")
    }
}
