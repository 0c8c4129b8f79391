import ArgumentParser
import Foundation
import ModelZoo
import TensorCore

struct Prepare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a labelled image set as PNG files plus labels.csv (file,label).",
        discussion: """
        --source builtin:shapes renders the built-in dataset (its validation split by \
        default, so it never overlaps what 'train' saw). A folder source is an ImageFolder \
        (DIR/<class>/*.png|jpg, classes in sorted order); its images get the paper's resize \
        (shorter side 256, or 299) and centre crop to --size. The result is what 'attack', \
        'evaluate' and 'convert --calibration' read.
        """)

    @Option(help: "builtin:NAME or an ImageFolder directory.")
    var source: String

    @Option(help: "Output size in pixels (built-in: rendered at this size; folders: resize + centre crop).")
    var size: Int = 96

    @Option(help: "How many images (default: all of a folder; 1000 for a built-in dataset).")
    var count: Int?

    @Option(help: "Built-in dataset: train or validation split.")
    var split: String = "validation"

    @Option(help: "Built-in dataset seed.")
    var seed: UInt64 = 0

    @Option(help: "Output folder.")
    var out: String

    func validate() throws {
        if size < 16 { throw ValidationError("--size must be at least 16") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        if !["train", "validation"].contains(split) { throw ValidationError("--split must be train or validation") }
    }

    func run() throws {
        let images: any LabeledImageSource
        var resizeTo: Int?
        if source.hasPrefix("builtin:") {
            do {
                images = try BuiltinDataset(name: String(source.dropFirst("builtin:".count)), split: split == "train" ? .train : .validation,
                                            imageSize: size, count: count ?? 1000, seed: seed)
            } catch let error as BuiltinDataset.UnknownDataset { throw CommandError("\(error)") }
        } else {
            do { images = try ImageFolderDataset(directory: source) } catch let error as ImageFolderDataset.FolderError { throw CommandError("\(error)") }
            resizeTo = Int((Double(size) * 256 / 224).rounded())
        }
        let directory = try prepareOutputDirectory(out)
        let total = Swift.min(count ?? images.count, images.count)
        let progress = ProgressLine(total: total, label: "preparing")
        var csv = "file,label\n"
        let digits = String(total - 1).count
        for index in 0..<total {
            var (image, label) = try images.sample(index)
            if let resizeTo, image.width != size || image.height != size {
                image = image.resizedAndCentreCropped(resizeTo: resizeTo, cropTo: size)
            }
            let name = "\(String(repeating: "0", count: Swift.max(0, digits - String(index).count)))\(index)_\(images.classNames[label]).png"
            try ImageCodec.writePNG(image, to: directory.appendingPathComponent(name).path)
            csv += "\(name),\(label)\n"
            progress.update(index + 1)
        }
        try Data(csv.utf8).write(to: directory.appendingPathComponent("labels.csv"), options: .atomic)
        let classes = images.classNames.enumerated().map { "\($0.offset),\($0.element)" }.joined(separator: "\n")
        try Data(("index,class\n" + classes + "\n").utf8).write(to: directory.appendingPathComponent("classes.csv"), options: .atomic)
        print("wrote \(total) images, labels.csv and classes.csv to \(directory.path)")
    }
}
