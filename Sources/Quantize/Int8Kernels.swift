import CShims
import Foundation
import TensorCore

/// The int8 engine's data-movement and pooling kernels on uint8 channels-last values.
/// Rounding follows each scheme's reference kernels (TFLite: half away from zero on int8
/// values; QNNPACK/PyTorch: float32 scaling, nearest even).
enum Int8Kernels {
    /// Float NCHW → uint8 NHWC, after `preprocessing` if given.
    static func quantize(_ x: Tensor, _ q: AffineQuantization, scheme: QuantizationScheme,
                         preprocessing: ChannelPreprocessing? = nil) -> QuantizedValue {
        precondition(x.rank == 4, "int8 input must be NCHW, got \(x.shape)")
        let (n, c, plane) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
        precondition(preprocessing.map { $0.source.count == c } ?? true, "int8 input: preprocessing for another channel count than \(c)")
        let output = IntegerBuffer<UInt8>(count: x.count)
        // The scheme's own spelling of the division (see AffineQuantization.quantize).
        let scale = scheme == .tflite ? q.scale : 1 / q.scale
        x.withUnsafeBufferPointer { source in output.withUnsafeMutableBufferPointer { out in
            let (s, o) = (UncheckedSendable(source.baseAddress!), UncheckedSendable(out.baseAddress!))
            ChannelPreprocessing.forEachPixelRange(batch: n, plane: plane, preprocessing) { image, pixels, folded in
                rc_quantize_planes(s.value + image * c * plane, c, plane, pixels.lowerBound, pixels.upperBound,
                                   folded, scheme == .tflite ? 0 : 1, scale, Float(q.zeroPoint), o.value + image * plane * c)
            }
        } }
        return QuantizedValue(buffer: output, shape: x.shape)
    }

    /// uint8 [N, C] (or NHWC) → float [N, C] (or NCHW).
    static func dequantize(_ x: QuantizedValue, _ q: AffineQuantization) -> Tensor {
        let shape = x.shape
        let channels = shape[1], spatial = shape.count == 4 ? shape[2] * shape[3] : 1
        return Tensor.build(shape: shape) { out in
            x.buffer.withUnsafeBufferPointer { source in
                for b in 0..<shape[0] { for channel in 0..<channels { for p in 0..<spatial {
                    out[(b * channels + channel) * spatial + p] = q.dequantize(source[(b * spatial + p) * channels + channel])
                } } }
            }
        }
    }

    static func clamp(_ x: QuantizedValue, lower: UInt8, upper: UInt8) -> QuantizedValue {
        let output = IntegerBuffer<UInt8>(count: x.count)
        x.buffer.withUnsafeBufferPointer { source in output.withUnsafeMutableBufferPointer { out in
            for i in 0..<source.count { out[i] = Swift.min(Swift.max(source[i], lower), upper) }
        } }
        return QuantizedValue(buffer: output, shape: x.shape)
    }

    /// Channel concatenation; inputs whose quantization differs from the output's are
    /// requantized (TFLite ConcatenationWithScaling; PyTorch dequantize → quantize).
    static func concat(_ inputs: [QuantizedValue], _ parameters: [(AffineQuantization, AffineQuantization)],
                       scheme: QuantizationScheme) -> QuantizedValue {
        let pixels = inputs[0].pixels
        let total = inputs.reduce(0) { $0 + $1.channels }
        var shape = inputs[0].shape
        shape[1] = total
        let output = IntegerBuffer<UInt8>(count: pixels * total)
        // A 256-entry lookup per input whose quantization differs from the output's.
        let tables: [IntegerBuffer<UInt8>?] = parameters.map { from, to in
            from == to ? nil : IntegerBuffer((0..<256).map { requantize(UInt8($0), from: from, to: to, scheme: scheme) })
        }
        let channels = inputs.map(\.channels)
        withPointers(inputs.map(\.buffer)) { sources in withPointers(tables) { lookups in
            channels.withUnsafeBufferPointer { c in output.withUnsafeMutableBufferPointer { out in
                let (s, t, n, o) = (UncheckedSendable(sources), UncheckedSendable(lookups), UncheckedSendable(c.baseAddress!),
                                    UncheckedSendable(out.baseAddress!))
                Threading.parallelFor(pixels, minimumChunk: 64) { range in
                    rc_concat_u8(s.value, n.value, t.value, inputs.count, total, range.lowerBound, range.upperBound, o.value)
                }
            } }
        } }
        return QuantizedValue(buffer: output, shape: shape)
    }

