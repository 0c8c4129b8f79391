import Foundation
import TensorCore

extension NetworkDefinition {
    /// Seeded random parameters for every tensor the network reads, as the reference
    /// frameworks initialise them for training: convolutions He-normal (fan-out, as
    /// torchvision), linear layers uniform in ±1/√fan-in, batch norm γ = 1, β = 0,
    /// running mean 0 and variance 1. The same seed gives the same parameters.
    public func randomParameters(seed: UInt64) -> Parameters {
        var generator = SeededGenerator(seed: seed)
        var parameters: Parameters = [:]
        let shapes = Dictionary(self.parameters.map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a })
        func shapeOf(_ name: String) -> [Int]? { shapes[name] }
        for node in graph.nodes {
            switch node.operation {
            case let .conv2d(_, weight, bias):
                guard let shape = shapeOf(weight) else { continue }
                let fanOut = Double(shape[0] * shape[2] * shape[3])
                parameters[weight] = Tensor.randomNormal(shape: shape, standardDeviation: Float((2 / fanOut).squareRoot()), generator: &generator)
                if let bias { parameters[bias] = Tensor(shape: [shape[0]]) }
            case let .linear(weight, bias):
                guard let shape = shapeOf(weight) else { continue }
                let bound = Float(1 / Double(shape[1]).squareRoot())
                parameters[weight] = Tensor.randomUniform(shape: shape, lower: -bound, upper: bound, generator: &generator)
                if let bias { parameters[bias] = Tensor.randomUniform(shape: [shape[0]], lower: -bound, upper: bound, generator: &generator) }
            case let .batchNorm(scale, shift, mean, variance, _, _):
                guard let shape = shapeOf(mean) else { continue }
                if let scale { parameters[scale] = Tensor(shape: shape, repeating: 1) }
                if let shift { parameters[shift] = Tensor(shape: shape) }
                parameters[mean] = Tensor(shape: shape)
                parameters[variance] = Tensor(shape: shape, repeating: 1)
            default:
                break
            }
        }
        return parameters
    }
}

extension Model {
    /// A model with seeded random parameters (benchmarks, tests, training from scratch).
    public init(randomlyInitialized definition: NetworkDefinition, seed: UInt64) throws {
        try self.init(definition: definition, tensors: definition.randomParameters(seed: seed), source: "random(seed: \(seed))")
    }
}
