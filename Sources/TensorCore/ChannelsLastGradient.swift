/// Input gradients of a fused inference graph, channels-last: the forward pass of
/// `ChannelsLastInference.run` keeping what the backward pass reads, then the backward
/// pass in NHWC too — oneDNN's backward-data convolutions on the folded weights, masks of
/// the fused activations, and channels-last pooling, concat and padding backward kernels.
///
/// This is what attacks spend their time in. The `Executor`'s NCHW path computes the same
/// gradient (the tests hold the two together) but reorders every convolution's input and
/// output between NCHW and oneDNN's blocked layout, in both directions.
extension ChannelsLastInference {
    /// The graph's output for a batch of NCHW inputs and dL/d(input) for the output gradient
    /// that `outputGradient` computes from that output (e.g. a loss's gradient with respect to
    /// the logits). Inference semantics: batch norm folded, dropout the identity.
    /// - Complexity: about twice `run`; keeps only the activations the backward pass reads
    ///   (outputs of ReLU-like steps, inputs of max pooling).
    public func inputGradient(_ images: Tensor, outputGradient: (Tensor) throws -> Tensor) throws -> (output: Tensor, inputGradient: Tensor) {
        let prefixPass = prefixEnd > 0 ? Executor().forwardForGradient(prefix, parameters: parameters, input: images) : nil
        let count = graph.nodes.count
        let forward = try forwardSteps(ChannelsLastKernels.toChannelsLast(prefixPass?.output ?? images), keeping: savedForBackward)
        var values = forward.values
        let shapes = forward.shapes
        let output = ChannelsLastKernels.toChannelsFirst(values[graph.output]!)
        let seed = try outputGradient(output)
        requireSameShape(seed.shape, output.shape, "output gradient")

        var grads = [ChannelsLastValue?](repeating: nil, count: count)
        grads[graph.output] = ChannelsLastKernels.toChannelsLast(seed)
        func accumulate(_ node: Int, _ gradient: ChannelsLastValue) {
            if let existing = grads[node] {
                grads[node] = ChannelsLastKernels.add(existing, gradient, lower: -.infinity, upper: .infinity)
            } else {
                grads[node] = gradient
            }
        }
        for index in stride(from: count - 1, through: prefixEnd + 1, by: -1) {
            // Readers come later in node order, so nothing reads this value any more.
            defer { values[index] = nil }
            guard let dy = grads[index] else { continue }
            grads[index] = nil
            let node = graph.nodes[index]
            let source = node.inputs[0], inputShape = shapes[source]
            switch steps[index]! {
            case let .conv(conv):
                let masked = conv.activation == .none ? dy : ChannelsLastKernels.activationBackward(dy, output: values[index]!, conv.activation)
                let dx = try Tensor.build(shape: [inputShape.reduce(1, *)]) { out in
                    try masked.data.withUnsafeBufferPointer { try conv.backwardData($0, inputShape: inputShape, into: out) }
                }
                accumulate(source, ChannelsLastValue(data: dx, shape: inputShape))
            case let .linear(weight, _):
                accumulate(source, ChannelsLastValue(data: Linear.backwardInput(dy.data.reshaped(dy.shape), weight: weight), shape: inputShape))
            case let .add(relu):
                let masked = relu ? ChannelsLastKernels.activationBackward(dy, output: values[index]!, .relu) : dy
                for input in node.inputs { accumulate(input, masked) }
            case .identity, .flatten: accumulate(source, ChannelsLastValue(data: dy.data, shape: inputShape))
            case .relu: accumulate(source, ChannelsLastKernels.activationBackward(dy, output: values[index]!, .relu))
            case .relu6: accumulate(source, ChannelsLastKernels.activationBackward(dy, output: values[index]!, .relu6))
            case .concat:
                let pieces = ChannelsLastKernels.split(dy, channels: node.inputs.map { shapes[$0][1] })
                for (input, piece) in zip(node.inputs, pieces) { accumulate(input, piece) }
            case let .maxPool(config): accumulate(source, ChannelsLastKernels.maxPoolBackward(dy, input: values[source]!, config))
            case let .avgPool(config): accumulate(source, ChannelsLastKernels.averagePoolBackward(dy, inputShape: inputShape, config))
            case .globalAvgPool: accumulate(source, ChannelsLastKernels.globalAveragePoolBackward(dy, inputShape: inputShape))
            case let .zeroPad(padding): accumulate(source, ChannelsLastKernels.crop(dy, padding))
            }
        }
        let start = grads[prefixEnd].map(ChannelsLastKernels.toChannelsFirst) ?? Tensor(shape: shapes[prefixEnd])
        let gradient = prefixPass?.backward(start, target: .input).input ?? start
        return (output, gradient)
    }

    /// Nodes whose value the backward pass reads: outputs that mask a gradient (fused
    /// activations, add+ReLU, ReLU/ReLU6 — their output marks the same cells as their input
    /// does) and the inputs of max pooling, whose winners are found again from them.
    static func savedForBackward(_ steps: [Int: Step], in graph: Graph) -> Set<Int> {
        var saved = Set<Int>()
        for (index, step) in steps {
            switch step {
            case let .conv(conv) where conv.activation != .none: saved.insert(index)
            case .add(relu: true), .relu, .relu6: saved.insert(index)
            case .maxPool: saved.insert(graph.nodes[index].inputs[0])
            default: break
            }
        }
        return saved
    }
}