    /// Calls `body` with the buffers' base addresses (NULL for nil) as a C array.
    private static func withPointers<R>(_ buffers: [IntegerBuffer<UInt8>?],
                                        _ body: (UnsafePointer<UnsafePointer<UInt8>?>) -> R) -> R {
        func nest(_ rest: ArraySlice<IntegerBuffer<UInt8>?>, _ collected: [UnsafePointer<UInt8>?]) -> R {
            guard let first = rest.first else { return collected.withUnsafeBufferPointer { body($0.baseAddress!) } }
            guard let buffer = first else { return nest(rest.dropFirst(), collected + [nil]) }
            return buffer.withUnsafeBufferPointer { nest(rest.dropFirst(), collected + [$0.baseAddress]) }
        }
        return nest(buffers[...], [])
    }

    static func requantize(_ value: UInt8, from: AffineQuantization, to: AffineQuantization, scheme: QuantizationScheme) -> UInt8 {
        let result: Int32
        switch scheme {
        case .tflite:
            let scale = from.scale * (1 / to.scale)
            let bias = -Float(from.zeroPoint - 128) * scale
            result = saturatingInt32((Float(Int32(value) - 128) * scale + bias).rounded(.toNearestOrAwayFromZero)).addingReportingOverflow(to.zeroPoint).partialValue
        case .qnnpack:
            let real = Float(Int32(value) - from.zeroPoint) * from.scale
            result = saturatingInt32((real * (1 / to.scale)).rounded(.toNearestOrEven)).addingReportingOverflow(to.zeroPoint).partialValue
        }
        return UInt8(Swift.min(Swift.max(result, 0), 255))
    }

    /// Max pooling (the maximum commutes with the monotone quantization); padded cells are
    /// skipped, so they never win (`rc_max_pool_u8`, 64 channels per AVX-512 vector).
    static func maxPool(_ x: QuantizedValue, _ config: Pool2DConfig) -> QuantizedValue {
        let outShape = config.outputShape(input: x.shape)
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (oh, ow) = (outShape[2], outShape[3])
        let output = IntegerBuffer<UInt8>(count: outShape.reduce(1, *))
        x.buffer.withUnsafeBufferPointer { source in output.withUnsafeMutableBufferPointer { out in
            let (s, o) = (UncheckedSendable(source.baseAddress!), UncheckedSendable(out.baseAddress!))
            Threading.parallelFor(n * oh) { outputRows in
                rc_max_pool_u8(s.value, h, w, c, config.kernelH, config.kernelW, config.strideH, config.strideW,
                               config.padding.top, config.padding.left, oh, ow, outputRows.lowerBound, outputRows.upperBound, o.value)
            }
        } }
        return QuantizedValue(buffer: output, shape: outShape)
    }

    /// Average pooling with unchanged quantization (both schemes keep the input's).
    /// Padded cells counted by the divisor hold the zero point (a real 0).
    static func averagePool(_ x: QuantizedValue, _ config: Pool2DConfig, _ q: AffineQuantization,
                            scheme: QuantizationScheme) -> QuantizedValue {
        let outShape = config.outputShape(input: x.shape)
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (oh, ow) = (outShape[2], outShape[3])
        let spans = Pooling.averageSpans(config, height: h, width: w, outputHeight: oh, outputWidth: ow)
        let (rowStart, rowEnd, rowCount) = (spans.rows.ranges.map { Int32($0.lowerBound) }, spans.rows.ranges.map { Int32($0.upperBound) },
                                            spans.rows.counts.map { Int32($0) })
        let (columnStart, columnEnd, columnCount) = (spans.columns.ranges.map { Int32($0.lowerBound) },
                                                     spans.columns.ranges.map { Int32($0.upperBound) }, spans.columns.counts.map { Int32($0) })
        let output = IntegerBuffer<UInt8>(count: outShape.reduce(1, *))
        x.buffer.withUnsafeBufferPointer { source in output.withUnsafeMutableBufferPointer { out in
            let (s, o) = (UncheckedSendable(source.baseAddress!), UncheckedSendable(out.baseAddress!))
            Threading.parallelFor(n * oh) { outputRows in
                rc_average_pool_u8(s.value, h, w, c, o.value, oh, ow, outputRows.lowerBound, outputRows.upperBound,
                                   rowStart, rowEnd, rowCount, columnStart, columnEnd, columnCount,
                                   scheme == .tflite ? 0 : 1, q.zeroPoint, q.scale)
            }
        } }
        return QuantizedValue(buffer: output, shape: outShape)
    }

