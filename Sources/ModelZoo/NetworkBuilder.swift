import TensorCore

/// A parameter a network expects: its name (the checkpoint key of its flavour) and its
/// shape in TensorCore's layout (OIHW convolutions, [out, in] linear layers).
public struct ParameterSpec: Hashable, Sendable, Codable {
    public let name: String
    public let shape: [Int]
}

/// How one Keras weight maps onto one of our parameters.
struct KerasWeight: Hashable, Sendable {
    enum Layout: Hashable, Sendable {
        /// Conv2D kernel, HWIO → OIHW.
        case convolution
        /// DepthwiseConv2D kernel, (H, W, C, 1) → (C, 1, H, W).
        case depthwise
        /// Dense kernel, (in, out) → (out, in).
        case dense
        /// Biases and batch-norm vectors, unchanged.
        case vector
    }
    let parameter: String
    let layout: Layout
    let shape: [Int]

    /// The shape the Keras file stores.
    var kerasShape: [Int] {
        switch layout {
        case .convolution: [shape[2], shape[3], shape[1], shape[0]]
        case .depthwise: [shape[2], shape[3], shape[0], 1]
        case .dense: [shape[1], shape[0]]
        case .vector: shape
        }
    }
}

/// A Keras layer that owns weights, in model order (the order of `layer_names` in
/// Keras weight files).
struct KerasLayer: Hashable, Sendable {
    let name: String
    let weights: [KerasWeight]

    /// The layer's Keras class in snake case, as Keras 3 names it in `.weights.h5` files:
    /// told by its kernel's layout (batch norm has vectors only).
    var kerasClassName: String {
        switch weights.first?.layout {
        case .convolution: "conv2d"
        case .depthwise: "depthwise_conv2d"
        case .dense: "dense"
        case .vector, nil: "batch_normalization"
        }
    }
}

/// Builds a network graph while tracking each node's [C, H, W] shape and registering the
/// parameters it needs under the flavour's checkpoint names.
struct NetworkBuilder {
    let flavor: Flavor
    private(set) var graph = Graph()
    private(set) var parameters: [ParameterSpec] = []
    private(set) var optionalParameters: [ParameterSpec] = []
    private(set) var kerasLayers: [KerasLayer] = []
    private var shapes: [[Int]]

    init(flavor: Flavor, inputSize: Int) {
        self.flavor = flavor
        shapes = [[3, inputSize, inputSize]]
    }

    /// [C, H, W] of a node's output.
    func shape(_ node: Int) -> [Int] { shapes[node] }

    private mutating func add(_ name: String, _ operation: Operation, inputs: [Int], shape: [Int]) -> Int {
        let node = graph.add(name, operation, inputs: inputs)
        shapes.append(shape)
        return node
    }

    private func key(_ layer: String, _ torchName: String, _ kerasName: String) -> String {
        flavor == .torch ? "\(layer).\(torchName)" : "\(layer)/\(kerasName)"
    }

    mutating func preprocess(_ preprocessing: Preprocessing, input: Int) -> Int {
        let before = graph.nodes.count
        var graph = self.graph
        let node = preprocessing.append(to: &graph, input: input)
        self.graph = graph
        for _ in before..<graph.nodes.count { shapes.append(shapes[input]) }
        return node
    }

    /// Constant per-channel affine map (e.g. torchvision Inception's `transform_input`).
    mutating func affine(_ name: String, _ x: Int, scale: [Float], shift: [Float]) -> Int {
        add(name, .affine(scale: scale, shift: shift), inputs: [x], shape: shapes[x])
    }

    /// A convolution. `groups == channels == out` with groups > 1 is a Keras DepthwiseConv2D.
    mutating func conv(_ name: String, _ x: Int, out: Int, kernel: (Int, Int), stride: Int = 1,
                       padding: Padding2D = .zero, groups: Int = 1, bias: Bool = false) -> Int {
        let input = shapes[x]
        let weightShape = [out, input[0] / groups, kernel.0, kernel.1]
        let config = Conv2DConfig(strideH: stride, strideW: stride, padding: padding, dilationH: 1, dilationW: 1, groups: groups)
        let output = config.outputShape(input: [1] + input, weight: weightShape)
        let depthwise = groups > 1 && groups == input[0] && out == input[0]
        let weight = key(name, "weight", depthwise ? "depthwise_kernel" : "kernel")
        let biasName = bias ? key(name, "bias", "bias") : nil
        parameters.append(ParameterSpec(name: weight, shape: weightShape))
        var kerasWeights = [KerasWeight(parameter: weight, layout: depthwise ? .depthwise : .convolution, shape: weightShape)]
        if let biasName {
            parameters.append(ParameterSpec(name: biasName, shape: [out]))
            kerasWeights.append(KerasWeight(parameter: biasName, layout: .vector, shape: [out]))
        }
        kerasLayers.append(KerasLayer(name: name, weights: kerasWeights))
        return add(name, .conv2d(config, weight: weight, bias: biasName), inputs: [x], shape: Array(output.dropFirst()))
    }

