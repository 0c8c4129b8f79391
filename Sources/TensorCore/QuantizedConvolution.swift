import CDNNL
import Synchronization

/// A 64-byte-aligned array of fixed-width integers: activation and accumulator storage
/// for the int8 mobile engine. Reference semantics (the engine owns and reuses buffers).
public final class IntegerBuffer<Element: FixedWidthInteger & Sendable>: @unchecked Sendable {
    public let count: Int
    let base: UnsafeMutablePointer<Element>
    private let bytes: Int

    /// A buffer of `count` elements with unspecified contents.
    public init(count: Int) {
        precondition(count >= 0, "negative buffer size \(count)")
        self.count = count
        bytes = Swift.max(count, 1) * MemoryLayout<Element>.stride
        base = BufferPool.shared.take(bytes: bytes).bindMemory(to: Element.self, capacity: Swift.max(count, 1))
    }

    public convenience init(_ values: [Element]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { source in
            if let address = source.baseAddress { base.update(from: address, count: values.count) }
        }
    }

    deinit { BufferPool.shared.give(UnsafeMutableRawPointer(base), bytes: bytes) }

    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Element>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: base, count: count))
    }

    public func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Element>) throws -> R) rethrows -> R {
        try body(UnsafeMutableBufferPointer(start: base, count: count))
    }

    public var array: [Element] { Array(UnsafeBufferPointer(start: base, count: count)) }
}

/// An int8 convolution on oneDNN's u8 × s8 → s32 kernels (AVX-512 VNNI where present).
///
/// Activations are uint8, channels-last (NHWC), with one zero point for the whole
/// input; weights are int8 with zero point 0 (symmetric, as both mobile schemes quantize
/// them). The result is the exact int32 accumulator Σ (x − zp)·w per output element,
/// channels-last, with padded cells counting as real zeros (x = zp): callers add the bias
/// and requantize with their own scheme's arithmetic. Weights are packed into the
/// kernel's layout once per input geometry.
public final class QuantizedConv2D: @unchecked Sendable {
    public let weightShape: [Int]
    public let config: Conv2DConfig
    public let inputZeroPoint: Int32
    /// When set, the convolution writes uint8 values itself (`requantize`) instead of int32
    /// accumulators (`accumulate`).
    public let requantization: FloatRequantization?
    private let weights: [Int8]
    private let plans = DNNLPlanCache<[Int], ChannelsLastPlan>()

    /// A requantization oneDNN's kernels perform in their epilogue: the output value is
    /// clamp(round((float(acc) + float(bias)) · scale), 0, 255), rounding to nearest even, with
    /// zero point 0. That equals QNNPACK's float(acc + bias) · scale when every |acc + bias|,
    /// |acc| and |bias| stays below 2²⁴ (all int32 → float conversions exact); callers check
    /// that bound (`QuantizedConv2D.accumulatorBound`).
    public struct FloatRequantization: Sendable {
        public let scales: [Float]
        public let bias: [Int32]
        public init(scales: [Float], bias: [Int32]) { self.scales = scales; self.bias = bias }
    }

    /// - Parameters:
    ///   - weights: OIHW int8 weights (`[O, I/groups, kh, kw]`).
    ///   - inputZeroPoint: the uint8 input's zero point.
    ///   - requantization: ask oneDNN for uint8 outputs with this requantization.
    public init(weights: [Int8], shape: [Int], config: Conv2DConfig, inputZeroPoint: Int32,
                requantization: FloatRequantization? = nil) {
        precondition(shape.count == 4 && weights.count == shape.reduce(1, *),
                     "int8 conv weights: \(weights.count) values for shape \(shape)")
        precondition(requantization.map { $0.scales.count == shape[0] && $0.bias.count == shape[0] } ?? true,
                     "int8 conv requantization: one scale and bias per output channel (\(shape[0]))")
        self.weights = weights
        weightShape = shape
        self.config = config
        self.inputZeroPoint = inputZeroPoint
        self.requantization = requantization
    }

    /// The largest |Σ (x − zp)·w| any output channel can reach over uint8 inputs x.
    /// - Complexity: O(weights).
    public static func accumulatorBound(weights: [Int8], outputChannels: Int, inputZeroPoint: Int32) -> Int {
        let perChannel = weights.count / Swift.max(outputChannels, 1)
        let largestInput = Int(Swift.max(inputZeroPoint, 255 - inputZeroPoint))
        var largest = 0
        for channel in 0..<outputChannels {
            var sum = 0
            for index in (channel * perChannel)..<((channel + 1) * perChannel) { sum += Int(weights[index].magnitude) }
            largest = Swift.max(largest, sum * largestInput)
        }
        return largest
    }

