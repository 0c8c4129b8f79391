import CShims
import Foundation
import XCTest
@testable import TensorCore

/// Batch norm, linear, softmax family, and the per-channel and elementwise ops.
final class LayerTests: XCTestCase {
    func testBatchNormInferenceMatchesFormula() {
        let x = random([2, 3, 4, 5], seed: 1)
        let mean = random([3], seed: 2), variance = random([3], seed: 3, lower: 0.5, upper: 2)
        let gamma = random([3], seed: 4), beta = random([3], seed: 5)
        let y = BatchNorm.inference(x, mean: mean, variance: variance, gamma: gamma, beta: beta, epsilon: 1e-3).output
        var expected = Tensor(shape: x.shape)
        for n in 0..<2 { for c in 0..<3 { for i in 0..<4 { for j in 0..<5 {
            expected[n, c, i, j] = (x[n, c, i, j] - mean[c]) / (variance[c] + 1e-3).squareRoot() * gamma[c] + beta[c]
        } } } }
        assertClose(y, expected, absolute: 1e-5)
        // Keras scale=False: no gamma.
        let noScale = BatchNorm.inference(x, mean: mean, variance: variance, gamma: nil, beta: beta, epsilon: 1e-3).output
        XCTAssertEqual(noScale[1, 2, 3, 4], (x[1, 2, 3, 4] - mean[2]) / (variance[2] + 1e-3).squareRoot() + beta[2], accuracy: 1e-5)
    }