/// Backward kernels of the channels-last steps. Pooling windows overlap, so the pooling
/// kernels split work by image and channel block, never by output position.
extension ChannelsLastKernels {
    /// Channels per block of the pooling backward kernels' parallel split.
    static let channelBlock = 64

    /// dL/d(pre-activation): ReLU passes where y > 0, ReLU6 where 0 < y < 6 (`FusedActivation.backward`).
    static func activationBackward(_ dy: ChannelsLastValue, output y: ChannelsLastValue, _ activation: FusedActivation) -> ChannelsLastValue {
        let upper: Float = activation == .relu6 ? 6 : .infinity
        let data = Tensor.build(shape: [dy.data.count]) { out in
            dy.data.withUnsafeBufferPointer { g in y.data.withUnsafeBufferPointer { v in
                let (gp, vp, o) = (UncheckedSendable(g.baseAddress!), UncheckedSendable(v.baseAddress!), UncheckedSendable(out.baseAddress!))
                Threading.parallelFor(out.count, minimumChunk: 16384) { range in
                    // Explicit vectors: about half the cells pass, so a per-element branch
                    // mispredicts constantly (it cost more than the convolutions).
                    let (zero, top) = (SIMD16<Float>(repeating: 0), SIMD16<Float>(repeating: upper))
                    var i = range.lowerBound
                    while i + 16 <= range.upperBound {
                        let v = UnsafeRawPointer(vp.value + i).loadUnaligned(as: SIMD16<Float>.self)
                        let g = UnsafeRawPointer(gp.value + i).loadUnaligned(as: SIMD16<Float>.self)
                        UnsafeMutableRawPointer(o.value + i).storeBytes(of: zero.replacing(with: g, where: (v .> zero) .& (v .< top)),
                                                                        as: SIMD16<Float>.self)
                        i += 16
                    }
                    for j in i..<range.upperBound { o.value[j] = (vp.value[j] > 0 && vp.value[j] < upper) ? gp.value[j] : 0 }
                }
            } }
        }
        return ChannelsLastValue(data: data, shape: dy.shape)
    }

    /// The inverse of `concat`: each input's channels of every pixel.
    static func split(_ dy: ChannelsLastValue, channels: [Int]) -> [ChannelsLastValue] {
        let pixels = dy.pixels, total = dy.channels
        var offset = 0
        return channels.map { c in
            defer { offset += c }
            var shape = dy.shape
            shape[1] = c
            let data = Tensor.build(shape: [pixels * c]) { out in
                dy.data.withUnsafeBufferPointer { source in
                    for p in 0..<pixels { (out.baseAddress! + p * c).update(from: source.baseAddress! + p * total + offset, count: c) }
                }
            }
            return ChannelsLastValue(data: data, shape: shape)
        }
    }

    /// Runs `body(image, channels)` over every image and block of channels, in parallel.
    private static func forEachImageAndChannelBlock(images: Int, channels: Int, _ body: (Int, Range<Int>) -> Void) {
        let blocks = (channels + channelBlock - 1) / channelBlock
        Threading.parallelFor(images * blocks) { range in
            for item in range {
                let (b, block) = (item / blocks, item % blocks)
                body(b, (block * channelBlock)..<Swift.min((block + 1) * channelBlock, channels))
            }
        }
    }

