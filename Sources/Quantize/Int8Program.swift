import CShims
import Foundation
import TensorCore

/// A uint8 channels-last activation with its logical NCHW shape.
struct QuantizedValue {
    let buffer: IntegerBuffer<UInt8>
    /// [N, C, H, W] (rank 2 [N, C] after flatten).
    let shape: [Int]
    var channels: Int { shape[1] }
    var pixels: Int { shape.count == 4 ? shape[0] * shape[2] * shape[3] : shape[0] }
}

/// The int8 execution plan of a quantized mobile model: one step per node after the float
/// preprocessing, each with its integer parameters precomputed.
final class Int8Program: @unchecked Sendable {
    enum Step {
        case conv(QuantizedConv2D, Requantizer)
        /// A convolution whose requantization oneDNN performs exactly (see `Requantizer.floatRequantization`).
        case requantizingConv(QuantizedConv2D)
        /// A 1×1 convolution or fully connected layer with the requantization in its GEMM.
        case fusedConv(FusedInt8Conv)
        /// A depthwise convolution with the requantization fused.
        case fusedDepthwise(FusedDepthwiseConv)
        case add(AddKernel)
        /// Value of the input unchanged (a ReLU fused into the preceding add, a zero padding
        /// folded into the following convolution).
        case identity
        case clamp(lower: UInt8, upper: UInt8)
        case concat([(AffineQuantization, AffineQuantization)])
        case maxPool(Pool2DConfig)
        case avgPool(Pool2DConfig, AffineQuantization)
        case globalAvgPool(input: AffineQuantization, output: AffineQuantization)
        case flatten
        case zeroPad(Padding2D, zeroPoint: UInt8)
    }

    let graph: Graph
    /// The float preprocessing ops, run by the PC executor before quantization…
    let prefix: Graph
    /// …or, when they are ModelZoo's permutation + affine, by the input quantization itself.
    let preprocessing: ChannelPreprocessing?
    let floatParameters: Parameters
    let table: QuantizationTable
    var steps: [Int: Step] = [:]
    /// Depthwise layers whose only reader is a stride-1 1×1 layer run with it as one kernel
    /// (`FusedDepthwiseConv.apply(_:projectingWith:)`): the projection node, by the depthwise node.
    var projections: [Int: Int] = [:]

