import CShims

/// robustctl's own float32 channels-last kernels for thin layers (`CShims/conv_f32.c`):
/// 1×1 convolutions as a register-tiled GEMM, depthwise convolutions and first layers on
/// few input channels (direct), bias and the fused activation applied before the one store.
///
/// Per layer they are level with oneDNN's NHWC kernels (Docs/PERFORMANCE-LOG.md); they allow the
/// fusions oneDNN cannot do here — an expansion (or MobileNetV2's stem) computed inside the
/// depthwise layer reading it and the projection run on its rows (a whole inverted residual
/// block in one kernel), a residual add in a 1×1 layer's store — and fix the summation order
/// per output (bias, then inputs or taps in order; the direct kernel's taps, then its bias,
/// as oneDNN's), so results do not depend on the thread count.
enum ThinConvolution {
    /// A 1×1 convolution's weights packed for `rc_conv1x1_f32_run`.
    case pointwise(packed: [Float], outputs: Int, inputs: Int)
    /// A depthwise convolution's weights as [kernel_h · kernel_w][channels].
    case depthwise(taps: [Float], channels: Int)
    /// A k×k convolution of few input channels (a first layer), weights packed for
    /// `rc_conv_direct_f32_run`.
    case direct(packed: [Float], outputs: Int)

    /// The kernel for a convolution, or nil when oneDNN should run it (k×k layers on more
    /// than `directInputChannels` channels, grouped but not depthwise, dilated, or padded 1×1
    /// layers).
    init?(weights: Tensor, config: Conv2DConfig) {
        let shape = weights.shape
        guard config.dilationH == 1, config.dilationW == 1 else { return nil }
        let (outputs, inputsPerGroup, kh, kw) = (shape[0], shape[1], shape[2], shape[3])
        if config.groups == 1, kh == 1, kw == 1, config.padding == .zero {
            var packed = [Float](repeating: 0, count: rc_conv1x1_f32_packed_size(outputs, inputsPerGroup))
            weights.withUnsafeBufferPointer { w in
                packed.withUnsafeMutableBufferPointer { p in rc_conv1x1_f32_pack(w.baseAddress, outputs, inputsPerGroup, p.baseAddress) }
            }
            self = .pointwise(packed: packed, outputs: outputs, inputs: inputsPerGroup)
        } else if config.groups > 1, inputsPerGroup == 1, outputs == config.groups {
            let taps = kh * kw
            let transposed = weights.withUnsafeBufferPointer { w in
                [Float](unsafeUninitializedCapacity: taps * outputs) { buffer, count in
                    for tap in 0..<taps {
                        for channel in 0..<outputs { buffer[tap * outputs + channel] = w[channel * taps + tap] }
                    }
                    count = taps * outputs
                }
            }
            self = .depthwise(taps: transposed, channels: outputs)
        } else if config.groups == 1, inputsPerGroup <= Self.directInputChannels, kh * kw > 1 {
            var packed = [Float](repeating: 0, count: rc_conv_direct_f32_packed_size(outputs, inputsPerGroup * kh * kw))
            weights.withUnsafeBufferPointer { w in
                packed.withUnsafeMutableBufferPointer { p in
                    rc_conv_direct_f32_pack(w.baseAddress, outputs, inputsPerGroup, kh, kw, p.baseAddress)
                }
            }
            self = .direct(packed: packed, outputs: outputs)
        } else {
            return nil
        }
    }

