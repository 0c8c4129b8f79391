import ArgumentParser
import Evaluation
import Foundation
import ModelZoo
import TensorCore

struct Prepare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Turn a labelled image source into a prepared dataset: 8-bit PNGs at the model size, labels.csv, index.csv.",
        discussion: """
        Sources: an ImageFolder (DIR/<class>/*.JPEG|png; ImageNet's val/<wnid>/ folders get \
        the standard ImageNet-1k indices), ImageNet's flat validation folder with \
        --ground-truth (the devkit's ILSVRC2012_validation_ground_truth.txt plus --synsets \
        data/meta.mat, or a WordNet id per line, or Kaggle's LOC_val_solution.csv), or \
        builtin:shapes (rendered at --size; its validation split by default, so it never \
        overlaps what 'train' saw). Images get the paper's resize — shorter side 256 (scaled \
        for other sizes), or 299 for --size 299 — and centre crop. Decoding runs on --threads \
        in small windows, so memory stays flat for 50,000 images. The result (labels.csv: \
        file,label; index.csv: id,file,source,label; classes.csv) is what 'select', 'attack', \
        'evaluate', 'convert --calibration' and 'study' read.
        """)

    @Option(help: "builtin:NAME, an ImageFolder directory, or a flat folder (with --ground-truth).")
    var source: String

    @Option(help: "Ground truth of a flat folder: devkit IDs, WordNet ids, or Kaggle's CSV.")
    var groundTruth: String?

    @Option(help: "The devkit's data/meta.mat (or a synset list in ILSVRC2012 ID order) for devkit IDs.")
    var synsets: String?

    @Option(help: "Output size in pixels (224 or 299 for the paper's models).")
    var size: Int = 224

    @Option(help: "How many images (default: all of a folder, else spread evenly over it so that every class folder contributes; 1000 for a built-in dataset).")
    var count: Int?

    @Option(help: "Built-in dataset: train or validation split.")
    var split: String = "validation"

    @Option(help: "Built-in dataset seed.")
    var seed: UInt64 = 0

    @Option(help: "Output folder.")
    var out: String

    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        if !(16...ModelConfig.maximumInputSize).contains(size) { throw ValidationError("--size must be from 16 to \(ModelConfig.maximumInputSize)") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        if !["train", "validation"].contains(split) { throw ValidationError("--split must be train or validation") }
        if synsets != nil && groundTruth == nil { throw ValidationError("--synsets only applies with --ground-truth") }
    }

    func run() throws {
        compute.apply()
        if !source.hasPrefix("builtin:") { try refuseOverwriting(input: source, with: out, option: "--source") }
        let images: any LabeledImageSource
        do {
            images = try DatasetPreparation.source(source, groundTruth: groundTruth, synsets: synsets, split: split, size: size, count: count, seed: seed)
        } catch {
            throw CommandError("\(error)")
        }
        let directory = try prepareOutputDirectory(out)
        let total = Swift.min(count ?? images.count, images.count)
        let progress = ProgressLine(total: total, label: "preparing")
        let dataset: PreparedDataset
        do {
            dataset = try DatasetPreparation.prepare(images, size: size, count: count, into: directory) { done, _ in progress.update(done) }
        } catch {
            throw CommandError("\(error)")
        }
        let fewer = (count ?? 0) > images.count ? " (all the source holds, fewer than --count \(count!))" : ""
        print("wrote \(dataset.entries.count) images\(fewer), labels.csv, index.csv and classes.csv to \(directory.path)")
    }
}
