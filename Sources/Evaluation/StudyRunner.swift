import Attacks
import Foundation
import ModelZoo
import Quantize
import TensorCore

/// Which part of a study's work one machine does: units `u` with `u mod count == index − 1`.
public struct StudyShard: Codable, Hashable, Sendable, CustomStringConvertible {
    /// 1-based.
    public let index: Int
    public let count: Int
    public static let whole = StudyShard(index: 1, count: 1)

    public init(index: Int, count: Int) {
        precondition(count >= 1 && (1...count).contains(index), "shard \(index)/\(count) is out of range")
        self.index = index; self.count = count
    }

    /// Parses "i/N" (1 ≤ i ≤ N).
    public init?(_ text: String) {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let index = Int(parts[0]), let count = Int(parts[1]), count >= 1, (1...count).contains(index) else { return nil }
        self.init(index: index, count: count)
    }

    public var description: String { "\(index)/\(count)" }
    func owns(_ unit: Int) -> Bool { unit % count == index - 1 }
}

/// The smallest piece of study work: one model, one attack, one range of selected samples —
/// generated on the PC engine, then classified by every engine.
public struct StudyUnit: Hashable, Sendable {
    public let model: Int
    public let attack: Int
    public let chunk: Int
    public let samples: Range<Int>
    public let id: String
}

/// What a finished unit recorded (`units/<id>.json`).
public struct StudyUnitResult: Codable, Sendable {
    public struct EngineOutcome: Codable, Sendable {
        public var engine: String
        public var predictions: [Int]
        /// Per-image latency at batch 1, ms.
        public var milliseconds: [Double]
    }
    public var id: String
    public var model: String
    public var attack: String
    public var firstSample: Int
    /// Dataset files of the samples, relative to the dataset folder.
    public var files: [String]
    public var labels: [Int]
    /// Success of the float adversarial on the PC engine (before 8-bit rounding).
    public var floatSuccess: [Bool]
    /// Generation time of the whole unit on the PC engine, seconds.
    public var generationSeconds: Double
    public var engines: [EngineOutcome]

    enum CodingKeys: String, CodingKey {
        case id, model, attack, files, labels, engines
        case firstSample = "first_sample", floatSuccess = "float_success", generationSeconds = "generation_seconds"
    }
}

public struct StudyError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Runs a study (or one shard of it) into a folder, resumably.
///
/// Layout of the folder: `study.json` (config and shard), `manifest.json` (finished units),
/// `dataset-<size>/` (when the study prepares it), `selection/`, `mobile/*.mobile`,
/// `adversarials/<model>/<attack>/*.png`, `units/<id>.json`, and `report/` once every unit is
/// done. Each file is written atomically and a unit enters the manifest only after its files
/// are complete, so a killed run resumes where it stopped and loses nothing.
public final class StudyRunner {
    public let config: StudyConfig
    public let directory: URL
    public let shard: StudyShard
    public let resume: Bool
    let log: (String) -> Void

    public init(config: StudyConfig, directory: URL, shard: StudyShard = .whole, resume: Bool, log: @escaping (String) -> Void) {
        self.config = config; self.directory = directory; self.shard = shard; self.resume = resume; self.log = log
    }

    func path(_ components: String...) -> URL { components.reduce(directory) { $0.appendingPathComponent($1) } }

    /// Identity of a run, written first and checked on resume and merge.
    struct Header: Codable, Equatable {
        var format: Int
        var config: StudyConfig
        var shard: StudyShard
    }

    struct Manifest: Codable {
        var finished: [String]
    }

    /// Every unit of the study, in a fixed order (model, attack, chunk).
    public static func units(_ config: StudyConfig, sampleCount: Int) -> [StudyUnit] {
        var result: [StudyUnit] = []
        let chunks = (sampleCount + config.chunkSize - 1) / config.chunkSize
        for (m, model) in config.models.enumerated() {
            for (a, attack) in config.attacks.enumerated() {
                for c in 0..<chunks {
                    let range = (c * config.chunkSize)..<Swift.min((c + 1) * config.chunkSize, sampleCount)
                    result.append(StudyUnit(model: m, attack: a, chunk: c, samples: range,
                                            id: "\(model.stem)__\(attack.name)__\(String(format: "%05d", c))"))
                }
            }
        }
        return result
    }