    /// Runs the convolution on NHWC `input` (of NCHW-described `inputShape`) into NHWC
    /// `output` of `outputShape`, adding `residual` (same shape as the output) before
    /// `activation`'s clamp when given.
    func apply(_ input: UnsafePointer<Float>, inputShape: [Int], outputShape: [Int], weightShape: [Int], config: Conv2DConfig,
               bias: UnsafePointer<Float>, activation: FusedActivation, residual: UnsafePointer<Float>? = nil,
               into output: UnsafeMutablePointer<Float>) {
        let (lower, upper) = activation.bounds
        let (height, width, channels) = (inputShape[2], inputShape[3], inputShape[1])
        let (outputHeight, outputWidth) = (outputShape[2], outputShape[3])
        switch self {
        case let .pointwise(packed, outputs, inputs):
            packed.withUnsafeBufferPointer { p in
                var job = rc_conv1x1_f32_job(
                    input: input, k: inputs, rows: inputShape[0] * outputHeight, columns: outputWidth,
                    rows_per_image: outputHeight, image_stride: height * width * channels,
                    row_stride: config.strideH * width * channels, column_stride: config.strideW * channels,
                    n: outputs, packed: p.baseAddress, bias: bias, residual: residual, lower: lower, upper: upper,
                    output: output, column_block: outputWidth)
                Self.run(&job, items: rc_conv1x1_f32_items(&job), rc_conv1x1_f32_run)
            }
        case let .depthwise(taps, channels):
            precondition(residual == nil, "depthwise convolution: no fused residual")
            taps.withUnsafeBufferPointer { w in
                var job = rc_depthwise_f32_job(
                    input: input, batch: inputShape[0], height: height, width: width, channels: channels,
                    kernel_h: weightShape[2], kernel_w: weightShape[3], stride_h: config.strideH, stride_w: config.strideW,
                    pad_top: config.padding.top, pad_left: config.padding.left,
                    output_height: outputHeight, output_width: outputWidth,
                    weights: w.baseAddress, bias: bias, lower: lower, upper: upper, output: output)
                Self.run(&job, items: rc_depthwise_f32_items(&job), rc_depthwise_f32_run)
            }
        case .direct:
            precondition(residual == nil, "direct convolution: no fused residual")
            withDirectJob(input, inputShape: inputShape, outputShape: outputShape, weightShape: weightShape, config: config, bias: bias,
                          activation: activation, output: output) { job in
                var job = job
                Self.run(&job, items: rc_conv_direct_f32_items(&job), rc_conv_direct_f32_run)
            }
        }
    }

    /// `body` with the direct kernel's description of this layer on NHWC `input` (writing
    /// `output`, which may be nil when the job only produces rows for a fused block).
    func withDirectJob(_ input: UnsafePointer<Float>, inputShape: [Int], outputShape: [Int], weightShape: [Int], config: Conv2DConfig,
                       bias: UnsafePointer<Float>, activation: FusedActivation, output: UnsafeMutablePointer<Float>?,
                       _ body: (rc_conv_direct_f32_job) -> Void) {
        guard case let .direct(packed, outputs) = self else { preconditionFailure("a direct job for a layer without the direct kernel") }
        let (lower, upper) = activation.bounds
        packed.withUnsafeBufferPointer { p in
            body(rc_conv_direct_f32_job(
                input: input, batch: inputShape[0], height: inputShape[2], width: inputShape[3], channels: inputShape[1],
                kernel_h: weightShape[2], kernel_w: weightShape[3], stride_h: config.strideH, stride_w: config.strideW,
                pad_top: config.padding.top, pad_left: config.padding.left,
                output_height: outputShape[2], output_width: outputShape[3], n: outputs,
                packed: p.baseAddress, bias: bias, lower: lower, upper: upper, output: output))
        }
    }

    /// Input channels up to which a k×k layer runs on the direct kernel (an image's 3, or 4).
    static let directInputChannels = 4

    /// A 1×1 convolution run inside `applyExpandDepthwise` on the depthwise rows, with a
    /// residual added before `activation`'s clamp when given (`canProject(depthwise:project:)`).
    struct Projection {
        let conv: ChannelsLastConv2D
        let residual: UnsafePointer<Float>?
        let activation: FusedActivation

        /// The kernel's description of the projection writing `output`, for the duration of `body`.
        func withJob(output: UnsafeMutablePointer<Float>, _ body: (rc_conv1x1_f32_job) -> Void) {
            guard case let .pointwise(packed, outputs, inputs)? = conv.thin else {
                preconditionFailure("projection fusion of a layer without the own 1×1 kernel")
            }
            let (lower, upper) = activation.bounds
            packed.withUnsafeBufferPointer { p in
                conv.withBias { bias in
                    body(rc_conv1x1_f32_job(
                        input: nil, k: inputs, rows: 0, columns: 0, rows_per_image: 0, image_stride: 0, row_stride: 0,
                        column_stride: inputs, n: outputs, packed: p.baseAddress, bias: bias, residual: residual,
                        lower: lower, upper: upper, output: output, column_block: 0))
                }
            }
        }
    }

