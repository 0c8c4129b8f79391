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

    /// The window of one output cell, clipped to the input, and its averaging divisor.
    @inline(__always)
    static func averageWindow(_ oy: Int, _ ox: Int, h: Int, w: Int, config: Pool2DConfig)
        -> (y: Range<Int>, x: Range<Int>, divisor: Float) {
        let y0 = oy * config.strideH - config.padding.top, x0 = ox * config.strideW - config.padding.left
        // PyTorch's rule: the divisor counts padded cells but not cells beyond the padding
        // (which only ceil mode reaches).
        let yPadEnd = Swift.min(y0 + config.kernelH, h + config.padding.bottom)
        let xPadEnd = Swift.min(x0 + config.kernelW, w + config.padding.right)
        let y = Swift.max(y0, 0)..<Swift.max(Swift.min(y0 + config.kernelH, h), Swift.max(y0, 0))
        let x = Swift.max(x0, 0)..<Swift.max(Swift.min(x0 + config.kernelW, w), Swift.max(x0, 0))
        let divisor = config.countIncludesPadding ? (yPadEnd - y0) * (xPadEnd - x0) : y.count * x.count
        return (y, x, Float(Swift.max(divisor, 1)))
    }

    /// Average pooling.
    public static func average(_ x: Tensor, config: Pool2DConfig) -> Tensor {
        let outputShape = config.outputShape(input: x.shape)
        let (planes, h, w) = (x.shape[0] * x.shape[1], x.shape[2], x.shape[3])
        let (oh, ow) = (outputShape[2], outputShape[3])
        return Tensor.build(shape: outputShape) { out in
            x.withUnsafeBufferPointer { input in
                let (src, dst) = (UncheckedSendable(input), UncheckedSendable(out))
                Threading.parallelFor(planes, minimumChunk: 8) { range in
                    for plane in range {
                        let source = src.value.baseAddress! + plane * h * w
                        for oy in 0..<oh {
                            for ox in 0..<ow {
                                let window = averageWindow(oy, ox, h: h, w: w, config: config)
                                var sum: Float = 0
                                for y in window.y { for xx in window.x { sum += source[y * w + xx] } }
                                dst.value[(plane * oh + oy) * ow + ox] = sum / window.divisor
                            }
                        }
                    }
                }
            }
        }
    }

    /// dL/dx of average pooling.
    public static func averageBackward(_ gradOutput: Tensor, inputShape: [Int], config: Pool2DConfig) -> Tensor {
        let (planes, h, w) = (inputShape[0] * inputShape[1], inputShape[2], inputShape[3])
        let (oh, ow) = (gradOutput.shape[2], gradOutput.shape[3])
        var result = Tensor(shape: inputShape)
        result.withUnsafeMutableBufferPointer { dx in
            gradOutput.withUnsafeBufferPointer { dy in
                let (d, g) = (UncheckedSendable(dx), UncheckedSendable(dy))
                Threading.parallelFor(planes, minimumChunk: 8) { range in
                    for plane in range {
                        let target = d.value.baseAddress! + plane * h * w
                        for oy in 0..<oh {
                            for ox in 0..<ow {
                                let window = averageWindow(oy, ox, h: h, w: w, config: config)
                                let share = g.value[(plane * oh + oy) * ow + ox] / window.divisor
                                for y in window.y { for xx in window.x { target[y * w + xx] += share } }
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
