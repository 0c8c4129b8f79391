import CShims
import Foundation

/// A float32 channels-last activation with its logical NCHW shape (rank 2 [N, C] after
/// flatten); `data` holds the values in NHWC order.
struct ChannelsLastValue {
    let data: Tensor
    let shape: [Int]
    var channels: Int { shape[1] }
    var pixels: Int { shape.count == 4 ? shape[0] * shape[2] * shape[3] : shape[0] }
}

/// Float32 inference of a fused graph in channels-last layout: after the preprocessing
/// (NCHW, on the `Executor`) the activations are transposed once to NHWC and stay there —
/// convolutions on oneDNN with bias and ReLU/ReLU6 fused, add+ReLU in one pass, Keras zero
/// padding folded into the next convolution, channels-last pooling and concat — so no layer
/// pays the layout reorders the `Executor`'s NCHW kernels do around every convolution.
///
/// Serves the mobile fp32 engine and the PC engine's inference (`Model.logits`); gradients
/// stay with the `Executor`. Weights are packed per input shape on first use.
public final class ChannelsLastInference: @unchecked Sendable {
    enum Step {
        case conv(ChannelsLastConv2D)
        case linear(weight: Tensor, bias: Tensor?)
        /// An add, with the ReLU that is its only reader fused in.
        case add(relu: Bool)
        /// Value of the input unchanged (a ReLU fused into the preceding add, a zero padding
        /// folded into the following convolution).
        case identity
        case relu, relu6, concat, globalAvgPool, flatten
        case maxPool(Pool2DConfig)
        case avgPool(Pool2DConfig)
        case zeroPad(Padding2D)
    }

    let graph: Graph
    let prefix: Graph
    let prefixEnd: Int
    /// The prefix as one folded step (`ChannelPreprocessing`), when it has that form.
    let preprocessing: ChannelPreprocessing?
    let parameters: Parameters
    var steps: [Int: Step] = [:]
    /// What `inputGradient`'s backward pass reads (`savedForBackward(_:in:)`).
    var savedForBackward: Set<Int> = []
    /// 1×1 expansions (and first layers on the direct kernel: MobileNetV2's stem) that can
    /// be fused into the 3×3 depthwise convolution reading them
    /// (`ThinConvolution.applyExpandDepthwise`), by the expansion node: the depthwise node and
    /// the nodes whose values the fusion never forms (the expansion and any folded padding
    /// between the two).
    var expandDepthwise: [Int: (depthwise: Int, skipped: [Int])] = [:]
    /// Adds one of whose operands is a 1×1 convolution without activation read by nothing
    /// else: the convolution adds the other operand (and applies the add's ReLU) in its
    /// store, by the add node.
    var residualConvolutions: [Int: (convolution: Int, residual: Int)] = [:]
    /// A 1×1 projection that can run inside a fused expansion + depthwise kernel on its rows
    /// (`ThinConvolution.applyExpandDepthwise`): the projection node, the node whose value the
    /// block yields (the projection, or the add it feeds as a residual convolution) and that
    /// add's other operand and ReLU.
    struct BlockProjection {
        let project: Int
        let output: Int
        let residual: Int?
        let relu: Bool
    }
    /// Projections of fusable depthwise convolutions' outputs, by the depthwise node.
    var projections: [Int: BlockProjection] = [:]

