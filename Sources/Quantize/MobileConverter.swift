import Foundation
import ModelZoo
import TensorCore

/// A graph the converter cannot turn into a mobile model, naming what is at fault.
public enum ConversionError: Error, CustomStringConvertible, Equatable {
    case unsupportedOperation(node: String, kind: String, precision: String)
    case noCalibrationData
    case invalidCalibrationBatch(expected: [Int], got: [Int])
    /// A node's weights, or the range calibration observed for its output, hold NaN or
    /// infinite values (or a range too wide for float32): nothing sensible quantizes them.
    case nonFinite(node: String, what: String)

    public var description: String {
        switch self {
        case let .unsupportedOperation(node, kind, precision):
            "cannot convert node '\(node)': operation \(kind) is not supported in \(precision) mobile models"
        case .noCalibrationData: "int8 quantization needs calibration images; none were given"
        case let .invalidCalibrationBatch(expected, got):
            "calibration batch has shape \(got), expected [N, \(expected.dropFirst().map(String.init).joined(separator: ", "))]"
        case let .nonFinite(node, what):
            "cannot quantize node '\(node)': \(what) — check the weight file (the float model overflows or holds NaN)"
        }
    }
}

/// Turns a ModelZoo model into its mobile form (the paper's step 2).
public enum MobileConverter {
    /// The mobile graph: the model's fused inference graph (batch norm folded, ReLU/ReLU6
    /// fused into convolutions) with dropout removed and every convolution in fused form.
    /// For the qnnpack scheme ReLU6 becomes ReLU, as in torchvision's quantizable models.
    /// - Throws: `ConversionError.unsupportedOperation` for an op the target cannot run.
    public static func mobileGraph(_ model: Model, scheme: QuantizationScheme?) throws -> (graph: Graph, parameters: Parameters) {
        try mobileGraph(model.inferenceGraph, parameters: model.inferenceParameters, scheme: scheme)
    }

    /// The mobile form of an inference graph (see `mobileGraph(_:scheme:)`).
    public static func mobileGraph(_ source: Graph, parameters: Parameters, scheme: QuantizationScheme?) throws
        -> (graph: Graph, parameters: Parameters) {
        var parameters = parameters
        var graph = Graph()
        var newIndex = [Int](repeating: 0, count: source.nodes.count)
        let precision = scheme.map { MobilePrecision.int8($0).description } ?? "fp32"
        let prefixEnd = source.preprocessingEnd()
        for (index, node) in source.nodes.enumerated().dropFirst() {
            let inputs = node.inputs.map { newIndex[$0] }
            var operation = node.operation
            switch node.operation {
            case .dropout:
                newIndex[index] = inputs[0]
                continue
            case let .conv2d(config, weight, bias):
                let biasName = bias ?? node.name + ".zero_bias"
                if bias == nil { parameters[biasName] = Tensor(shape: [parameters[weight]!.shape[0]]) }
                operation = .fusedConv2d(config, weight: weight, bias: biasName, activation: .none)
            case let .fusedConv2d(config, weight, bias, activation) where scheme == .qnnpack && activation == .relu6:
                operation = .fusedConv2d(config, weight: weight, bias: bias, activation: .relu)
            case .relu6 where scheme == .qnnpack:
                operation = .relu
            default: break
            }
            if scheme != nil {
                let supported: Bool
                switch operation {
                case .affine, .permuteChannels: supported = index <= prefixEnd
                case .fusedConv2d, .linear, .relu, .relu6, .concat, .maxPool, .avgPool, .globalAvgPool, .flatten, .zeroPad: supported = true
                case .add: supported = node.inputs.count == 2
                default: supported = false
                }
                if !supported { throw ConversionError.unsupportedOperation(node: node.name, kind: operation.kindName, precision: precision) }
            }
            newIndex[index] = graph.add(node.name, operation, inputs: inputs)
        }
        graph.output = newIndex[source.output]
        let used = Set(graph.parameterNames)
        return (graph, parameters.filter { used.contains($0.key) })
    }

