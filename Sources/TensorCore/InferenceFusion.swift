/// Rewrites a graph for inference: every batch norm that directly follows a convolution
/// (its only reader) is folded into the convolution's weights and bias, and a ReLU or ReLU6
/// that directly follows is fused as the convolution's activation.
///
/// The result computes the same function in inference mode — the same outputs and the same
/// input gradients — with two fewer passes over memory per convolution. It has no
/// parameter gradients for the fused convolutions; train on the original graph.
public enum InferenceFusion {
    /// - Returns: the fused graph and its parameters (folded tensors are new entries named
    ///   `<conv node>.fused_weight` / `.fused_bias`; untouched parameters are shared).
    public static func fuse(_ graph: Graph, parameters: Parameters) -> (graph: Graph, parameters: Parameters) {
        let readers = readerLists(graph)
        var fused = Graph()
        var newIndex = [Int](repeating: -1, count: graph.nodes.count)
        newIndex[0] = 0
        var outputs = parameters
        var absorbed = Set<Int>()
        for index in 1..<graph.nodes.count where !absorbed.contains(index) {
            let node = graph.nodes[index]
            if case let .conv2d(config, weight, bias) = node.operation,
               let normIndex = soleReader(index, readers, graph),
               case let .batchNorm(scale, shift, mean, variance, epsilon, _) = graph.nodes[normIndex].operation,
               let w = parameters[weight], let runningMean = parameters[mean], let runningVariance = parameters[variance] {
                var last = normIndex
                var activation = FusedActivation.none
                if let next = soleReader(normIndex, readers, graph) {
                    switch graph.nodes[next].operation {
                    case .relu: activation = .relu; last = next
                    case .relu6: activation = .relu6; last = next
                    default: break
                    }
                }
                let (foldedWeight, foldedBias) = fold(weight: w, bias: bias.flatMap { parameters[$0] }, gamma: scale.flatMap { parameters[$0] },
                                                      beta: shift.flatMap { parameters[$0] }, mean: runningMean, variance: runningVariance,
                                                      epsilon: epsilon)
                let weightName = node.name + ".fused_weight", biasName = node.name + ".fused_bias"
                outputs[weightName] = foldedWeight
                outputs[biasName] = foldedBias
                let added = fused.add(graph.nodes[last].name, .fusedConv2d(config, weight: weightName, bias: biasName, activation: activation),
                                      inputs: node.inputs.map { newIndex[$0] })
                for member in [index, normIndex, last] { newIndex[member] = added; absorbed.insert(member) }
                continue
            }
            newIndex[index] = fused.add(node.name, node.operation, inputs: node.inputs.map { newIndex[$0] })
        }
        fused.output = newIndex[graph.output]
        let used = Set(fused.parameterNames)
        return (fused, outputs.filter { used.contains($0.key) })
    }

    /// w'[o] = w[o] · γ[o] / √(var[o] + ε);  b'[o] = (b[o] − mean[o]) · γ[o] / √(var[o] + ε) + β[o].
    static func fold(weight: Tensor, bias: Tensor?, gamma: Tensor?, beta: Tensor?, mean: Tensor, variance: Tensor,
                     epsilon: Float) -> (Tensor, Tensor) {
        let outChannels = weight.shape[0], perChannel = weight.count / outChannels
        let g = gamma?.scalars ?? [Float](repeating: 1, count: outChannels)
        let b = beta?.scalars ?? [Float](repeating: 0, count: outChannels)
        let c = bias?.scalars ?? [Float](repeating: 0, count: outChannels)
        let m = mean.scalars, v = variance.scalars
        let factor = (0..<outChannels).map { g[$0] / (v[$0] + epsilon).squareRoot() }
        let foldedWeight = Tensor.build(shape: weight.shape) { out in
            weight.withUnsafeBufferPointer { w in
                for o in 0..<outChannels {
                    for i in (o * perChannel)..<((o + 1) * perChannel) { out[i] = w[i] * factor[o] }
                }
            }
        }
        let foldedBias = Tensor(shape: [outChannels], scalars: (0..<outChannels).map { (c[$0] - m[$0]) * factor[$0] + b[$0] })
        return (foldedWeight, foldedBias)
    }

    static func readerLists(_ graph: Graph) -> [[Int]] {
        var readers = [[Int]](repeating: [], count: graph.nodes.count)
        for (index, node) in graph.nodes.enumerated() { for input in node.inputs { readers[input].append(index) } }
        return readers
    }

    /// The node's only reader, if it has exactly one and is not the graph output.
    static func soleReader(_ index: Int, _ readers: [[Int]], _ graph: Graph) -> Int? {
        guard index != graph.output, readers[index].count == 1 else { return nil }
        return readers[index][0]
    }
}
