import ArgumentParser
import Foundation
import ModelZoo
import Quantize
import TensorCore

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a model to its mobile form (fp32, or int8 with post-training static quantization).",
        discussion: """
        The paper's step 2. The mobile graph has batch norm folded into the convolutions, \
        ReLU/ReLU6 fused, dropout removed and the preprocessing kept as its first ops. \
        With --quantize int8 the activations are calibrated on --calibration-count images \
        from --calibration (default 1000, as in the study; images are found recursively and \
        spread evenly over the folder in path order, so that every class folder of ImageNet's \
        train/ contributes), then quantized in one of two schemes:

          tflite   int8 activations (per tensor), int8 per-channel symmetric weights,
                   fixed-point requantization — TensorFlow Lite's arithmetic (default
                   observer: minmax)
          qnnpack  uint8 activations, int8 per-tensor symmetric weights, fp32
                   requantization; ReLU6 becomes ReLU — PyTorch eager mode with the
                   qnnpack engine (default observer: histogram)

        The result is one self-contained, checksummed .mobile file (written atomically).
        """)

    enum Precision: String, ExpressibleByArgument { case int8 }

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var compute: ComputeOptions

    @Option(help: "Quantize to int8 (omit for an fp32 mobile model).")
    var quantize: Precision?

    @Option(help: "Quantization scheme: tflite or qnnpack.")
    var scheme: QuantizationScheme?

    @Option(help: "Folder of calibration images (PNG/JPEG, searched recursively).")
    var calibration: String?

    @Option(help: "How many calibration images to use.")
    var calibrationCount: Int = 1000

    @Flag(help: "Calibrate on fewer images than --calibration-count when the folder has fewer.")
    var allowFewer = false

    @Option(help: "Activation observer: minmax, moving-average or histogram (default: the scheme's own).")
    var observer: ObserverKind?

    @Option(help: "Calibration batch size.")
    var batchSize: Int = 16

    @Option(help: "auto: resize only images of another size; always; never.")
    var resize: ResizePolicy = .auto

    @Option(help: "The .mobile file to write.")
    var out: String

    @Flag(help: "Print a JSON summary.")
    var json = false

    func validate() throws {
        if modelOptions.mobile != nil { throw ValidationError("convert reads a PC model: give --model/--flavor/--weights") }
        if quantize != nil {
            if scheme == nil { throw ValidationError("--quantize int8 needs --scheme tflite or --scheme qnnpack") }
            if calibration == nil { throw ValidationError("--quantize int8 needs --calibration DIR") }
        } else if scheme != nil || calibration != nil || observer != nil {
            throw ValidationError("--scheme, --calibration and --observer only apply with --quantize int8")
        }
        if calibrationCount < 1 { throw ValidationError("--calibration-count must be at least 1") }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
    }

    struct Summary: Encodable {
        let out: String
        let architecture: Architecture
        let flavor: Flavor
        let precision: String
        let scheme: QuantizationScheme?
        let observer: ObserverKind?
        let calibrationImages: Int
        let bytes: Int
        let seconds: Double
        enum CodingKeys: String, CodingKey {
            case out, architecture, flavor, precision, scheme, observer, bytes, seconds, calibrationImages = "calibration_images"
        }
    }

    func run() throws {
        compute.apply()
        if let weights = modelOptions.weights { try refuseOverwriting(input: weights, with: out, option: "--weights") }
        try checkOutputFile(out)
        let start = Date()
        let model = try modelOptions.load()
        let labels = model.config.numClasses == ImageNet.classes.count
            ? ImageNet.classes.map(\.label) : (0..<model.config.numClasses).map { "class \($0)" }
        let weights = modelOptions.weights!
        let mobile: MobileModel
        if let scheme {
            let found = try imageFiles(in: calibration!)
            if found.isEmpty { throw CommandError("no PNG or JPEG images in calibration folder \(calibration!)") }
            if found.count < calibrationCount && !allowFewer {
                throw CommandError("calibration folder \(calibration!) has \(found.count) images, fewer than --calibration-count \(calibrationCount) (pass --allow-fewer to use them all)")
            }
            let files = ImageInput.evenlySpread(found, count: calibrationCount)
            var calibrator = try Calibrator(model: model, scheme: scheme, observer: observer)
            let progress = ProgressLine(total: files.count, label: "calibrating")
            for batchStart in stride(from: 0, to: files.count, by: batchSize) {
                let batch = Array(files[batchStart..<min(batchStart + batchSize, files.count)])
                try calibrator.observe(ImageInput.load(batch, config: model.config, policy: resize))
                progress.update(calibrator.imagesSeen)
            }
            mobile = try calibrator.finish(labels: labels, sourceWeights: weights)
        } else {
            mobile = try MobileConverter.convert(model, labels: labels, sourceWeights: weights)
        }
        try MobileFile.write(mobile, to: out)
        let bytes = (try? FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? 0
        let summary = Summary(out: out, architecture: model.config.architecture, flavor: model.config.flavor,
                              precision: mobile.precision.description, scheme: scheme, observer: mobile.metadata.observer,
                              calibrationImages: mobile.metadata.calibrationImages, bytes: bytes, seconds: Date().timeIntervalSince(start))
        if json {
            printJSON(summary)
        } else {
            print(String(format: "wrote %@: %@ %@ %@, %.1f MB%@ (%.1f s)", out, model.config.flavor.rawValue, model.config.architecture.rawValue,
                         mobile.precision.description, Double(bytes) / 1e6,
                         scheme == nil ? "" : ", calibrated on \(mobile.metadata.calibrationImages) images", summary.seconds))
        }
    }
}