    init(_ model: MobileModel) {
        guard let table = model.quantization else { preconditionFailure("Int8Program needs a quantized model") }
        graph = model.graph
        floatParameters = model.parameters
        self.table = table
        var prefix = Graph()
        for node in graph.nodes.dropFirst().prefix(table.floatPrefixEnd) { prefix.add(node.name, node.operation, inputs: node.inputs) }
        self.prefix = prefix
        preprocessing = ChannelPreprocessing(prefix)
        let scheme = table.scheme
        let fusedRelus = graph.addReluPairs()
        let fusedReluNodes = Set(fusedRelus.values)
        // A pad keeps its input's quantization (its new cells hold the zero point), so the
        // convolution or max pool reading it may read the unpadded input instead.
        var folding = graph.foldablePadding(after: table.floatPrefixEnd)
        for pad in folding.passthrough where table.activations[pad] != table.activations[graph.nodes[pad].inputs[0]] {
            folding.passthrough.remove(pad)
            folding.extra = folding.extra.filter { graph.nodes[$0.key].inputs[0] != pad }
        }
        for (index, node) in graph.nodes.enumerated() where index > table.floatPrefixEnd {
            let output = table.activations[index]!
            let input = table.activations[node.inputs[0]]!
            if folding.passthrough.contains(index) { steps[index] = .identity; continue }
            switch node.operation {
            case let .fusedConv2d(config, _, _, activation):
                let config = config.padded(by: folding.extra[index])
                let layer = table.layers[index]!
                let clamp: FusedClamp = activation == .relu ? .relu : (activation == .relu6 ? .relu6 : .none)
                let requantizer = Requantizer(layer: layer, input: input, output: output, clamp: clamp, scheme: scheme)
                // Our 3×3 VNNI depthwise kernel and our fused GEMM are faster than oneDNN's
                // kernels even where oneDNN's uint8 output is exact; otherwise oneDNN's exact
                // uint8 output comes first, then oneDNN's int32 accumulators + our epilogue.
                let depthwise = FusedDepthwiseConv.supports(weightShape: layer.weightShape, config: config, requantizer: requantizer)
                let vnniDepthwise = depthwise && FusedDepthwiseConv.hasVNNIKernel(weightShape: layer.weightShape)
                let fusedGemm = FusedInt8Conv.supports(weightShape: layer.weightShape, config: config, requantizer: requantizer)
                let oneDNNRequantization = vnniDepthwise || fusedGemm ? nil : requantizer.floatRequantization()
                if vnniDepthwise || (depthwise && oneDNNRequantization == nil) {
                    steps[index] = .fusedDepthwise(FusedDepthwiseConv(weights: layer.weights, shape: layer.weightShape, config: config,
                                                                      inputZeroPoint: input.zeroPoint, requantizer: requantizer))
                } else if fusedGemm {
                    steps[index] = .fusedConv(FusedInt8Conv(weights: layer.weights, shape: layer.weightShape, config: config,
                                                            inputZeroPoint: input.zeroPoint, requantizer: requantizer))
                } else if let fused = oneDNNRequantization {
                    steps[index] = .requantizingConv(QuantizedConv2D(weights: layer.weights, shape: layer.weightShape, config: config,
                                                                     inputZeroPoint: input.zeroPoint, requantization: fused))
                } else {
                    steps[index] = .conv(QuantizedConv2D(weights: layer.weights, shape: layer.weightShape, config: config,
                                                         inputZeroPoint: input.zeroPoint), requantizer)
                }
            case .linear:
                let layer = table.layers[index]!
                let requantizer = Requantizer(layer: layer, input: input, output: output, clamp: .none, scheme: scheme)
                if FusedInt8Conv.supports(weightShape: layer.weightShape, config: Conv2DConfig(), requantizer: requantizer) {
                    steps[index] = .fusedConv(FusedInt8Conv(weights: layer.weights, shape: layer.weightShape, config: Conv2DConfig(),
                                                            inputZeroPoint: input.zeroPoint, requantizer: requantizer))
                } else {
                    steps[index] = .conv(QuantizedConv2D(weights: layer.weights, shape: layer.weightShape, config: Conv2DConfig(),
                                                         inputZeroPoint: input.zeroPoint), requantizer)
                }
            case .add:
                let second = table.activations[node.inputs[1]]!
                steps[index] = .add(AddKernel(a: input, b: second, output: output, relu: fusedRelus[index] != nil, scheme: scheme))
            case .relu where fusedReluNodes.contains(index):
                steps[index] = .identity
            case .relu, .relu6:
                let range = output.clampRange(node.operation == .relu ? .relu : .relu6)
                steps[index] = .clamp(lower: UInt8(range.lower), upper: UInt8(range.upper))
            case .concat:
                steps[index] = .concat(node.inputs.map { (table.activations[$0]!, output) })
            case let .maxPool(config):
                // A folded pad's cells held the zero point, the least of a ReLU's codes, so
                // skipping them (`rc_max_pool_u8`) keeps the maxima.
                steps[index] = .maxPool(config.padded(by: folding.extra[index]))
            case let .avgPool(config): steps[index] = .avgPool(config, input)
            case .globalAvgPool: steps[index] = .globalAvgPool(input: input, output: output)
            case .flatten: steps[index] = .flatten
            case let .zeroPad(padding): steps[index] = .zeroPad(padding, zeroPoint: UInt8(input.zeroPoint))
            default: preconditionFailure("node '\(node.name)' (\(node.operation.kindName)) has no int8 step; the converter should have refused it")
            }
        }
        projections = Self.projections(steps, in: graph)
    }

    static func projections(_ steps: [Int: Step], in graph: Graph) -> [Int: Int] {
        let readers = graph.readerLists()
        var projections: [Int: Int] = [:]
        for (index, step) in steps {
            let only = readers[index]
            guard case .fusedDepthwise = step, only.count == 1, case let .fusedConv(project)? = steps[only[0]],
                  project.projects else { continue }
            projections[index] = only[0]
        }
        return projections
    }