    /// Runs this shard's units. Returns the report when the whole study is done here (no
    /// sharding), nil for a shard (combine shards with `StudyMerge`).
    /// - Parameter stopAfter: stop after this many newly finished units (simulates a killed run).
    @discardableResult
    public func run(stopAfter: Int? = nil) throws -> StudyReport? {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let header = Header(format: 1, config: config, shard: shard)
        let headerFile = path("study.json")
        if let data = try? Data(contentsOf: headerFile) {
            guard resume else {
                throw StudyError("\(directory.path) already holds a study; pass --resume to continue it, or choose another --out")
            }
            guard let existing = try? JSONDecoder().decode(Header.self, from: data) else {
                throw StudyError("\(headerFile.path) is not a study header written by this version; choose another --out")
            }
            guard existing == header else {
                throw StudyError("\(directory.path) holds a study with another config or shard (\(existing.shard)); resume it with the same config and --shard, or choose another --out")
            }
        } else {
            try Self.writeJSON(header, to: headerFile)
        }
        var manifest = resume ? ((try? JSONDecoder().decode(Manifest.self, from: Data(contentsOf: path("manifest.json")))) ?? Manifest(finished: [])) : Manifest(finished: [])
        let datasets = try self.datasets()
        let selection = try self.selection(datasets)
        try Self.writeJSON(selection, to: path("selection", "indices.json"))
        let units = Self.units(config, sampleCount: selection.count)
        let mine = units.enumerated().filter { shard.owns($0.offset) }.map(\.element)
        var finished = Set(manifest.finished).filter { FileManager.default.fileExists(atPath: path("units", "\($0).json").path) }
        let todo = mine.filter { !finished.contains($0.id) }
        log("study: \(selection.count) samples, \(units.count) units (\(mine.count) in shard \(shard), \(mine.count - todo.count) already done)")

        var engines: (model: Int, classifiers: [(String, any ImageClassifier)], pc: Model)?
        var done = 0
        for unit in todo {
            if stopAfter == done { return nil }
            if engines?.model != unit.model {
                engines = nil
                let model = try loadModel(config.models[unit.model])
                engines = (unit.model, try self.engines(for: config.models[unit.model], model: model, dataset: datasets.for(model.config)), model)
            }
            let result = try run(unit, pc: engines!.pc, engines: engines!.classifiers, dataset: datasets.for(engines!.pc.config), selection: selection)
            try Self.writeJSON(result, to: path("units", "\(unit.id).json"))
            finished.insert(unit.id)
            manifest.finished = finished.sorted()
            try Self.writeJSON(manifest, to: path("manifest.json"))
            done += 1
            let rates = result.engines.map { outcome in
                let fooled = zip(outcome.predictions, result.labels).filter { $0 != $1 }.count
                return "\(outcome.engine) \(String(format: "%.0f%%", Double(fooled) / Double(result.labels.count) * 100))"
            }
            log("[\(mine.count - todo.count + done)/\(mine.count)] \(result.model) \(result.attack) samples \(unit.samples.lowerBound)..<\(unit.samples.upperBound): "
                + rates.joined(separator: ", ") + String(format: " (generation %.2f s)", result.generationSeconds))
        }
        guard shard == .whole else {
            log("shard \(shard) finished; combine the shards with robustctl merge")
            return nil
        }
        let report = try Self.report(config, units: units, directory: directory)
        try report.write(to: path("report"))
        return report
    }

    // MARK: - Data

    /// The prepared datasets, one per input size (Table 1 of the paper: InceptionV3 gets its
    /// 299 px crop from the source image, not from a 224 px one).
    struct Datasets {
        /// By input size; key 0 serves every size.
        let bySize: [Int: PreparedDataset]
        func `for`(_ config: ModelConfig) -> PreparedDataset { bySize[config.inputSize] ?? bySize[0]! }
        var first: PreparedDataset { bySize[bySize.keys.min()!]! }
    }

