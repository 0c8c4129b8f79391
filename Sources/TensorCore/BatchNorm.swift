import Foundation

/// Batch normalisation over the channel axis of NCHW tensors.
///
/// Inference uses the running statistics; training mode normalises with the batch's own
/// statistics and updates the running ones. Conventions are PyTorch's by default
/// (`momentum` is the weight of the new batch; the running variance takes the unbiased
/// batch variance); Keras's `momentum = 0.99` corresponds to `momentum: 0.01` here.
public enum BatchNorm {
    /// Saved by the forward pass for the backward pass.
    public struct Statistics: Sendable {
        /// Per-channel mean used to normalise (running in inference, batch in training).
        public var mean: [Float]
        /// Per-channel 1 / sqrt(variance + ε).
        public var inverseStd: [Float]
    }

    static func channelLayout(_ x: Tensor) -> (batch: Int, channels: Int, plane: Int) {
        precondition(x.rank >= 2, "batch norm expects N, C, ... input, got \(x.shape)")
        return (x.shape[0], x.shape[1], x.shape.dropFirst(2).reduce(1, *))
    }

    /// y = (x − mean) · invstd · γ + β with the given statistics.
    static func normalize(_ x: Tensor, statistics: Statistics, gamma: Tensor?, beta: Tensor?) -> Tensor {
        let (batch, channels, plane) = channelLayout(x)
        return Tensor.build(shape: x.shape) { out in
            x.withUnsafeBufferPointer { input in
                for c in 0..<channels {
                    let g = gamma.map { $0.withUnsafeBufferPointer { $0[c] } } ?? 1
                    let b = beta.map { $0.withUnsafeBufferPointer { $0[c] } } ?? 0
                    let scale = statistics.inverseStd[c] * g
                    let shift = b - statistics.mean[c] * scale
                    for n in 0..<batch {
                        let base = (n * channels + c) * plane
                        for i in base..<(base + plane) { out[i] = input[i] * scale + shift }
                    }
                }
            }
        }
    }

    /// Inference: normalises with the running statistics.
    /// - Parameters: `gamma` nil means no scale (Keras `scale=False`), `beta` nil no shift.
    public static func inference(_ x: Tensor, mean: Tensor, variance: Tensor, gamma: Tensor?, beta: Tensor?,
                                 epsilon: Float) -> (output: Tensor, statistics: Statistics) {
        let channels = channelLayout(x).channels
        precondition(mean.shape == [channels] && variance.shape == [channels],
                     "batch norm: statistics \(mean.shape)/\(variance.shape) do not match input \(x.shape)")
        let statistics = Statistics(mean: mean.scalars, inverseStd: variance.scalars.map { 1 / ($0 + epsilon).squareRoot() })
        return (normalize(x, statistics: statistics, gamma: gamma, beta: beta), statistics)
    }

    /// Training: normalises with the batch statistics (biased variance) and returns the
    /// updated running statistics: running ← (1 − momentum) · running + momentum · batch.
    public static func training(_ x: Tensor, runningMean: Tensor, runningVariance: Tensor, gamma: Tensor?, beta: Tensor?,
                                epsilon: Float, momentum: Float, unbiasedRunningVariance: Bool = true)
        -> (output: Tensor, statistics: Statistics, runningMean: Tensor, runningVariance: Tensor) {
        let (batch, channels, plane) = channelLayout(x)
        let count = batch * plane
        precondition(count > 1, "batch norm training needs more than one value per channel, got input \(x.shape)")
        var means = [Float](repeating: 0, count: channels)
        var variances = [Float](repeating: 0, count: channels)
        x.withUnsafeBufferPointer { input in
            for c in 0..<channels {
                var sum: Double = 0
                for n in 0..<batch {
                    let base = (n * channels + c) * plane
                    for i in base..<(base + plane) { sum += Double(input[i]) }
                }
                let mean = sum / Double(count)
                var squares: Double = 0
                for n in 0..<batch {
                    let base = (n * channels + c) * plane
                    for i in base..<(base + plane) {
                        let d = Double(input[i]) - mean
                        squares += d * d
                    }
                }
                means[c] = Float(mean)
                variances[c] = Float(squares / Double(count))
            }
        }
        let statistics = Statistics(mean: means, inverseStd: variances.map { 1 / ($0 + epsilon).squareRoot() })
        let correction = unbiasedRunningVariance ? Float(count) / Float(count - 1) : 1
        let newMean = Tensor(shape: [channels], scalars: zip(runningMean.scalars, means).map { (1 - momentum) * $0 + momentum * $1 })
        let newVariance = Tensor(shape: [channels], scalars: zip(runningVariance.scalars, variances).map {
            (1 - momentum) * $0 + momentum * $1 * correction
        })
        return (normalize(x, statistics: statistics, gamma: gamma, beta: beta), statistics, newMean, newVariance)
    }

    /// Gradients of either mode. In training mode the batch statistics depend on x, which
    /// adds the two mean-subtraction terms; in inference mode they are constants.
    /// - Returns: dL/dx, and dL/dγ and dL/dβ when `needParameters`.
    public static func backward(_ gradOutput: Tensor, input: Tensor, statistics: Statistics, gamma: Tensor?,
                                training: Bool, needParameters: Bool) -> (input: Tensor, gamma: Tensor?, beta: Tensor?) {
        let (batch, channels, plane) = channelLayout(input)
        requireSameShape(gradOutput.shape, input.shape, "batch norm backward")
        var gradGamma = [Float](repeating: 0, count: channels)
        var gradBeta = [Float](repeating: 0, count: channels)
        let count = Float(batch * plane)
        let gradInput = Tensor.build(shape: input.shape) { out in
            input.withUnsafeBufferPointer { x in gradOutput.withUnsafeBufferPointer { dy in
                for c in 0..<channels {
                    let mean = statistics.mean[c], inverseStd = statistics.inverseStd[c]
                    let g = gamma.map { $0.withUnsafeBufferPointer { $0[c] } } ?? 1
                    var sumDy: Double = 0, sumDyXhat: Double = 0
                    if training || needParameters {
                        for n in 0..<batch {
                            let base = (n * channels + c) * plane
                            for i in base..<(base + plane) {
                                sumDy += Double(dy[i])
                                sumDyXhat += Double(dy[i]) * Double((x[i] - mean) * inverseStd)
                            }
                        }
                    }
                    gradGamma[c] = Float(sumDyXhat)
                    gradBeta[c] = Float(sumDy)
                    let scale = g * inverseStd
                    if training {
                        let meanDy = Float(sumDy) / count, meanDyXhat = Float(sumDyXhat) / count
                        for n in 0..<batch {
                            let base = (n * channels + c) * plane
                            for i in base..<(base + plane) {
                                let xhat = (x[i] - mean) * inverseStd
                                out[i] = scale * (dy[i] - meanDy - xhat * meanDyXhat)
                            }
                        }
                    } else {
                        for n in 0..<batch {
                            let base = (n * channels + c) * plane
                            for i in base..<(base + plane) { out[i] = scale * dy[i] }
                        }
                    }
                }
            } }
        }
        guard needParameters else { return (gradInput, nil, nil) }
        return (gradInput, gamma == nil ? nil : Tensor(shape: [channels], scalars: gradGamma), Tensor(shape: [channels], scalars: gradBeta))
    }
}
