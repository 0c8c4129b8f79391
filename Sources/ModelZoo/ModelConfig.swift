import TensorCore

/// The three networks of the study.
public enum Architecture: String, Sendable, CaseIterable, Codable {
    case mobilenetV2 = "mobilenet_v2"
    case resnet50
    case inceptionV3 = "inception_v3"

    /// The input size the ImageNet weights expect.
    public var defaultInputSize: Int { self == .inceptionV3 ? 299 : 224 }
    /// The shorter side the paper resizes to before the centre crop.
    public var defaultResizeSize: Int { self == .inceptionV3 ? 299 : 256 }
    /// The smallest input the architecture accepts (every spatial extent stays ≥ 1).
    public var minimumInputSize: Int { self == .inceptionV3 ? 75 : 32 }
}

/// Which reference framework a network reproduces: architecture details, parameter names,
/// weight files and preprocessing all follow it.
public enum Flavor: String, Sendable, CaseIterable, Codable {
    /// torchvision: `.pth` / `.safetensors` state dicts.
    case torch
    /// Keras Applications: `.h5` weight files.
    case keras
}

/// Everything that determines a network's graph.
public struct ModelConfig: Hashable, Sendable, Codable {
    public var architecture: Architecture
    public var flavor: Flavor
    /// Scales channel counts. MobileNetV2 follows its reference's own rule
    /// (torchvision `width_mult`, Keras `alpha`); ResNet50 and InceptionV3 scale every
    /// channel count exactly (c · w must be an integer), for reduced test and demo models.
    public var widthMultiplier: Double
    public var inputSize: Int
    public var numClasses: Int
    /// torchvision InceptionV3 only: re-map ImageNet-normalised input to [-1, 1] inside
    /// the network, as the Google weights expect (on by default, as torchvision sets it
    /// when it loads them).
    public var transformInput: Bool

    public init(architecture: Architecture, flavor: Flavor, widthMultiplier: Double = 1, inputSize: Int? = nil,
                numClasses: Int = 1000, transformInput: Bool = true) {
        self.architecture = architecture
        self.flavor = flavor
        self.widthMultiplier = widthMultiplier
        self.inputSize = inputSize ?? architecture.defaultInputSize
        self.numClasses = numClasses
        self.transformInput = transformInput
    }

    /// Checks the configuration, naming the violated constraint.
    /// "resnet50/torch": how reports and selections name the model.
    public var tag: String { "\(architecture.rawValue)/\(flavor.rawValue)" }
    /// "resnet50_torch": how file names carry the model.
    public var fileStem: String { "\(architecture.rawValue)_\(flavor.rawValue)" }

    public static let maximumInputSize = 4096
    public static let maximumWidthMultiplier = 8.0
    public static let maximumClasses = 100_000

    public func validate() throws {
        if inputSize < architecture.minimumInputSize {
            throw ModelError.inputTooSmall(architecture: architecture, inputSize: inputSize, minimum: architecture.minimumInputSize)
        }
        // Upper limits keep a mistyped value from asking for terabytes (an image resized to a
        // 100,000-pixel input, a classifier of 10⁹ rows) instead of failing with a message.
        if inputSize > Self.maximumInputSize {
            throw ModelError.invalidConfiguration("input size \(inputSize) is above the supported \(Self.maximumInputSize) pixels")
        }
        if !(widthMultiplier > 0 && widthMultiplier <= Self.maximumWidthMultiplier) {
            throw ModelError.invalidConfiguration("width multiplier must be in (0, \(Self.maximumWidthMultiplier)], got \(widthMultiplier)")
        }
        if !(1...Self.maximumClasses).contains(numClasses) {
            throw ModelError.invalidConfiguration("number of classes must be in 1...\(Self.maximumClasses), got \(numClasses)")
        }
        // ResNet50 and InceptionV3 scale every channel count exactly; all of theirs are
        // multiples of 16, so c · w is whole for every c exactly when 16 · w is.
        let scaledBase = 16 * widthMultiplier
        if architecture != .mobilenetV2 && (scaledBase != scaledBase.rounded() || scaledBase < 1) {
            throw ModelError.invalidConfiguration(
                "\(architecture.rawValue) scales every channel count by the width multiplier; \(widthMultiplier) "
                + "does not give whole channel counts (use a multiple of 1/16)")
        }
    }
}

/// A failure to build or load a model, naming what is at fault.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    case inputTooSmall(architecture: Architecture, inputSize: Int, minimum: Int)
    case invalidConfiguration(String)

    public var description: String {
        switch self {
        case let .inputTooSmall(architecture, inputSize, minimum):
            "\(architecture.rawValue) needs an input of at least \(minimum)x\(minimum) pixels, got \(inputSize)x\(inputSize)"
        case let .invalidConfiguration(message): message
        }
    }
}
