import CShims
import TensorCore

/// A 1×1 int8 convolution (any stride, no padding), fully connected layer, or network stem
/// (a large k×k kernel on at most four input channels, its window rows read in place from a
/// padded copy of the image) run as a GEMM with the scheme's requantization fused into it
/// (`rc_gemm_u8_run`, AVX-512 VNNI).
///
/// oneDNN's kernels can requantize only in float; for the TFLite scheme's fixed-point
/// arithmetic (and QNNPACK outputs with a zero point) they must write int32 accumulators,
/// which a separate pass reads back. Here the accumulators are requantized while still in
/// registers: the same integers and the same epilogue arithmetic as oneDNN + `Requantizer`
/// (`FusedConvTests` compares the bytes), a quarter of the memory traffic. That pays where
/// the epilogue is a large share of the work — pointwise layers with few input channels,
/// all of MobileNetV2's — and not for k×k kernels, where the GEMM dominates and oneDNN's
/// is as fast as ours (measured layer by layer on ResNet50 and InceptionV3; Docs/PERFORMANCE-LOG.md)
/// — except on three-channel images, where oneDNN's kernels run far below their peak.
final class FusedInt8Conv: @unchecked Sendable {
    let weightShape: [Int]
    let config: Conv2DConfig
    let inputZeroPoint: Int32
    private let packed: IntegerBuffer<Int8>
    /// A stem's window row in bytes as the GEMM reads it: kernel width × channels rounded up
    /// to a multiple of 4, the extra weights zero (0 for a pointwise layer).
    private let windowRowBytes: Int
    /// bias − input zero point · Σ w[c]: oneDNN's Σ (x − zp)·w + bias, folded.
    private let bias: [Int32]
    private let requantizer: Requantizer

    /// Packed weights up to this size are cycled through for every block of pixels (they stay
    /// in L2); larger ones are walked once, one 48-channel panel at a time.
    static let cachedWeightBytes = 256 << 10

    /// Whether a layer with these weights and this geometry runs here on this CPU: no groups or
    /// dilation, a TFLite multiplier other than the saturating INT32_MIN, and either a 1×1
    /// kernel without padding on a multiple of 4 input channels (the VNNI dot product's
    /// width) or a stem (`isStem`).
    static func supports(weightShape: [Int], config: Conv2DConfig, requantizer: Requantizer) -> Bool {
        guard rc_use_vnni() != 0, weightShape.count == 4, config.groups == 1, config.dilationH == 1, config.dilationW == 1,
              !requantizer.multipliers.contains(Int32.min) else { return false }
        let pointwise = weightShape[2] == 1 && weightShape[3] == 1 && weightShape[1] % 4 == 0 && config.padding == .zero
        // Small stems (3×3 on RGB) only in the TFLite scheme, where oneDNN needs the int32
        // round trip (MobileNetV2's stem 0.19 → 0.12 ms per step); in QNNPACK's, oneDNN writes
        // the exact uint8 output itself and is as fast.
        let largeWindow = weightShape[1] * weightShape[2] * weightShape[3] >= 64
        return pointwise || (isStem(weightShape) && (largeWindow || requantizer.scheme == .tflite))
    }

    /// A k×k convolution of at most four input channels whose window rows fit a vector and
    /// whose windows hold at least 27 values: an image's first layer (ResNet50's 7×7 runs
    /// 0.3 ms faster here than on oneDNN).
    static func isStem(_ weightShape: [Int]) -> Bool {
        weightShape[1] <= 4 && weightShape[1] * weightShape[3] <= 64 && weightShape[1] * weightShape[2] * weightShape[3] >= 27
    }