    /// nil when the graph holds an operation this program does not run (training-only
    /// ops, unfused batch norm, ...): callers then use the `Executor`.
    public init?(graph: Graph, parameters: Parameters) {
        self.graph = graph
        self.parameters = parameters
        prefixEnd = graph.preprocessingEnd()
        var prefix = Graph()
        for node in graph.nodes.dropFirst().prefix(prefixEnd) { prefix.add(node.name, node.operation, inputs: node.inputs) }
        self.prefix = prefix
        preprocessing = prefixEnd > 0 ? ChannelPreprocessing(prefix) : nil
        let fusedRelus = graph.addReluPairs()
        let fusedReluNodes = Set(fusedRelus.values)
        let folding = graph.foldablePadding(after: prefixEnd)
        for (index, node) in graph.nodes.enumerated() where index > prefixEnd {
            if folding.passthrough.contains(index) { steps[index] = .identity; continue }
            switch node.operation {
            case let .fusedConv2d(config, weight, bias, activation):
                steps[index] = .conv(ChannelsLastConv2D(weights: parameters[weight]!, bias: parameters[bias]!,
                                                        config: config.padded(by: folding.extra[index]), activation: activation))
            case let .conv2d(config, weight, bias):
                let weights = parameters[weight]!
                steps[index] = .conv(ChannelsLastConv2D(weights: weights, bias: bias.map { parameters[$0]! } ?? Tensor(shape: [weights.shape[0]]),
                                                        config: config, activation: .none))
            case .dropout: steps[index] = .identity
            case let .linear(weight, bias): steps[index] = .linear(weight: parameters[weight]!, bias: bias.map { parameters[$0]! })
            case .add where node.inputs.count == 2: steps[index] = .add(relu: fusedRelus[index] != nil)
            case .relu where fusedReluNodes.contains(index): steps[index] = .identity
            case .relu: steps[index] = .relu
            case .relu6: steps[index] = .relu6
            case .concat: steps[index] = .concat
            case let .maxPool(config): steps[index] = .maxPool(config.padded(by: folding.extra[index]))
            case let .avgPool(config): steps[index] = .avgPool(config)
            case .globalAvgPool: steps[index] = .globalAvgPool
            case .flatten: steps[index] = .flatten
            case let .zeroPad(padding): steps[index] = .zeroPad(padding)
            default: return nil
            }
        }
        savedForBackward = Self.savedForBackward(steps, in: graph)
        expandDepthwise = Self.expandDepthwisePairs(steps, in: graph)
        residualConvolutions = Self.residualConvolutions(steps, in: graph)
        projections = Self.projections(steps, in: graph, residuals: residualConvolutions)
    }

    /// Projections of 3×3 depthwise convolutions' outputs: stride-1 1×1 convolutions that are
    /// their only reader (`ThinConvolution.canProject`).
    static func projections(_ steps: [Int: Step], in graph: Graph,
                            residuals: [Int: (convolution: Int, residual: Int)]) -> [Int: BlockProjection] {
        let readers = graph.readerLists()
        var projections: [Int: BlockProjection] = [:]
        for (index, step) in steps {
            let only = readers[index]
            guard case let .conv(depthwiseConv) = step, graph.nodes[index].inputs.count == 1, only.count == 1,
                  case let .conv(project)? = steps[only[0]], ThinConvolution.canProject(depthwise: depthwiseConv, project: project) else { continue }
            if let (add, fused) = residuals.first(where: { $0.value.convolution == only[0] }), case let .add(relu)? = steps[add] {
                projections[index] = BlockProjection(project: only[0], output: add, residual: fused.residual, relu: relu)
            } else {
                projections[index] = BlockProjection(project: only[0], output: only[0], residual: nil, relu: false)
            }
        }
        return projections
    }

    /// Adds with an operand that is a convolution able to add the residual itself
    /// (`ChannelsLastConv2D.fusesResidual`) and read by nothing else.
    static func residualConvolutions(_ steps: [Int: Step], in graph: Graph) -> [Int: (convolution: Int, residual: Int)] {
        let readers = graph.readerCounts()
        var fused: [Int: (convolution: Int, residual: Int)] = [:]
        for (index, step) in steps {
            guard case .add = step else { continue }
            let operands = graph.nodes[index].inputs
            for (position, operand) in operands.enumerated() where readers[operand] == 1 && fused[index] == nil {
                if case let .conv(conv)? = steps[operand], conv.fusesResidual, operands[1 - position] != operand {
                    fused[index] = (operand, operands[1 - position])
                }
            }
        }
        return fused
    }

    /// Depthwise 3×3 convolutions whose input is a stride-1 1×1 convolution (or a direct first
    /// layer, `ThinConvolution.canFuse`) read by nothing else (possibly through folded padding).
    static func expandDepthwisePairs(_ steps: [Int: Step], in graph: Graph) -> [Int: (depthwise: Int, skipped: [Int])] {
        let readers = graph.readerCounts()
        var pairs: [Int: (depthwise: Int, skipped: [Int])] = [:]
        for (index, step) in steps {
            guard case let .conv(depthwise) = step, graph.nodes[index].inputs.count == 1 else { continue }
            var producer = graph.nodes[index].inputs[0]
            var skipped: [Int] = []
            while case .identity? = steps[producer], readers[producer] == 1, graph.nodes[producer].inputs.count == 1 {
                skipped.append(producer)
                producer = graph.nodes[producer].inputs[0]
            }
            guard readers[producer] == 1, case let .conv(expand)? = steps[producer],
                  ThinConvolution.canFuse(expand: expand, depthwise: depthwise) else { continue }
            pairs[producer] = (index, skipped + [producer])
        }
        return pairs
    }