    /// The labelled image folders the study reads: given, or prepared here from the source.
    func datasets() throws -> Datasets {
        var bySize: [Int: PreparedDataset] = [:]
        if !config.data.prepared.isEmpty {
            for (size, folder) in config.data.prepared { bySize[size] = try PreparedDataset(directory: folder) }
        } else {
            let sizes = config.data.size.map { [$0] } ?? Array(Set(config.models.map(\.config.inputSize))).sorted()
            for size in sizes {
                let target = path("dataset-\(size)")
                if resume, let existing = try? PreparedDataset(directory: target.path) { bySize[config.data.size == nil ? size : 0] = existing; continue }
                let source = try DatasetPreparation.source(config.data.source!, groundTruth: config.data.groundTruth, synsets: config.data.synsets,
                                                           split: config.data.split, size: size, count: config.data.count, seed: config.data.sourceSeed)
                log("preparing \(config.data.source!) at \(size) px into \(target.path)")
                let start = ContinuousClock.now
                var reported = 0
                bySize[config.data.size == nil ? size : 0] = try DatasetPreparation.prepare(source, size: size, count: config.data.count, into: target) { done, total in
                    // A line per tenth of a large dataset, with the time left.
                    guard total >= 1000, done * 10 / total > reported else { return }
                    reported = done * 10 / total
                    let elapsed = Evaluator.seconds(since: start)
                    self.log(String(format: "  %d/%d images, %.0f s elapsed, about %.0f s left", done, total, elapsed, elapsed / Double(done) * Double(total - done)))
                }
            }
        }
        // Every size must hold the same samples in the same order.
        let reference = bySize[bySize.keys.min()!]!
        for dataset in bySize.values where dataset.entries.map(\.label) != reference.entries.map(\.label) {
            throw StudyError("\(dataset.directory) and \(reference.directory) do not hold the same samples in the same order")
        }
        return Datasets(bySize: bySize)
    }

    /// The selected samples, as positions in the datasets: reused, or selected (and saved) here.
    func selection(_ datasets: Datasets) throws -> [Int] {
        let dataset = datasets.first
        if let reuse = config.selection.reuse {
            let file = URL(fileURLWithPath: reuse).appendingPathComponent("labels.csv").path
            let entries = try LabelFile.read(file, classes: Int.max)
            let position = Dictionary(uniqueKeysWithValues: dataset.entries.enumerated().map { ($0.element.file, $0.offset) })
            return try entries.map { entry in
                guard let index = position[entry.file], dataset.entries[index].label == entry.label else {
                    throw StudyError("\(file): '\(entry.file)' (label \(entry.label)) is not in the dataset \(dataset.directory) with that label")
                }
                return index
            }
        }
        let file = path("selection", "selection.json")
        if resume, let data = try? Data(contentsOf: file), let saved = try? JSONDecoder().decode(Selection.Result.self, from: data) {
            guard !saved.indices.isEmpty, saved.indices.allSatisfy(dataset.entries.indices.contains),
                  Set(saved.indices).count == saved.indices.count else {
                throw StudyError("\(file.path) is damaged (its samples are not distinct images of the dataset's \(dataset.entries.count)); "
                                 + "delete it and resume to select again (the same seed selects the same samples)")
            }
            return saved.indices
        }
        let classifiers: [any ImageClassifier] = try config.models.map { try loadModel($0) }
        log("selecting \(config.selection.count) of \(dataset.entries.count) samples every model classifies correctly")
        let start = ContinuousClock.now
        var reported = (model: -1, tenth: 0)
        let result = try Selection.select(classifiers, items: classifiers.map { datasets.for($0.config).items },
                                          count: config.selection.count, seed: config.selection.seed) { model, done in
            // A line per tenth of each model's pass, with the time left for the whole selection.
            let total = dataset.entries.count, tenth = done * 10 / Swift.max(total, 1)
            guard total >= 1000, (model, tenth) != reported, tenth > 0 || model != reported.model else { return }
            reported = (model, tenth)
            let fraction = (Double(model) + Double(done) / Double(total)) / Double(classifiers.count)
            let elapsed = Evaluator.seconds(since: start)
            self.log(String(format: "  %@: %d/%d images, about %.0f s left", self.config.models[model].tag, done, total,
                            fraction > 0 ? elapsed / fraction * (1 - fraction) : 0))
        }
        log("selection: \(result.indices.count) of \(result.eligible) eligible; accuracy "
            + result.accuracy.keys.sorted().map { "\($0) \(String(format: "%.1f%%", result.accuracy[$0]! * 100))" }.joined(separator: ", "))
        guard !result.indices.isEmpty else { throw StudyError("no sample is classified correctly by every model; check the weights and the dataset's labels") }
        try Self.writeJSON(result, to: file)
        try LabelFile.write(result.indices.map { dataset.entries[$0] }, to: path("selection", "labels.csv"))
        return result.indices
    }

    // MARK: - Models and engines

    func loadModel(_ spec: StudyConfig.ModelSpec) throws -> Model {
        guard FileManager.default.fileExists(atPath: spec.weights) else { throw StudyError("\(spec.tag): weight file \(spec.weights) does not exist") }
        return try Model(config: spec.config, weights: spec.weights)
    }