    /// - Parameters:
    ///   - weights: OIHW int8 weights: [O, I, 1, 1] with I a multiple of 4, or a stem's.
    ///   - inputZeroPoint: the uint8 input's zero point.
    init(weights: [Int8], shape: [Int], config: Conv2DConfig, inputZeroPoint: Int32, requantizer: Requantizer) {
        let stem = shape.count == 4 && Self.isStem(shape)
        precondition(shape.count == 4 && weights.count == shape.reduce(1, *) && config.groups == 1
                     && (stem || (shape[2] == 1 && shape[3] == 1 && shape[1] % 4 == 0 && config.padding == .zero)),
                     "fused int8 conv: weights \(shape) must be [O, I, 1, 1] with I a multiple of 4 and no padding, or a stem's")
        weightShape = shape
        self.config = config
        self.inputZeroPoint = inputZeroPoint
        let (n, inputs, kernelH, kernelW) = (shape[0], shape[1], shape[2], shape[3])
        // A stem's GEMM row is its window, row by row in (column, channel) order, each window
        // row zero-padded to a multiple of 4 bytes.
        let rowBytes = stem ? (kernelW * inputs + 3) / 4 * 4 : 0
        let k = stem ? kernelH * rowBytes : inputs
        var rows = [Int8](repeating: 0, count: n * k)
        if stem {
            for o in 0..<n { for i in 0..<inputs { for y in 0..<kernelH { for x in 0..<kernelW {
                rows[o * k + y * rowBytes + x * inputs + i] = weights[((o * inputs + i) * kernelH + y) * kernelW + x]
            } } } }
        } else {
            rows = weights
        }
        let packed = IntegerBuffer<Int8>(count: rc_gemm_u8_packed_size(n, k))
        rows.withUnsafeBufferPointer { w in packed.withUnsafeMutableBufferPointer { p in rc_gemm_u8_pack(w.baseAddress, n, k, p.baseAddress) } }
        self.packed = packed
        windowRowBytes = rowBytes
        bias = (0..<n).map { channel in
            let sum = rows[(channel * k)..<((channel + 1) * k)].reduce(Int32(0)) { $0 &+ Int32($1) }
            return requantizer.bias[channel] &- inputZeroPoint &* sum
        }
        self.requantizer = requantizer
    }

    /// The requantized NHWC output for an NHWC [N, C, H, W] input ([N, C] for a fully
    /// connected layer, which keeps its rank).
    func apply(_ x: QuantizedValue) -> QuantizedValue {
        let shape4 = x.shape.count == 4 ? x.shape : [x.shape[0], x.shape[1], 1, 1]
        precondition(shape4[1] == weightShape[1], "fused int8 conv: input \(x.shape) has \(shape4[1]) channels, expected \(weightShape[1])")
        let outputShape = config.outputShape(input: shape4, weight: weightShape)
        if windowRowBytes > 0 { return applyStem(x, outputShape: outputShape) }
        let (batch, channels, height, width) = (shape4[0], shape4[1], shape4[2], shape4[3])
        // A stride-1 convolution is one long row of pixels.
        let flat = config.strideH == 1 && config.strideW == 1
        let output = x.buffer.withUnsafeBufferPointer { source in
            gemm(source.baseAddress!, rows: flat ? 1 : batch * outputShape[2], columns: flat ? batch * height * width : outputShape[3],
                 rowsPerImage: flat ? 1 : outputShape[2], imageStride: height * width * channels,
                 rowStride: config.strideH * width * channels, columnStride: config.strideW * channels)
        }
        return QuantizedValue(buffer: output, shape: x.shape.count == 2 ? [outputShape[0], outputShape[1]] : outputShape)
    }

    /// Whether this is a stride-1 1×1 layer, which `FusedDepthwiseConv.apply(_:projectingWith:)`
    /// can run on chunks of depthwise rows.
    var projects: Bool {
        windowRowBytes == 0 && weightShape[2] == 1 && weightShape[3] == 1 && config.strideH == 1 && config.strideW == 1
    }