    /// Dequantized logits for a batch of [N, 3, S, S] images in [0, 1].
    /// - Parameter observe: sees every node's integer output (parity tests).
    func run(_ images: Tensor, observe: ((Int, QuantizedValue) -> Void)? = nil) throws -> Tensor {
        let scheme = table.scheme
        let direct = preprocessing != nil || table.floatPrefixEnd == 0
        let floatInput = direct ? images : Executor().forward(prefix, parameters: floatParameters, input: images)
        var values = [QuantizedValue?](repeating: nil, count: graph.nodes.count)
        var remaining = graph.readerCounts()
        values[table.floatPrefixEnd] = Int8Kernels.quantize(floatInput, table.activations[table.floatPrefixEnd]!, scheme: scheme,
                                                            preprocessing: preprocessing)
        // Fused steps skip values, so only when no node's value is to be observed.
        var projected: Set<Int> = []
        for (index, node) in graph.nodes.enumerated() where index > table.floatPrefixEnd {
            if projected.contains(index) { continue }
            let inputs = node.inputs.map { values[$0]! }
            let x = inputs[0]
            if observe == nil, let project = projections[index], case let .fusedDepthwise(depthwise)? = steps[index],
               case let .fusedConv(projection)? = steps[project] {
                values[project] = depthwise.apply(x, projectingWith: projection)
                projected.insert(project)
                for input in node.inputs {
                    remaining[input] -= 1
                    if remaining[input] == 0 { values[input] = nil }
                }
                continue
            }
            switch steps[index]! {
            case let .conv(conv, requantizer):
                let shape4 = x.shape.count == 4 ? x.shape : [x.shape[0], x.shape[1], 1, 1]
                var outputShape = conv.outputShape(input: shape4)
                let accumulators = IntegerBuffer<Int32>(count: outputShape.reduce(1, *))
                try conv.accumulate(x.buffer, inputShape: shape4, into: accumulators)
                let output = IntegerBuffer<UInt8>(count: accumulators.count)
                requantizer.apply(accumulators, pixels: accumulators.count / outputShape[1], into: output)
                if x.shape.count == 2 { outputShape = [outputShape[0], outputShape[1]] }
                values[index] = QuantizedValue(buffer: output, shape: outputShape)
            case let .requantizingConv(conv):
                let outputShape = conv.outputShape(input: x.shape)
                let output = IntegerBuffer<UInt8>(count: outputShape.reduce(1, *))
                try conv.requantize(x.buffer, inputShape: x.shape, into: output)
                values[index] = QuantizedValue(buffer: output, shape: outputShape)
            case let .fusedConv(conv): values[index] = conv.apply(x)
            case let .fusedDepthwise(conv): values[index] = conv.apply(x)
            case let .add(kernel): values[index] = kernel.apply(x, inputs[1])
            case .identity, .flatten:
                if case .flatten = steps[index]! {
                    precondition(x.shape.count == 2 || (x.shape[2] == 1 && x.shape[3] == 1),
                                 "int8 flatten of a spatial map \(x.shape) would change the element order")
                    values[index] = QuantizedValue(buffer: x.buffer, shape: [x.shape[0], x.count / x.shape[0]])
                } else {
                    values[index] = x
                }
            case let .clamp(lower, upper): values[index] = Int8Kernels.clamp(x, lower: lower, upper: upper)
            case let .concat(parameters): values[index] = Int8Kernels.concat(inputs, parameters, scheme: scheme)
            case let .maxPool(config): values[index] = Int8Kernels.maxPool(x, config)
            case let .avgPool(config, q): values[index] = Int8Kernels.averagePool(x, config, q, scheme: scheme)
            case let .globalAvgPool(input, output): values[index] = Int8Kernels.globalAveragePool(x, input: input, output: output, scheme: scheme)
            case let .zeroPad(padding, zeroPoint): values[index] = Int8Kernels.pad(x, padding, value: zeroPoint)
            }
            observe?(index, values[index]!)
            for input in node.inputs {
                remaining[input] -= 1
                if remaining[input] == 0 { values[input] = nil }
            }
        }
        let result = values[graph.output]!
        let parameters = table.activations[graph.output]!
        return Int8Kernels.dequantize(result, parameters)
    }
}

extension QuantizedValue {
    var count: Int { shape.reduce(1, *) }
}

/// Bias addition and requantization of int32 accumulators, per the scheme.
struct Requantizer {
    let scheme: QuantizationScheme
    let bias: [Int32]
    let multipliers: [Int32], leftShifts: [Int32], rightShifts: [Int32]
    let scales: [Float]
    let zeroPoint: Int32, lower: Int32, upper: Int32
    /// The TFLite scheme's per-channel constants as the vector kernels take them
    /// (`rc_requantization_prepare`), derived once instead of once per tile; empty for QNNPACK.
    let prepared: [Int64]
    /// A bound on |acc|, |bias| and |acc + bias| over every accumulator the layer's weights can
    /// produce from uint8 inputs.
    let accumulatorLimit: Int
    /// QNNPACK: whether |acc + bias| · scale stays below 2³⁰, so that the vector kernels may
    /// drop the limit that guards their float → int32 conversion (`rc_requantization.bounded`).
    let floatBounded: Bool