    static func metadata(_ model: Model, labels: [String], sourceWeights: String, precision: String,
                         scheme: QuantizationScheme?, observer: ObserverKind?, calibrationImages: Int) -> MobileModel.Metadata {
        let config = model.config
        return MobileModel.Metadata(architecture: config.architecture, flavor: config.flavor, widthMultiplier: config.widthMultiplier,
                                    inputSize: config.inputSize, numClasses: config.numClasses, transformInput: config.transformInput,
                                    precision: precision, scheme: scheme, observer: observer, calibrationImages: calibrationImages,
                                    labels: labels, sourceWeights: URL(fileURLWithPath: sourceWeights).lastPathComponent)
    }

    /// The fp32 mobile model.
    public static func convert(_ model: Model, labels: [String], sourceWeights: String) throws -> MobileModel {
        let (graph, parameters) = try mobileGraph(model, scheme: nil)
        return MobileModel(metadata: metadata(model, labels: labels, sourceWeights: sourceWeights, precision: "fp32",
                                              scheme: nil, observer: nil, calibrationImages: 0),
                           graph: graph, parameters: parameters, quantization: nil)
    }
}

/// Post-training static quantization: observes the float mobile graph's activations on
/// calibration batches, then quantizes weights and activations with a scheme.
///
/// Feed batches with `observe(_:)` (streaming: memory does not grow with the number of
/// images), then call `finish`.
public struct Calibrator: Sendable {
    public let scheme: QuantizationScheme
    public let observerKind: ObserverKind
    let model: Model
    let graph: Graph
    let parameters: Parameters
    let prefixEnd: Int
    /// Nodes whose output range is observed (the others inherit their input's quantization).
    let observed: Set<Int>
    var observers: [Int: any RangeObserver]
    public private(set) var imagesSeen = 0

    public init(model: Model, scheme: QuantizationScheme, observer: ObserverKind? = nil) throws {
        self.model = model
        self.scheme = scheme
        observerKind = observer ?? scheme.defaultObserver
        (graph, parameters) = try MobileConverter.mobileGraph(model, scheme: scheme)
        prefixEnd = graph.preprocessingEnd()
        var observed: Set<Int> = [prefixEnd]
        let fusedRelus = graph.addReluPairs()
        for (index, node) in graph.nodes.enumerated() where index > prefixEnd {
            switch node.operation {
            case .fusedConv2d, .linear, .concat: observed.insert(index)
            case .add: observed.insert(fusedRelus[index] ?? index)
            case .globalAvgPool where scheme == .tflite: observed.insert(index)
            default: break
            }
        }
        self.observed = observed
        let kind = observerKind
        observers = Dictionary(uniqueKeysWithValues: observed.map { ($0, kind.make()) })
    }

    /// Runs one calibration batch ([N, 3, S, S] RGB in [0, 1]) through the float graph.
    public mutating func observe(_ images: Tensor) throws {
        let size = model.config.inputSize
        guard images.rank == 4, images.shape[1] == 3, images.shape[2] == size, images.shape[3] == size else {
            throw ConversionError.invalidCalibrationBatch(expected: [0, 3, size, size], got: images.shape)
        }
        var observers = self.observers
        if observed.contains(0) { observers[0]!.observe(images) }
        _ = Executor().forward(graph, parameters: parameters, input: images) { index, value in
            if observers[index] != nil { observers[index]!.observe(value) }
        }
        self.observers = observers
        imagesSeen += images.shape[0]
    }

