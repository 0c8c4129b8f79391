import Foundation
import TensorCore

/// A network with its weights: what attacks, evaluation and the converter work on.
public struct Model: Sendable {
    public let definition: NetworkDefinition
    /// The parameters by checkpoint name, as the training graph reads them.
    public let parameters: Parameters
    /// The graph for inference and input gradients: batch norm folded into convolutions and
    /// activations fused (`InferenceFusion`); same outputs and input gradients.
    public let inferenceGraph: Graph
    public let inferenceParameters: Parameters
    /// The inference graph run channels-last (no per-layer reorders); nil if it holds an op
    /// that program does not run.
    let channelsLast: ChannelsLastInference?

    public var config: ModelConfig { definition.config }
    public var graph: Graph { definition.graph }

    /// Pairs a definition with named tensors, strictly: missing, unexpected, mis-shaped and
    /// non-finite (NaN or infinite) tensors are all reported together in one error. Optional
    /// entries (BatchNorm `num_batches_tracked`, Inception's auxiliary head) are shape-checked
    /// and dropped.
    /// - Parameter source: the file name used in errors.
    public init(definition: NetworkDefinition, tensors: [String: Tensor], source: String) throws {
        var problems: [String] = []
        var parameters: Parameters = [:]
        for spec in definition.parameters {
            guard let tensor = tensors[spec.name] else {
                problems.append("missing '\(spec.name)' \(spec.shape)")
                continue
            }
            guard tensor.shape == spec.shape else {
                problems.append("'\(spec.name)' has shape \(tensor.shape), expected \(spec.shape)")
                continue
            }
            // A diverged training run or a damaged file: every prediction would be NaN.
            let nonFinite = Model.nonFiniteCount(tensor)
            guard nonFinite == 0 else {
                problems.append("'\(spec.name)' holds \(nonFinite) of \(tensor.count) values that are NaN or infinite")
                continue
            }
            parameters[spec.name] = tensor
        }
        let optional = Dictionary(definition.optionalParameters.map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a })
        for (name, tensor) in tensors.sorted(by: { $0.key < $1.key }) where parameters[name] == nil && !definition.parameters.contains(where: { $0.name == name }) {
            if let shape = optional[name] {
                if tensor.shape != shape && !(shape.isEmpty && tensor.count == 1) {
                    problems.append("'\(name)' has shape \(tensor.shape), expected \(shape)")
                }
            } else {
                problems.append("unexpected '\(name)' \(tensor.shape)")
            }
        }
        if !problems.isEmpty {
            let expected = "\(definition.config.flavor.rawValue) \(definition.config.architecture.rawValue)"
                + " (width \(definition.config.widthMultiplier), \(definition.config.numClasses) classes)"
            var listed = problems
            if let guess = WeightFileInspector.describe(Array(tensors.keys)), !guess.matches(definition.config) {
                // Listing hundreds of keys says less than naming what the file is.
                let missing = problems.filter { $0.hasPrefix("missing") }.count
                let unexpected = problems.filter { $0.hasPrefix("unexpected") }.count
                listed = ["the file looks like a \(guess.flavor.rawValue) \(guess.architecture.rawValue) checkpoint "
                          + "(\(missing) expected tensors missing, \(unexpected) unexpected)"]
            } else {
                if listed.count > 25 { listed = Array(listed.prefix(25)) + ["... and \(listed.count - 25) more"] }
                if let fit = WeightFileInspector.fittingConfig(tensors, near: definition) {
                    listed.insert("the file fits width multiplier \(fit.widthMultiplier) with \(fit.numClasses) classes", at: 0)
                }
            }
            throw WeightFileError.mismatch(file: source, expected: expected, problems: listed)
        }
        self.definition = definition
        self.parameters = parameters
        (inferenceGraph, inferenceParameters) = InferenceFusion.fuse(definition.graph, parameters: parameters)
        channelsLast = ChannelsLastInference(graph: inferenceGraph, parameters: inferenceParameters)
    }

    /// The number of NaN and infinite values in `tensor`. Complexity: O(count).
    static func nonFiniteCount(_ tensor: Tensor) -> Int {
        tensor.withUnsafeBufferPointer { values in values.reduce(0) { $0 + ($1.isFinite ? 0 : 1) } }
    }

    /// Loads a weight file of any supported format (recognised by content, not extension).
    public init(config: ModelConfig, weights path: String) throws {
        let definition = try NetworkDefinition(config)
        let tensors = try WeightFiles.read(path, for: definition)
        try self.init(definition: definition, tensors: tensors, source: path)
    }

    /// Logits for a batch of [N, 3, S, S] RGB images in [0, 1]. With the default (oneDNN)
    /// executor they come from the channels-last program; with another backend, or if
    /// oneDNN refuses a layer, from the `Executor`.
    public func logits(_ images: Tensor, executor: Executor = Executor()) -> Tensor {
        requireImageBatch(images)
        if executor.backend == .onednn, let channelsLast, let logits = try? channelsLast.run(images) { return logits }
        return executor.forward(inferenceGraph, parameters: inferenceParameters, input: images)
    }

    /// The top-1 class of each image.
    public func predictions(_ images: Tensor, executor: Executor = Executor()) -> [Int] {
        Model.argmax(logits(images, executor: executor))
    }

    /// Row-wise argmax of [N, K] logits (the first maximum on ties, as `torch.argmax`).
    public static func argmax(_ logits: Tensor) -> [Int] {
        let (rows, classes) = (logits.shape[0], logits.shape[1])
        return logits.withUnsafeBufferPointer { values in
            (0..<rows).map { row in
                var best = 0
                for k in 1..<classes where values[row * classes + k] > values[row * classes + best] { best = k }
                return best
            }
        }
    }

    /// - Precondition: [N, 3, S, S] at the model's input size.
    private func requireImageBatch(_ images: Tensor) {
        precondition(images.rank == 4 && images.shape[1] == 3 && images.shape[2] == config.inputSize && images.shape[3] == config.inputSize,
                     "\(config.architecture.rawValue) expects [N, 3, \(config.inputSize), \(config.inputSize)] images, got \(images.shape)")
    }

    /// Inference forward pass keeping what an input-gradient backward pass needs (the
    /// `Executor`'s NCHW path; `inputGradient` is the faster way to one gradient).
    public func forwardForInputGradient(_ images: Tensor, executor: Executor = Executor()) -> ForwardPass {
        executor.forwardForGradient(inferenceGraph, parameters: inferenceParameters, input: images)
    }

    /// Logits for a batch of images and dL/d(images) for the logit gradient that
    /// `logitGradient` computes from those logits (e.g. a loss's). With the default (oneDNN)
    /// executor both passes run channels-last (`ChannelsLastInference.inputGradient`);
    /// with another backend, or if oneDNN refuses a layer, on the `Executor`.
    public func inputGradient(_ images: Tensor, executor: Executor = Executor(),
                              logitGradient: (Tensor) -> Tensor) -> (logits: Tensor, gradient: Tensor) {
        requireImageBatch(images)
        if executor.backend == .onednn, let channelsLast,
           let result = try? channelsLast.inputGradient(images, outputGradient: logitGradient) {
            return (result.output, result.inputGradient)
        }
        let pass = forwardForInputGradient(images, executor: executor)
        return (pass.output, pass.backward(logitGradient(pass.output), target: .input).input)
    }
}