    /// Calls `body` with the kernel's description of this layer writing `output`; its input
    /// and geometry fields are the caller's to set.
    func withJob(output: UnsafeMutablePointer<UInt8>, _ body: (rc_gemm_u8_job) -> Void) {
        packed.withUnsafeBufferPointer { weights in requantizer.withKernelParameters(bias: bias) { requantization in
            body(rc_gemm_u8_job(input: nil, k: weightShape[1], rows: 0, columns: 0, rows_per_image: 0, image_stride: 0, row_stride: 0,
                                column_stride: 0, n: weightShape[0], packed: weights.baseAddress, requantization: requantization,
                                output: output, column_block: 0, channel_major: 0, segments: 0, segment_stride: 0))
        } }
    }

    /// A stem on a copy of the image padded with the zero point (so padded cells add
    /// (zp − zp)·w = 0), each window row read in place; `slack` bytes after the copy cover the
    /// last window row's read past its end, whose weights are zero.
    private func applyStem(_ x: QuantizedValue, outputShape: [Int]) -> QuantizedValue {
        let channels = x.shape[1], kernelW = weightShape[3]
        let padded = Int8Kernels.pad(x, config.padding, value: UInt8(inputZeroPoint), slack: windowRowBytes - kernelW * channels)
        let (paddedHeight, paddedWidth) = (padded.shape[2], padded.shape[3])
        let output = padded.buffer.withUnsafeBufferPointer { source in
            gemm(source.baseAddress!, rows: outputShape[0] * outputShape[2], columns: outputShape[3], rowsPerImage: outputShape[2],
                 imageStride: paddedHeight * paddedWidth * channels, rowStride: config.strideH * paddedWidth * channels,
                 columnStride: config.strideW * channels, windowRows: weightShape[2], windowRowStride: paddedWidth * channels)
        }
        return QuantizedValue(buffer: output, shape: outputShape)
    }

    /// The GEMM over `rows` × `columns` output pixels, pixel (r, x) reading its k inputs from
    /// (r / rowsPerImage)·imageStride + (r % rowsPerImage)·rowStride + x·columnStride, in
    /// `windowRows` runs `windowRowStride` bytes apart.
    private func gemm(_ input: UnsafePointer<UInt8>, rows: Int, columns: Int, rowsPerImage: Int, imageStride: Int,
                      rowStride: Int, columnStride: Int, windowRows: Int = 1, windowRowStride: Int = 0) -> IntegerBuffer<UInt8> {
        let n = weightShape[0], k = windowRowBytes > 0 ? weightShape[2] * windowRowBytes : weightShape[1]
        let output = IntegerBuffer<UInt8>(count: rows * columns * n)
        output.withUnsafeMutableBufferPointer { out in
            packed.withUnsafeBufferPointer { weights in requantizer.withKernelParameters(bias: bias) { requantization in
                var job = rc_gemm_u8_job(
                    input: input, k: k, rows: rows, columns: columns, rows_per_image: rowsPerImage, image_stride: imageStride,
                    row_stride: rowStride, column_stride: columnStride,
                    n: n, packed: weights.baseAddress, requantization: requantization,
                    output: out.baseAddress, column_block: Self.columnBlock(rows: rows, columns: columns, channels: n),
                    channel_major: packed.count > Self.cachedWeightBytes ? 1 : 0,
                    segments: windowRows, segment_stride: windowRowStride)
                let items = rc_gemm_u8_items(&job)
                withUnsafePointer(to: &job) { pointer in
                    let j = UncheckedSendable(pointer)
                    Threading.parallelForBalanced(items) { range in rc_gemm_u8_run(j.value, range.lowerBound, range.upperBound) }
                }
            } }
        }
        return output
    }

    /// Output columns per work item: at most 64 (eight 8-pixel tiles over one 48-channel
    /// weight panel), fewer when that would leave a thread without work; a multiple of 8.
    static func columnBlock(rows: Int, columns: Int, channels: Int) -> Int {
        let perRow = (channels + 47) / 48 * rows
        let wanted = 2 * Threading.threads
        let blocks = Swift.max(1, (columns + 63) / 64, (wanted + perRow - 1) / perRow)
        let block = (columns + blocks - 1) / blocks
        return Swift.max(8, (block + 7) / 8 * 8)
    }
}