    /// The int8 mobile model.
    public func finish(labels: [String], sourceWeights: String) throws -> MobileModel {
        guard imagesSeen > 0 else { throw ConversionError.noCalibrationData }
        let fusedRelus = graph.addReluPairs()
        var activations: [Int: AffineQuantization] = [:]
        var layers: [Int: QuantizedLayer] = [:]
        /// The activation quantization of a range observed at `node`, refused when it is not finite.
        func rangeParameters(minimum: Float, maximum: Float, node: Int) throws -> AffineQuantization {
            guard minimum.isFinite, maximum.isFinite, (maximum - minimum).isFinite else {
                throw ConversionError.nonFinite(node: graph.nodes[node].name, what: "its calibrated range [\(minimum), \(maximum)] is not finite")
            }
            return AffineQuantization.activation(minimum: minimum, maximum: maximum, scheme: scheme)
        }
        func observedParameters(_ index: Int) throws -> AffineQuantization {
            let range = observers[index]!.range() ?? (0, 0)
            return try rangeParameters(minimum: range.minimum, maximum: range.maximum, node: index)
        }
        activations[prefixEnd] = try observedParameters(prefixEnd)
        // TFLite's quantizer gives a concatenation's operands the concatenation's own
        // quantization (same-scale constraint), so producers that feed only a concat
        // requantize straight into it.
        let readers = graph.readerCounts()
        var sharedWithConcat: [Int: Int] = [:]
        if scheme == .tflite {
            var soleReader = [Int: Int]()
            for (index, node) in graph.nodes.enumerated() { for input in node.inputs where readers[input] == 1 { soleReader[input] = index } }
            func isConcat(_ index: Int) -> Bool { if case .concat = graph.nodes[index].operation { return true } else { return false } }
            // A concat read only by another concat (Inception's nested branch concats) takes the outer one's.
            func outermost(_ concat: Int) -> Int {
                if let reader = soleReader[concat], isConcat(reader) { return outermost(reader) }
                return concat
            }
            for (index, node) in graph.nodes.enumerated() where index > prefixEnd && isConcat(index) {
                if outermost(index) != index { sharedWithConcat[index] = outermost(index) }
                for input in node.inputs where readers[input] == 1 {
                    switch graph.nodes[input].operation {
                    case .fusedConv2d, .linear: sharedWithConcat[input] = outermost(index)
                    default: break
                    }
                }
            }
        }
        // TFLite's converter (observed with TF 2.21) widens the range of one residual-add
        // operand to the add's result range: among the operands produced by a convolution
        // read only by the add, the one with the narrower range.
        var widenedBy: [Int: Int] = [:]
        if scheme == .tflite {
            for (index, node) in graph.nodes.enumerated() where index > prefixEnd {
                guard case .add = node.operation else { continue }
                let candidates = node.inputs.filter { input in
                    guard readers[input] == 1, observers[input] != nil else { return false }
                    if case .fusedConv2d = graph.nodes[input].operation { return true }
                    return false
                }
                let width = { (input: Int) -> Float in observers[input]!.range().map { $0.maximum - $0.minimum } ?? 0 }
                if let narrowest = candidates.min(by: { width($0) < width($1) }) { widenedBy[narrowest] = fusedRelus[index] ?? index }
            }
        }
        for (index, node) in graph.nodes.enumerated() where index > prefixEnd {
            switch node.operation {
            case .add: activations[index] = try observedParameters(fusedRelus[index] ?? index)
            default:
                if let concat = sharedWithConcat[index] {
                    activations[index] = try observedParameters(concat)
                } else if let add = widenedBy[index], let own = observers[index]!.range(), let result = observers[add]!.range() {
                    activations[index] = try rangeParameters(minimum: Swift.min(own.minimum, result.minimum),
                                                             maximum: Swift.max(own.maximum, result.maximum), node: index)
                } else {
                    activations[index] = observed.contains(index) ? try observedParameters(index) : activations[node.inputs[0]]!
                }
            }
            let inputScale = activations[node.inputs[0]]!.scale
            func quantized(_ weight: Tensor, _ bias: Tensor) throws -> QuantizedLayer {
                guard weight.scalars.allSatisfy(\.isFinite), bias.scalars.allSatisfy(\.isFinite) else {
                    throw ConversionError.nonFinite(node: node.name, what: "its weights or bias hold NaN or infinite values")
                }
                return WeightQuantizer.quantize(weight: weight, bias: bias, inputScale: inputScale, scheme: scheme)
            }
            switch node.operation {
            case let .fusedConv2d(_, weight, bias, _):
                layers[index] = try quantized(parameters[weight]!, parameters[bias]!)
            case let .linear(weight, bias):
                let w = parameters[weight]!
                layers[index] = try quantized(w.reshaped([w.shape[0], w.shape[1], 1, 1]), bias.map { parameters[$0]! } ?? Tensor(shape: [w.shape[0]]))
            default: break
            }
        }
        let table = QuantizationTable(scheme: scheme, floatPrefixEnd: prefixEnd, activations: activations, layers: layers)
        let floatParameters = Set(graph.nodes[0...prefixEnd].flatMap(\.operation.parameterNames))
        return MobileModel(metadata: MobileConverter.metadata(model, labels: labels, sourceWeights: sourceWeights, precision: "int8",
                                                              scheme: scheme, observer: observerKind, calibrationImages: imagesSeen),
                           graph: graph, parameters: parameters.filter { floatParameters.contains($0.key) }, quantization: table)
    }
}

