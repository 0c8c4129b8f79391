import Attacks
import Foundation
import ModelZoo
import Synchronization
import TensorCore

/// A labelled image folder as `robustctl prepare` writes it: `labels.csv` (file,label) naming
/// PNG files at the model's input size, `index.csv` (id,file,source,label) and, when the class
/// names are known, `classes.csv`.
public struct PreparedDataset: Sendable {
    public let directory: String
    public let entries: [LabelFile.Entry]
    public let classNames: [String]?

    public init(directory: String) throws {
        let labels = (directory as NSString).appendingPathComponent("labels.csv")
        guard FileManager.default.fileExists(atPath: labels) else {
            throw StudyError("\(directory) is not a prepared dataset (no labels.csv; write one with robustctl prepare)")
        }
        entries = try LabelFile.read(labels, classes: Int.max)
        let classes = (directory as NSString).appendingPathComponent("classes.csv")
        if let text = try? String(contentsOfFile: classes, encoding: .utf8) {
            classNames = try CSV.records(text, file: classes).dropFirst().compactMap { $0.fields.count == 2 ? $0.fields[1] : nil }
        } else {
            classNames = nil
        }
        self.directory = directory
    }

    public func path(of file: String) -> String { (directory as NSString).appendingPathComponent(file) }

    public var items: [Evaluator.Item] { entries.map { Evaluator.Item(path: path(of: $0.file), name: $0.file, label: $0.label) } }
}

/// Turns an image source into a prepared dataset: the paper's resize and centre crop, 8-bit
/// PNG files, an index. Streams in small windows decoded in parallel, so memory stays flat
/// however many images there are; the output is the same for any thread count.
public enum DatasetPreparation {
    /// The source a `--source` string names: `builtin:NAME`, an ImageFolder
    /// (`DIR/<class>/*`), or a flat folder with `groundTruth`.
    public static func source(_ source: String, groundTruth: String?, synsets: String?, split: String = "validation",
                              size: Int, count: Int?, seed: UInt64 = 0) throws -> any LabeledImageSource {
        if source.hasPrefix("builtin:") {
            return try BuiltinDataset(name: String(source.dropFirst("builtin:".count)), split: split == "train" ? .train : .validation,
                                      imageSize: size, count: count ?? 1000, seed: seed)
        }
        if let groundTruth { return try FlatImageNetFolder(directory: source, groundTruth: groundTruth, synsets: synsets) }
        return try ImageFolderDataset(directory: source)
    }

    /// The shorter side images are resized to before the centre crop: 256 for 224 (scaled
    /// for other sizes), and 299 for 299 (InceptionV3), as in the paper's Table 1.
    public static func resizeSize(for size: Int) -> Int {
        size == 299 ? 299 : Int((Double(size) * 256 / 224).rounded())
    }

    /// Writes `count` samples (all by default) of `source` into `directory`, spread evenly over
    /// it (`ImageInput.evenlySpread`: an ImageFolder lists its classes one after another), in
    /// the source's order; index.csv names each one's source.
    /// - Parameter progress: called with (done, total) after each window.
    public static func prepare(_ source: any LabeledImageSource, size: Int, count: Int?, into directory: URL,
                               progress: ((Int, Int) -> Void)? = nil) throws -> PreparedDataset {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let total = Swift.min(count ?? source.count, source.count)
        guard total > 0 else { throw StudyError("the source has no images") }
        let picks = ImageInput.evenlySpread(Array(0..<source.count), count: total)
        let digits = String(total - 1).count
        let workers = Swift.max(1, Threading.threads)
        let window = 16 * workers
        var labels: [LabelFile.Entry] = [], index = "id,file,source,label\n"
        for start in stride(from: 0, to: total, by: window) {
            let end = Swift.min(start + window, total)
            let names = Mutex<[Int: (String, Int)]>([:])
            let failure = Mutex<(Int, Error)?>(nil)
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                for i in stride(from: start + worker, to: end, by: workers) {
                    do {
                        var (image, label) = try source.sample(picks[i])
                        if image.width != size || image.height != size {
                            image = image.resizedAndCentreCropped(resizeTo: resizeSize(for: size), cropTo: size)
                        }
                        let id = String(repeating: "0", count: Swift.max(0, digits - String(i).count)) + String(i)
                        let className = label < source.classNames.count ? source.classNames[label] : String(label)
                        let name = "\(id)_\(className.replacingOccurrences(of: "/", with: "_")).png"
                        try ImageCodec.writePNG(image, to: directory.appendingPathComponent(name).path)
                        names.withLock { $0[i] = (name, label) }
                    } catch {
                        failure.withLock { if $0 == nil || $0!.0 > i { $0 = (i, error) } }
                    }
                }
            }
            if let (_, error) = failure.withLock({ $0 }) { throw error }
            let done = names.withLock { $0 }
            for i in start..<end {
                let (name, label) = done[i]!
                labels.append(LabelFile.Entry(file: name, label: label))
                index += "\(i),\(CSV.field(name)),\(CSV.field(source.sourceName(picks[i]))),\(label)\n"
            }
            progress?(end, total)
        }
        try Data(index.utf8).write(to: directory.appendingPathComponent("index.csv"), options: .atomic)
        let classes = source.classNames.enumerated().map { "\($0.offset),\(CSV.field($0.element))" }.joined(separator: "\n")
        try Data(("index,class\n" + classes + "\n").utf8).write(to: directory.appendingPathComponent("classes.csv"), options: .atomic)
        // labels.csv last: its presence marks a complete dataset.
        try LabelFile.write(labels, to: directory.appendingPathComponent("labels.csv"))
        return try PreparedDataset(directory: directory.path)
    }
}

/// The images int8 calibration observes: a folder (searched recursively, sorted) or the
/// built-in dataset's train split.
struct CalibrationImages {
    let files: [String]
    let builtin: BuiltinDataset?
    var count: Int { builtin?.count ?? files.count }

    init(_ spec: StudyConfig.CalibrationSpec, size: Int, seed: UInt64) throws {
        if spec.images.hasPrefix("builtin:") {
            builtin = try BuiltinDataset(name: String(spec.images.dropFirst("builtin:".count)), split: .train, imageSize: size,
                                         count: spec.count, seed: seed &+ 1)
            files = []
            return
        }
        let found = try ImageInput.imageFiles(in: spec.images)
        if found.isEmpty { throw StudyError("calibration folder \(spec.images) holds no PNG or JPEG images") }
        if found.count < spec.count && !spec.allowFewer {
            throw StudyError("calibration folder \(spec.images) has \(found.count) images, fewer than calibration.count \(spec.count) (set calibration.allow_fewer to use them all)")
        }
        files = ImageInput.evenlySpread(found, count: spec.count)
        builtin = nil
    }

    func batch(_ range: Range<Int>, config: ModelConfig) throws -> Tensor {
        if let builtin { return try builtin.batch(Array(range), size: config.inputSize).images }
        return try ImageInput.load(Array(files[range]), config: config)
    }
}
