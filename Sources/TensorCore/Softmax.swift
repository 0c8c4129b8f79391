import Foundation

/// Softmax, log-softmax and cross-entropy over the last axis of [N, K] tensors.
public enum Softmax {
    static func rows(_ x: Tensor) -> (rows: Int, width: Int) {
        precondition(x.rank == 2, "softmax expects [batch, classes], got \(x.shape)")
        return (x.shape[0], x.shape[1])
    }

    /// Numerically stable log-softmax: x − max − log Σ exp(x − max).
    public static func logSoftmax(_ x: Tensor) -> Tensor {
        let (rows, width) = rows(x)
        return Tensor.build(shape: x.shape) { out in
            x.withUnsafeBufferPointer { input in
                for r in 0..<rows {
                    let row = input.baseAddress! + r * width
                    var maximum = -Float.infinity
                    for k in 0..<width { maximum = Swift.max(maximum, row[k]) }
                    var sum: Double = 0
                    for k in 0..<width { sum += Foundation.exp(Double(row[k] - maximum)) }
                    let logSum = Float(Foundation.log(sum))
                    for k in 0..<width { out[r * width + k] = row[k] - maximum - logSum }
                }
            }
        }
    }

    public static func softmax(_ x: Tensor) -> Tensor { logSoftmax(x).map { Foundation.exp($0) } }

    /// dL/dx of softmax given y = softmax(x): y ⊙ (dy − Σ dy ⊙ y).
    public static func softmaxBackward(_ gradOutput: Tensor, output: Tensor) -> Tensor {
        let (rows, width) = rows(output)
        return Tensor.build(shape: output.shape) { out in
            gradOutput.withUnsafeBufferPointer { dy in output.withUnsafeBufferPointer { y in
                for r in 0..<rows {
                    var dot: Float = 0
                    for k in 0..<width { dot += dy[r * width + k] * y[r * width + k] }
                    for k in 0..<width { out[r * width + k] = y[r * width + k] * (dy[r * width + k] - dot) }
                }
            } }
        }
    }

    /// dL/dx of log-softmax given y = logSoftmax(x): dy − exp(y) · Σ dy.
    public static func logSoftmaxBackward(_ gradOutput: Tensor, output: Tensor) -> Tensor {
        let (rows, width) = rows(output)
        return Tensor.build(shape: output.shape) { out in
            gradOutput.withUnsafeBufferPointer { dy in output.withUnsafeBufferPointer { y in
                for r in 0..<rows {
                    var sum: Float = 0
                    for k in 0..<width { sum += dy[r * width + k] }
                    for k in 0..<width { out[r * width + k] = dy[r * width + k] - Foundation.exp(y[r * width + k]) * sum }
                }
            } }
        }
    }

    /// Mean cross-entropy of logits against class labels (PyTorch `cross_entropy`,
    /// reduction 'mean') and its gradient with respect to the logits.
    /// - Precondition: one label per row, each in 0..<classes.
    public static func crossEntropy(logits: Tensor, labels: [Int]) -> (loss: Float, gradient: Tensor) {
        let (rows, width) = rows(logits)
        precondition(labels.count == rows, "cross entropy: \(labels.count) labels for logits \(logits.shape)")
        precondition(labels.allSatisfy { (0..<width).contains($0) }, "cross entropy: label outside 0..<\(width)")
        let logProbabilities = logSoftmax(logits)
        var loss: Double = 0
        let gradient = Tensor.build(shape: logits.shape) { out in
            logProbabilities.withUnsafeBufferPointer { lp in
                for r in 0..<rows {
                    loss -= Double(lp[r * width + labels[r]])
                    for k in 0..<width {
                        out[r * width + k] = (Foundation.exp(lp[r * width + k]) - (k == labels[r] ? 1 : 0)) / Float(rows)
                    }
                }
            }
        }
        return (Float(loss / Double(rows)), gradient)
    }
}
