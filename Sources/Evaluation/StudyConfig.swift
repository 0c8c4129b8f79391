import Attacks
import Foundation
import ModelZoo
import Quantize
import Yams

/// The whole grid of a study, as read from a JSON or YAML file: data, selection, models,
/// attacks with their parameters, engines, calibration and how the work is cut into units.
///
/// Relative paths in the file are resolved against the file's folder. Reading checks every
/// key, value and combination and reports all problems at once, each with its path in the
/// file (`models[2].flavor: ...`), before any work starts.
public struct StudyConfig: Codable, Hashable, Sendable {
    public var title: String
    /// Seeds every random choice of the study (selection draws, attack randomness).
    public var seed: UInt64
    public var data: DataSpec
    public var selection: SelectionSpec
    public var models: [ModelSpec]
    public var attacks: [AttackSpec]
    public var engines: [EngineSpec]
    public var calibration: CalibrationSpec?
    /// Selected samples per work unit: the unit of resuming and sharding.
    public var chunkSize: Int
    /// Images per model call while attacking.
    public var attackBatchSize: Int

    /// Where the images come from.
    public struct DataSpec: Codable, Hashable, Sendable {
        /// Folders written by `robustctl prepare` (labels.csv and the images it names), by the
        /// input size they serve; size 0 serves every model.
        public var prepared: [Int: String]
        /// Or a source the study prepares itself: an ImageFolder, a flat folder with
        /// `groundTruth`, or `builtin:NAME`.
        public var source: String?
        public var groundTruth: String?
        /// The devkit's meta.mat (or a synset list) mapping ground-truth IDs to WordNet ids.
        public var synsets: String?
        /// Prepare at this size only; by default at each model's input size, as the paper's
        /// Table 1 does (224 crops for MobileNetV2 and ResNet50, 299 for InceptionV3).
        public var size: Int?
        public var count: Int?
        /// Built-in sources: which split and seed.
        public var split: String
        public var sourceSeed: UInt64
    }

    public struct SelectionSpec: Codable, Hashable, Sendable {
        public var count: Int
        public var seed: UInt64
        /// A folder written by `robustctl select` (its labels.csv) to use instead of selecting.
        public var reuse: String?
    }

    public struct ModelSpec: Codable, Hashable, Sendable {
        public var config: ModelConfig
        public var weights: String
        public var tag: String { config.tag }
        public var stem: String { config.fileStem }
    }

    public struct AttackSpec: Codable, Hashable, Sendable {
        /// How reports name the attack; unique in a study.
        public var name: String
        public var gradient: GradientAttack?
        public var boundary: BoundaryAttack?
        public var uint8Aware: Bool
    }

    /// Where adversarials are classified. `mobileInt8(nil)` ("mobile-int8") uses the
    /// flavour's own framework's scheme — keras → tflite, torch → qnnpack — as the paper did.
    public enum EngineSpec: Codable, Hashable, Sendable {
        case pc
        case mobileFP32
        case mobileInt8(QuantizationScheme?)

        public var name: String {
            switch self {
            case .pc: "pc"
            case .mobileFP32: "mobile-fp32"
            case let .mobileInt8(scheme): scheme.map { "mobile-int8-\($0.rawValue)" } ?? "mobile-int8"
            }
        }

        /// The int8 scheme this engine uses for a model of `flavor` (nil for float engines).
        public func scheme(for flavor: Flavor) -> QuantizationScheme? {
            guard case let .mobileInt8(scheme) = self else { return nil }
            return scheme ?? (flavor == .keras ? .tflite : .qnnpack)
        }
    }

    public struct CalibrationSpec: Codable, Hashable, Sendable {
        /// A folder of images (searched recursively) or `builtin:NAME` (its train split).
        public var images: String
        public var count: Int
        public var observer: ObserverKind?
        public var allowFewer: Bool
    }
}

// MARK: - Reading

/// Every problem found in a config file, each with its path in the file.
public struct StudyConfigError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let problems: [String]
    public var description: String {
        "\(file): \(problems.count) problem\(problems.count == 1 ? "" : "s"): " + problems.joined(separator: "; ")
    }
}