    /// The NCHW output shape for an NCHW input shape.
    public func outputShape(input: [Int]) -> [Int] { config.outputShape(input: input, weight: weightShape) }

    /// Writes Σ (x − zp)·w for every output element.
    /// - Parameters:
    ///   - input: NHWC uint8 values of the NCHW-described `inputShape`.
    ///   - output: room for `outputShape(input:)` int32 values, NHWC.
    public func accumulate(_ input: IntegerBuffer<UInt8>, inputShape: [Int], into output: IntegerBuffer<Int32>) throws {
        precondition(requantization == nil, "int8 conv: this convolution requantizes; call requantize")
        try run(input, inputShape: inputShape, destination: UnsafeMutableRawPointer(output.base), count: output.count)
    }

    /// Writes the requantized uint8 output (see `FloatRequantization`).
    /// - Parameters:
    ///   - input: NHWC uint8 values of the NCHW-described `inputShape`.
    ///   - output: room for `outputShape(input:)` uint8 values, NHWC.
    public func requantize(_ input: IntegerBuffer<UInt8>, inputShape: [Int], into output: IntegerBuffer<UInt8>) throws {
        precondition(requantization != nil, "int8 conv: no requantization given; call accumulate")
        try run(input, inputShape: inputShape, destination: UnsafeMutableRawPointer(output.base), count: output.count)
    }

    private func run(_ input: IntegerBuffer<UInt8>, inputShape: [Int], destination: UnsafeMutableRawPointer, count: Int) throws {
        let outputShape = outputShape(input: inputShape)
        precondition(input.count >= inputShape.reduce(1, *) && count >= outputShape.reduce(1, *),
                     "int8 conv: buffers too small for \(inputShape) → \(outputShape)")
        let plan = try plans.plan(for: inputShape) {
            try weights.withUnsafeBytes { bytes in
                let bias = requantization.map { $0.bias.map(Float.init) }
                return try bias.withOptionalBufferPointer { biasPointer in
                    try ChannelsLastPlan(input: inputShape, output: outputShape, types: (dnnl_u8, dnnl_s8, requantization == nil ? dnnl_s32 : dnnl_u8),
                                         weights: bytes.baseAddress!, weightShape: weightShape, config: config, bias: biasPointer,
                                         zeroPoint: inputZeroPoint, activation: .none, outputScales: requantization?.scales)
                }
            }
        }
        try plan.run(source: UnsafeMutableRawPointer(input.base), destination: destination)
    }
}

/// A float32 convolution on channels-last (NHWC) activations, with its bias and activation
/// fused, weights packed once per input geometry: the mobile fp32 engine's convolution,
/// which keeps activations channels-last from layer to layer instead of reordering them
/// around every call as the PC engine's NCHW convolution does. 1×1, depthwise and first
/// layers (few input channels) run on robustctl's own kernels (`ThinConvolution`), the others
/// on oneDNN.
public final class ChannelsLastConv2D: @unchecked Sendable {
    public let weightShape: [Int]
    public let config: Conv2DConfig
    public let activation: FusedActivation
    // Tensors share storage with the caller's parameters (copy-on-write): no copy here.
    private let weights: Tensor
    private let bias: Tensor
    private let plans = DNNLPlanCache<[Int], ChannelsLastPlan>()
    let thin: ThinConvolution?
    /// Whether this layer may run on oneDNN's Winograd kernel (`suitsWinograd`); per input
    /// shape, `runsWinograd(inputShape:)` tells whether it does.
    let winograd: Bool

