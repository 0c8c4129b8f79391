import ArgumentParser
import ModelZoo

extension Architecture: ExpressibleByArgument {}
extension Flavor: ExpressibleByArgument {}
extension ResizePolicy: ExpressibleByArgument {}

/// Which network, in which flavour, with which weights.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "Architecture: \(Architecture.allCases.map(\.rawValue).joined(separator: ", ")).")
    var model: Architecture

    @Option(help: "Framework flavour: torch (torchvision) or keras (Keras Applications).")
    var flavor: Flavor

    @Option(help: "Weight file: .pth (zip or legacy), .safetensors, or Keras .h5.")
    var weights: String

    @Option(help: "Channel width multiplier for reduced models (MobileNetV2: its own rule; others: exact scaling).")
    var widthMultiplier: Double = 1

    @Option(help: "Input size in pixels (default: 224, or 299 for inception_v3).")
    var inputSize: Int?

    @Option(help: "Number of output classes.")
    var numClasses: Int = 1000

    var config: ModelConfig {
        ModelConfig(architecture: model, flavor: flavor, widthMultiplier: widthMultiplier, inputSize: inputSize, numClasses: numClasses)
    }

    func load() throws -> Model { try Model(config: config, weights: weights) }
}