    /// The graph's output for a batch of NCHW inputs.
    public func run(_ images: Tensor) throws -> Tensor {
        // The preprocessing, when folded, runs inside the layout change (one pass, no NCHW copy).
        let input = preprocessing != nil || prefixEnd == 0
            ? ChannelsLastKernels.toChannelsLast(images, preprocessing: preprocessing)
            : ChannelsLastKernels.toChannelsLast(Executor().forward(prefix, parameters: parameters, input: images))
        let values = try forwardSteps(input, keeping: []).values
        return ChannelsLastKernels.toChannelsFirst(values[graph.output]!)
    }

    /// The steps after the preprocessing prefix on its output. A value is dropped once its
    /// last reader has run unless `keeping` holds it; every value's shape is kept.
    func forwardSteps(_ input: ChannelsLastValue, keeping: Set<Int>) throws -> (values: [ChannelsLastValue?], shapes: [[Int]]) {
        var values = [ChannelsLastValue?](repeating: nil, count: graph.nodes.count)
        var shapes = [[Int]](repeating: [], count: graph.nodes.count)
        var remaining = graph.readerCounts()
        values[prefixEnd] = input
        shapes[prefixEnd] = values[prefixEnd]!.shape
        // Fused blocks skip values, so only where no intermediate value is asked for; whether
        // one pays depends on the expanded map's size, known at the expansion.
        let fuse = keeping.isEmpty
        var fusedExpansion: [Int: Int] = [:]
        let residuals = fuse ? residualConvolutions : [:]
        var skipped = Set(residuals.values.map(\.convolution))
        for (index, node) in graph.nodes.enumerated() where index > prefixEnd {
            if fuse, let block = expandDepthwise[index], case let .conv(expand)? = steps[index],
               ThinConvolution.fusionPays(expandedShape: expand.outputShape(input: values[node.inputs[0]]!.shape)) {
                fusedExpansion[block.depthwise] = index
                skipped.formUnion(block.skipped)
            }
            if fuse, let projection = projections[index] {
                // The block from its expansion (when fused) or from the depthwise layer on, in
                // one kernel; its value is the projection's (or the add's).
                skipped.formUnion([projection.project, projection.output])
                let expand = fusedExpansion[index]
                let inputs = graph.nodes[expand ?? index].inputs + (projection.residual.map { [$0] } ?? [])
                let value = try expandDepthwise(expand: expand, depthwise: index, values[inputs[0]]!, projection: projection,
                                                residual: projection.residual.map { values[$0]! })
                values[projection.output] = value
                shapes[projection.output] = value.shape
                for input in inputs {
                    remaining[input] -= 1
                    if remaining[input] == 0, !keeping.contains(input) { values[input] = nil }
                }
                continue
            }
            if skipped.contains(index) { continue }
            let inputs: [Int]
            let value: ChannelsLastValue
            if let expand = fusedExpansion[index] {
                inputs = graph.nodes[expand].inputs
                value = try expandDepthwise(expand: expand, depthwise: index, values[inputs[0]]!)
            } else if let (convolution, residual) = residuals[index], case let .add(relu) = steps[index]! {
                inputs = graph.nodes[convolution].inputs + [residual]
                value = try convolutionPlusResidual(convolution, values[inputs[0]]!, residual: values[residual]!, relu: relu)
            } else {
                inputs = node.inputs
                value = try evaluate(steps[index]!, inputs.map { values[$0]! })
            }
            values[index] = value
            shapes[index] = value.shape
            for input in inputs {
                remaining[input] -= 1
                if remaining[input] == 0, !keeping.contains(input) { values[input] = nil }
            }
        }
        return (values, shapes)
    }