    /// - Parameters:
    ///   - weights: OIHW float weights (`[O, I/groups, kh, kw]`).
    ///   - bias: one value per output channel.
    ///   - ownKernels: false runs every layer on oneDNN (tests and benchmarks compare the two).
    ///   - winograd: false keeps 3×3 layers on oneDNN's direct kernels (tests and benchmarks
    ///     compare the two).
    public init(weights: Tensor, bias: Tensor, config: Conv2DConfig, activation: FusedActivation, ownKernels: Bool = true,
                winograd: Bool = true) {
        precondition(weights.rank == 4 && bias.count == weights.shape[0],
                     "channels-last conv: weights \(weights.shape) with bias \(bias.shape)")
        self.weights = weights
        self.bias = bias
        weightShape = weights.shape
        self.config = config
        self.activation = activation
        thin = ownKernels ? ThinConvolution(weights: weights, config: config) : nil
        self.winograd = winograd && Self.suitsWinograd(weightShape: weights.shape, config: config, activation: activation)
    }

    /// 3×3 stride-1 layers of at least 48 input and output channels, without ReLU6 (oneDNN's
    /// Winograd kernels take no clip), on maps of at least 128 output pixels per call
    /// (`winogradPays`): there oneDNN's F(4, 3) Winograd kernel, with the reorders from and to
    /// NHWC around it, takes 0.35–0.7× the time of its direct NHWC kernels (ResNet50 and
    /// InceptionV3 layers, Docs/PERFORMANCE-LOG.md). It is slower on 32-channel layers
    /// (InceptionV3's stem) once the reorders are paid, and on small maps, where its weights —
    /// 4× the direct kernel's after the transform, 17 MB for 512 × 512 — are read for few
    /// pixels (7 × 7 × 512: 1.35× the direct time). Outputs differ from the direct kernels' by
    /// a few units in the last place of float32 (≈ 1e-6 relative).
    static func suitsWinograd(weightShape: [Int], config: Conv2DConfig, activation: FusedActivation) -> Bool {
        weightShape[2] == 3 && weightShape[3] == 3 && config.groups == 1 && config.strideH == 1 && config.strideW == 1
            && config.dilationH == 1 && config.dilationW == 1 && activation != .relu6 && min(weightShape[0], weightShape[1]) >= 48
    }

    static func winogradPays(outputShape: [Int]) -> Bool { outputShape[0] * outputShape[2] * outputShape[3] >= 128 }

    /// The NCHW output shape for an NCHW input shape.
    public func outputShape(input: [Int]) -> [Int] { config.outputShape(input: input, weight: weightShape) }

    func withBias<R>(_ body: (UnsafePointer<Float>) -> R) -> R { bias.withUnsafeBufferPointer { body($0.baseAddress!) } }

    /// Whether `apply(_:inputShape:residual:into:)` can add a residual in the kernel.
    public var fusesResidual: Bool {
        if case .pointwise = thin { return activation == .none }
        return false
    }

    /// Convolves NHWC `input` (of the NCHW-described `inputShape`) into NHWC `output`; with a
    /// `residual` (NHWC, the output's shape; only where `fusesResidual`),
    /// output = `residualActivation`(conv + residual).
    public func apply(_ input: UnsafeBufferPointer<Float>, inputShape: [Int], residual: UnsafeBufferPointer<Float>? = nil,
                      residualActivation: FusedActivation = .none, into output: UnsafeMutableBufferPointer<Float>) throws {
        let outputShape = outputShape(input: inputShape)
        precondition(input.count >= inputShape.reduce(1, *) && output.count >= outputShape.reduce(1, *),
                     "channels-last conv: buffers too small for \(inputShape) → \(outputShape)")
        precondition(residual == nil || (fusesResidual && residual!.count >= outputShape.reduce(1, *)),
                     "channels-last conv: no residual for this layer or a residual too small for \(outputShape)")
        if let thin {
            withBias { b in
                thin.apply(input.baseAddress!, inputShape: inputShape, outputShape: outputShape, weightShape: weightShape, config: config,
                           bias: b, activation: residual == nil ? activation : residualActivation,
                           residual: residual?.baseAddress, into: output.baseAddress!)
            }
            return
        }
        try plan(inputShape: inputShape).run(source: UnsafeMutableRawPointer(mutating: input.baseAddress!),
                                             destination: UnsafeMutableRawPointer(output.baseAddress!))
    }

