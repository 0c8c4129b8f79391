/// Max, average and global-average pooling over NCHW tensors, with backward passes.
/// Planes (one image's channel) are processed in parallel.
public enum Pooling {
    /// Max pooling; padded cells never win (they count as −∞, as in PyTorch).
    /// - Returns: the output and, per output cell, the flat in-plane index of the winner
    ///   (needed by `maxBackward`).
    public static func max(_ x: Tensor, config: Pool2DConfig) -> (output: Tensor, argmax: [Int32]) {
        let outputShape = config.outputShape(input: x.shape)
        let (planes, h, w) = (x.shape[0] * x.shape[1], x.shape[2], x.shape[3])
        let (oh, ow) = (outputShape[2], outputShape[3])
        var argmax = [Int32](repeating: 0, count: planes * oh * ow)
        let output = Tensor.build(shape: outputShape) { out in
            x.withUnsafeBufferPointer { input in
                argmax.withUnsafeMutableBufferPointer { indices in
                    let (src, dst, idx) = (UncheckedSendable(input), UncheckedSendable(out), UncheckedSendable(indices))
                    Threading.parallelFor(planes, minimumChunk: 8) { range in
                        for plane in range {
                            let source = src.value.baseAddress! + plane * h * w
                            for oy in 0..<oh {
                                let y0 = oy * config.strideH - config.padding.top
                                let yStart = Swift.max(y0, 0), yEnd = Swift.min(y0 + config.kernelH, h)
                                for ox in 0..<ow {
                                    let x0 = ox * config.strideW - config.padding.left
                                    let xStart = Swift.max(x0, 0), xEnd = Swift.min(x0 + config.kernelW, w)
                                    var best = -Float.infinity, bestIndex = yStart * w + xStart
                                    for y in yStart..<Swift.max(yEnd, yStart) {
                                        for xx in xStart..<Swift.max(xEnd, xStart) where source[y * w + xx] > best {
                                            best = source[y * w + xx]
                                            bestIndex = y * w + xx
                                        }
                                    }
                                    let o = (plane * oh + oy) * ow + ox
                                    dst.value[o] = best
                                    idx.value[o] = Int32(bestIndex)
                                }
                            }
                        }
                    }
                }
            }
        }
        return (output, argmax)
    }

    /// dL/dx of max pooling: each output's gradient goes to its window's winner.
    public static func maxBackward(_ gradOutput: Tensor, argmax: [Int32], inputShape: [Int]) -> Tensor {
        let planes = inputShape[0] * inputShape[1], plane = inputShape[2] * inputShape[3]
        let outPlane = gradOutput.shape[2] * gradOutput.shape[3]
        precondition(argmax.count == gradOutput.count, "max-pool backward: \(argmax.count) indices for gradient \(gradOutput.shape)")
        var result = Tensor(shape: inputShape)
        result.withUnsafeMutableBufferPointer { dx in
            gradOutput.withUnsafeBufferPointer { dy in
                argmax.withUnsafeBufferPointer { indices in
                    let (d, g, idx) = (UncheckedSendable(dx), UncheckedSendable(dy), UncheckedSendable(indices))
                    Threading.parallelFor(planes, minimumChunk: 8) { range in
                        for p in range {
                            for o in 0..<outPlane {
                                d.value[p * plane + Int(idx.value[p * outPlane + o])] += g.value[p * outPlane + o]
                            }
                        }
                    }
                }
            }
        }
        return result
    }

    /// The input range each output position of one axis averages over, clipped to the
    /// input, and its share of the divisor (windows are separable, so the divisor of a cell
    /// is the product of its row and column counts).
    static func averageSpans(outputs: Int, size: Int, kernel: Int, stride: Int, before: Int, after: Int,
                             countIncludesPadding: Bool) -> (ranges: [Range<Int>], counts: [Float]) {
        var ranges: [Range<Int>] = [], counts: [Float] = []
        for o in 0..<outputs {
            let start = o * stride - before
            let range = Swift.max(start, 0)..<Swift.max(Swift.min(start + kernel, size), Swift.max(start, 0))
            ranges.append(range)
            // PyTorch counts padded cells but not cells beyond the padding (ceil mode).
            counts.append(Float(countIncludesPadding ? Swift.min(start + kernel, size + after) - start : range.count))
        }
        return (ranges, counts)
    }

    /// For each output row and column, the input span its average window covers and the
    /// window's divisor share (rows × columns gives a cell's divisor), under `config`'s
    /// padding and `countIncludesPadding` rules.
    public static func averageSpans(_ config: Pool2DConfig, height: Int, width: Int, outputHeight: Int, outputWidth: Int)
        -> (rows: (ranges: [Range<Int>], counts: [Float]), columns: (ranges: [Range<Int>], counts: [Float])) {
        (averageSpans(outputs: outputHeight, size: height, kernel: config.kernelH, stride: config.strideH, before: config.padding.top,
                      after: config.padding.bottom, countIncludesPadding: config.countIncludesPadding),
         averageSpans(outputs: outputWidth, size: width, kernel: config.kernelW, stride: config.strideW, before: config.padding.left,
                      after: config.padding.right, countIncludesPadding: config.countIncludesPadding))
    }

