import CShims

/// robustctl's own float32 channels-last kernels for thin layers (`CShims/conv_f32.c`):
/// 1×1 convolutions as a register-tiled GEMM and depthwise convolutions, bias and the
/// fused activation applied before the one store.
///
/// oneDNN's NHWC kernels spend most of their time outside the multiply-adds on layers with
/// few channels at high resolution (MobileNetV2's expand, depthwise and project layers);
/// these run them at 70–95 % of the FMA peak (Docs/PERFORMANCE.md). The summation order per
/// output is fixed (bias, then inputs or taps in order), so results do not depend on the
/// thread count.
enum ThinConvolution {
    /// A 1×1 convolution's weights packed for `rc_conv1x1_f32_run`.
    case pointwise(packed: [Float], outputs: Int, inputs: Int)
    /// A depthwise convolution's weights as [kernel_h · kernel_w][channels].
    case depthwise(taps: [Float], channels: Int)

    /// The kernel for a convolution, or nil when oneDNN should run it (full k×k layers,
    /// grouped but not depthwise, dilated, or padded 1×1 layers).
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
        } else {
            return nil
        }
    }

    /// Runs the convolution on NHWC `input` (of NCHW-described `inputShape`) into NHWC
    /// `output` of `outputShape`, adding `residual` (same shape as the output) before the
    /// activation's clamp when given.
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
        }
    }

    private static func run<Job>(_ job: inout Job, items: Int, _ kernel: @escaping @Sendable (UnsafePointer<Job>?, Int, Int) -> Void) {
        withUnsafePointer(to: &job) { pointer in
            let j = UncheckedSendable(pointer)
            Threading.parallelFor(items) { range in kernel(j.value, range.lowerBound, range.upperBound) }
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
