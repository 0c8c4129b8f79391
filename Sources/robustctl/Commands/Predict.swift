import ArgumentParser
import Foundation
import ModelZoo
import Quantize
import TensorCore

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify images on the PC engine, or on the mobile engine with --mobile.",
        discussion: """
        Images already at the model's input size are used as they are; others get the \
        paper's preprocessing (shorter side to 256, or 299 for inception_v3, then a centre \
        crop), unless --resize says otherwise.
        """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var compute: ComputeOptions

    @Option(help: "How many classes to show per image.")
    var top: Int = 5

    @Option(help: "auto: resize only images of another size; always; never.")
    var resize: ResizePolicy = .auto

    @Flag(help: "Print JSON: one object per image with file, top and logits.")
    var json = false

    @Argument(help: "Image files (PNG or JPEG).")
    var images: [String]

    func validate() throws {
        if images.isEmpty { throw ValidationError("give at least one image") }
        if top < 1 { throw ValidationError("--top must be at least 1") }
    }

    struct Prediction: Encodable {
        struct Entry: Encodable {
            let index: Int
            let wnid: String?
            let label: String
            let probability: Float
        }
        let file: String
        let top: [Entry]
        let logits: [Float]
    }

    func run() throws {
        compute.apply()
        let model = try modelOptions.loadClassifier()
        let batch = try ImageInput.load(images, config: model.config, policy: resize)
        let logits = try model.classify(batch)
        let probabilities = Softmax.softmax(logits)
        let classes = model.config.numClasses
        let predictions = images.enumerated().map { row, file in
            let p = (0..<classes).map { probabilities[row, $0] }
            let order = p.indices.sorted { p[$0] > p[$1] }.prefix(top)
            return Prediction(file: file, top: order.map { index in
                let known = classes == ImageNet.classes.count ? ImageNet.classes[index] : nil
                return .init(index: index, wnid: known?.wnid, label: known?.label ?? "class \(index)", probability: p[index])
            }, logits: (0..<classes).map { logits[row, $0] })
        }
        if json {
            printJSON(predictions)
            return
        }
        for prediction in predictions {
            print(prediction.file)
            for entry in prediction.top {
                print(String(format: "  %6.2f%%  %4d  %@%@", entry.probability * 100, entry.index,
                             entry.wnid.map { $0 + "  " } ?? "", entry.label))
            }
        }
    }
}
