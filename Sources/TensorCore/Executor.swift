/// Named parameter tensors of a graph (weights, biases, batch-norm statistics).
public typealias Parameters = [String: Tensor]

/// Whether batch normalisation and dropout run in inference or training behaviour.
public enum ExecutionMode: Hashable, Sendable {
    case inference
    /// Batch statistics for batch norm (running statistics updated), dropout masks drawn
    /// from a generator seeded with `seed`.
    case training(seed: UInt64)
}

/// What the backward pass computes.
public enum GradientTarget: Hashable, Sendable {
    /// Only dL/d(input): no weight gradient is computed (what attacks need).
    case input
    /// dL/d(input) and dL/d(every trainable parameter).
    case inputAndParameters
}

/// Runs graphs on the PC engine, with reverse-mode automatic differentiation.
public struct Executor: Sendable {
    public var backend: KernelBackend

    public init(backend: KernelBackend = .onednn) { self.backend = backend }

    /// Inference forward pass. Intermediate values are released as soon as their last
    /// reader has run, so peak memory is the widest cut of the graph, not its sum.
    /// - Parameter observe: called with every node's index and value as it is computed
    ///   (calibration observers), before the value may be released.
    public func forward(_ graph: Graph, parameters: Parameters, input: Tensor,
                        observe: ((Int, Tensor) -> Void)? = nil) -> Tensor {
        var values = [Tensor?](repeating: nil, count: graph.nodes.count)
        var remaining = graph.readerCounts()
        values[0] = input
        for index in 1..<graph.nodes.count {
            let node = graph.nodes[index]
            var state = SavedState.none
            values[index] = evaluate(node, inputs: node.inputs.map { values[$0]! }, parameters: parameters,
                                     mode: .inference, nodeIndex: index, saved: &state, updatedBuffers: nil)
            observe?(index, values[index]!)
            for input in node.inputs {
                remaining[input] -= 1
                if remaining[input] == 0 { values[input] = nil }
            }
        }
        return values[graph.output]!
    }

    /// Forward pass that keeps what the backward pass needs.
    public func forwardForGradient(_ graph: Graph, parameters: Parameters, input: Tensor,
                                   mode: ExecutionMode = .inference) -> ForwardPass {
        var values = [Tensor?](repeating: nil, count: graph.nodes.count)
        var saved = [SavedState](repeating: .none, count: graph.nodes.count)
        var buffers: Parameters = [:]
        values[0] = input
        for index in 1..<graph.nodes.count {
            let node = graph.nodes[index]
            values[index] = evaluate(node, inputs: node.inputs.map { values[$0]! }, parameters: parameters,
                                     mode: mode, nodeIndex: index, saved: &saved[index], updatedBuffers: &buffers)
        }
        return ForwardPass(graph: graph, parameters: parameters, mode: mode, backend: backend,
                           values: values, saved: saved, updatedBuffers: buffers)
    }

    func parameter(_ name: String, _ parameters: Parameters, node: Graph.Node) -> Tensor {
        guard let tensor = parameters[name] else {
            preconditionFailure("node '\(node.name)' (\(node.operation.kindName)) reads parameter '\(name)', which is missing")
        }
        return tensor
    }

