import TensorCore

/// A network described as data: its graph (preprocessing included: the input is [N, 3, S, S]
/// RGB in [0, 1], the output logits) and the parameters it expects.
public struct NetworkDefinition: Sendable {
    public let config: ModelConfig
    public let graph: Graph
    /// Parameters the graph reads, in definition order, named by the flavour's checkpoint keys.
    public let parameters: [ParameterSpec]
    /// Keys a checkpoint may carry that inference does not read (BatchNorm
    /// `num_batches_tracked`, Inception's auxiliary classifier); checked for shape when present.
    public let optionalParameters: [ParameterSpec]
    public let preprocessing: Preprocessing
    /// Weighted Keras layers in model order, for `.h5` files.
    let kerasLayers: [KerasLayer]

    /// Builds the graph of a configuration.
    /// - Throws: `ModelError` naming the violated constraint (input too small, bad width).
    public init(_ config: ModelConfig) throws {
        try config.validate()
        var builder = NetworkBuilder(flavor: config.flavor, inputSize: config.inputSize)
        let preprocessing = Preprocessing.of(config.architecture, config.flavor)
        let input = builder.preprocess(preprocessing, input: 0)
        switch (config.architecture, config.flavor) {
        case (.mobilenetV2, .torch): _ = MobileNetV2.torch(config, &builder, input: input)
        case (.mobilenetV2, .keras): _ = MobileNetV2.keras(config, &builder, input: input)
        case (.resnet50, .torch): _ = ResNet50.torch(config, &builder, input: input)
        case (.resnet50, .keras): _ = ResNet50.keras(config, &builder, input: input)
        case (.inceptionV3, .torch): _ = InceptionV3.torch(config, &builder, input: input)
        case (.inceptionV3, .keras): _ = InceptionV3.keras(config, &builder, input: input)
        }
        self.config = config
        self.graph = builder.graph
        self.parameters = builder.parameters
        self.optionalParameters = builder.optionalParameters
        self.preprocessing = preprocessing
        self.kerasLayers = Self.kerasModelOrder(builder.kerasLayers, graph: builder.graph)
    }

    /// Keras's own order of `model.layers` (`Functional._map_graph_network`): layers by
    /// decreasing depth, depth being the longest path to the output; ties in the order a
    /// depth-first walk from the output, inputs in call order, first reaches them.
    static func kerasModelOrder(_ layers: [KerasLayer], graph: Graph) -> [KerasLayer] {
        var depth = [Int](repeating: -1, count: graph.nodes.count)
        depth[graph.output] = 0
        for index in stride(from: graph.nodes.count - 1, through: 0, by: -1) where depth[index] >= 0 {
            for input in graph.nodes[index].inputs { depth[input] = max(depth[input], depth[index] + 1) }
        }
        var discovery = [Int](repeating: Int.max, count: graph.nodes.count)
        var counter = 0
        var stack = [graph.output]
        while let node = stack.popLast() {
            guard discovery[node] == Int.max else { continue }
            discovery[node] = counter
            counter += 1
            stack.append(contentsOf: graph.nodes[node].inputs.reversed())
        }
        let position = Dictionary(graph.nodes.indices.map { (graph.nodes[$0].name, $0) }, uniquingKeysWith: { a, _ in a })
        return layers.sorted { a, b in
            let (x, y) = (position[a.name]!, position[b.name]!)
            return depth[x] != depth[y] ? depth[x] > depth[y] : discovery[x] < discovery[y]
        }
    }
}
