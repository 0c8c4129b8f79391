import CBLAS
import CShims

/// Fully connected layer y = x · Wᵀ + b with W of shape [out, in], as in PyTorch.
public enum Linear {
    /// - Complexity: one `cblas_sgemm`, or at batch 1 one pass over the weights (`rc_linear_f32_run`,
    ///   rows split between the threads), which is what bounds a classifier's time there.
    public static func forward(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        precondition(x.rank == 2 && weight.rank == 2 && x.shape[1] == weight.shape[1],
                     "linear: input \(x.shape) does not match weight \(weight.shape)")
        let (batch, inputs, outputs) = (x.shape[0], x.shape[1], weight.shape[0])
        if let bias { precondition(bias.shape == [outputs], "linear: bias \(bias.shape) does not match weight \(weight.shape)") }
        if batch == 1 {
            return Tensor.build(shape: [1, outputs]) { out in
                x.withUnsafeBufferPointer { input in weight.withUnsafeBufferPointer { w in withBiasPointer(bias) { b in
                    let (x, weights, bias, o) = (UncheckedSendable(input.baseAddress!), UncheckedSendable(w.baseAddress!),
                                                 UncheckedSendable(b), UncheckedSendable(out.baseAddress!))
                    Threading.parallelForBalanced(rc_linear_f32_items(outputs)) { items in
                        rc_linear_f32_run(x.value, inputs, weights.value, bias.value, outputs, o.value, items.lowerBound, items.upperBound)
                    }
                } } }
            }
        }
        return Tensor.build(shape: [batch, outputs]) { out in
            x.withUnsafeBufferPointer { input in weight.withUnsafeBufferPointer { w in
                if let bias {
                    bias.withUnsafeBufferPointer { b in
                        for n in 0..<batch { (out.baseAddress! + n * outputs).update(from: b.baseAddress!, count: outputs) }
                    }
                } else {
                    out.update(repeating: 0)
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(batch), Int32(outputs), Int32(inputs),
                            1, input.baseAddress!, Int32(inputs), w.baseAddress!, Int32(inputs), 1, out.baseAddress!, Int32(outputs))
            } }
        }
    }

    private static func withBiasPointer<R>(_ bias: Tensor?, _ body: (UnsafePointer<Float>?) -> R) -> R {
        guard let bias else { return body(nil) }
        return bias.withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    /// dL/dx = dy · W.
    public static func backwardInput(_ gradOutput: Tensor, weight: Tensor) -> Tensor {
        let (batch, outputs, inputs) = (gradOutput.shape[0], weight.shape[0], weight.shape[1])
        precondition(gradOutput.shape == [batch, outputs], "linear backward: gradient \(gradOutput.shape) does not match weight \(weight.shape)")
        return Tensor.build(shape: [batch, inputs]) { out in
            gradOutput.withUnsafeBufferPointer { dy in weight.withUnsafeBufferPointer { w in
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(batch), Int32(inputs), Int32(outputs),
                            1, dy.baseAddress!, Int32(outputs), w.baseAddress!, Int32(inputs), 0, out.baseAddress!, Int32(inputs))
            } }
        }
    }

    /// dL/dW = dyᵀ · x and dL/db = Σₙ dy.
    public static func backwardParameters(_ gradOutput: Tensor, input: Tensor) -> (weight: Tensor, bias: Tensor) {
        let (batch, outputs, inputs) = (gradOutput.shape[0], gradOutput.shape[1], input.shape[1])
        let gradWeight = Tensor.build(shape: [outputs, inputs]) { out in
            gradOutput.withUnsafeBufferPointer { dy in input.withUnsafeBufferPointer { x in
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(outputs), Int32(inputs), Int32(batch),
                            1, dy.baseAddress!, Int32(outputs), x.baseAddress!, Int32(inputs), 0, out.baseAddress!, Int32(inputs))
            } }
        }
        let gradBias = Tensor.build(shape: [outputs]) { out in
            out.update(repeating: 0)
            gradOutput.withUnsafeBufferPointer { dy in
                for n in 0..<batch { for o in 0..<outputs { out[o] += dy[n * outputs + o] } }
            }
        }
        return (gradWeight, gradBias)
    }
}