/// A depthwise int8 convolution (any kernel up to 5×5, stride and padding) with the
/// scheme's requantization fused (`rc_depthwise_u8_run`): for the same reason as
/// `FusedInt8Conv` — oneDNN would write int32 accumulators for a separate pass — and
/// MobileNetV2's depthwise layers are memory-bound, so that pass cost as much as the
/// convolution. Same integers and epilogue as oneDNN + `Requantizer` (`FusedConvTests`).
final class FusedDepthwiseConv: @unchecked Sendable {
    let weightShape: [Int]
    let config: Conv2DConfig
    let inputZeroPoint: Int32
    /// [kh · kw][channels], widened.
    private let weights: [Int32]
    /// 3×3 only: the VNNI kernel's weight layout and −zp · Σ w per channel.
    private let packed: IntegerBuffer<Int8>
    private let zeroPointOffsets: [Int32]
    private let requantizer: Requantizer

    static func supports(weightShape: [Int], config: Conv2DConfig, requantizer: Requantizer) -> Bool {
        rc_use_avx512() != 0 && weightShape.count == 4 && weightShape[1] == 1 && config.groups == weightShape[0] && config.groups > 1
            && weightShape[2] * weightShape[3] <= 25 && config.dilationH == 1 && config.dilationW == 1
            && !requantizer.multipliers.contains(Int32.min)
    }

    /// Whether layers of this shape take the 3×3 VNNI kernel on this CPU.
    static func hasVNNIKernel(weightShape: [Int]) -> Bool {
        rc_use_vnni() != 0 && weightShape[2] == 3 && weightShape[3] == 3
    }

    /// - Parameter weights: OIHW int8 weights `[C, 1, kh, kw]`.
    init(weights: [Int8], shape: [Int], config: Conv2DConfig, inputZeroPoint: Int32, requantizer: Requantizer) {
        precondition(shape.count == 4 && shape[1] == 1 && config.groups == shape[0] && weights.count == shape.reduce(1, *),
                     "fused depthwise conv: weights \(shape) must be [C, 1, kh, kw] with groups C")
        weightShape = shape
        self.config = config
        self.inputZeroPoint = inputZeroPoint
        let (channels, taps) = (shape[0], shape[2] * shape[3])
        let widened = (0..<(taps * channels)).map { i in Int32(weights[(i % channels) * taps + i / channels]) }
        self.weights = widened
        let threeByThree = shape[2] == 3 && shape[3] == 3
        packed = IntegerBuffer<Int8>(count: threeByThree ? rc_depthwise_u8_packed3x3_size(channels) : 0)
        if threeByThree { packed.withUnsafeMutableBufferPointer { p in rc_depthwise_u8_pack3x3(widened, channels, p.baseAddress) } }
        zeroPointOffsets = (0..<channels).map { c in
            0 &- inputZeroPoint &* (0..<taps).reduce(Int32(0)) { $0 &+ widened[$1 * channels + c] }
        }
        self.requantizer = requantizer
    }

    func apply(_ x: QuantizedValue) -> QuantizedValue {
        let outputShape = config.outputShape(input: x.shape, weight: weightShape)
        let output = IntegerBuffer<UInt8>(count: outputShape.reduce(1, *))
        output.withUnsafeMutableBufferPointer { out in
            withJob(x, output: out.baseAddress) { job in
                var job = job
                let items = rc_depthwise_u8_items(&job)
                withUnsafePointer(to: &job) { pointer in
                    let j = UncheckedSendable(pointer)
                    Threading.parallelForBalanced(items) { range in rc_depthwise_u8_run(j.value, range.lowerBound, range.upperBound) }
                }
            }
        }
        return QuantizedValue(buffer: output, shape: outputShape)
    }