/// Weight and bias quantization as each scheme's converter does it.
public enum WeightQuantizer {
    /// - Parameters:
    ///   - weight: OIHW float weights (batch norm already folded).
    ///   - inputScale: the scale of the layer's input activation (the bias is quantized
    ///     with input scale × weight scale).
    /// - Precondition: weights and bias are finite (the calibrator checks, naming the node).
    public static func quantize(weight: Tensor, bias: Tensor, inputScale: Float, scheme: QuantizationScheme) -> QuantizedLayer {
        let outChannels = weight.shape[0], perChannel = weight.count / outChannels
        let w = weight.scalars, b = bias.scalars
        var quantized = [Int8](repeating: 0, count: w.count)
        var scales: [Float]
        switch scheme {
        case .tflite:
            // Symmetric per output channel on [−127, 127] (narrow range), round half away.
            scales = (0..<outChannels).map { o in
                let extreme = w[(o * perChannel)..<((o + 1) * perChannel)].reduce(0) { Swift.max($0, abs($1)) }
                return extreme > 0 ? extreme / 127 : 1
            }
            for o in 0..<outChannels {
                for i in (o * perChannel)..<((o + 1) * perChannel) {
                    let q = (w[i] / scales[o]).rounded(.toNearestOrAwayFromZero)
                    quantized[i] = Int8(Swift.min(Swift.max(q, -127), 127))
                }
            }
        case .qnnpack:
            // MinMaxObserver(qint8, per_tensor_symmetric): scale = max|w| / 127.5, nearest even.
            let extreme = w.reduce(0) { Swift.max($0, abs($1)) }
            let scale = Swift.max(extreme / 127.5, Float.ulpOfOne)
            scales = [scale]
            let inverse = 1 / scale
            for i in w.indices {
                quantized[i] = Int8(Swift.min(Swift.max((w[i] * inverse).rounded(.toNearestOrEven), -128), 127))
            }
        }
        let layer = QuantizedLayer(weights: quantized, weightShape: weight.shape, weightScales: scales, bias: [])
        let biasQ = (0..<outChannels).map { o -> Int32 in
            let value: Float
            switch scheme {
            case .tflite: value = (b[o] / (inputScale * layer.weightScale(channel: o))).rounded(.toNearestOrAwayFromZero)
            case .qnnpack:
                let biasScale = Float(Double(inputScale) * Double(layer.weightScale(channel: o)))
                value = (b[o] * (1 / biasScale)).rounded(.toNearestOrEven)
            }
            return Int32(Swift.min(Swift.max(value, -2_147_483_520), 2_147_483_520))
        }
        return QuantizedLayer(weights: quantized, weightShape: weight.shape, weightScales: scales, bias: biasQ)
    }
}