    func evaluate(_ node: Graph.Node, inputs: [Tensor], parameters: Parameters, mode: ExecutionMode, nodeIndex: Int,
                  saved: inout SavedState, updatedBuffers: UnsafeMutablePointer<Parameters>?) -> Tensor {
        let x = inputs.first!
        switch node.operation {
        case .input:
            preconditionFailure("input node inside the graph")
        case let .conv2d(config, weight, bias):
            return Conv2D.forward(x, weight: parameter(weight, parameters, node: node),
                                  bias: bias.map { parameter($0, parameters, node: node) }, config: config, backend: backend)
        case let .fusedConv2d(config, weight, bias, activation):
            return Conv2D.forward(x, weight: parameter(weight, parameters, node: node), bias: parameter(bias, parameters, node: node),
                                  config: config, activation: activation, backend: backend)
        case let .batchNorm(scale, shift, mean, variance, epsilon, momentum):
            let gamma = scale.map { parameter($0, parameters, node: node) }
            let beta = shift.map { parameter($0, parameters, node: node) }
            let runningMean = parameter(mean, parameters, node: node), runningVariance = parameter(variance, parameters, node: node)
            if case .training = mode {
                let result = BatchNorm.training(x, runningMean: runningMean, runningVariance: runningVariance, gamma: gamma, beta: beta,
                                                epsilon: epsilon, momentum: momentum)
                updatedBuffers?.pointee[mean] = result.runningMean
                updatedBuffers?.pointee[variance] = result.runningVariance
                saved = .batchNorm(result.statistics)
                return result.output
            }
            let result = BatchNorm.inference(x, mean: runningMean, variance: runningVariance, gamma: gamma, beta: beta, epsilon: epsilon)
            saved = .batchNorm(result.statistics)
            return result.output
        case .relu: return Activation.relu(x)
        case .relu6: return Activation.relu6(x)
        case let .clamp(lower, upper): return x.clamped(lower: lower, upper: upper)
        case .add:
            var sum = x
            for other in inputs.dropFirst() { sum += other }
            return sum
        case .concat: return ChannelOps.concat(inputs)
        case let .maxPool(config):
            let result = Pooling.max(x, config: config)
            saved = .argmax(result.argmax)
            return result.output
        case let .avgPool(config): return Pooling.average(x, config: config)
        case .globalAvgPool: return Pooling.globalAverage(x)
        case .flatten: return x.reshaped([x.shape[0], x.count / Swift.max(x.shape[0], 1)])
        case let .linear(weight, bias):
            return Linear.forward(x, weight: parameter(weight, parameters, node: node), bias: bias.map { parameter($0, parameters, node: node) })
        case let .dropout(probability):
            guard case let .training(seed) = mode, probability > 0 else { return x }
            var generator = SeededGenerator(seed: seed &+ UInt64(nodeIndex) &* 0x9E37_79B9_7F4A_7C15)
            let keep = 1 - probability
            let mask = Tensor.build(shape: x.shape) { out in
                for i in out.indices { out[i] = generator.nextUniform() < keep ? 1 / keep : 0 }
            }
            saved = .mask(mask)
            return x * mask
        case .softmax: return Softmax.softmax(x)
        case .logSoftmax: return Softmax.logSoftmax(x)
        case let .affine(scale, shift): return ChannelOps.affine(x, scale: scale, shift: shift)
        case let .permuteChannels(order): return ChannelOps.permute(x, order: order)
        case let .zeroPad(padding): return ChannelOps.zeroPad(x, padding)
        }
    }
}

/// Per-node state kept by the forward pass for the backward pass.
enum SavedState: Sendable {
    case none
    case batchNorm(BatchNorm.Statistics)
    case argmax([Int32])
    case mask(Tensor)
}

/// Gradients from a backward pass.
public struct Gradients: Sendable {
    /// dL/d(input), the shape of the graph's input.
    public var input: Tensor
    /// dL/d(parameter) by name; empty when only the input gradient was asked for.
    public var parameters: Parameters
}

/// The values of a forward pass, from which any number of backward passes can be run.
public struct ForwardPass: Sendable {
    public let graph: Graph
    let parameters: Parameters
    let mode: ExecutionMode
    let backend: KernelBackend
    var values: [Tensor?]
    let saved: [SavedState]
    /// Batch-norm running statistics after a training-mode pass, by parameter name.
    public let updatedBuffers: Parameters

    /// The graph's output.
    public var output: Tensor { values[graph.output]! }

