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
    private let weights: [Int8]
    private let plans = Mutex<[[Int]: Plan]>([:])

    /// - Parameters:
    ///   - weights: OIHW int8 weights (`[O, I/groups, kh, kw]`).
    ///   - inputZeroPoint: the uint8 input's zero point.
    public init(weights: [Int8], shape: [Int], config: Conv2DConfig, inputZeroPoint: Int32) {
        precondition(shape.count == 4 && weights.count == shape.reduce(1, *),
                     "int8 conv weights: \(weights.count) values for shape \(shape)")
        self.weights = weights
        weightShape = shape
        self.config = config
        self.inputZeroPoint = inputZeroPoint
    }

    /// The NCHW output shape for an NCHW input shape.
    public func outputShape(input: [Int]) -> [Int] { config.outputShape(input: input, weight: weightShape) }

    /// Writes Σ (x − zp)·w for every output element.
    /// - Parameters:
    ///   - input: NHWC uint8 values of the NCHW-described `inputShape`.
    ///   - output: room for `outputShape(input:)` int32 values, NHWC.
    public func accumulate(_ input: IntegerBuffer<UInt8>, inputShape: [Int], into output: IntegerBuffer<Int32>) throws {
        let outputShape = outputShape(input: inputShape)
        precondition(input.count >= inputShape.reduce(1, *) && output.count >= outputShape.reduce(1, *),
                     "int8 conv: buffers too small for \(inputShape) → \(outputShape)")
        let plan = try plan(for: inputShape, outputShape: outputShape)
        try plan.run(source: UnsafeMutableRawPointer(input.base), destination: UnsafeMutableRawPointer(output.base))
    }

    private func plan(for inputShape: [Int], outputShape: [Int]) throws -> Plan {
        if let plan = plans.withLock({ $0[inputShape] }) { return plan }
        let plan = try Plan(input: inputShape, output: outputShape, weights: weights, weightShape: weightShape,
                            config: config, zeroPoint: inputZeroPoint)
        return plans.withLock { cache in
            if let existing = cache[inputShape] { return existing }
            cache[inputShape] = plan
            return plan
        }
    }

    final class Plan: @unchecked Sendable {
        let primitive: dnnl_primitive_t
        var sourceDescriptor: dnnl_memory_desc_t
        var destinationDescriptor: dnnl_memory_desc_t
        var weightDescriptor: dnnl_memory_desc_t
        var zeroPointDescriptor: dnnl_memory_desc_t
        let packedWeights: UnsafeMutableRawPointer
        var zeroPoint: Int32
        let hasZeroPoint: Bool

        init(input: [Int], output: [Int], weights: [Int8], weightShape: [Int], config: Conv2DConfig, zeroPoint: Int32) throws {
            let engine = DNNLRuntime.shared.engine
            self.zeroPoint = zeroPoint
            sourceDescriptor = try integerDescriptor(input, dnnl_u8, dnnl_nhwc)
            destinationDescriptor = try integerDescriptor(output, dnnl_s32, dnnl_nhwc)
            let grouped = config.groups > 1
            let weightDims = grouped ? [config.groups, weightShape[0] / config.groups, weightShape[1], weightShape[2], weightShape[3]] : weightShape
            var plainWeights = try integerDescriptor(weightDims, dnnl_s8, grouped ? dnnl_goihw : dnnl_oihw)
            var anyWeights = try integerDescriptor(weightDims, dnnl_s8, dnnl_format_tag_any)
            zeroPointDescriptor = try integerDescriptor([1], dnnl_s32, dnnl_x)
            let g = OneDNNConvolution.Geometry(config)
            var descriptor = dnnl_convolution_desc_t()
            try check(dnnl_dilated_convolution_forward_desc_init(&descriptor, dnnl_forward_inference, dnnl_convolution_direct,
                                                                 &sourceDescriptor, &anyWeights, nil, &destinationDescriptor,
                                                                 g.strides, g.dilates, g.paddingL, g.paddingR),
                      "convolution_forward_desc_init(int8)")
            var attributes: dnnl_primitive_attr_t?
            try check(dnnl_primitive_attr_create(&attributes), "primitive_attr_create")
            defer { dnnl_primitive_attr_destroy(attributes) }
            // Most inputs come out of a ReLU with zero point 0; oneDNN's kernels without
            // zero-point compensation are markedly faster, so ask for it only when needed.
            hasZeroPoint = zeroPoint != 0
            if hasZeroPoint {
                var runtime = Int32(DNNL_RUNTIME_S32_VAL_REP)
                try check(dnnl_primitive_attr_set_zero_points(attributes, DNNL_ARG_SRC, 1, 0, &runtime), "primitive_attr_set_zero_points")
            }
            var pd: dnnl_primitive_desc_t?
            try check(dnnl_primitive_desc_create(&pd, &descriptor, attributes, engine, nil),
                      "primitive_desc_create(int8 conv \(input) × \(weightShape))")
            defer { dnnl_primitive_desc_destroy(pd) }
            guard let chosen = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0) else {
                throw DNNLError(call: "primitive_desc_query_md(weights)", status: -1)
            }
            weightDescriptor = chosen.pointee
            var primitive: dnnl_primitive_t?
            try check(dnnl_primitive_create(&primitive, pd), "primitive_create(int8 conv)")
            self.primitive = primitive!
            // Pack the weights once into the layout the kernel chose.
            let packedBytes = dnnl_memory_desc_get_size(&weightDescriptor)
            packedWeights = UnsafeMutableRawPointer.allocate(byteCount: Swift.max(packedBytes, 64), alignment: 64)
            var reorderPD: dnnl_primitive_desc_t?
            try check(dnnl_reorder_primitive_desc_create(&reorderPD, &plainWeights, engine, &weightDescriptor, engine, nil),
                      "reorder_primitive_desc_create(int8 weights)")
            defer { dnnl_primitive_desc_destroy(reorderPD) }
            var reorder: dnnl_primitive_t?
            try check(dnnl_primitive_create(&reorder, reorderPD), "primitive_create(reorder)")
            defer { dnnl_primitive_destroy(reorder) }
            var from: dnnl_memory_t?, to: dnnl_memory_t?
            try weights.withUnsafeBufferPointer { plain in
                try check(dnnl_memory_create(&from, &plainWeights, engine, UnsafeMutableRawPointer(mutating: plain.baseAddress!)), "memory_create")
                defer { dnnl_memory_destroy(from) }
                try check(dnnl_memory_create(&to, &weightDescriptor, engine, packedWeights), "memory_create")
                defer { dnnl_memory_destroy(to) }
                let stream = try DNNLRuntime.shared.makeStream()
                defer { dnnl_stream_destroy(stream) }
                let args = [dnnl_exec_arg_t(arg: DNNL_ARG_FROM, memory: from), dnnl_exec_arg_t(arg: DNNL_ARG_TO, memory: to)]
                try check(dnnl_primitive_execute(reorder, stream, 2, args), "primitive_execute(reorder)")
                try check(dnnl_stream_wait(stream), "stream_wait")
            }
        }

        deinit {
            dnnl_primitive_destroy(primitive)
            packedWeights.deallocate()
        }

        func run(source: UnsafeMutableRawPointer, destination: UnsafeMutableRawPointer) throws {
            Threading.applyToOpenMP()
            let engine = DNNLRuntime.shared.engine
            let stream = try DNNLRuntime.shared.makeStream()
            defer { dnnl_stream_destroy(stream) }
            var src: dnnl_memory_t?, wei: dnnl_memory_t?, dst: dnnl_memory_t?, zp: dnnl_memory_t?
            defer { for memory in [src, wei, dst, zp] { if let memory { dnnl_memory_destroy(memory) } } }
            try check(dnnl_memory_create(&src, &sourceDescriptor, engine, source), "memory_create")
            try check(dnnl_memory_create(&wei, &weightDescriptor, engine, packedWeights), "memory_create")
            try check(dnnl_memory_create(&dst, &destinationDescriptor, engine, destination), "memory_create")
            try withUnsafeMutablePointer(to: &zeroPoint) { zeroPointAddress in
                try check(dnnl_memory_create(&zp, &zeroPointDescriptor, engine, UnsafeMutableRawPointer(zeroPointAddress)), "memory_create")
                var args = [dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: src), dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: wei),
                            dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: dst)]
                if hasZeroPoint { args.append(dnnl_exec_arg_t(arg: DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC, memory: zp)) }
                try check(dnnl_primitive_execute(primitive, stream, Int32(args.count), args), "primitive_execute(int8 conv)")
                try check(dnnl_stream_wait(stream), "stream_wait")
            }
        }
    }
}

func integerDescriptor(_ shape: [Int], _ type: dnnl_data_type_t, _ tag: dnnl_format_tag_t) throws -> dnnl_memory_desc_t {
    var descriptor = dnnl_memory_desc_t()
    try check(dnnl_memory_desc_init_by_tag(&descriptor, Int32(shape.count), dnnlDims(shape), type, tag),
              "memory_desc_init_by_tag \(shape)")
    return descriptor
}