    /// Average pooling, computed separably: window sums along rows, then along columns.
    /// - Complexity: O(N·C·OH·(W + OW)·k) instead of O(N·C·OH·OW·k²).
    public static func average(_ x: Tensor, config: Pool2DConfig) -> Tensor {
        let outputShape = config.outputShape(input: x.shape)
        let (planes, h, w) = (x.shape[0] * x.shape[1], x.shape[2], x.shape[3])
        let (oh, ow) = (outputShape[2], outputShape[3])
        let (rows, columns) = averageSpans(config, height: h, width: w, outputHeight: oh, outputWidth: ow)
        return Tensor.build(shape: outputShape) { out in
            x.withUnsafeBufferPointer { input in
                let (src, dst) = (UncheckedSendable(input), UncheckedSendable(out))
                Threading.parallelFor(planes, minimumChunk: 8) { range in
                    let rowSums = UnsafeMutablePointer<Float>.allocate(capacity: w)
                    defer { rowSums.deallocate() }
                    for plane in range {
                        let source = src.value.baseAddress! + plane * h * w
                        let target = dst.value.baseAddress! + plane * oh * ow
                        for oy in 0..<oh {
                            rowSums.update(repeating: 0, count: w)
                            for y in rows.ranges[oy] {
                                let line = source + y * w
                                for i in 0..<w { rowSums[i] += line[i] }
                            }
                            for ox in 0..<ow {
                                var sum: Float = 0
                                for i in columns.ranges[ox] { sum += rowSums[i] }
                                target[oy * ow + ox] = sum / (rows.counts[oy] * columns.counts[ox])
                            }
                        }
                    }
                }
            }
        }
    }

    /// dL/dx of average pooling: each output's gradient spread evenly over its window,
    /// separably (along columns into a row buffer, then along rows).
    public static func averageBackward(_ gradOutput: Tensor, inputShape: [Int], config: Pool2DConfig) -> Tensor {
        let (planes, h, w) = (inputShape[0] * inputShape[1], inputShape[2], inputShape[3])
        let (oh, ow) = (gradOutput.shape[2], gradOutput.shape[3])
        let (rows, columns) = averageSpans(config, height: h, width: w, outputHeight: oh, outputWidth: ow)
        var result = Tensor(shape: inputShape)
        result.withUnsafeMutableBufferPointer { dx in
            gradOutput.withUnsafeBufferPointer { dy in
                let (d, g) = (UncheckedSendable(dx), UncheckedSendable(dy))
                Threading.parallelFor(planes, minimumChunk: 8) { range in
                    let spread = UnsafeMutablePointer<Float>.allocate(capacity: w)
                    defer { spread.deallocate() }
                    for plane in range {
                        let target = d.value.baseAddress! + plane * h * w
                        let source = g.value.baseAddress! + plane * oh * ow
                        for oy in 0..<oh {
                            spread.update(repeating: 0, count: w)
                            for ox in 0..<ow {
                                let share = source[oy * ow + ox] / (rows.counts[oy] * columns.counts[ox])
                                for i in columns.ranges[ox] { spread[i] += share }
                            }
                            for y in rows.ranges[oy] {
                                let line = target + y * w
                                for i in 0..<w { line[i] += spread[i] }
                            }
                        }
                    }
                }
            }
        }
        return result
    }

    /// Mean over the spatial dimensions: [N, C, H, W] → [N, C, 1, 1].
    public static func globalAverage(_ x: Tensor) -> Tensor {
        precondition(x.rank == 4, "global average pool expects NCHW, got \(x.shape)")
        let planes = x.shape[0] * x.shape[1], plane = x.shape[2] * x.shape[3]
        return Tensor.build(shape: [x.shape[0], x.shape[1], 1, 1]) { out in
            x.withUnsafeBufferPointer { input in
                for p in 0..<planes {
                    var sum: Float = 0
                    for i in (p * plane)..<((p + 1) * plane) { sum += input[i] }
                    out[p] = sum / Float(plane)
                }
            }
        }
    }

    /// dL/dx of the global average.
    public static func globalAverageBackward(_ gradOutput: Tensor, inputShape: [Int]) -> Tensor {
        let planes = inputShape[0] * inputShape[1], plane = inputShape[2] * inputShape[3]
        return Tensor.build(shape: inputShape) { out in
            gradOutput.withUnsafeBufferPointer { dy in
                for p in 0..<planes {
                    let share = dy[p] / Float(plane)
                    for i in (p * plane)..<((p + 1) * plane) { out[i] = share }
                }
            }
        }
    }
}
