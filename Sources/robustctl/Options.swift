import ArgumentParser
import Foundation
import ModelZoo
import Quantize
import TensorCore

extension Architecture: ExpressibleByArgument {}
extension Flavor: ExpressibleByArgument {}
extension ResizePolicy: ExpressibleByArgument {}
extension QuantizationScheme: ExpressibleByArgument {}
extension ObserverKind: ExpressibleByArgument {}

/// Which network, in which flavour, with which weights — or a converted mobile model.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "Architecture: \(Architecture.allCases.map(\.rawValue).joined(separator: ", ")).")
    var model: Architecture?

    @Option(help: "Framework flavour: torch (torchvision) or keras (Keras Applications).")
    var flavor: Flavor?

    @Option(help: "Weight file: .pth (zip or legacy), .safetensors, or Keras .h5 (save_weights, a whole saved model, or Keras 3 .weights.h5), or Keras 3 .keras.")
    var weights: String?

    @Option(help: "Channel width multiplier for reduced models (MobileNetV2: its own rule; others: exact scaling).")
    var widthMultiplier: Double = 1

    @Option(help: "Input size in pixels (default: 224, or 299 for inception_v3).")
    var inputSize: Int?

    @Option(help: "Number of output classes.")
    var numClasses: Int = 1000

    @Option(help: "A .mobile model written by 'robustctl convert' (instead of --model/--flavor/--weights; predict and evaluate only).")
    var mobile: String?

    func validate() throws {
        if mobile != nil {
            if model != nil || flavor != nil || weights != nil {
                throw ValidationError("give either --mobile or --model/--flavor/--weights, not both")
            }
        } else if model == nil || flavor == nil || weights == nil {
            let missing = [("--model", model == nil), ("--flavor", flavor == nil), ("--weights", weights == nil)].filter(\.1).map(\.0)
            throw ValidationError("missing \(missing.joined(separator: ", ")) (or give a converted model with --mobile)")
        }
    }

    var config: ModelConfig {
        ModelConfig(architecture: model!, flavor: flavor!, widthMultiplier: widthMultiplier, inputSize: inputSize, numClasses: numClasses)
    }

    /// The PC-engine model. - Precondition: `validate()` passed and `mobile` is nil.
    func load() throws -> Model {
        guard mobile == nil else { throw CommandError("this command runs on the PC engine; give --model/--flavor/--weights, not --mobile") }
        return try Model(config: config, weights: weights!)
    }

    /// The PC model, or the mobile engine when --mobile is given.
    func loadClassifier() throws -> any ImageClassifier {
        if let mobile { return MobileEngine(try MobileFile.read(mobile)) }
        return try load()
    }
}

/// Warns (on stderr) for each model whose input size differs from the images of a dataset
/// `prepare` wrote (it has an index.csv): they are already cropped, and resizing them again
/// is not the paper's preprocessing of the original image — an InceptionV3 given a 224-pixel
/// dataset would see upscaled crops.
func warnIfPreparedForAnotherSize(_ folder: String, firstImage: String, models: [ModelConfig]) {
    guard FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent("index.csv")),
          let image = try? ImageCodec.read(firstImage), image.width == image.height else { return }
    for config in models where config.inputSize != image.width {
        printError("warning: \(config.tag) takes \(config.inputSize)-pixel images and \(folder) was prepared at \(image.width): "
                   + "each image is resized again, which is not the paper's preprocessing of the original; prepare the dataset "
                   + "with --size \(config.inputSize) for it ('study' prepares one per input size)")
    }
}

/// Image files under a folder, recursively, in a stable order (by relative path).
func imageFiles(in directory: String) throws -> [String] {
    do { return try ImageInput.imageFiles(in: directory) } catch let error as ImageInputError { throw CommandError("\(error)") }
}
