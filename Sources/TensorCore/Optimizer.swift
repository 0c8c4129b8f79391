import Foundation

/// First-order optimizers over named parameters, with PyTorch's update rules.
public struct Optimizer: Sendable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        /// torch.optim.SGD with momentum: b ← μ·b + (g + λ·p); p ← p − lr·b.
        case sgd
        /// torch.optim.Adam (L2 weight decay added to the gradient), bias-corrected moments.
        case adam
    }

    public var kind: Kind
    public var momentum: Float = 0.9
    public var weightDecay: Float = 0
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8
    private var first: Parameters = [:]
    private var second: Parameters = [:]
    public private(set) var steps = 0

    public init(kind: Kind, momentum: Float = 0.9, weightDecay: Float = 0) {
        self.kind = kind
        self.momentum = momentum
        self.weightDecay = weightDecay
    }

    /// Applies one step to every parameter that has a gradient.
    public mutating func step(_ parameters: inout Parameters, gradients: Parameters, learningRate: Float) {
        steps += 1
        let correction1 = 1 - Float(pow(Double(beta1), Double(steps))), correction2 = 1 - Float(pow(Double(beta2), Double(steps)))
        for (name, gradient) in gradients {
            guard var p = parameters[name] else { continue }
            precondition(p.shape == gradient.shape, "gradient of '\(name)' has shape \(gradient.shape), parameter \(p.shape)")
            var m = first[name] ?? Tensor(shape: p.shape)
            let firstStep = first[name] == nil
            var v = kind == .adam ? (second[name] ?? Tensor(shape: p.shape)) : Tensor(shape: [0])
            let (decay, mu, b1, b2, eps) = (weightDecay, momentum, beta1, beta2, epsilon)
            gradient.withUnsafeBufferPointer { g in
                p.withUnsafeMutableBufferPointer { w in
                    m.withUnsafeMutableBufferPointer { mb in
                        v.withUnsafeMutableBufferPointer { vb in
                            for i in 0..<w.count {
                                let d = g[i] + decay * w[i]
                                switch kind {
                                case .sgd:
                                    mb[i] = firstStep ? d : mu * mb[i] + d
                                    w[i] -= learningRate * mb[i]
                                case .adam:
                                    mb[i] = b1 * mb[i] + (1 - b1) * d
                                    vb[i] = b2 * vb[i] + (1 - b2) * d * d
                                    w[i] -= learningRate * (mb[i] / correction1) / ((vb[i] / correction2).squareRoot() + eps)
                                }
                            }
                        }
                    }
                }
            }
            parameters[name] = p
            first[name] = m
            if kind == .adam { second[name] = v }
        }
    }
}