extension StudyConfig {
    /// Reads and checks a JSON or YAML config.
    public static func read(_ path: String) throws -> StudyConfig {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw StudyConfigError(file: path, problems: ["cannot read the file"])
        }
        let base = URL(fileURLWithPath: path).deletingLastPathComponent().path
        return try parse(text, file: path, baseDirectory: base)
    }

    /// Parses config text (JSON is YAML, so one parser reads both).
    public static func parse(_ text: String, file: String = "config", baseDirectory: String) throws -> StudyConfig {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else { throw StudyConfigError(file: file, problems: ["the file is empty"]) }
            root = node
        } catch let error as StudyConfigError { throw error } catch {
            throw StudyConfigError(file: file, problems: ["not valid JSON or YAML: \(error)"])
        }
        var reader = ConfigReader(baseDirectory: baseDirectory)
        let config = reader.study(root)
        guard reader.problems.isEmpty, let config else { throw StudyConfigError(file: file, problems: reader.problems) }
        return config
    }
}

/// Walks the YAML tree, collecting problems instead of stopping at the first.
struct ConfigReader {
    let baseDirectory: String
    var problems: [String] = []

    mutating func problem(_ path: String, _ message: String) { problems.append("\(path): \(message)") }

    /// The mapping at `path` with its keys checked against `allowed`.
    mutating func mapping(_ node: Node?, _ path: String, allowed: [String]) -> [String: (Node, String)]? {
        guard let node else { return nil }
        guard let mapping = node.mapping else { problem(path, "expected a mapping of keys to values"); return nil }
        var result: [String: (Node, String)] = [:]
        for (key, value) in mapping {
            guard let name = key.string else { problem(path, "keys must be strings"); continue }
            let child = path.isEmpty ? name : "\(path).\(name)"
            if !allowed.contains(name) {
                problem(child, "unknown key (expected one of: \(allowed.joined(separator: ", ")))")
            } else {
                result[name] = (value, child)
            }
        }
        return result
    }

    mutating func string(_ entry: (Node, String)?) -> String? {
        guard let (node, path) = entry else { return nil }
        guard case .scalar = node, let value = node.string else { problem(path, "expected a string"); return nil }
        return value
    }

    mutating func int(_ entry: (Node, String)?, minimum: Int) -> Int? {
        guard let (node, path) = entry else { return nil }
        guard let value = node.int else { problem(path, "expected an integer"); return nil }
        guard value >= minimum else { problem(path, "must be at least \(minimum)"); return nil }
        return value
    }

    mutating func seed(_ entry: (Node, String)?) -> UInt64? {
        guard let (node, path) = entry else { return nil }
        guard let text = node.string, let value = UInt64(text) else { problem(path, "expected a non-negative integer seed"); return nil }
        return value
    }

    mutating func float(_ entry: (Node, String)?, positive: Bool = true) -> Float? {
        guard let (node, path) = entry else { return nil }
        guard let value = node.float, Float(value).isFinite else { problem(path, "expected a number (a float32)"); return nil }
        if positive && !(value > 0) { problem(path, "must be positive"); return nil }
        return Float(value)
    }

    mutating func bool(_ entry: (Node, String)?) -> Bool? {
        guard let (node, path) = entry else { return nil }
        guard let value = node.bool else { problem(path, "expected true or false"); return nil }
        return value
    }

    mutating func choice<T: RawRepresentable & CaseIterable>(_ entry: (Node, String)?, _ type: T.Type) -> T? where T.RawValue == String {
        guard let text = string(entry) else { return nil }
        guard let value = T(rawValue: text) else {
            problem(entry!.1, "unknown value '\(text)' (expected one of: \(T.allCases.map(\.rawValue).joined(separator: ", ")))")
            return nil
        }
        return value
    }

    /// A path the study will read must exist (built-in sources aside).
    mutating func exists(_ path: String?, _ at: String?) {
        guard let path, let at, !path.hasPrefix("builtin:") else { return }
        if !FileManager.default.fileExists(atPath: path) { problem(at, "no such file or folder: \(path)") }
    }

    func resolve(_ path: String) -> String {
        if path.hasPrefix("/") || path.hasPrefix("builtin:") { return path }
        if path.hasPrefix("~/") { return (path as NSString).expandingTildeInPath }
        return URL(fileURLWithPath: baseDirectory).appendingPathComponent(path).standardizedFileURL.path
    }

    mutating func sequence(_ entry: (Node, String)?) -> [(Node, String)]? {
        guard let (node, path) = entry else { return nil }
        guard let sequence = node.sequence else { problem(path, "expected a list"); return nil }
        if sequence.isEmpty { problem(path, "must not be empty") }
        return sequence.enumerated().map { ($0.element, "\(path)[\($0.offset)]") }
    }