    /// One average-pool output from a window's sum of `valid` cells and its divisor, per the
    /// scheme: TFLite's reference_integer_ops::AveragePool on int8 values (padded cells =
    /// zero point, division rounding half away from zero) or QNNPACK's q8avgpool
    /// (float(acc − zp·k) × (s / (s·k)), nearest even).
    static func averagePoolValue(sum: Int32, valid: Int32, divisor: Int32, _ q: AffineQuantization,
                                 scheme: QuantizationScheme) -> UInt8 {
        UInt8(rc_average_pool_value(sum, valid, divisor, scheme == .tflite ? 0 : 1, q.zeroPoint, q.scale))
    }

    /// Global average pooling: QNNPACK keeps the input quantization; TFLite's MEAN
    /// rescales to its own output quantization.
    static func globalAveragePool(_ x: QuantizedValue, input: AffineQuantization, output: AffineQuantization,
                                  scheme: QuantizationScheme) -> QuantizedValue {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let count = Int32(h * w)
        let result = IntegerBuffer<UInt8>(count: n * c)
        let fixed = FixedPointMultiplier(Double(input.scale) / Double(output.scale))
        let scale = input.scale / (output.scale * Float(count))
        var sumStorage = [Int32](repeating: 0, count: c)
        x.buffer.withUnsafeBufferPointer { source in result.withUnsafeMutableBufferPointer { out in sumStorage.withUnsafeMutableBufferPointer { sums in
            for b in 0..<n {
                sums.update(repeating: 0)
                // Wrapping adds on raw pointers vectorise (h·w·255 cannot overflow).
                for p in 0..<(h * w) {
                    let cell = source.baseAddress! + (b * h * w + p) * c
                    for ch in 0..<c { sums[ch] &+= Int32(cell[ch]) }
                }
                for ch in 0..<c {
                    let acc = sums[ch] - input.zeroPoint * count
                    var value: Int32
                    switch scheme {
                    case .tflite:
                        value = rcMultiply(acc, fixed)
                        value = value > 0 ? (value + count / 2) / count : (value - count / 2) / count
                    case .qnnpack:
                        value = saturatingInt32((Float(acc) * scale).rounded(.toNearestOrEven))
                    }
                    out[b * c + ch] = UInt8(Swift.min(Swift.max(Int64(value) + Int64(output.zeroPoint), 0), 255))
                }
            }
        } } }
        return QuantizedValue(buffer: result, shape: [n, c, 1, 1])
    }

    /// Zero padding in real terms: new cells hold the zero point.
    /// - Parameter slack: bytes of `value` after the padded map, for kernels that read a
    ///   little past a window's end (`FusedInt8Conv`'s stems); not part of the shape.
    static func pad(_ x: QuantizedValue, _ padding: Padding2D, value: UInt8, slack: Int = 0) -> QuantizedValue {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (oh, ow) = (h + padding.top + padding.bottom, w + padding.left + padding.right)
        let output = IntegerBuffer<UInt8>(count: n * oh * ow * c + slack)
        x.buffer.withUnsafeBufferPointer { source in output.withUnsafeMutableBufferPointer { out in
            out.update(repeating: value)
            for b in 0..<n { for y in 0..<h {
                let src = source.baseAddress! + (b * h + y) * w * c
                let dst = out.baseAddress! + ((b * oh + y + padding.top) * ow + padding.left) * c
                dst.update(from: src, count: w * c)
            } }
        } }
        return QuantizedValue(buffer: output, shape: [n, c, oh, ow])
    }
}

@inline(__always)
func rcMultiply(_ x: Int32, _ m: FixedPointMultiplier) -> Int32 {
    rc_tflite_multiply(x, m.multiplier, m.leftShift, m.rightShift)
}