    private func plan(inputShape: [Int]) throws -> ChannelsLastPlan {
        let outputShape = outputShape(input: inputShape)
        return try plans.plan(for: inputShape) {
            try weights.withUnsafeBufferPointer { w in
                try bias.withUnsafeBufferPointer { b in
                    let make = { (winograd: Bool) in
                        try ChannelsLastPlan(input: inputShape, output: outputShape, types: (dnnl_f32, dnnl_f32, dnnl_f32),
                                             weights: UnsafeRawPointer(w.baseAddress!), weightShape: self.weightShape, config: self.config,
                                             bias: UnsafeRawPointer(b.baseAddress!), zeroPoint: 0, activation: self.activation,
                                             winograd: winograd)
                    }
                    // oneDNN has no Winograd kernel for every geometry (or CPU): direct then.
                    if winograd && Self.winogradPays(outputShape: outputShape), let plan = try? make(true) { return plan }
                    return try make(false)
                }
            }
        }
    }

    /// Whether oneDNN runs this layer on `inputShape` with a Winograd kernel (not on small
    /// maps; and it has none for some geometries and CPUs: the direct kernels run then).
    func runsWinograd(inputShape: [Int]) throws -> Bool {
        guard thin == nil, winograd else { return false }
        return try plan(inputShape: inputShape).isWinograd
    }

    /// dL/d(input) from dL/d(output) of the convolution before its activation (callers
    /// mask the gradient by the activation first), both NHWC; the weights are reordered for
    /// the backward kernel once.
    public func backwardData(_ gradOutput: UnsafeBufferPointer<Float>, inputShape: [Int],
                             into gradInput: UnsafeMutableBufferPointer<Float>) throws {
        let outputShape = outputShape(input: inputShape)
        precondition(gradOutput.count >= outputShape.reduce(1, *) && gradInput.count >= inputShape.reduce(1, *),
                     "channels-last conv backward: buffers too small for \(inputShape) → \(outputShape)")
        try OneDNNConvolution.backwardData(gradOutput, outputShape: outputShape, weight: weights, inputShape: inputShape, config: config,
                                           channelsLast: true, into: gradInput)
    }
}

/// A oneDNN forward convolution between channels-last buffers, with the weights (and bias)
/// packed into the kernel's chosen layout at creation.
final class ChannelsLastPlan: @unchecked Sendable {
    let primitive: dnnl_primitive_t
    var sourceDescriptor: dnnl_memory_desc_t
    var destinationDescriptor: dnnl_memory_desc_t
    var weightDescriptor: dnnl_memory_desc_t
    var biasDescriptor: dnnl_memory_desc_t
    var zeroPointDescriptor: dnnl_memory_desc_t
    let packedWeights: UnsafeMutableRawPointer
    let packedBias: UnsafeMutableRawPointer?
    var zeroPoint: Int32
    let hasZeroPoint: Bool
    /// Winograd plans only: the kernel's own activation layouts and the reorders from and to
    /// the caller's NHWC buffers.
    private let blocked: BlockedActivations?
    var isWinograd: Bool { blocked != nil }

    private struct BlockedActivations {
        var source: dnnl_memory_desc_t, destination: dnnl_memory_desc_t
        let sourceBytes: Int, destinationBytes: Int
        let toBlocked: dnnl_primitive_t, fromBlocked: dnnl_primitive_t
    }