    func testBatchNormTrainingStatisticsAndRunningUpdate() {
        let x = random([4, 2, 3, 3], seed: 6)
        let runningMean = Tensor(shape: [2], scalars: [0.5, -0.5]), runningVariance = Tensor(shape: [2], scalars: [1, 2])
        let result = BatchNorm.training(x, runningMean: runningMean, runningVariance: runningVariance, gamma: nil, beta: nil,
                                        epsilon: 1e-5, momentum: 0.1)
        for c in 0..<2 {
            var values: [Double] = []
            for n in 0..<4 { for i in 0..<3 { for j in 0..<3 { values.append(Double(x[n, c, i, j])) } } }
            let mean = values.reduce(0, +) / Double(values.count)
            let biased = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)
            let unbiased = biased * Double(values.count) / Double(values.count - 1)
            XCTAssertEqual(Double(result.runningMean[c]), 0.9 * Double(runningMean[c]) + 0.1 * mean, accuracy: 1e-6)
            XCTAssertEqual(Double(result.runningVariance[c]), 0.9 * Double(runningVariance[c]) + 0.1 * unbiased, accuracy: 1e-6)
            // Normalised output has zero mean and (biased) unit variance per channel.
            var outputs: [Double] = []
            for n in 0..<4 { for i in 0..<3 { for j in 0..<3 { outputs.append(Double(result.output[n, c, i, j])) } } }
            XCTAssertEqual(outputs.reduce(0, +) / Double(outputs.count), 0, accuracy: 1e-5)
            XCTAssertEqual(outputs.map { $0 * $0 }.reduce(0, +) / Double(outputs.count), biased / (biased + 1e-5), accuracy: 1e-4)
        }
    }

    func testBatchNormBackwardMatchesFiniteDifferences() {
        let x = random([3, 2, 3, 4], seed: 7), r = random([3, 2, 3, 4], seed: 8)
        let mean = random([2], seed: 9), variance = random([2], seed: 10, lower: 0.5, upper: 1.5)
        let gamma = random([2], seed: 11), beta = random([2], seed: 12)
        for training in [false, true] {
            func loss(_ x: Tensor, _ g: Tensor, _ b: Tensor) -> Double {
                let y = training
                    ? BatchNorm.training(x, runningMean: mean, runningVariance: variance, gamma: g, beta: b, epsilon: 1e-3, momentum: 0.1).output
                    : BatchNorm.inference(x, mean: mean, variance: variance, gamma: g, beta: b, epsilon: 1e-3).output
                return projection(y, r)
            }
            let statistics = training
                ? BatchNorm.training(x, runningMean: mean, runningVariance: variance, gamma: gamma, beta: beta, epsilon: 1e-3, momentum: 0.1).statistics
                : BatchNorm.inference(x, mean: mean, variance: variance, gamma: gamma, beta: beta, epsilon: 1e-3).statistics
            let grads = BatchNorm.backward(r, input: x, statistics: statistics, gamma: gamma, training: training, needParameters: true)
            assertGradientMatches(grads.input, { loss($0, gamma, beta) }, at: x, step: 1e-3, "bn dx training=\(training)")
            assertGradientMatches(grads.gamma!, { loss(x, $0, beta) }, at: gamma, step: 1e-3, "bn dgamma training=\(training)")
            assertGradientMatches(grads.beta!, { loss(x, gamma, $0) }, at: beta, step: 1e-3, "bn dbeta training=\(training)")
        }
    }

    func testLinearMatchesDefinitionAndGradients() {
        for batch in [1, 3] {
            let x = random([batch, 7], seed: 13), w = random([5, 7], seed: 14), b = random([5], seed: 15)
            let y = Linear.forward(x, weight: w, bias: b)
            var expected = Tensor(shape: [batch, 5])
            for n in 0..<batch { for o in 0..<5 {
                expected[n, o] = b[o] + (0..<7).reduce(Float(0)) { $0 + x[n, $1] * w[o, $1] }
            } }
            assertClose(y, expected, absolute: 1e-5)
            let r = random([batch, 5], seed: 16)
            assertGradientMatches(Linear.backwardInput(r, weight: w), { projection(Linear.forward($0, weight: w, bias: b), r) }, at: x, "linear dx")
            let grads = Linear.backwardParameters(r, input: x)
            assertGradientMatches(grads.weight, { projection(Linear.forward(x, weight: $0, bias: b), r) }, at: w, "linear dw")
            assertGradientMatches(grads.bias, { projection(Linear.forward(x, weight: w, bias: $0), r) }, at: b, "linear db")
        }
    }

    /// Batch 1 takes the own row kernel: a classifier's size and odd sizes without a bias,
    /// against a double-precision sum, on the vector and portable paths; each row's sum has a
    /// fixed order, so one and two threads give the same bits.
    func testLinearAtBatchOneMatchesDoublePrecisionOnEveryPath() {
        for (outputs, inputs, withBias) in [(1000, 1280, true), (37, 45, false), (3, 16, true)] {
            let x = random([1, inputs], seed: 21), w = random([outputs, inputs], seed: 22), b = random([outputs], seed: 23)
            var expected = [Double](repeating: 0, count: outputs)
            for o in 0..<outputs {
                expected[o] = (withBias ? Double(b[o]) : 0) + (0..<inputs).reduce(0.0) { $0 + Double(x[0, $1]) * Double(w[o, $1]) }
            }
            var results: [[Float]] = []
            for (threads, generic) in [(2, Int32(0)), (1, 0), (2, 1)] {
                Threading.setThreads(threads)
                rc_force_generic(generic)
                let y = Linear.forward(x, weight: w, bias: withBias ? b : nil)
                rc_force_generic(0)
                XCTAssertEqual(y.shape, [1, outputs])
                let error = zip(y.scalars, expected).map { abs(Double($0) - $1) }.max()!
                XCTAssertLessThan(error, 1e-6 * Double(inputs), "\(outputs)×\(inputs), \(threads) threads, portable \(generic)")
                results.append(y.scalars)
            }
            Threading.setThreads(ProcessInfo.processInfo.activeProcessorCount)
            XCTAssertEqual(results[0], results[1], "\(outputs)×\(inputs): one and two threads")
        }
    }

    func testSoftmaxFamily() {
        let x = random([3, 6], seed: 17, lower: -4, upper: 4), r = random([3, 6], seed: 18)
        let p = Softmax.softmax(x)
        for row in 0..<3 {
            let exps = (0..<6).map { exp(Double(x[row, $0])) }
            let total = exps.reduce(0, +)
            for k in 0..<6 { XCTAssertEqual(Double(p[row, k]), exps[k] / total, accuracy: 1e-6) }
        }
        // Stable for large logits.
        let large = Softmax.logSoftmax(Tensor(shape: [1, 2], scalars: [1000, 0]))
        XCTAssertEqual(large[0, 0], 0, accuracy: 1e-6)
        XCTAssertEqual(large[0, 1], -1000, accuracy: 1e-3)
        assertGradientMatches(Softmax.softmaxBackward(r, output: p), { projection(Softmax.softmax($0), r) }, at: x, step: 1e-3, "softmax")
        assertGradientMatches(Softmax.logSoftmaxBackward(r, output: Softmax.logSoftmax(x)), { projection(Softmax.logSoftmax($0), r) },
                              at: x, step: 1e-3, "log softmax")
        let labels = [2, 0, 5]
        let (loss, gradient) = Softmax.crossEntropy(logits: x, labels: labels)
        let lp = Softmax.logSoftmax(x)
        XCTAssertEqual(Double(loss), -labels.enumerated().map { Double(lp[$0.offset, $0.element]) }.reduce(0, +) / 3, accuracy: 1e-6)
        assertGradientMatches(gradient, { Double(Softmax.crossEntropy(logits: $0, labels: labels).loss) }, at: x, step: 1e-3, "cross entropy")
    }

    func testChannelOperations() {
        let x = random([2, 3, 4, 5], seed: 19), r3 = random([2, 3, 4, 5], seed: 20)
        let scale: [Float] = [1 / 0.229, 1 / 0.224, 1 / 0.225], shift: [Float] = [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225]
        let y = ChannelOps.affine(x, scale: scale, shift: shift)
        XCTAssertEqual(y[1, 2, 3, 4], (x[1, 2, 3, 4] - 0.406) / 0.225, accuracy: 1e-5)
        assertGradientMatches(ChannelOps.affineBackward(r3, scale: scale), { projection(ChannelOps.affine($0, scale: scale, shift: shift), r3) }, at: x, "affine")

        let bgr = ChannelOps.permute(x, order: [2, 1, 0])
        XCTAssertEqual(bgr[1, 0, 2, 3], x[1, 2, 2, 3])
        assertGradientMatches(ChannelOps.permuteBackward(r3, order: [2, 0, 1]), { projection(ChannelOps.permute($0, order: [2, 0, 1]), r3) }, at: x, "permute")

        let padding = Padding2D(top: 0, bottom: 1, left: 2, right: 1)
        let padded = ChannelOps.zeroPad(x, padding)
        XCTAssertEqual(padded.shape, [2, 3, 5, 8])
        XCTAssertEqual(padded[1, 1, 3, 4], x[1, 1, 3, 2])
        XCTAssertEqual(padded[1, 1, 4, 4], 0)
        let rp = random(padded.shape, seed: 21)
        assertGradientMatches(ChannelOps.zeroPadBackward(rp, padding), { projection(ChannelOps.zeroPad($0, padding), rp) }, at: x, "zero pad")

        let other = random([2, 2, 4, 5], seed: 22)
        let joined = ChannelOps.concat([x, other])
        XCTAssertEqual(joined.shape, [2, 5, 4, 5])
        XCTAssertEqual(joined[1, 4, 2, 1], other[1, 1, 2, 1])
        XCTAssertEqual(joined[1, 2, 2, 1], x[1, 2, 2, 1])
        let pieces = ChannelOps.split(joined, channels: [3, 2])
        XCTAssertEqual(pieces[0], x)
        XCTAssertEqual(pieces[1], other)
    }

    func testElementwise() {
        let x = Tensor(shape: [5], scalars: [-2, -0.0, 0, 3, 7])
        XCTAssertEqual(x.sign().scalars, [-1, 0, 0, 1, 1])
        XCTAssertEqual(Activation.relu6(x).scalars, [0, 0, 0, 3, 6])
        XCTAssertEqual(x.clamped(lower: -1, upper: 1).scalars, [-1, 0, 0, 1, 1])
        let dy = Tensor(shape: [5], repeating: 1)
        XCTAssertEqual(Activation.reluBackward(dy, input: x).scalars, [0, 0, 0, 1, 1])
        XCTAssertEqual(Activation.relu6Backward(dy, input: x).scalars, [0, 0, 0, 1, 0])
        XCTAssertEqual(x.maxAbs(), 7)
        XCTAssertEqual(x.l2Norm(), (4 + 9 + 49 as Float).squareRoot(), accuracy: 1e-6)
        // Copy-on-write: mutating a copy leaves the original intact.
        var copy = x
        copy[0] = 100
        XCTAssertEqual(x[0], -2)
        XCTAssertEqual(copy[0], 100)
    }
}