    /// Runs a stride-1 1×1 convolution (or a direct first layer) `expand` and the 3×3
    /// depthwise convolution `depthwise` reading its output as one kernel
    /// (`rc_expand_depthwise_f32_run`): the same bits as the two in turn, without the expanded
    /// map ever going to memory. With `project`, the projection reading the depthwise output
    /// runs in the same kernel, a chunk of rows at a time, and `output` receives its result: an
    /// inverted residual block whose inner maps never leave the cache. Without `expand` (then
    /// `project` is given), the depthwise layer reads `input`.
    /// - Precondition: `canFuse(expand:depthwise:)`, and `canProject(depthwise:project:)` for a projection.
    static func applyExpandDepthwise(expand: ChannelsLastConv2D?, depthwise: ChannelsLastConv2D, project: Projection? = nil,
                                     _ input: UnsafePointer<Float>, inputShape: [Int], into output: UnsafeMutablePointer<Float>) {
        guard case let .depthwise(taps, channels)? = depthwise.thin else {
            preconditionFailure("expand/depthwise fusion of a depthwise layer without the own kernel")
        }
        precondition(expand != nil || project != nil, "a fused block of a depthwise layer alone")
        let depthwiseInput = expand?.outputShape(input: inputShape) ?? inputShape
        let outputShape = depthwise.outputShape(input: depthwiseInput)
        let (height, width) = (depthwiseInput[2], depthwiseInput[3])
        let depthwiseBounds = depthwise.activation.bounds
        let c = depthwise.config
        taps.withUnsafeBufferPointer { w in
            expand.withJob(input: input, inputShape: inputShape) { expandJob, directJob in depthwise.withBias { depthwiseBias in
                project.withJob(output: output) { projection in
                    let depthwiseJob = rc_depthwise_f32_job(
                        input: expand == nil ? input : nil, batch: inputShape[0], height: height, width: width, channels: channels,
                        kernel_h: 3, kernel_w: 3, stride_h: c.strideH, stride_w: c.strideW, pad_top: c.padding.top,
                        pad_left: c.padding.left, output_height: outputShape[2], output_width: outputShape[3], weights: w.baseAddress,
                        bias: depthwiseBias, lower: depthwiseBounds.lower, upper: depthwiseBounds.upper,
                        output: projection == nil ? output : nil)
                    var job = rc_expand_depthwise_f32_job(expands: expand == nil ? 0 : 1, expand: expandJob ?? rc_conv1x1_f32_job(),
                                                          direct: directJob, depthwise: depthwiseJob, projects: projection == nil ? 0 : 1,
                                                          project: projection ?? rc_conv1x1_f32_job(),
                                                          bands: Swift.min(Threading.threads, outputShape[2]), scratch: nil)
                    let scratch = Tensor(uninitializedShape: [Swift.max(rc_expand_depthwise_f32_scratch_size(&job), 1)])
                    scratch.withUnsafeBufferPointer { buffer in
                        job.scratch = UnsafeMutablePointer(mutating: buffer.baseAddress)
                        run(&job, items: rc_expand_depthwise_f32_items(&job), rc_expand_depthwise_f32_run)
                    }
                }
            } }
        }
    }

    /// Whether `applyExpandDepthwise` can run `project` on `depthwise`'s output.
    static func canProject(depthwise: ChannelsLastConv2D, project: ChannelsLastConv2D) -> Bool {
        guard case .depthwise? = depthwise.thin, case let .pointwise(_, _, inputs)? = project.thin else { return false }
        return depthwise.weightShape[2] == 3 && depthwise.weightShape[3] == 3 && project.config.strideH == 1
            && project.config.strideW == 1 && inputs == depthwise.weightShape[0]
    }

