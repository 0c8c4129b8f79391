import CBLAS

/// Fully connected layer y = x · Wᵀ + b with W of shape [out, in], as in PyTorch.
public enum Linear {
    /// - Complexity: one `cblas_sgemm` (or `cblas_sgemv` at batch 1, several times faster there).
    public static func forward(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        precondition(x.rank == 2 && weight.rank == 2 && x.shape[1] == weight.shape[1],
                     "linear: input \(x.shape) does not match weight \(weight.shape)")
        let (batch, inputs, outputs) = (x.shape[0], x.shape[1], weight.shape[0])
        if let bias { precondition(bias.shape == [outputs], "linear: bias \(bias.shape) does not match weight \(weight.shape)") }
        return Tensor.build(shape: [batch, outputs]) { out in
            x.withUnsafeBufferPointer { input in weight.withUnsafeBufferPointer { w in
                if let bias {
                    bias.withUnsafeBufferPointer { b in
                        for n in 0..<batch { (out.baseAddress! + n * outputs).update(from: b.baseAddress!, count: outputs) }
                    }
                } else {
                    out.update(repeating: 0)
                }
                if batch == 1 {
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(outputs), Int32(inputs), 1, w.baseAddress!, Int32(inputs),
                                input.baseAddress!, 1, 1, out.baseAddress!, 1)
                } else {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(batch), Int32(outputs), Int32(inputs),
                                1, input.baseAddress!, Int32(inputs), w.baseAddress!, Int32(inputs), 1, out.baseAddress!, Int32(outputs))
                }
            } }
        }
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