    /// A fused block's output from its input `x`: the expansion's (then the depthwise layer
    /// reads the expansion's output) or, without `expand`, the depthwise layer's; with
    /// `projection`, the projection's (or its add's, given the add's other operand `residual`).
    func expandDepthwise(expand: Int?, depthwise: Int, _ x: ChannelsLastValue, projection: BlockProjection? = nil,
                         residual: ChannelsLastValue? = nil) throws -> ChannelsLastValue {
        var expandConv: ChannelsLastConv2D?
        if let expand {
            guard case let .conv(conv)? = steps[expand] else { preconditionFailure("expansion \(expand) is not a convolution") }
            expandConv = conv
        }
        guard case let .conv(depthwiseConv)? = steps[depthwise] else { preconditionFailure("depthwise layer \(depthwise) is not a convolution") }
        var outputShape = depthwiseConv.outputShape(input: expandConv?.outputShape(input: x.shape) ?? x.shape)
        var project: ChannelsLastConv2D?
        if let projection {
            guard case let .conv(conv)? = steps[projection.project] else { preconditionFailure("projection \(projection.project) is not a convolution") }
            project = conv
            outputShape = conv.outputShape(input: outputShape)
            precondition(residual.map { $0.shape == outputShape } ?? true, "residual \(residual!.shape) for a block output \(outputShape)")
        }
        let shape = outputShape
        let addActivation: FusedActivation = projection?.relu == true ? .relu : .none
        let output = Tensor.build(shape: [outputShape.reduce(1, *)]) { out in
            x.data.withUnsafeBufferPointer { input in
                func apply(_ residualPointer: UnsafePointer<Float>?) {
                    let fused = project.map { conv in
                        ThinConvolution.Projection(conv: conv, residual: residualPointer,
                                                   activation: residualPointer == nil ? conv.activation : addActivation)
                    }
                    ThinConvolution.applyExpandDepthwise(expand: expandConv, depthwise: depthwiseConv, project: fused, input.baseAddress!,
                                                         inputShape: x.shape, into: out.baseAddress!)
                }
                if let residual { residual.data.withUnsafeBufferPointer { apply($0.baseAddress!) } } else { apply(nil) }
            }
        }
        return ChannelsLastValue(data: output, shape: shape)
    }

    /// A 1×1 convolution's output plus `residual` (then its ReLU), in one pass.
    func convolutionPlusResidual(_ node: Int, _ x: ChannelsLastValue, residual: ChannelsLastValue, relu: Bool) throws -> ChannelsLastValue {
        guard case let .conv(conv)? = steps[node] else { preconditionFailure("residual fusion of node \(node), not a convolution") }
        let outputShape = conv.outputShape(input: x.shape)
        precondition(residual.shape == outputShape, "residual \(residual.shape) for a convolution output \(outputShape)")
        let output = try Tensor.build(shape: [outputShape.reduce(1, *)]) { out in
            try x.data.withUnsafeBufferPointer { input in
                try residual.data.withUnsafeBufferPointer { r in
                    try conv.apply(input, inputShape: x.shape, residual: r, residualActivation: relu ? .relu : .none, into: out)
                }
            }
        }
        return ChannelsLastValue(data: output, shape: outputShape)
    }

    /// One step's output from its inputs' values.
    func evaluate(_ step: Step, _ inputs: [ChannelsLastValue]) throws -> ChannelsLastValue {
        let x = inputs[0]
        switch step {
        case let .conv(conv):
            let outputShape = conv.outputShape(input: x.shape)
            let output = try Tensor.build(shape: [outputShape.reduce(1, *)]) { out in
                try x.data.withUnsafeBufferPointer { try conv.apply($0, inputShape: x.shape, into: out) }
            }
            return ChannelsLastValue(data: output, shape: outputShape)
        case let .linear(weight, bias):
            // [N, C] is the same in both layouts.
            return ChannelsLastValue(data: Linear.forward(x.data.reshaped(x.shape), weight: weight, bias: bias), shape: [x.shape[0], weight.shape[0]])
        case let .add(relu): return ChannelsLastKernels.add(x, inputs[1], lower: relu ? 0 : -.infinity, upper: .infinity)
        case .identity: return x
        case .relu: return ChannelsLastKernels.clamp(x, lower: 0, upper: .infinity)
        case .relu6: return ChannelsLastKernels.clamp(x, lower: 0, upper: 6)
        case .concat: return ChannelsLastKernels.concat(inputs)
        case let .maxPool(config): return ChannelsLastKernels.maxPool(x, config)
        case let .avgPool(config): return ChannelsLastKernels.averagePool(x, config)
        case .globalAvgPool: return ChannelsLastKernels.globalAveragePool(x)
        case .flatten:
            precondition(x.shape.count == 2 || (x.shape[2] == 1 && x.shape[3] == 1),
                         "channels-last flatten of a spatial map \(x.shape) would change the element order")
            return ChannelsLastValue(data: x.data, shape: [x.shape[0], x.data.count / x.shape[0]])
        case let .zeroPad(padding): return ChannelsLastKernels.pad(x, padding)
        }
    }
}