    /// Class names written into mobile files.
    func labels(for config: ModelConfig, dataset: PreparedDataset) -> [String] {
        if let names = dataset.classNames, names.count == config.numClasses { return names }
        if config.numClasses == ImageNet.classes.count { return ImageNet.classes.map(\.wnid) }
        return (0..<config.numClasses).map { "class \($0)" }
    }

    /// The model on every configured engine, converting (and calibrating) mobile forms once.
    func engines(for spec: StudyConfig.ModelSpec, model: Model, dataset: PreparedDataset) throws -> [(String, any ImageClassifier)] {
        var result: [(String, any ImageClassifier)] = []
        let labels = self.labels(for: spec.config, dataset: dataset)
        for engine in config.engines {
            let file = path("mobile", "\(spec.stem)-\(engine.name).mobile")
            switch engine {
            case .pc:
                result.append((engine.name, model))
                continue
            case .mobileFP32:
                if !(resume && FileManager.default.fileExists(atPath: file.path)) {
                    try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
                    try MobileFile.write(try MobileConverter.convert(model, labels: labels, sourceWeights: spec.weights), to: file.path)
                }
            case .mobileInt8:
                if !(resume && FileManager.default.fileExists(atPath: file.path)) {
                    let scheme = engine.scheme(for: spec.config.flavor)!
                    let calibration = config.calibration!
                    var calibrator = try Calibrator(model: model, scheme: scheme, observer: calibration.observer)
                    let images = try CalibrationImages(calibration, size: spec.config.inputSize, seed: config.seed)
                    log("\(spec.tag): calibrating \(engine.name) (\(scheme.rawValue)) on \(images.count) images")
                    for start in stride(from: 0, to: images.count, by: 16) {
                        try calibrator.observe(images.batch(start..<Swift.min(start + 16, images.count), config: spec.config))
                    }
                    try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
                    try MobileFile.write(try calibrator.finish(labels: labels, sourceWeights: spec.weights), to: file.path)
                }
            }
            result.append((engine.name, MobileEngine(try MobileFile.read(file.path))))
        }
        return result
    }

    // MARK: - One unit