    init(layer: QuantizedLayer, input: AffineQuantization, output: AffineQuantization, clamp: FusedClamp, scheme: QuantizationScheme) {
        self.scheme = scheme
        bias = layer.bias
        let channels = layer.weightShape[0]
        switch scheme {
        case .tflite:
            // tflite::PopulateConvolutionQuantizationParams: double-precision effective scale.
            let fixed = (0..<channels).map { c in
                FixedPointMultiplier(Double(input.scale) * Double(layer.weightScale(channel: c)) / Double(output.scale))
            }
            multipliers = fixed.map(\.multiplier); leftShifts = fixed.map(\.leftShift); rightShifts = fixed.map(\.rightShift)
            scales = []
        case .qnnpack:
            // PyTorch generate_requantization_scales: weight scale × input scale × (1 / output scale), float32.
            let inverse = 1 / output.scale
            scales = (0..<channels).map { c in layer.weightScale(channel: c) * input.scale * inverse }
            multipliers = []; leftShifts = []; rightShifts = []
        }
        zeroPoint = output.zeroPoint
        (lower, upper) = output.clampRange(clamp)
        accumulatorLimit = QuantizedConv2D.accumulatorBound(weights: layer.weights, outputChannels: channels, inputZeroPoint: input.zeroPoint)
            + (layer.bias.map { Int($0.magnitude) }.max() ?? 0)
        floatBounded = scheme == .qnnpack && Double(accumulatorLimit) * Double(scales.max() ?? .infinity) < 0x1p30
        prepared = scheme == .tflite ? Self.prepare(multipliers: multipliers, leftShifts: leftShifts, rightShifts: rightShifts,
                                                    zeroPoint: zeroPoint, lower: lower, upper: upper, accumulatorBound: accumulatorLimit) : []
    }

    private static func prepare(multipliers: [Int32], leftShifts: [Int32], rightShifts: [Int32],
                                zeroPoint: Int32, lower: Int32, upper: Int32, accumulatorBound: Int) -> [Int64] {
        let channels = multipliers.count
        var table = [Int64](repeating: 0, count: rc_requantization_prepared_count(channels))
        multipliers.withUnsafeBufferPointer { m in leftShifts.withUnsafeBufferPointer { l in rightShifts.withUnsafeBufferPointer { r in
            var parameters = rc_requantization(scheme: 0, bias: nil, multiplier: m.baseAddress, left_shift: l.baseAddress,
                                               right_shift: r.baseAddress, scale: nil, zero_point: zeroPoint, lo: lower, hi: upper,
                                               prepared: nil, bounded: 0)
            table.withUnsafeMutableBufferPointer { rc_requantization_prepare(&parameters, channels, accumulatorBound, $0.baseAddress) }
        } } }
        return table
    }

    /// This requantization as oneDNN's kernels can perform it, when that is exact: the
    /// QNNPACK scheme (float scale, nearest even) with output zero point 0 and no clamp
    /// beyond [0, 255] — oneDNN adds a destination zero point before rounding, which moves
    /// ties — and accumulators that cannot reach 2²⁴ (exact int32 → float conversions).
    func floatRequantization() -> QuantizedConv2D.FloatRequantization? {
        guard scheme == .qnnpack, zeroPoint == 0, lower == 0, upper == 255, accumulatorLimit < 1 << 24 else { return nil }
        return QuantizedConv2D.FloatRequantization(scales: scales, bias: bias)
    }

    func apply(_ accumulators: IntegerBuffer<Int32>, pixels: Int, into output: IntegerBuffer<UInt8>) {
        let channels = bias.count
        accumulators.withUnsafeBufferPointer { acc in output.withUnsafeMutableBufferPointer { out in
            let a = UncheckedSendable(acc.baseAddress!), o = UncheckedSendable(out.baseAddress!)
            bias.withUnsafeBufferPointer { b in multipliers.withUnsafeBufferPointer { m in
                leftShifts.withUnsafeBufferPointer { l in rightShifts.withUnsafeBufferPointer { r in scales.withUnsafeBufferPointer { s in
                    // Chunks of at least 4096 values, so that wide layers with few pixels
                    // (7×7×960) are split between threads too.
                    Threading.parallelFor(pixels, minimumChunk: Swift.max(1, 4096 / channels)) { range in
                        let offset = range.lowerBound * channels
                        if scheme == .tflite {
                            rc_requantize_tflite(a.value + offset, range.count, channels, b.baseAddress, m.baseAddress, l.baseAddress,
                                                 r.baseAddress, zeroPoint, lower, upper, o.value + offset)
                        } else {
                            rc_requantize_float(a.value + offset, range.count, channels, b.baseAddress, s.baseAddress,
                                                zeroPoint, lower, upper, o.value + offset)
                        }
                    }
                } } }
            } }
        } }
    }
}