/// Layout changes, pooling, concatenation and padding on float channels-last values.
/// Every output pixel's channels are contiguous, so the inner loops run over channels.
enum ChannelsLastKernels {
    /// NCHW to NHWC, with `preprocessing` applied on the way (rank 4 only); [N, C] values
    /// are the same in both layouts.
    static func toChannelsLast(_ x: Tensor, preprocessing: ChannelPreprocessing? = nil) -> ChannelsLastValue {
        if x.rank == 2, preprocessing == nil { return ChannelsLastValue(data: x, shape: x.shape) }
        precondition(x.rank == 4, "channels-last values are NCHW or [N, C], got \(x.shape)")
        let (n, c, plane) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
        precondition(preprocessing.map { $0.source.count == c } ?? true, "preprocessing for another channel count than \(c)")
        let data = Tensor.build(shape: [x.count]) { out in
            x.withUnsafeBufferPointer { source in
                let (s, o) = (UncheckedSendable(source.baseAddress!), UncheckedSendable(out.baseAddress!))
                ChannelPreprocessing.forEachPixelRange(batch: n, plane: plane, preprocessing) { image, pixels, folded in
                    rc_channels_last_f32(s.value + image * c * plane, c, plane, pixels.lowerBound, pixels.upperBound,
                                         folded, o.value + image * plane * c)
                }
            }
        }
        return ChannelsLastValue(data: data, shape: x.shape)
    }

    static func toChannelsFirst(_ x: ChannelsLastValue) -> Tensor {
        let shape = x.shape
        let channels = shape[1], plane = shape.count == 4 ? shape[2] * shape[3] : 1
        return Tensor.build(shape: shape) { out in
            x.data.withUnsafeBufferPointer { source in
                for b in 0..<shape[0] { for channel in 0..<channels { for p in 0..<plane {
                    out[(b * channels + channel) * plane + p] = source[(b * plane + p) * channels + channel]
                } } }
            }
        }
    }

    /// min(max(a + b, lower), upper), elementwise.
    static func add(_ a: ChannelsLastValue, _ b: ChannelsLastValue, lower: Float, upper: Float) -> ChannelsLastValue {
        precondition(a.shape == b.shape, "add: shape \(a.shape) does not match \(b.shape)")
        let data = Tensor.build(shape: [a.data.count]) { out in
            a.data.withUnsafeBufferPointer { x in b.data.withUnsafeBufferPointer { y in
                let (p, q, o) = (UncheckedSendable(x.baseAddress!), UncheckedSendable(y.baseAddress!), UncheckedSendable(out.baseAddress!))
                Threading.parallelFor(out.count, minimumChunk: 16384) { range in
                    for i in range { o.value[i] = Swift.min(Swift.max(p.value[i] + q.value[i], lower), upper) }
                }
            } }
        }
        return ChannelsLastValue(data: data, shape: a.shape)
    }

    static func clamp(_ x: ChannelsLastValue, lower: Float, upper: Float) -> ChannelsLastValue {
        let data = Tensor.build(shape: [x.data.count]) { out in
            x.data.withUnsafeBufferPointer { source in
                let (p, o) = (UncheckedSendable(source.baseAddress!), UncheckedSendable(out.baseAddress!))
                Threading.parallelFor(out.count, minimumChunk: 16384) { range in
                    for i in range { o.value[i] = Swift.min(Swift.max(p.value[i], lower), upper) }
                }
            }
        }
        return ChannelsLastValue(data: data, shape: x.shape)
    }

    static func concat(_ inputs: [ChannelsLastValue]) -> ChannelsLastValue {
        let pixels = inputs[0].pixels
        let total = inputs.reduce(0) { $0 + $1.channels }
        var shape = inputs[0].shape
        shape[1] = total
        let data = Tensor.build(shape: [pixels * total]) { out in
            var offset = 0
            for input in inputs {
                let c = input.channels
                input.data.withUnsafeBufferPointer { source in
                    for p in 0..<pixels { (out.baseAddress! + p * total + offset).update(from: source.baseAddress! + p * c, count: c) }
                }
                offset += c
            }
        }
        return ChannelsLastValue(data: data, shape: shape)
    }

    /// Max pooling; padded cells never win.
    static func maxPool(_ x: ChannelsLastValue, _ config: Pool2DConfig) -> ChannelsLastValue {
        let outShape = config.outputShape(input: x.shape)
        let data = Tensor.build(shape: [outShape.reduce(1, *)]) { out in
            x.data.withUnsafeBufferPointer { source in
                maxPool(source.baseAddress!, shape: x.shape, config, into: out.baseAddress!, lowest: -.infinity)
            }
        }
        return ChannelsLastValue(data: data, shape: outShape)
    }

