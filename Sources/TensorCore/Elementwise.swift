/// Elementwise operations. Large tensors are split across `Threading.threads`.
extension Tensor {
    /// A new tensor with `transform` applied to each element.
    @inlinable @inline(__always)
    public func map(_ transform: (Float) -> Float) -> Tensor {
        Tensor.build(shape: shape) { out in
            withUnsafeBufferPointer { x in
                let input = UncheckedSendable(x), output = UncheckedSendable(out)
                Threading.parallelFor(count, minimumChunk: 1 << 16) { range in
                    for i in range { output.value[i] = transform(input.value[i]) }
                }
            }
        }
    }

    /// A new tensor combining `self` and `other` element by element.
    /// - Precondition: equal shapes.
    @inlinable @inline(__always)
    public func zipMap(_ other: Tensor, _ operation: StaticString = "zipMap",
                       _ combine: (Float, Float) -> Float) -> Tensor {
        requireSameShape(shape, other.shape, operation)
        return Tensor.build(shape: shape) { out in
            withUnsafeBufferPointer { a in other.withUnsafeBufferPointer { b in
                let lhs = UncheckedSendable(a), rhs = UncheckedSendable(b), output = UncheckedSendable(out)
                Threading.parallelFor(count, minimumChunk: 1 << 16) { range in
                    for i in range { output.value[i] = combine(lhs.value[i], rhs.value[i]) }
                }
            } }
        }
    }

    public static func + (lhs: Tensor, rhs: Tensor) -> Tensor { lhs.zipMap(rhs, "add") { $0 + $1 } }
    public static func - (lhs: Tensor, rhs: Tensor) -> Tensor { lhs.zipMap(rhs, "subtract") { $0 - $1 } }
    /// Elementwise (Hadamard) product.
    public static func * (lhs: Tensor, rhs: Tensor) -> Tensor { lhs.zipMap(rhs, "multiply") { $0 * $1 } }
    public static func * (lhs: Tensor, rhs: Float) -> Tensor { lhs.map { $0 * rhs } }
    public static func * (lhs: Float, rhs: Tensor) -> Tensor { rhs.map { $0 * lhs } }
    public static func + (lhs: Tensor, rhs: Float) -> Tensor { lhs.map { $0 + rhs } }
    public static prefix func - (tensor: Tensor) -> Tensor { tensor.map { -$0 } }

    /// Accumulates `other` into `self` in place.
    public static func += (lhs: inout Tensor, rhs: Tensor) {
        requireSameShape(lhs.shape, rhs.shape, "add in place")
        rhs.withUnsafeBufferPointer { b in
            lhs.withUnsafeMutableBufferPointer { a in
                for i in a.indices { a[i] += b[i] }
            }
        }
    }

    /// sign(x): -1, 0 or 1 (0 for ±0, as `torch.sign`).
    public func sign() -> Tensor { map { $0 > 0 ? 1 : ($0 < 0 ? -1 : 0) } }

    /// Elements clipped to [lower, upper].
    public func clamped(lower: Float, upper: Float) -> Tensor {
        precondition(lower <= upper, "clamp: lower \(lower) above upper \(upper)")
        return map { Swift.min(Swift.max($0, lower), upper) }
    }

    public func sum() -> Float {
        withUnsafeBufferPointer { x in
            var total: Double = 0
            for value in x { total += Double(value) }
            return Float(total)
        }
    }

    /// The largest absolute value (the L∞ norm).
    public func maxAbs() -> Float {
        withUnsafeBufferPointer { x in x.reduce(0) { Swift.max($0, Swift.abs($1)) } }
    }

    /// The Euclidean norm, accumulated in double precision.
    public func l2Norm() -> Float {
        withUnsafeBufferPointer { x in
            var total: Double = 0
            for value in x { total += Double(value) * Double(value) }
            return Float(total.squareRoot())
        }
    }
}

/// Activation and elementwise operations with their backward passes.
public enum Activation {
    public static func relu(_ x: Tensor) -> Tensor { x.map { Swift.max($0, 0) } }

    /// dL/dx of ReLU; the gradient at exactly 0 is 0, as in PyTorch.
    public static func reluBackward(_ gradOutput: Tensor, input: Tensor) -> Tensor {
        gradOutput.zipMap(input, "relu backward") { $1 > 0 ? $0 : 0 }
    }

    public static func relu6(_ x: Tensor) -> Tensor { x.map { Swift.min(Swift.max($0, 0), 6) } }

    /// dL/dx of ReLU6; 0 at and beyond both kinks, as in PyTorch's hardtanh backward.
    public static func relu6Backward(_ gradOutput: Tensor, input: Tensor) -> Tensor {
        gradOutput.zipMap(input, "relu6 backward") { ($1 > 0 && $1 < 6) ? $0 : 0 }
    }

    /// dL/dx of clamp: passes the gradient where lower ≤ x ≤ upper (PyTorch's clamp rule).
    public static func clampBackward(_ gradOutput: Tensor, input: Tensor, lower: Float, upper: Float) -> Tensor {
        gradOutput.zipMap(input, "clamp backward") { ($1 >= lower && $1 <= upper) ? $0 : 0 }
    }
}

/// Per-channel operations on NCHW tensors.
public enum ChannelOps {
    /// y[n, c] = x[n, c] · scale[c] + shift[c]: input normalisation and similar.
    public static func affine(_ x: Tensor, scale: [Float], shift: [Float]) -> Tensor {
        precondition(x.rank >= 2 && scale.count == x.shape[1] && shift.count == x.shape[1],
                     "affine: \(scale.count) scales and \(shift.count) shifts for shape \(x.shape)")
        let channels = x.shape[1], plane = x.count / (x.shape[0] * channels)
        return Tensor.build(shape: x.shape) { out in
            x.withUnsafeBufferPointer { input in
                for n in 0..<x.shape[0] {
                    for c in 0..<channels {
                        let base = (n * channels + c) * plane
                        let a = scale[c], b = shift[c]
                        for i in base..<(base + plane) { out[i] = input[i] * a + b }
                    }
                }
            }
        }
    }