    func run(_ unit: StudyUnit, pc: Model, engines: [(String, any ImageClassifier)], dataset: PreparedDataset, selection: [Int]) throws -> StudyUnitResult {
        let spec = config.models[unit.model], attack = config.attacks[unit.attack]
        let entries = unit.samples.map { dataset.entries[selection[$0]] }
        let folder = path("adversarials", spec.stem, attack.name)
        var floatSuccess: [Bool] = []
        var seconds = 0.0
        for start in stride(from: 0, to: entries.count, by: config.attackBatchSize) {
            let batch = Array(entries[start..<Swift.min(start + config.attackBatchSize, entries.count)])
            let images = try ImageInput.load(batch.map { dataset.path(of: $0.file) }, config: spec.config)
            // A batch's seed depends only on its first sample's position, so chunks and
            // shards do not change the random draws.
            let seed = config.seed &+ UInt64(unit.samples.lowerBound + start)
            let clock = ContinuousClock.now
            let result: AttackResult
            if let gradient = attack.gradient {
                result = gradient.attack(model: pc, images: images, labels: batch.map(\.label), seed: seed, uint8Aware: attack.uint8Aware)
            } else {
                result = attack.boundary!.attack(model: pc, images: images, labels: batch.map(\.label), seed: seed)
            }
            seconds += Evaluator.seconds(since: clock)
            floatSuccess += result.outcomes.map(\.success)
            for (row, entry) in batch.enumerated() {
                let destination = folder.appendingPathComponent(LabelFile.adversarialName(entry.file))
                try FileManager.default.createDirectory(at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
                try ImageCodec.writePNG(RGBImage(tensor: result.adversarials.slice(row)), to: destination.path)
            }
        }
        // Every engine classifies the 8-bit PNGs, one image at a time, as a phone receives them.
        let adversarials = try entries.map { try ImageCodec.read(folder.appendingPathComponent(LabelFile.adversarialName($0.file)).path).tensor() }
        var outcomes: [StudyUnitResult.EngineOutcome] = []
        for (name, classifier) in engines {
            var predictions: [Int] = [], milliseconds: [Double] = []
            for image in adversarials {
                let clock = ContinuousClock.now
                let logits = try classifier.classify(image)
                milliseconds.append(Evaluator.seconds(since: clock) * 1000)
                predictions.append(Model.argmax(logits)[0])
            }
            outcomes.append(.init(engine: name, predictions: predictions, milliseconds: milliseconds))
        }
        return StudyUnitResult(id: unit.id, model: spec.tag, attack: attack.name, firstSample: unit.samples.lowerBound,
                               files: entries.map(\.file), labels: entries.map(\.label), floatSuccess: floatSuccess,
                               generationSeconds: seconds, engines: outcomes)
    }

    static func writeJSON<T: Encodable>(_ value: T, to file: URL) throws {
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do {
            try encoder.encode(value).write(to: file, options: .atomic)
        } catch {
            throw StudyError("cannot write \(file.path): \(FileFailure.writeReason(file.path, error))")
        }
    }

    // MARK: - Report

    /// Why a unit file that reads does not describe `unit`, if it does not: such a file would
    /// change the report's numbers without a trace (a truncated predictions list drops samples
    /// from a cell).
    static func mismatch(_ result: StudyUnitResult, _ unit: StudyUnit, _ config: StudyConfig) -> String? {
        let count = unit.samples.count
        if result.id != unit.id || result.model != config.models[unit.model].tag || result.attack != config.attacks[unit.attack].name {
            return "it belongs to another unit"
        }
        if result.firstSample != unit.samples.lowerBound || [result.files.count, result.labels.count, result.floatSuccess.count] != [count, count, count] {
            return "it records other samples than \(unit.samples)"
        }
        if let file = result.files.first(where: { !LabelFile.staysInside($0) }) {
            return "it names '\(file)', which leaves the dataset folder"
        }
        if let engine = result.engines.first(where: { $0.predictions.count != count || $0.milliseconds.count != count }) {
            return "its \(engine.engine) outcomes are not one per sample"
        }
        let classes = 0..<config.models[unit.model].config.numClasses
        if let value = (result.labels + result.engines.flatMap(\.predictions)).first(where: { !classes.contains($0) }) {
            return "it records class \(value), outside the model's \(classes)"
        }
        return nil
    }

    /// The study's cells from its finished units (all of them must be present).
    public static func report(_ config: StudyConfig, units: [StudyUnit], directory: URL) throws -> StudyReport {
        var results: [String: StudyUnitResult] = [:]
        var missing: [String] = []
        for unit in units {
            let file = directory.appendingPathComponent("units").appendingPathComponent("\(unit.id).json")
            guard let data = try? Data(contentsOf: file) else { missing.append(unit.id); continue }
            let result: StudyUnitResult
            do { result = try JSONDecoder().decode(StudyUnitResult.self, from: data) } catch {
                throw StudyError("\(file.path) is damaged (\(error)); delete it and resume to recompute the unit")
            }
            if let problem = mismatch(result, unit, config) {
                throw StudyError("\(file.path) is damaged (\(problem)); delete it and resume to recompute the unit")
            }
            results[unit.id] = result
        }
        guard missing.isEmpty else {
            throw StudyError("\(missing.count) of \(units.count) units are not finished (e.g. \(missing.prefix(3).joined(separator: ", ")))")
        }
        // Every model and attack saw the same samples: a chunk's units agree on them.
        for chunk in Set(units.map(\.chunk)) {
            let parts = units.filter { $0.chunk == chunk }
            let first = results[parts[0].id]!
            if let other = parts.dropFirst().first(where: { results[$0.id]!.files != first.files || results[$0.id]!.labels != first.labels }) {
                throw StudyError("units/\(parts[0].id).json and units/\(other.id).json record other samples or labels for the same chunk; "
                                 + "one is damaged: delete both and resume to recompute them")
            }
        }
        var cells: [StudyCell] = []
        for (m, model) in config.models.enumerated() {
            for (a, attack) in config.attacks.enumerated() {
                let parts = units.filter { $0.model == m && $0.attack == a }.map { results[$0.id]! }
                let labels = parts.flatMap(\.labels)
                let generation = parts.map(\.generationSeconds).reduce(0, +) / Double(Swift.max(labels.count, 1))
                for engine in config.engines {
                    let outcomes = parts.map { part in part.engines.first { $0.engine == engine.name } }
                    guard outcomes.allSatisfy({ $0 != nil }) else { throw StudyError("\(model.tag) \(attack.name): a unit lacks engine \(engine.name)") }
                    let predictions = outcomes.flatMap { $0!.predictions }
                    cells.append(StudyCell(model: model.tag, attack: attack.name, engine: engine.name,
                                           success: zip(predictions, labels).map { $0 != $1 },
                                           inferenceMs: Evaluator.median(outcomes.flatMap { $0!.milliseconds }), generationSeconds: generation,
                                           successFloat: engine == .pc ? parts.flatMap(\.floatSuccess) : nil))
                }
            }
        }
        return StudyReport(cells: cells, title: config.title)
    }
}
