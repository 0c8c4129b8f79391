import Foundation
import ModelZoo
import TensorCore

/// Whether a mobile model computes in float32 or in post-training-quantized int8.
public enum MobilePrecision: Hashable, Sendable, CustomStringConvertible {
    case fp32
    case int8(QuantizationScheme)

    public var description: String {
        switch self {
        case .fp32: "fp32"
        case let .int8(scheme): "int8-\(scheme.rawValue)"
        }
    }
}

/// A network in its on-device form: the ModelZoo graph with batch norm folded, activations
/// fused and dropout removed, its preprocessing still the first ops, and — for int8 — the
/// quantized weights and every activation's quantization parameters.
public struct MobileModel: Sendable {
    /// Identity and provenance, stored in the mobile file's header.
    public struct Metadata: Codable, Hashable, Sendable {
        public var architecture: Architecture
        public var flavor: Flavor
        public var widthMultiplier: Double
        public var inputSize: Int
        public var numClasses: Int
        public var transformInput: Bool
        /// "fp32" or "int8".
        public var precision: String
        public var scheme: QuantizationScheme?
        public var observer: ObserverKind?
        public var calibrationImages: Int
        /// Class names, index = class id.
        public var labels: [String]
        /// The weight file the model was converted from (file name only).
        public var sourceWeights: String

        public var modelConfig: ModelConfig {
            ModelConfig(architecture: architecture, flavor: flavor, widthMultiplier: widthMultiplier, inputSize: inputSize,
                        numClasses: numClasses, transformInput: transformInput)
        }

        enum CodingKeys: String, CodingKey {
            case architecture, flavor, precision, scheme, observer, labels
            case widthMultiplier = "width_multiplier", inputSize = "input_size", numClasses = "num_classes"
            case transformInput = "transform_input", calibrationImages = "calibration_images", sourceWeights = "source_weights"
        }
    }

    public var metadata: Metadata
    /// The mobile graph (inference ops only; see `MobileConverter`).
    public var graph: Graph
    /// Float parameters the graph reads (all of them for fp32; none for int8 layers).
    public var parameters: Parameters
    public var quantization: QuantizationTable?

    public var precision: MobilePrecision {
        quantization.map { .int8($0.scheme) } ?? .fp32
    }
}

/// What int8 execution needs beyond the graph.
public struct QuantizationTable: Sendable {
    public var scheme: QuantizationScheme
    /// Nodes up to and including this one run in float (the preprocessing); its output is
    /// the first quantized tensor.
    public var floatPrefixEnd: Int
    /// Output quantization of every node after the float prefix (and of the prefix's end).
    public var activations: [Int: AffineQuantization]
    /// Quantized weights of every convolution and linear node.
    public var layers: [Int: QuantizedLayer]
}

/// A convolution's (or linear layer's, as a 1×1 convolution) quantized weights.
public struct QuantizedLayer: Sendable, Hashable {
    /// OIHW int8 weights.
    public var weights: [Int8]
    public var weightShape: [Int]
    /// One scale per output channel (per-channel) or a single scale (per-tensor).
    public var weightScales: [Float]
    /// int32 bias in units of input scale × weight scale.
    public var bias: [Int32]

    public func weightScale(channel: Int) -> Float { weightScales.count == 1 ? weightScales[0] : weightScales[channel] }
}