    /// Convolution with TensorFlow 'same' padding for the current input size.
    mutating func convSame(_ name: String, _ x: Int, out: Int, kernel: (Int, Int), stride: Int = 1,
                           groups: Int = 1, bias: Bool = false) -> Int {
        let padding = Padding2D.same(inputHeight: shapes[x][1], inputWidth: shapes[x][2], kernel: kernel, stride: (stride, stride))
        return conv(name, x, out: out, kernel: kernel, stride: stride, padding: padding, groups: groups, bias: bias)
    }

    /// Batch normalisation. `scale: false` is Keras `scale=False` (no gamma).
    /// Keras momentum m (weight of the old value) is stored as 1 − m, TensorCore's convention.
    mutating func batchNorm(_ name: String, _ x: Int, epsilon: Float, scale: Bool = true, momentum: Float? = nil) -> Int {
        let channels = shapes[x][0]
        let gamma = scale ? key(name, "weight", "gamma") : nil
        let beta = key(name, "bias", "beta")
        let mean = key(name, "running_mean", "moving_mean")
        let variance = key(name, "running_var", "moving_variance")
        var kerasWeights: [KerasWeight] = []
        for parameter in [gamma, beta, mean, variance].compactMap({ $0 }) {
            parameters.append(ParameterSpec(name: parameter, shape: [channels]))
            kerasWeights.append(KerasWeight(parameter: parameter, layout: .vector, shape: [channels]))
        }
        if flavor == .torch { optionalParameters.append(ParameterSpec(name: "\(name).num_batches_tracked", shape: [])) }
        kerasLayers.append(KerasLayer(name: name, weights: kerasWeights))
        let defaultMomentum: Float = flavor == .torch ? 0.1 : 0.01
        return add(name, .batchNorm(scale: gamma, shift: beta, mean: mean, variance: variance, epsilon: epsilon,
                                    momentum: momentum ?? defaultMomentum), inputs: [x], shape: shapes[x])
    }

    mutating func relu(_ name: String, _ x: Int) -> Int { add(name, .relu, inputs: [x], shape: shapes[x]) }
    mutating func relu6(_ name: String, _ x: Int) -> Int { add(name, .relu6, inputs: [x], shape: shapes[x]) }

    mutating func sum(_ name: String, _ inputs: [Int]) -> Int {
        for input in inputs { precondition(shapes[input] == shapes[inputs[0]], "add '\(name)': shapes \(shapes[input]) and \(shapes[inputs[0]])") }
        return add(name, .add, inputs: inputs, shape: shapes[inputs[0]])
    }

    mutating func concat(_ name: String, _ inputs: [Int]) -> Int {
        var shape = shapes[inputs[0]]
        shape[0] = inputs.reduce(0) { $0 + shapes[$1][0] }
        return add(name, .concat, inputs: inputs, shape: shape)
    }

    mutating func maxPool(_ name: String, _ x: Int, _ config: Pool2DConfig) -> Int {
        add(name, .maxPool(config), inputs: [x], shape: Array(config.outputShape(input: [1] + shapes[x]).dropFirst()))
    }

    mutating func avgPool(_ name: String, _ x: Int, _ config: Pool2DConfig) -> Int {
        add(name, .avgPool(config), inputs: [x], shape: Array(config.outputShape(input: [1] + shapes[x]).dropFirst()))
    }

    mutating func zeroPad(_ name: String, _ x: Int, _ padding: Padding2D) -> Int {
        let s = shapes[x]
        return add(name, .zeroPad(padding), inputs: [x], shape: [s[0], s[1] + padding.top + padding.bottom, s[2] + padding.left + padding.right])
    }

    /// Global average pool and flatten: [C, H, W] → [C].
    mutating func globalPool(_ name: String, _ x: Int) -> Int {
        let pooled = add(name, .globalAvgPool, inputs: [x], shape: [shapes[x][0], 1, 1])
        return add(name + ".flatten", .flatten, inputs: [pooled], shape: [shapes[x][0]])
    }

    mutating func dropout(_ name: String, _ x: Int, probability: Float) -> Int {
        add(name, .dropout(probability: probability), inputs: [x], shape: shapes[x])
    }

    mutating func linear(_ name: String, _ x: Int, out: Int) -> Int {
        let inputs = shapes[x][0]
        let weight = key(name, "weight", "kernel"), bias = key(name, "bias", "bias")
        parameters.append(ParameterSpec(name: weight, shape: [out, inputs]))
        parameters.append(ParameterSpec(name: bias, shape: [out]))
        kerasLayers.append(KerasLayer(name: name, weights: [KerasWeight(parameter: weight, layout: .dense, shape: [out, inputs]),
                                                            KerasWeight(parameter: bias, layout: .vector, shape: [out])]))
        return add(name, .linear(weight: weight, bias: bias), inputs: [x], shape: [out])
    }

    /// Declares parameters that checkpoints may carry but inference does not use
    /// (torchvision Inception's auxiliary classifier); they are checked for shape if present.
    mutating func declareOptional(_ specs: [ParameterSpec]) { optionalParameters += specs }
}