    /// The output of `project` (`FusedInt8Conv.projects`) on this layer's output, each chunk
    /// of depthwise rows projected while in cache (`rc_depthwise_project_u8_run`): the bytes of
    /// the two layers in turn, without the depthwise map in memory or a second parallel step.
    func apply(_ x: QuantizedValue, projectingWith project: FusedInt8Conv) -> QuantizedValue {
        let depthwiseShape = config.outputShape(input: x.shape, weight: weightShape)
        precondition(project.projects && project.weightShape[1] == depthwiseShape[1],
                     "fused depthwise + projection: \(project.weightShape) cannot project \(depthwiseShape)")
        let outputShape = [depthwiseShape[0], project.weightShape[0], depthwiseShape[2], depthwiseShape[3]]
        let output = IntegerBuffer<UInt8>(count: outputShape.reduce(1, *))
        output.withUnsafeMutableBufferPointer { out in
            withJob(x, output: nil) { depthwise in project.withJob(output: out.baseAddress!) { projection in
                var job = rc_depthwise_project_u8_job(depthwise: depthwise, project: projection,
                                                      bands: Swift.min(2 * Threading.threads, depthwiseShape[2]), scratch: nil)
                let scratch = IntegerBuffer<UInt8>(count: rc_depthwise_project_u8_scratch_size(&job))
                scratch.withUnsafeMutableBufferPointer { buffer in
                    job.scratch = buffer.baseAddress
                    let items = rc_depthwise_project_u8_items(&job)
                    withUnsafePointer(to: &job) { pointer in
                        let j = UncheckedSendable(pointer)
                        Threading.parallelForBalanced(items) { range in rc_depthwise_project_u8_run(j.value, range.lowerBound, range.upperBound) }
                    }
                }
            } }
        }
        return QuantizedValue(buffer: output, shape: outputShape)
    }

    /// Calls `body` with the kernel's description of this layer on `x` writing `output`.
    private func withJob(_ x: QuantizedValue, output: UnsafeMutablePointer<UInt8>?, _ body: (rc_depthwise_u8_job) -> Void) {
        precondition(x.shape.count == 4 && x.shape[1] == weightShape[0], "fused depthwise conv: input \(x.shape) for weights \(weightShape)")
        let outputShape = config.outputShape(input: x.shape, weight: weightShape)
        x.buffer.withUnsafeBufferPointer { source in
            weights.withUnsafeBufferPointer { w in packed.withUnsafeBufferPointer { p in zeroPointOffsets.withUnsafeBufferPointer { z in
            requantizer.withKernelParameters { requantization in
                body(rc_depthwise_u8_job(
                    input: source.baseAddress, batch: x.shape[0], height: x.shape[2], width: x.shape[3], channels: x.shape[1],
                    output_height: outputShape[2], output_width: outputShape[3], kernel_h: weightShape[2], kernel_w: weightShape[3],
                    stride_h: config.strideH, stride_w: config.strideW, pad_top: config.padding.top, pad_left: config.padding.left,
                    weights: w.baseAddress, input_zero_point: inputZeroPoint, packed3x3: p.baseAddress, zero_point_offset: z.baseAddress,
                    requantization: requantization, output: output))
            } } } }
        }
    }
}

extension Requantizer {
    /// Calls `body` with this requantization as the C kernels take it, with `bias` in place
    /// of the layer's (a bias with the input zero point folded in).
    func withKernelParameters<R>(bias: [Int32]? = nil, _ body: (rc_requantization) -> R) -> R {
        (bias ?? self.bias).withUnsafeBufferPointer { b in multipliers.withUnsafeBufferPointer { m in
            leftShifts.withUnsafeBufferPointer { l in rightShifts.withUnsafeBufferPointer { r in scales.withUnsafeBufferPointer { s in
                prepared.withUnsafeBufferPointer { p in
                    body(rc_requantization(scheme: scheme == .tflite ? 0 : 1, bias: b.baseAddress, multiplier: m.baseAddress,
                                           left_shift: l.baseAddress, right_shift: r.baseAddress, scale: s.baseAddress,
                                           zero_point: zeroPoint, lo: lower, hi: upper, prepared: p.isEmpty ? nil : p.baseAddress,
                                           bounded: floatBounded ? 1 : 0))
                }
            } } }
        } }
    }
}
