/// One operation of a network graph. Parameters are referred to by name: the names are
/// the checkpoint keys of the network's flavour (e.g. `features.0.0.weight`).
public enum Operation: Hashable, Sendable, Codable {
    /// The graph's input (always node 0).
    case input
    case conv2d(Conv2DConfig, weight: String, bias: String?)
    /// Convolution with batch norm folded in and its activation fused: inference only
    /// (its backward pass gives input gradients, not parameter gradients).
    case fusedConv2d(Conv2DConfig, weight: String, bias: String, activation: FusedActivation)
    /// `scale` nil means no learned scale (Keras `scale=False`); momentum as in `BatchNorm.training`.
    case batchNorm(scale: String?, shift: String?, mean: String, variance: String, epsilon: Float, momentum: Float)
    case relu
    case relu6
    case clamp(lower: Float, upper: Float)
    /// Elementwise sum of two or more inputs of equal shape (residual connections).
    case add
    /// Channel concatenation of the inputs, in input order.
    case concat
    case maxPool(Pool2DConfig)
    case avgPool(Pool2DConfig)
    case globalAvgPool
    /// [N, ...] → [N, product of the rest].
    case flatten
    case linear(weight: String, bias: String?)
    /// Inverted dropout in training; the identity in inference.
    case dropout(probability: Float)
    case softmax
    case logSoftmax
    /// Constant per-channel y = x · scale + shift (input normalisation).
    case affine(scale: [Float], shift: [Float])
    /// Constant channel permutation (e.g. RGB → BGR).
    case permuteChannels([Int])
    case zeroPad(Padding2D)

    /// The names of the parameters this operation reads, in a fixed order.
    public var parameterNames: [String] {
        switch self {
        case let .conv2d(_, weight, bias), let .linear(weight, bias): return [weight] + (bias.map { [$0] } ?? [])
        case let .fusedConv2d(_, weight, bias, _): return [weight, bias]
        case let .batchNorm(scale, shift, mean, variance, _, _):
            return (scale.map { [$0] } ?? []) + (shift.map { [$0] } ?? []) + [mean, variance]
        default: return []
        }
    }

    /// Parameters that training updates by gradient (batch-norm statistics are buffers).
    public var trainableParameterNames: [String] {
        if case let .batchNorm(scale, shift, _, _, _, _) = self { return (scale.map { [$0] } ?? []) + (shift.map { [$0] } ?? []) }
        return parameterNames
    }

    /// The kind of operation, for messages and converters.
    public var kindName: String {
        switch self {
        case .input: "input"
        case .conv2d: "conv2d"
        case .fusedConv2d: "fused_conv2d"
        case .batchNorm: "batch_norm"
        case .relu: "relu"
        case .relu6: "relu6"
        case .clamp: "clamp"
        case .add: "add"
        case .concat: "concat"
        case .maxPool: "max_pool"
        case .avgPool: "avg_pool"
        case .globalAvgPool: "global_avg_pool"
        case .flatten: "flatten"
        case .linear: "linear"
        case .dropout: "dropout"
        case .softmax: "softmax"
        case .logSoftmax: "log_softmax"
        case .affine: "affine"
        case .permuteChannels: "permute_channels"
        case .zeroPad: "zero_pad"
        }
    }
}

/// A network as data: a topologically ordered list of named operations.
///
/// The same graph is run with autodiff by `Executor` and transformed by the mobile
/// converter; no network is written twice. Node 0 is the input; each node reads only
/// earlier nodes, so the order is a valid execution order.
public struct Graph: Hashable, Sendable, Codable {
    public struct Node: Hashable, Sendable, Codable {
        public var name: String
        public var operation: Operation
        public var inputs: [Int]
    }

    public private(set) var nodes: [Node]
    /// The node whose value is the graph's result.
    public var output: Int

    /// A graph holding only its input node.
    public init() {
        nodes = [Node(name: "input", operation: .input, inputs: [])]
        output = 0
    }

    /// Appends a node and makes it the output.
    /// - Precondition: every input is an existing node; arity fits the operation.
    /// - Returns: the new node's index, to be used as an input of later nodes.
    @discardableResult
    public mutating func add(_ name: String, _ operation: Operation, inputs: [Int]) -> Int {
        precondition(inputs.allSatisfy { $0 >= 0 && $0 < nodes.count }, "node '\(name)' reads a node that does not exist yet: \(inputs)")
        switch operation {
        case .input: preconditionFailure("only node 0 is an input")
        case .add, .concat: precondition(inputs.count >= 2, "\(operation.kindName) '\(name)' needs at least two inputs")
        default: precondition(inputs.count == 1, "\(operation.kindName) '\(name)' takes one input, got \(inputs.count)")
        }
        nodes.append(Node(name: name, operation: operation, inputs: inputs))
        output = nodes.count - 1
        return output
    }

    /// The same graph with each operation replaced by `transform(operation)`; inputs and
    /// names are kept. - Precondition: the transform keeps each node's arity.
    public func mappingOperations(_ transform: (Operation) -> Operation) -> Graph {
        var copy = self
        for index in copy.nodes.indices.dropFirst() { copy.nodes[index].operation = transform(copy.nodes[index].operation) }
        return copy
    }

    /// Every parameter name the graph reads, in node order, without repeats.
    public var parameterNames: [String] {
        var seen = Set<String>()
        return nodes.flatMap(\.operation.parameterNames).filter { seen.insert($0).inserted }
    }

    /// Trainable parameter names (excludes batch-norm running statistics).
    public var trainableParameterNames: [String] {
        var seen = Set<String>()
        return nodes.flatMap(\.operation.trainableParameterNames).filter { seen.insert($0).inserted }
    }

    /// For each node, how many later nodes read it (the output counts as one more reader).
    public func readerCounts() -> [Int] {
        var counts = [Int](repeating: 0, count: nodes.count)
        for node in nodes { for input in node.inputs { counts[input] += 1 } }
        counts[output] += 1
        return counts
    }
}