    /// Reverse-mode differentiation: propagates dL/d(output) back to the input and, if
    /// asked, to the parameters. With `.input`, parameter gradients are never computed.
    /// - Complexity: about the cost of the forward pass (twice with parameters).
    public func backward(_ gradOutput: Tensor, target: GradientTarget = .input) -> Gradients {
        requireSameShape(gradOutput.shape, output.shape, "backward seed")
        let wantParameters = target == .inputAndParameters
        let training: Bool = { if case .training = mode { return true } else { return false } }()
        var grads = [Tensor?](repeating: nil, count: graph.nodes.count)
        var parameterGrads: Parameters = [:]
        grads[graph.output] = gradOutput

        func accumulate(_ node: Int, _ gradient: Tensor) {
            if grads[node] == nil { grads[node] = gradient } else { grads[node]! += gradient }
        }
        func accumulateParameter(_ name: String, _ gradient: Tensor) {
            if parameterGrads[name] == nil { parameterGrads[name] = gradient } else { parameterGrads[name]! += gradient }
        }

        for index in stride(from: graph.nodes.count - 1, through: 1, by: -1) {
            guard let dy = grads[index] else { continue }
            grads[index] = nil
            let node = graph.nodes[index]
            let x = values[node.inputs[0]]!
            let y = values[index]!
            switch node.operation {
            case .input: break
            case let .conv2d(config, weight, bias):
                let w = parameters[weight]!
                accumulate(node.inputs[0], Conv2D.backwardData(dy, weight: w, inputShape: x.shape, config: config, backend: backend))
                if wantParameters {
                    let result = Conv2D.backwardWeights(dy, input: x, weightShape: w.shape, config: config, backend: backend)
                    accumulateParameter(weight, result.weight)
                    if let bias { accumulateParameter(bias, result.bias) }
                }
            case let .fusedConv2d(config, weight, _, activation):
                precondition(!wantParameters, "node '\(node.name)' is a fused inference convolution: it has no parameter gradients")
                let w = parameters[weight]!
                accumulate(node.inputs[0], Conv2D.backwardData(activation.backward(dy, output: y), weight: w, inputShape: x.shape,
                                                               config: config, backend: backend))
            case let .batchNorm(scale, shift, _, _, _, _):
                guard case let .batchNorm(statistics) = saved[index] else { preconditionFailure("missing batch-norm statistics") }
                let result = BatchNorm.backward(dy, input: x, statistics: statistics, gamma: scale.map { parameters[$0]! },
                                                training: training, needParameters: wantParameters)
                accumulate(node.inputs[0], result.input)
                if wantParameters {
                    if let scale, let g = result.gamma { accumulateParameter(scale, g) }
                    if let shift, let b = result.beta { accumulateParameter(shift, b) }
                }
            case .relu: accumulate(node.inputs[0], Activation.reluBackward(dy, input: x))
            case .relu6: accumulate(node.inputs[0], Activation.relu6Backward(dy, input: x))
            case let .clamp(lower, upper): accumulate(node.inputs[0], Activation.clampBackward(dy, input: x, lower: lower, upper: upper))
            case .add: for input in node.inputs { accumulate(input, dy) }
            case .concat:
                let pieces = ChannelOps.split(dy, channels: node.inputs.map { values[$0]!.shape[1] })
                for (input, piece) in zip(node.inputs, pieces) { accumulate(input, piece) }
            case .maxPool:
                guard case let .argmax(argmax) = saved[index] else { preconditionFailure("missing max-pool indices") }
                accumulate(node.inputs[0], Pooling.maxBackward(dy, argmax: argmax, inputShape: x.shape))
            case let .avgPool(config): accumulate(node.inputs[0], Pooling.averageBackward(dy, inputShape: x.shape, config: config))
            case .globalAvgPool: accumulate(node.inputs[0], Pooling.globalAverageBackward(dy, inputShape: x.shape))
            case .flatten: accumulate(node.inputs[0], dy.reshaped(x.shape))
            case let .linear(weight, bias):
                let w = parameters[weight]!
                accumulate(node.inputs[0], Linear.backwardInput(dy, weight: w))
                if wantParameters {
                    let result = Linear.backwardParameters(dy, input: x)
                    accumulateParameter(weight, result.weight)
                    if let bias { accumulateParameter(bias, result.bias) }
                }
            case .dropout:
                if case let .mask(mask) = saved[index] { accumulate(node.inputs[0], dy * mask) } else { accumulate(node.inputs[0], dy) }
            case .softmax: accumulate(node.inputs[0], Softmax.softmaxBackward(dy, output: y))
            case .logSoftmax: accumulate(node.inputs[0], Softmax.logSoftmaxBackward(dy, output: y))
            case let .affine(scale, _): accumulate(node.inputs[0], ChannelOps.affineBackward(dy, scale: scale))
            case let .permuteChannels(order): accumulate(node.inputs[0], ChannelOps.permuteBackward(dy, order: order))
            case let .zeroPad(padding): accumulate(node.inputs[0], ChannelOps.zeroPadBackward(dy, padding))
            }
        }
        let inputGradient = grads[0] ?? Tensor(shape: values[0]!.shape)
        return Gradients(input: inputGradient, parameters: parameterGrads)
    }
}