    /// Whether `applyExpandDepthwise` can run the pair: a stride-1 1×1 expansion, or a first
    /// layer on the direct kernel, feeding a 3×3 depthwise layer.
    static func canFuse(expand: ChannelsLastConv2D, depthwise: ChannelsLastConv2D) -> Bool {
        guard case .depthwise? = depthwise.thin, depthwise.weightShape[2] == 3, depthwise.weightShape[3] == 3 else { return false }
        switch expand.thin {
        case .pointwise?: return expand.config.strideH == 1 && expand.config.strideW == 1
        case .direct?: return true
        default: return false
        }
    }

    /// Whether fusing pays for an expanded map of `shape` (NCHW, per image): the fused
    /// kernel recomputes a band's boundary rows, which costs more than the memory traffic it
    /// saves on maps that stay in cache anyway (MobileNetV2 in-network: 112², 56² and 28²
    /// blocks 10–40 % faster fused, 14² even, 7² 10–25 % slower).
    static func fusionPays(expandedShape shape: [Int]) -> Bool {
        shape[1] * shape[2] * shape[3] * MemoryLayout<Float>.stride >= 512 * 1024
    }

    private static func run<Job>(_ job: inout Job, items: Int, _ kernel: @escaping @Sendable (UnsafePointer<Job>?, Int, Int) -> Void) {
        withUnsafePointer(to: &job) { pointer in
            let j = UncheckedSendable(pointer)
            Threading.parallelForBalanced(items) { range in kernel(j.value, range.lowerBound, range.upperBound) }
        }
    }
}

extension FusedActivation {
    /// The clamp that applies the activation.
    var bounds: (lower: Float, upper: Float) {
        switch self {
        case .none: return (-.infinity, .infinity)
        case .relu: return (0, .infinity)
        case .relu6: return (0, 6)
        }
    }
}

extension Optional where Wrapped == ThinConvolution.Projection {
    /// `body` with the projection's job, or with nil when there is none.
    func withJob(output: UnsafeMutablePointer<Float>, _ body: (rc_conv1x1_f32_job?) -> Void) {
        switch self {
        case let .some(projection): projection.withJob(output: output) { body($0) }
        case .none: body(nil)
        }
    }
}

extension Optional where Wrapped == ChannelsLastConv2D {
    /// `body` with the kernel's description of this expansion of NHWC `input` (of
    /// NCHW-described `inputShape`): a stride-1 1×1 layer's job, or a direct first layer's
    /// (then the 1×1 job is nil); both nil when there is none.
    func withJob(input: UnsafePointer<Float>, inputShape: [Int],
                 _ body: (rc_conv1x1_f32_job?, UnsafePointer<rc_conv_direct_f32_job>?) -> Void) {
        guard let expand = self else { return body(nil, nil) }
        if case .direct? = expand.thin {
            expand.withBias { bias in
                expand.thin!.withDirectJob(input, inputShape: inputShape, outputShape: expand.outputShape(input: inputShape),
                                           weightShape: expand.weightShape, config: expand.config, bias: bias,
                                           activation: expand.activation, output: nil) { job in
                    withUnsafePointer(to: job) { body(nil, $0) }
                }
            }
            return
        }
        guard case let .pointwise(packed, outputs, inputs)? = expand.thin else {
            preconditionFailure("expand/depthwise fusion of an expansion without the own 1×1 or direct kernel")
        }
        let (height, width) = (inputShape[2], inputShape[3])
        let bounds = expand.activation.bounds
        packed.withUnsafeBufferPointer { p in
            expand.withBias { bias in
                body(rc_conv1x1_f32_job(
                    input: input, k: inputs, rows: 0, columns: 0, rows_per_image: 0, image_stride: height * width * inputs,
                    row_stride: width * inputs, column_stride: inputs, n: outputs, packed: p.baseAddress, bias: bias,
                    residual: nil, lower: bounds.lower, upper: bounds.upper, output: nil, column_block: 0), nil)
            }
        }
    }
}