    /// dL/dx of max pooling: each output's gradient goes to its window's first maximum in
    /// scan order (the `Pooling.max` winner, PyTorch's), found again from the input.
    static func maxPoolBackward(_ dy: ChannelsLastValue, input x: ChannelsLastValue, _ config: Pool2DConfig) -> ChannelsLastValue {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (oh, ow) = (dy.shape[2], dy.shape[3])
        let data = Tensor.build(shape: [x.data.count]) { out in
            out.update(repeating: 0)
            dy.data.withUnsafeBufferPointer { g in x.data.withUnsafeBufferPointer { v in
                let (gp, vp, o) = (UncheckedSendable(g.baseAddress!), UncheckedSendable(v.baseAddress!), UncheckedSendable(out.baseAddress!))
                forEachImageAndChannelBlock(images: n, channels: c) { b, channels in
                    let width = channels.count
                    let best = UnsafeMutablePointer<Float>.allocate(capacity: width)
                    let winner = UnsafeMutablePointer<Int32>.allocate(capacity: width)
                    defer { best.deallocate(); winner.deallocate() }
                    let vectorWidth = width / 16 * 16
                    for y in 0..<oh {
                        let y0 = Swift.max(y * config.strideH - config.padding.top, 0)
                        let y1 = Swift.min(y * config.strideH - config.padding.top + config.kernelH, h)
                        for xx in 0..<ow {
                            let x0 = Swift.max(xx * config.strideW - config.padding.left, 0)
                            let x1 = Swift.min(xx * config.strideW - config.padding.left + config.kernelW, w)
                            best.update(repeating: -.infinity, count: width)
                            winner.update(repeating: Int32((b * h + y0) * w + x0), count: width)
                            for iy in y0..<Swift.max(y1, y0) { for ix in x0..<Swift.max(x1, x0) {
                                let pixel = (b * h + iy) * w + ix
                                let cell = vp.value + pixel * c + channels.lowerBound
                                // Vectors of 16 channels: which cell wins is data, so a
                                // per-channel branch would mispredict half the time.
                                let here = SIMD16<Int32>(repeating: Int32(pixel))
                                for k in stride(from: 0, to: vectorWidth, by: 16) {
                                    let value = UnsafeRawPointer(cell + k).loadUnaligned(as: SIMD16<Float>.self)
                                    let current = UnsafeRawPointer(best + k).loadUnaligned(as: SIMD16<Float>.self)
                                    let better = value .> current
                                    UnsafeMutableRawPointer(best + k).storeBytes(of: current.replacing(with: value, where: better), as: SIMD16<Float>.self)
                                    let owner = UnsafeRawPointer(winner + k).loadUnaligned(as: SIMD16<Int32>.self)
                                    UnsafeMutableRawPointer(winner + k).storeBytes(of: owner.replacing(with: here, where: better), as: SIMD16<Int32>.self)
                                }
                                for k in vectorWidth..<width where cell[k] > best[k] {
                                    best[k] = cell[k]
                                    winner[k] = Int32(pixel)
                                }
                            } }
                            let gradient = gp.value + ((b * oh + y) * ow + xx) * c + channels.lowerBound
                            for k in 0..<width { o.value[Int(winner[k]) * c + channels.lowerBound + k] += gradient[k] }
                        }
                    }
                }
            } }
        }
        return ChannelsLastValue(data: data, shape: x.shape)
    }

    /// dL/dx of average pooling: each output's gradient, divided by its window's divisor,
    /// to every input cell of its window.
    static func averagePoolBackward(_ dy: ChannelsLastValue, inputShape: [Int], _ config: Pool2DConfig) -> ChannelsLastValue {
        let (n, c, h, w) = (inputShape[0], inputShape[1], inputShape[2], inputShape[3])
        let (oh, ow) = (dy.shape[2], dy.shape[3])
        let spans = Pooling.averageSpans(config, height: h, width: w, outputHeight: oh, outputWidth: ow)
        let data = Tensor.build(shape: [inputShape.reduce(1, *)]) { out in
            out.update(repeating: 0)
            dy.data.withUnsafeBufferPointer { g in
                let (gp, o) = (UncheckedSendable(g.baseAddress!), UncheckedSendable(out.baseAddress!))
                forEachImageAndChannelBlock(images: n, channels: c) { b, channels in
                    let width = channels.count
                    for y in 0..<oh { for xx in 0..<ow {
                        let scale = 1 / Float(spans.rows.counts[y] * spans.columns.counts[xx])
                        let gradient = gp.value + ((b * oh + y) * ow + xx) * c + channels.lowerBound
                        for iy in spans.rows.ranges[y] { for ix in spans.columns.ranges[xx] {
                            let cell = o.value + ((b * h + iy) * w + ix) * c + channels.lowerBound
                            for k in 0..<width { cell[k] += gradient[k] * scale }
                        } }
                    } }
                }
            }
        }
        return ChannelsLastValue(data: data, shape: inputShape)
    }

    static func globalAveragePoolBackward(_ dy: ChannelsLastValue, inputShape: [Int]) -> ChannelsLastValue {
        let (n, c, plane) = (inputShape[0], inputShape[1], inputShape[2] * inputShape[3])
        let scale = 1 / Float(plane)
        let data = Tensor.build(shape: [inputShape.reduce(1, *)]) { out in
            dy.data.withUnsafeBufferPointer { g in
                let (gp, o) = (UncheckedSendable(g.baseAddress!), UncheckedSendable(out.baseAddress!))
                Threading.parallelFor(n * plane, minimumChunk: 64) { range in
                    for pixel in range {
                        let gradient = gp.value + (pixel / plane) * c, cell = o.value + pixel * c
                        for k in 0..<c { cell[k] = gradient[k] * scale }
                    }
                }
            }
        }
        return ChannelsLastValue(data: data, shape: inputShape)
    }

    /// dL/dx of zero padding: the interior of the padded gradient.
    static func crop(_ dy: ChannelsLastValue, _ padding: Padding2D) -> ChannelsLastValue {
        let (n, c, oh, ow) = (dy.shape[0], dy.shape[1], dy.shape[2], dy.shape[3])
        let (h, w) = (oh - padding.top - padding.bottom, ow - padding.left - padding.right)
        let data = Tensor.build(shape: [n * h * w * c]) { out in
            dy.data.withUnsafeBufferPointer { source in
                for b in 0..<n { for y in 0..<h {
                    (out.baseAddress! + (b * h + y) * w * c)
                        .update(from: source.baseAddress! + ((b * oh + y + padding.top) * ow + padding.left) * c, count: w * c)
                } }
            }
        }
        return ChannelsLastValue(data: data, shape: [n, c, h, w])
    }
}