/// Guesses what network a set of checkpoint keys belongs to, for error messages.
enum WeightFileInspector {
    struct Guess {
        let architecture: Architecture
        let flavor: Flavor
        func matches(_ config: ModelConfig) -> Bool { architecture == config.architecture && flavor == config.flavor }
    }

    /// Another width or class count of `definition`'s network whose parameters all have the
    /// shapes `tensors` holds, or nil. Tried: the class count of the file's classifier, with the
    /// width its first convolution implies and, for MobileNetV2 (whose rounding hides the width
    /// in the first layer), the published ones and our reduced ones. Complexity: a few graph builds.
    static func fittingConfig(_ tensors: [String: Tensor], near definition: NetworkDefinition) -> ModelConfig? {
        let config = definition.config
        let classifier = definition.graph.nodes.lazy.compactMap { node -> String? in
            if case let .linear(weight, _) = node.operation { return weight }
            return nil
        }.last
        guard let classes = classifier.flatMap({ tensors[$0]?.shape.first }), let stem = definition.parameters.first,
              let stored = tensors[stem.name]?.shape.first, let expected = stem.shape.first, expected > 0 else { return nil }
        var widths = [config.widthMultiplier * Double(stored) / Double(expected)]
        if config.architecture == .mobilenetV2 { widths += [0.1, 0.25, 0.35, 0.5, 0.75, 1.0, 1.3, 1.4] }
        for width in widths {
            var candidate = config
            (candidate.widthMultiplier, candidate.numClasses) = (width, classes)
            guard candidate != config, let other = try? NetworkDefinition(candidate),
                  other.parameters.allSatisfy({ tensors[$0.name]?.shape == $0.shape }) else { continue }
            return candidate
        }
        return nil
    }

    static func describe(_ keys: [String]) -> Guess? {
        func any(_ fragment: String) -> Bool { keys.contains { $0.contains(fragment) } }
        if any("features.1.conv.") { return Guess(architecture: .mobilenetV2, flavor: .torch) }
        if any("layer1.0.conv1.") { return Guess(architecture: .resnet50, flavor: .torch) }
        if any("Mixed_5b.") { return Guess(architecture: .inceptionV3, flavor: .torch) }
        if any("block_1_expand") || any("expanded_conv_") { return Guess(architecture: .mobilenetV2, flavor: .keras) }
        if any("conv2_block1_") || any("res2a_branch2a") { return Guess(architecture: .resnet50, flavor: .keras) }
        if any("batch_normalization") && any("conv2d") { return Guess(architecture: .inceptionV3, flavor: .keras) }
        return nil
    }
}