    mutating func study(_ root: Node) -> StudyConfig? {
        guard let top = mapping(root, "", allowed: ["title", "seed", "data", "selection", "models", "attacks", "engines", "calibration",
                                                    "chunk_size", "attack_batch_size"]) else {
            problem("(top level)", "expected a mapping"); return nil
        }
        for key in ["data", "models", "attacks", "engines"] where top[key] == nil { problem(key, "missing (required)") }
        let title = string(top["title"]) ?? "robustctl study"
        let seed = self.seed(top["seed"]) ?? 0
        let data = top["data"].flatMap { dataSpec($0) }
        let selection = selectionSpec(top["selection"], seed: seed)
        // Kept with their positions in the file, so later problems name the right entry.
        let models = (sequence(top["models"]) ?? []).enumerated().compactMap { entry in modelSpec(entry.element).map { (entry.offset, $0) } }
        let attacks = (sequence(top["attacks"]) ?? []).enumerated().compactMap { entry in attackSpec(entry.element).map { (entry.offset, $0) } }
        let engines = (sequence(top["engines"]) ?? []).enumerated().compactMap { entry in engineSpec(entry.element).map { (entry.offset, $0) } }
        let calibration = top["calibration"].flatMap { calibrationSpec($0) }
        let chunkSize = int(top["chunk_size"], minimum: 1) ?? 100
        let batchSize = int(top["attack_batch_size"], minimum: 1) ?? 16

        // Combinations.
        var engineNames = Set<String>()
        for (index, engine) in engines where !engineNames.insert(engine.name).inserted {
            problem("engines[\(index)]", "'\(engine.name)' appears twice")
        }
        var tags = Set<String>()
        for (index, model) in models where !tags.insert(model.tag).inserted {
            problem("models[\(index)]", "\(model.tag) appears twice (a study compares one model per architecture and flavour)")
        }
        var names = Set<String>()
        for (index, attack) in attacks where !names.insert(attack.name).inserted {
            problem("attacks[\(index)].name", "'\(attack.name)' appears twice; give each attack a distinct name")
        }
        if engines.contains(where: { if case .mobileInt8 = $0.1 { true } else { false } }) && calibration == nil && top["calibration"] == nil {
            problem("calibration", "missing: int8 engines need calibration images")
        }
        if let data, data.prepared.isEmpty, selection?.reuse != nil {
            problem("selection.reuse", "needs data.dataset (the prepared folder its labels.csv refers to)")
        }
        if let data, !data.prepared.isEmpty, data.prepared[0] == nil {
            for (index, model) in models where data.prepared[model.config.inputSize] == nil {
                problem("models[\(index)]", "data.dataset has no folder for its input size \(model.config.inputSize)")
            }
        }
        guard problems.isEmpty, let data, let selection else { return nil }
        return StudyConfig(title: title, seed: seed, data: data, selection: selection, models: models.map(\.1), attacks: attacks.map(\.1),
                           engines: engines.map(\.1), calibration: calibration, chunkSize: chunkSize, attackBatchSize: batchSize)
    }