/// Quantized elementwise addition with the scheme's fixed-point rescaling.
struct AddKernel {
    let scheme: QuantizationScheme
    let a: AffineQuantization, b: AffineQuantization, output: AffineQuantization
    let lower: Int32, upper: Int32
    // tflite
    var leftShift: Int32 = 20
    var aMultiplier = FixedPointMultiplier(0), bMultiplier = FixedPointMultiplier(0), outMultiplier = FixedPointMultiplier(0)
    // qnnpack
    var zeroPointProduct: Int32 = 0, aFixed: UInt32 = 0, bFixed: UInt32 = 0, shift: Int32 = 0

    init(a: AffineQuantization, b: AffineQuantization, output: AffineQuantization, relu: Bool, scheme: QuantizationScheme) {
        self.scheme = scheme
        self.a = a; self.b = b; self.output = output
        (lower, upper) = output.clampRange(relu ? .relu : .none)
        switch scheme {
        case .tflite:
            // tflite PrepareGeneralSubOp/Add for int8: inputs to twice the larger scale, 20-bit headroom.
            let twiceMax = 2 * Double(Swift.max(a.scale, b.scale))
            aMultiplier = FixedPointMultiplier(Double(a.scale) / twiceMax)
            bMultiplier = FixedPointMultiplier(Double(b.scale) / twiceMax)
            outMultiplier = FixedPointMultiplier(twiceMax / (Double(1 << leftShift) * Double(output.scale)))
        case .qnnpack:
            // pytorch_qnnp_compute_add_quantization_params.
            let aRatio = a.scale / output.scale, bRatio = b.scale / output.scale
            let maxRatio = Swift.max(aRatio, bRatio)
            // QNNPACK asserts ratios in [2⁻¹⁴, 2⁸); degenerate scales (constant tensors) are
            // clamped into that range instead of overflowing.
            let exponent = Swift.min(Swift.max(Int32(maxRatio.bitPattern >> 23) - 127, -10), 7)
            shift = 21 - exponent
            let scaleMultiplier = Float(bitPattern: UInt32(21 - exponent + 127) << 23)
            let limit = Float(1 << 22)
            aFixed = UInt32(Swift.min(Swift.max(lrintf(aRatio * scaleMultiplier), 0), Int(limit)))
            bFixed = UInt32(Swift.min(Swift.max(lrintf(bRatio * scaleMultiplier), 0), Int(limit)))
            zeroPointProduct = Int32(bitPattern: 0 &- (aFixed &* UInt32(a.zeroPoint) &+ bFixed &* UInt32(b.zeroPoint)))
        }
    }

    func apply(_ x: QuantizedValue, _ y: QuantizedValue) -> QuantizedValue {
        precondition(x.shape == y.shape, "int8 add: shape \(x.shape) does not match \(y.shape)")
        let result = IntegerBuffer<UInt8>(count: x.count)
        x.buffer.withUnsafeBufferPointer { p in y.buffer.withUnsafeBufferPointer { q in result.withUnsafeMutableBufferPointer { o in
            let (pa, qa, oa) = (UncheckedSendable(p.baseAddress!), UncheckedSendable(q.baseAddress!), UncheckedSendable(o.baseAddress!))
            Threading.parallelFor(x.count, minimumChunk: 16384) { range in
                let start = range.lowerBound
                if scheme == .tflite {
                    rc_add_tflite(pa.value + start, qa.value + start, range.count, a.zeroPoint, b.zeroPoint, leftShift,
                                  aMultiplier.multiplier, aMultiplier.rightShift, bMultiplier.multiplier, bMultiplier.rightShift,
                                  outMultiplier.multiplier, outMultiplier.rightShift, output.zeroPoint, lower, upper, oa.value + start)
                } else {
                    let mask = Int32((UInt32(1) << UInt32(shift)) &- 1)
                    rc_add_qnnpack(pa.value + start, qa.value + start, range.count, zeroPointProduct, aFixed, bFixed, shift,
                                   mask, mask >> 1, output.zeroPoint, lower, upper, oa.value + start)
                }
            }
        } } }
        return QuantizedValue(buffer: result, shape: x.shape)
    }
}