    /// Channels-last max pooling of any ordered element type, parallel over output rows.
    /// `lowest` starts each window, so cells outside the input never win.
    static func maxPool<Element: Comparable>(_ source: UnsafePointer<Element>, shape: [Int], _ config: Pool2DConfig,
                                             into output: UnsafeMutablePointer<Element>, lowest: Element) {
        let outShape = config.outputShape(input: shape)
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let (oh, ow) = (outShape[2], outShape[3])
        let (s, o) = (UncheckedSendable(source), UncheckedSendable(output))
        Threading.parallelFor(n * oh) { rows in
            for row in rows {
                let (b, y) = (row / oh, row % oh)
                let y0 = Swift.max(y * config.strideH - config.padding.top, 0)
                let y1 = Swift.min(y * config.strideH - config.padding.top + config.kernelH, h)
                for xx in 0..<ow {
                    let x0 = Swift.max(xx * config.strideW - config.padding.left, 0)
                    let x1 = Swift.min(xx * config.strideW - config.padding.left + config.kernelW, w)
                    let target = o.value + ((b * oh + y) * ow + xx) * c
                    target.update(repeating: lowest, count: c)
                    for iy in y0..<y1 { for ix in x0..<x1 {
                        let cell = s.value + ((b * h + iy) * w + ix) * c
                        for ch in 0..<c { target[ch] = Swift.max(target[ch], cell[ch]) }
                    } }
                }
            }
        }
    }

    /// Average pooling with the divisor of `Pooling` (padded cells counted when the config
    /// says so; ceil-mode overhang never).
    static func averagePool(_ x: ChannelsLastValue, _ config: Pool2DConfig) -> ChannelsLastValue {
        let outShape = config.outputShape(input: x.shape)
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (oh, ow) = (outShape[2], outShape[3])
        let spans = Pooling.averageSpans(config, height: h, width: w, outputHeight: oh, outputWidth: ow)
        let data = Tensor.build(shape: [outShape.reduce(1, *)]) { out in
            x.data.withUnsafeBufferPointer { source in
                let (s, o) = (UncheckedSendable(source.baseAddress!), UncheckedSendable(out.baseAddress!))
                Threading.parallelFor(n * oh) { rows in
                    for row in rows {
                        let (b, y) = (row / oh, row % oh)
                        for xx in 0..<ow {
                            let target = o.value + ((b * oh + y) * ow + xx) * c
                            target.update(repeating: 0, count: c)
                            for iy in spans.rows.ranges[y] { for ix in spans.columns.ranges[xx] {
                                let cell = s.value + ((b * h + iy) * w + ix) * c
                                for ch in 0..<c { target[ch] += cell[ch] }
                            } }
                            let scale = 1 / Float(spans.rows.counts[y] * spans.columns.counts[xx])
                            for ch in 0..<c { target[ch] *= scale }
                        }
                    }
                }
            }
        }
        return ChannelsLastValue(data: data, shape: outShape)
    }

    static func globalAveragePool(_ x: ChannelsLastValue) -> ChannelsLastValue {
        let (n, c, plane) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
        let data = Tensor.build(shape: [n * c]) { out in
            x.data.withUnsafeBufferPointer { source in
                for b in 0..<n {
                    let target = out.baseAddress! + b * c
                    target.update(repeating: 0, count: c)
                    for p in 0..<plane {
                        let cell = source.baseAddress! + (b * plane + p) * c
                        for ch in 0..<c { target[ch] += cell[ch] }
                    }
                    let scale = 1 / Float(plane)
                    for ch in 0..<c { target[ch] *= scale }
                }
            }
        }
        return ChannelsLastValue(data: data, shape: [n, c, 1, 1])
    }

    static func pad(_ x: ChannelsLastValue, _ padding: Padding2D) -> ChannelsLastValue {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (oh, ow) = (h + padding.top + padding.bottom, w + padding.left + padding.right)
        let data = Tensor.build(shape: [n * oh * ow * c]) { out in
            out.update(repeating: 0)
            x.data.withUnsafeBufferPointer { source in
                for b in 0..<n { for y in 0..<h {
                    let target = out.baseAddress! + ((b * oh + y + padding.top) * ow + padding.left) * c
                    target.update(from: source.baseAddress! + (b * h + y) * w * c, count: w * c)
                } }
            }
        }
        return ChannelsLastValue(data: data, shape: [n, c, oh, ow])
    }
}