    /// dL/dx of `affine`.
    public static func affineBackward(_ gradOutput: Tensor, scale: [Float]) -> Tensor {
        affine(gradOutput, scale: scale, shift: [Float](repeating: 0, count: scale.count))
    }

    /// y[n, c] = x[n, order[c]]: e.g. [2, 1, 0] turns RGB into BGR.
    /// - Precondition: `order` is a permutation of the channel indices.
    public static func permute(_ x: Tensor, order: [Int]) -> Tensor {
        precondition(x.rank >= 2 && order.count == x.shape[1] && Set(order) == Set(0..<x.shape[1]),
                     "permute: order \(order) is not a permutation of the channels of \(x.shape)")
        let channels = x.shape[1], plane = x.count / (x.shape[0] * channels)
        return Tensor.build(shape: x.shape) { out in
            x.withUnsafeBufferPointer { input in
                for n in 0..<x.shape[0] {
                    for c in 0..<channels {
                        (out.baseAddress! + (n * channels + c) * plane)
                            .update(from: input.baseAddress! + (n * channels + order[c]) * plane, count: plane)
                    }
                }
            }
        }
    }

    /// dL/dx of `permute`: the inverse permutation applied to the gradient.
    public static func permuteBackward(_ gradOutput: Tensor, order: [Int]) -> Tensor {
        var inverse = [Int](repeating: 0, count: order.count)
        for (destination, source) in order.enumerated() { inverse[source] = destination }
        return permute(gradOutput, order: inverse)
    }

    /// Joins NCHW tensors along the channel axis.
    /// - Precondition: equal batch and spatial extents.
    public static func concat(_ tensors: [Tensor]) -> Tensor {
        precondition(!tensors.isEmpty, "concat of no tensors")
        let first = tensors[0].shape
        for tensor in tensors {
            precondition(tensor.rank == first.count && tensor.shape[0] == first[0] && Array(tensor.shape.dropFirst(2)) == Array(first.dropFirst(2)),
                         "concat: shape \(tensor.shape) does not match shape \(first) outside the channel axis")
        }
        let batch = first[0], plane = first.dropFirst(2).reduce(1, *)
        let channels = tensors.reduce(0) { $0 + $1.shape[1] }
        var shape = first
        shape[1] = channels
        return Tensor.build(shape: shape) { out in
            for n in 0..<batch {
                var offset = n * channels * plane
                for tensor in tensors {
                    let length = tensor.shape[1] * plane
                    tensor.withUnsafeBufferPointer { x in
                        (out.baseAddress! + offset).update(from: x.baseAddress! + n * length, count: length)
                    }
                    offset += length
                }
            }
        }
    }

    /// dL/dx of `concat`: the gradient split back into pieces of the given channel counts.
    public static func split(_ gradOutput: Tensor, channels: [Int]) -> [Tensor] {
        precondition(channels.reduce(0, +) == gradOutput.shape[1], "split: channels \(channels) do not add up to \(gradOutput.shape)")
        let batch = gradOutput.shape[0], plane = gradOutput.shape.dropFirst(2).reduce(1, *)
        var offset = 0
        return channels.map { count in
            var shape = gradOutput.shape
            shape[1] = count
            let start = offset
            offset += count
            return Tensor.build(shape: shape) { out in
                gradOutput.withUnsafeBufferPointer { dy in
                    for n in 0..<batch {
                        (out.baseAddress! + n * count * plane)
                            .update(from: dy.baseAddress! + (n * gradOutput.shape[1] + start) * plane, count: count * plane)
                    }
                }
            }
        }
    }

    /// Zero padding of the spatial dimensions of an NCHW tensor (Keras ZeroPadding2D).
    public static func zeroPad(_ x: Tensor, _ padding: Padding2D) -> Tensor {
        precondition(x.rank == 4, "zeroPad expects NCHW, got \(x.shape)")
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let oh = h + padding.top + padding.bottom, ow = w + padding.left + padding.right
        var result = Tensor(shape: [n, c, oh, ow])
        result.withUnsafeMutableBufferPointer { out in
            x.withUnsafeBufferPointer { input in
                for plane in 0..<(n * c) {
                    for y in 0..<h {
                        (out.baseAddress! + plane * oh * ow + (y + padding.top) * ow + padding.left)
                            .update(from: input.baseAddress! + plane * h * w + y * w, count: w)
                    }
                }
            }
        }
        return result
    }

    /// dL/dx of `zeroPad`: the gradient cropped back to the input's extent.
    public static func zeroPadBackward(_ gradOutput: Tensor, _ padding: Padding2D) -> Tensor {
        let (n, c, oh, ow) = (gradOutput.shape[0], gradOutput.shape[1], gradOutput.shape[2], gradOutput.shape[3])
        let h = oh - padding.top - padding.bottom, w = ow - padding.left - padding.right
        return Tensor.build(shape: [n, c, h, w]) { out in
            gradOutput.withUnsafeBufferPointer { dy in
                for plane in 0..<(n * c) {
                    for y in 0..<h {
                        (out.baseAddress! + plane * h * w + y * w)
                            .update(from: dy.baseAddress! + plane * oh * ow + (y + padding.top) * ow + padding.left, count: w)
                    }
                }
            }
        }
    }
}