    /// - Parameters:
    ///   - types: source, weight and destination data types.
    ///   - bias: float32, one per output channel.
    ///   - zeroPoint: the source's zero point (integer sources).
    ///   - outputScales: per-output-channel factors applied to accumulator + bias before the
    ///     conversion to the destination type (integer destinations).
    ///   - winograd: oneDNN's Winograd algorithm in its own activation layouts, reordered
    ///     from and to NHWC on every run; throws where oneDNN has no such kernel.
    init(input: [Int], output: [Int], types: (dnnl_data_type_t, dnnl_data_type_t, dnnl_data_type_t), weights: UnsafeRawPointer,
         weightShape: [Int], config: Conv2DConfig, bias: UnsafeRawPointer?, zeroPoint: Int32, activation: FusedActivation,
         outputScales: [Float]? = nil, winograd: Bool = false) throws {
        let engine = DNNLRuntime.shared.engine
        self.zeroPoint = zeroPoint
        sourceDescriptor = try integerDescriptor(input, types.0, dnnl_nhwc)
        destinationDescriptor = try integerDescriptor(output, types.2, dnnl_nhwc)
        biasDescriptor = try integerDescriptor([weightShape[0]], dnnl_f32, dnnl_x)
        let grouped = config.groups > 1
        let weightDims = grouped ? [config.groups, weightShape[0] / config.groups, weightShape[1], weightShape[2], weightShape[3]] : weightShape
        var plainWeights = try integerDescriptor(weightDims, types.1, grouped ? dnnl_goihw : dnnl_oihw)
        var anyWeights = try integerDescriptor(weightDims, types.1, dnnl_format_tag_any)
        zeroPointDescriptor = try integerDescriptor([1], dnnl_s32, dnnl_x)
        let g = OneDNNConvolution.Geometry(config)
        var descriptor = dnnl_convolution_desc_t()
        var (source, destination, biasArgument) = (sourceDescriptor, destinationDescriptor, biasDescriptor)
        if winograd {
            source = try integerDescriptor(input, types.0, dnnl_format_tag_any)
            destination = try integerDescriptor(output, types.2, dnnl_format_tag_any)
        }
        let status = withUnsafePointer(to: &biasArgument) { biasPointer in
            dnnl_dilated_convolution_forward_desc_init(&descriptor, dnnl_forward_inference,
                                                       winograd ? dnnl_convolution_winograd : dnnl_convolution_direct, &source, &anyWeights,
                                                       bias == nil ? nil : biasPointer, &destination, g.strides, g.dilates, g.paddingL, g.paddingR)
        }
        try check(status, "convolution_forward_desc_init(channels-last)")
        var attributes: dnnl_primitive_attr_t?
        try check(dnnl_primitive_attr_create(&attributes), "primitive_attr_create")
        defer { dnnl_primitive_attr_destroy(attributes) }
        // Most int8 inputs come out of a ReLU with zero point 0; oneDNN's kernels without
        // zero-point compensation are markedly faster, so ask for it only when needed.
        hasZeroPoint = zeroPoint != 0
        if hasZeroPoint {
            var runtime = Int32(DNNL_RUNTIME_S32_VAL_REP)
            try check(dnnl_primitive_attr_set_zero_points(attributes, DNNL_ARG_SRC, 1, 0, &runtime), "primitive_attr_set_zero_points")
        }
        if let outputScales {
            try check(dnnl_primitive_attr_set_output_scales(attributes, Int64(outputScales.count), 1 << 1, outputScales),
                      "primitive_attr_set_output_scales")
        }
        if activation != .none {
            var postOps: dnnl_post_ops_t?
            try check(dnnl_post_ops_create(&postOps), "post_ops_create")
            defer { dnnl_post_ops_destroy(postOps) }
            let (kind, alpha, beta): (dnnl_alg_kind_t, Float, Float) = activation == .relu ? (dnnl_eltwise_relu, 0, 0) : (dnnl_eltwise_clip, 0, 6)
            try check(dnnl_post_ops_append_eltwise(postOps, 1, kind, alpha, beta), "post_ops_append_eltwise")
            try check(dnnl_primitive_attr_set_post_ops(attributes, postOps), "primitive_attr_set_post_ops")
        }
        var pd: dnnl_primitive_desc_t?
        if winograd {
            pd = try Self.winogradF43(&descriptor, attributes: attributes)
        } else {
            try check(dnnl_primitive_desc_create(&pd, &descriptor, attributes, engine, nil),
                      "primitive_desc_create(channels-last conv \(input) × \(weightShape))")
        }
        defer { dnnl_primitive_desc_destroy(pd) }
        guard let chosen = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0) else {
            throw DNNLError(call: "primitive_desc_query_md(weights)", status: -1)
        }
        weightDescriptor = chosen.pointee
        let blocked = winograd ? try Self.blockedActivations(pd!, source: sourceDescriptor, destination: destinationDescriptor) : nil
        var primitive: dnnl_primitive_t?
        let created = dnnl_primitive_create(&primitive, pd)
        if created != dnnl_success, let blocked {
            dnnl_primitive_destroy(blocked.toBlocked)
            dnnl_primitive_destroy(blocked.fromBlocked)
        }
        try check(created, "primitive_create(channels-last conv)")
        self.blocked = blocked
        self.primitive = primitive!
        // Pack the weights once into the layout the kernel chose.
        let packedBytes = dnnl_memory_desc_get_size(&weightDescriptor)
        packedWeights = UnsafeMutableRawPointer.allocate(byteCount: Swift.max(packedBytes, 64), alignment: 64)
        if let bias {
            let bytes = weightShape[0] * MemoryLayout<Float>.stride
            packedBias = UnsafeMutableRawPointer.allocate(byteCount: Swift.max(bytes, 64), alignment: 64)
            packedBias!.copyMemory(from: bias, byteCount: bytes)
        } else {
            packedBias = nil
        }
        let reorder = try makeReorder(from: plainWeights, to: weightDescriptor, what: "weights")
        defer { dnnl_primitive_destroy(reorder) }
        var from: dnnl_memory_t?, to: dnnl_memory_t?
        try check(dnnl_memory_create(&from, &plainWeights, engine, UnsafeMutableRawPointer(mutating: weights)), "memory_create")
        defer { dnnl_memory_destroy(from) }
        try check(dnnl_memory_create(&to, &weightDescriptor, engine, packedWeights), "memory_create")
        defer { dnnl_memory_destroy(to) }
        let stream = try DNNLRuntime.shared.makeStream()
        defer { dnnl_stream_destroy(stream) }
        let args = [dnnl_exec_arg_t(arg: DNNL_ARG_FROM, memory: from), dnnl_exec_arg_t(arg: DNNL_ARG_TO, memory: to)]
        try check(dnnl_primitive_execute(reorder, stream, 2, args), "primitive_execute(reorder)")
        try check(dnnl_stream_wait(stream), "stream_wait")
    }

    deinit {
        dnnl_primitive_destroy(primitive)
        packedWeights.deallocate()
        packedBias?.deallocate()
        if let blocked {
            dnnl_primitive_destroy(blocked.toBlocked)
            dnnl_primitive_destroy(blocked.fromBlocked)
        }
    }

    /// oneDNN's F(4×4, 3×3) Winograd kernel for `descriptor`, skipping its F(2×2, 3×3) kernel,
    /// which it prefers for some geometries: that one's results depend on the thread count
    /// at small batches (measured: batch 2, 1 vs 2 threads), the F(4, 3) kernel's do not
    /// (batches 1–8, 1–4 threads), and it is the faster of the two on ResNet50's and
    /// InceptionV3's 3×3 layers of at least 48 channels.
    private static func winogradF43(_ descriptor: inout dnnl_convolution_desc_t, attributes: dnnl_primitive_attr_t?) throws
        -> dnnl_primitive_desc_t {
        var iterator: dnnl_primitive_desc_iterator_t?
        try check(dnnl_primitive_desc_iterator_create(&iterator, &descriptor, attributes, DNNLRuntime.shared.engine, nil),
                  "primitive_desc_iterator_create(winograd)")
        defer { dnnl_primitive_desc_iterator_destroy(iterator) }
        repeat {
            guard let candidate = dnnl_primitive_desc_iterator_fetch(iterator) else { break }
            var name: UnsafePointer<CChar>?
            if dnnl_primitive_desc_query(candidate, dnnl_query_impl_info_str, 0, &name) == dnnl_success,
               let name, String(cString: name).contains("wino_4x3") {
                return candidate
            }
            dnnl_primitive_desc_destroy(candidate)
        } while dnnl_primitive_desc_iterator_next(iterator) == dnnl_success
        throw DNNLError(call: "primitive_desc_iterator(winograd F(4, 3))", status: Int(dnnl_unimplemented.rawValue))
    }

    /// The layouts `pd` chose for its source and destination, and reorders to the first from
    /// `source` and from the second to `destination`.
    private static func blockedActivations(_ pd: dnnl_primitive_desc_t, source: dnnl_memory_desc_t,
                                           destination: dnnl_memory_desc_t) throws -> BlockedActivations {
        guard let chosenSource = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0),
              let chosenDestination = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0) else {
            throw DNNLError(call: "primitive_desc_query_md(activations)", status: -1)
        }
        var (kernel, kernelOutput) = (chosenSource.pointee, chosenDestination.pointee)
        let toBlocked = try makeReorder(from: source, to: kernel, what: "activations")
        do {
            let fromBlocked = try makeReorder(from: kernelOutput, to: destination, what: "activations")
            return BlockedActivations(source: kernel, destination: kernelOutput, sourceBytes: dnnl_memory_desc_get_size(&kernel),
                                      destinationBytes: dnnl_memory_desc_get_size(&kernelOutput), toBlocked: toBlocked, fromBlocked: fromBlocked)
        } catch {
            dnnl_primitive_destroy(toBlocked)
            throw error
        }
    }

    func run(source: UnsafeMutableRawPointer, destination: UnsafeMutableRawPointer) throws {
        Threading.applyToOpenMP()
        let engine = DNNLRuntime.shared.engine
        let stream = try DNNLRuntime.shared.makeStream()
        defer { dnnl_stream_destroy(stream) }
        var src: dnnl_memory_t?, wei: dnnl_memory_t?, dst: dnnl_memory_t?, zp: dnnl_memory_t?, bia: dnnl_memory_t?
        var userSource: dnnl_memory_t?, userDestination: dnnl_memory_t?
        var scratch: [(pointer: UnsafeMutableRawPointer, bytes: Int)] = []
        defer {
            for memory in [src, wei, dst, zp, bia, userSource, userDestination] { if let memory { dnnl_memory_destroy(memory) } }
            for buffer in scratch { BufferPool.shared.give(buffer.pointer, bytes: buffer.bytes) }
        }
        if var blocked {
            let (blockedSource, blockedDestination) = (BufferPool.shared.take(bytes: blocked.sourceBytes), BufferPool.shared.take(bytes: blocked.destinationBytes))
            scratch = [(blockedSource, blocked.sourceBytes), (blockedDestination, blocked.destinationBytes)]
            try check(dnnl_memory_create(&userSource, &sourceDescriptor, engine, source), "memory_create")
            try check(dnnl_memory_create(&userDestination, &destinationDescriptor, engine, destination), "memory_create")
            try check(dnnl_memory_create(&src, &blocked.source, engine, blockedSource), "memory_create")
            try check(dnnl_memory_create(&dst, &blocked.destination, engine, blockedDestination), "memory_create")
            let toBlocked = [dnnl_exec_arg_t(arg: DNNL_ARG_FROM, memory: userSource), dnnl_exec_arg_t(arg: DNNL_ARG_TO, memory: src)]
            try check(dnnl_primitive_execute(blocked.toBlocked, stream, 2, toBlocked), "primitive_execute(reorder to the kernel's layout)")
        } else {
            try check(dnnl_memory_create(&src, &sourceDescriptor, engine, source), "memory_create")
            try check(dnnl_memory_create(&dst, &destinationDescriptor, engine, destination), "memory_create")
        }
        try check(dnnl_memory_create(&wei, &weightDescriptor, engine, packedWeights), "memory_create")
        var args = [dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: src), dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: wei),
                    dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: dst)]
        if let packedBias {
            try check(dnnl_memory_create(&bia, &biasDescriptor, engine, packedBias), "memory_create")
            args.append(dnnl_exec_arg_t(arg: DNNL_ARG_BIAS, memory: bia))
        }
        try withUnsafeMutablePointer(to: &zeroPoint) { zeroPointAddress in
            if hasZeroPoint {
                try check(dnnl_memory_create(&zp, &zeroPointDescriptor, engine, UnsafeMutableRawPointer(zeroPointAddress)), "memory_create")
                args.append(dnnl_exec_arg_t(arg: DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC, memory: zp))
            }
            try check(dnnl_primitive_execute(primitive, stream, Int32(args.count), args), "primitive_execute(channels-last conv)")
            if let blocked {
                let fromBlocked = [dnnl_exec_arg_t(arg: DNNL_ARG_FROM, memory: dst), dnnl_exec_arg_t(arg: DNNL_ARG_TO, memory: userDestination)]
                try check(dnnl_primitive_execute(blocked.fromBlocked, stream, 2, fromBlocked), "primitive_execute(reorder to NHWC)")
            }
            try check(dnnl_stream_wait(stream), "stream_wait")
        }
    }
}

func integerDescriptor(_ shape: [Int], _ type: dnnl_data_type_t, _ tag: dnnl_format_tag_t) throws -> dnnl_memory_desc_t {
    var descriptor = dnnl_memory_desc_t()
    try check(dnnl_memory_desc_init_by_tag(&descriptor, Int32(shape.count), dnnlDims(shape), type, tag),
              "memory_desc_init_by_tag \(shape)")
    return descriptor
}

extension Optional where Wrapped == [Float] {
    /// Calls `body` with the array's base address, or nil.
    func withOptionalBufferPointer<R>(_ body: (UnsafeRawPointer?) throws -> R) rethrows -> R {
        guard let array = self else { return try body(nil) }
        return try array.withUnsafeBufferPointer { try body(UnsafeRawPointer($0.baseAddress!)) }
    }
}