    mutating func dataSpec(_ entry: (Node, String)) -> StudyConfig.DataSpec? {
        guard let map = mapping(entry.0, entry.1, allowed: ["dataset", "source", "ground_truth", "synsets", "size", "count", "split", "seed"]) else { return nil }
        var prepared: [Int: String] = [:]
        if let (node, path) = map["dataset"] {
            if node.mapping != nil {
                // {224: folder, 299: folder}
                for (key, value) in node.mapping! {
                    guard let size = key.int, size >= 16 else { problem(path, "keys must be input sizes (e.g. 224, 299)"); continue }
                    if let folder = string((value, "\(path).\(size)")) { prepared[size] = resolve(folder) }
                }
            } else if let folder = string(map["dataset"]) {
                prepared[0] = resolve(folder)
            }
            for (size, folder) in prepared where !FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent("labels.csv")) {
                problem(size == 0 ? path : "\(path).\(size)", "\(folder) is not a prepared dataset (no labels.csv; write one with robustctl prepare)")
            }
        }
        let source = string(map["source"]).map(resolve)
        if (map["dataset"] == nil) == (source == nil) { problem(entry.1, "give exactly one of 'dataset' (a prepared folder) or 'source' (to prepare)") }
        if map["dataset"] != nil {
            for key in ["ground_truth", "synsets", "size", "count", "split", "seed"] where map[key] != nil {
                problem(map[key]!.1, "only applies with 'source'")
            }
        }
        exists(source, map["source"]?.1)
        exists(string(map["ground_truth"]).map(resolve), map["ground_truth"]?.1)
        exists(string(map["synsets"]).map(resolve), map["synsets"]?.1)
        let split = string(map["split"]) ?? "validation"
        if !["train", "validation"].contains(split) { problem(entry.1 + ".split", "expected train or validation") }
        return StudyConfig.DataSpec(prepared: prepared, source: source, groundTruth: string(map["ground_truth"]).map(resolve),
                                    synsets: string(map["synsets"]).map(resolve), size: int(map["size"], minimum: 16),
                                    count: int(map["count"], minimum: 1), split: split, sourceSeed: seed(map["seed"]) ?? 0)
    }

    mutating func selectionSpec(_ entry: (Node, String)?, seed: UInt64) -> StudyConfig.SelectionSpec? {
        guard let entry else { return StudyConfig.SelectionSpec(count: 3000, seed: seed, reuse: nil) }
        guard let map = mapping(entry.0, entry.1, allowed: ["count", "seed", "reuse"]) else { return nil }
        let reuse = string(map["reuse"]).map(resolve)
        if let reuse, !FileManager.default.fileExists(atPath: (reuse as NSString).appendingPathComponent("labels.csv")) {
            problem(map["reuse"]!.1, "\(reuse) holds no labels.csv (a folder written by robustctl select)")
        }
        if reuse != nil, map["count"] != nil || map["seed"] != nil { problem(entry.1, "'reuse' takes a finished selection; drop 'count' and 'seed'") }
        return StudyConfig.SelectionSpec(count: int(map["count"], minimum: 1) ?? 3000, seed: self.seed(map["seed"]) ?? seed, reuse: reuse)
    }

    mutating func modelSpec(_ entry: (Node, String)) -> StudyConfig.ModelSpec? {
        guard let map = mapping(entry.0, entry.1, allowed: ["architecture", "flavor", "weights", "width_multiplier", "input_size", "num_classes",
                                                              "transform_input"]) else { return nil }
        for key in ["architecture", "flavor", "weights"] where map[key] == nil { problem("\(entry.1).\(key)", "missing (required)") }
        let architecture = choice(map["architecture"], Architecture.self), flavor = choice(map["flavor"], Flavor.self)
        let weights = string(map["weights"]).map(resolve)
        var width = 1.0
        if let (node, path) = map["width_multiplier"] {
            if let value = node.float, value > 0 { width = value } else { problem(path, "expected a positive number") }
        }
        let inputSize = int(map["input_size"], minimum: 16), classes = int(map["num_classes"], minimum: 2) ?? 1000
        if let weights, !weights.hasPrefix("builtin:"), !FileManager.default.fileExists(atPath: weights) {
            problem(map["weights"]!.1, "no such file: \(weights)")
        }
        guard let architecture, let flavor, let weights else { return nil }
        var config = ModelConfig(architecture: architecture, flavor: flavor, widthMultiplier: width, inputSize: inputSize, numClasses: classes)
        if let transform = bool(map["transform_input"]) { config.transformInput = transform }
        do { try config.validate() } catch { problem(entry.1, "\(error)"); return nil }
        return StudyConfig.ModelSpec(config: config, weights: weights)
    }

    enum AttackKind: String, CaseIterable { case fgsm, bim, pgd, boundary, fgm_l2 = "fgm-l2", bim_l2 = "bim-l2", pgd_l2 = "pgd-l2" }

    mutating func attackSpec(_ entry: (Node, String)) -> StudyConfig.AttackSpec? {
        let gradientKeys = ["epsilon", "steps", "rel_stepsize", "abs_stepsize", "random_start"]
        let boundaryKeys = ["steps", "spherical_step", "source_step", "source_step_convergance", "step_adaptation"]
        guard let map = mapping(entry.0, entry.1, allowed: ["attack", "name", "uint8_aware"] + Array(Set(gradientKeys + boundaryKeys)).sorted()) else { return nil }
        guard map["attack"] != nil else { problem(entry.1 + ".attack", "missing (one of: \(AttackKind.allCases.map(\.rawValue).joined(separator: ", ")))"); return nil }
        guard let kind = choice(map["attack"], AttackKind.self) else { return nil }
        let allowed = kind == .boundary ? boundaryKeys : gradientKeys
        for (key, (_, path)) in map where !["attack", "name", "uint8_aware"].contains(key) && !allowed.contains(key) {
            problem(path, "does not apply to \(kind.rawValue)")
        }
        let name = string(map["name"]) ?? kind.rawValue
        // The name becomes a folder (adversarials/<model>/<name>/) and part of unit file names.
        if name.isEmpty || name.hasPrefix(".") || name.contains(where: { $0 == "/" || $0 == "\\" || $0.isNewline || $0.asciiValue.map { $0 < 32 } == true }) {
            problem(map["name"]?.1 ?? entry.1 + ".name", "'\(name)' cannot name a folder (no '/', '\\' or control characters, no leading '.')")
        }
        let uint8Aware = bool(map["uint8_aware"]) ?? false
        let steps = int(map["steps"], minimum: 1)
        if kind == .boundary {
            var attack = BoundaryAttack(steps: steps ?? 5000, uint8Aware: uint8Aware)
            if let value = float(map["spherical_step"]) { attack.sphericalStep = value }
            if let value = float(map["source_step"]) { attack.sourceStep = value }
            if let value = float(map["source_step_convergance"]) { attack.sourceStepConvergence = value }
            if let value = float(map["step_adaptation"]) { attack.stepAdaptation = value }
            return StudyConfig.AttackSpec(name: name, gradient: nil, boundary: attack, uint8Aware: uint8Aware)
        }
        let epsilon = float(map["epsilon"]) ?? 0.005
        var attack: GradientAttack
        switch kind {
        case .fgsm: attack = .fgsm(epsilon: epsilon)
        case .bim: attack = .bim(epsilon: epsilon, steps: steps ?? 10)
        case .pgd: attack = .pgd(epsilon: epsilon, steps: steps ?? 40)
        case .fgm_l2: attack = .fgmL2(epsilon: epsilon)
        case .bim_l2: attack = .bimL2(epsilon: epsilon, steps: steps ?? 10)
        case .pgd_l2: attack = .pgdL2(epsilon: epsilon, steps: steps ?? 50)
        case .boundary: fatalError("handled above")
        }
        if [.fgsm, .fgm_l2].contains(kind), let (_, path) = map["steps"] { problem(path, "\(kind.rawValue) takes one step") }
        if let value = float(map["rel_stepsize"]) { attack.relativeStepsize = value }
        if let value = float(map["abs_stepsize"]) { attack.absoluteStepsize = value }
        if let value = bool(map["random_start"]) { attack.randomStart = value }
        return StudyConfig.AttackSpec(name: name, gradient: attack, boundary: nil, uint8Aware: uint8Aware)
    }

    mutating func engineSpec(_ entry: (Node, String)) -> StudyConfig.EngineSpec? {
        let names = ["pc", "mobile-fp32", "mobile-int8"] + QuantizationScheme.allCases.map { "mobile-int8-\($0.rawValue)" }
        guard let text = string(entry) else { return nil }
        switch text {
        case "pc": return .pc
        case "mobile-fp32": return .mobileFP32
        default:
            if text.hasPrefix("mobile-int8-"), let scheme = QuantizationScheme(rawValue: String(text.dropFirst("mobile-int8-".count))) {
                return .mobileInt8(scheme)
            }
            if text == "mobile-int8" { return .mobileInt8(nil) }
            problem(entry.1, "unknown engine '\(text)' (expected one of: \(names.joined(separator: ", ")))")
            return nil
        }
    }

    mutating func calibrationSpec(_ entry: (Node, String)) -> StudyConfig.CalibrationSpec? {
        guard let map = mapping(entry.0, entry.1, allowed: ["images", "count", "observer", "allow_fewer"]) else { return nil }
        guard let images = string(map["images"]).map(resolve) else { problem(entry.1 + ".images", "missing (required)"); return nil }
        exists(images, map["images"]?.1)
        return StudyConfig.CalibrationSpec(images: images, count: int(map["count"], minimum: 1) ?? 1000,
                                           observer: choice(map["observer"], ObserverKind.self), allowFewer: bool(map["allow_fewer"]) ?? false)
    }
}
