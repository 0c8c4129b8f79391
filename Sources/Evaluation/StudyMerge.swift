import Attacks
import Foundation

/// Combines the folders of a sharded study (`robustctl study --shard i/N`) into one, with
/// the report an unsharded run writes.
public enum StudyMerge {
    /// - Precondition-like checks (thrown): every input holds the same config; together they
    ///   hold every unit.
    @discardableResult
    public static func merge(_ inputs: [URL], into output: URL, log: (String) -> Void = { _ in }) throws -> StudyReport {
        guard !inputs.isEmpty else { throw StudyError("no shard folders to merge") }
        var config: StudyConfig?
        var sources: [String: URL] = [:]
        for input in inputs {
            let headerFile = input.appendingPathComponent("study.json")
            guard let data = try? Data(contentsOf: headerFile), let header = try? JSONDecoder().decode(StudyRunner.Header.self, from: data) else {
                throw StudyError("\(input.path) is not a study folder (no readable study.json)")
            }
            if let config, config != header.config {
                throw StudyError("\(input.path) was run with another config than \(inputs[0].path); only shards of one study can be merged")
            }
            config = header.config
            let manifest = (try? JSONDecoder().decode(StudyRunner.Manifest.self, from: Data(contentsOf: input.appendingPathComponent("manifest.json"))))?.finished ?? []
            for id in manifest where sources[id] == nil && FileManager.default.fileExists(atPath: input.appendingPathComponent("units/\(id).json").path) {
                sources[id] = input
            }
        }
        let study = config!
        // The selection fixes the unit list; every shard computed (or reused) the same one.
        guard let selected = sampleCount(inputs) else {
            throw StudyError("no shard holds a unit; nothing to merge")
        }
        let units = StudyRunner.units(study, sampleCount: selected)
        let missing = units.filter { sources[$0.id] == nil }
        if !missing.isEmpty {
            let owners = Set(units.enumerated().filter { missing.map(\.id).contains($0.element.id) }.map { $0.offset })
            throw StudyError("\(missing.count) of \(units.count) units are in none of the folders (e.g. \(missing.prefix(3).map(\.id).joined(separator: ", "))); "
                             + "finish or resume the shards that own them (unit numbers \(owners.sorted().prefix(5).map(String.init).joined(separator: ", ")))")
        }
        // Every unit is read and checked before anything is written: a damaged one (whose
        // names would place files outside the output folder, say) stops the merge untouched.
        let checked: [(unit: StudyUnit, source: URL, data: Data, result: StudyUnitResult)] = try units.map { unit in
            let source = sources[unit.id]!
            let file = source.appendingPathComponent("units/\(unit.id).json")
            let data: Data, result: StudyUnitResult
            do {
                data = try Data(contentsOf: file)
                result = try JSONDecoder().decode(StudyUnitResult.self, from: data)
            } catch {
                throw StudyError("\(file.path) is damaged (\(error)); delete it and resume that shard")
            }
            if let problem = StudyRunner.mismatch(result, unit, study) {
                throw StudyError("\(file.path) is damaged (\(problem)); delete it and resume that shard")
            }
            return (unit, source, data, result)
        }
        let manager = FileManager.default
        if manager.fileExists(atPath: output.appendingPathComponent("study.json").path) {
            throw StudyError("\(output.path) already holds a study; merge into a new folder")
        }
        try manager.createDirectory(at: output.appendingPathComponent("units"), withIntermediateDirectories: true)
        for (unit, source, data, result) in checked {
            try data.write(to: output.appendingPathComponent("units/\(unit.id).json"), options: .atomic)
            // The adversarial PNGs travel with their unit.
            let model = study.models[unit.model]
            for file in result.files {
                let png = "adversarials/\(model.stem)/\(result.attack)/\(LabelFile.adversarialName(file))"
                let target = output.appendingPathComponent(png)
                try manager.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
                if manager.fileExists(atPath: target.path) { try manager.removeItem(at: target) }
                try manager.copyItem(at: source.appendingPathComponent(png), to: target)
            }
        }
        let selection = inputs[0].appendingPathComponent("selection")
        if manager.fileExists(atPath: selection.path) { try manager.copyItem(at: selection, to: output.appendingPathComponent("selection")) }
        try StudyRunner.writeJSON(StudyRunner.Manifest(finished: units.map(\.id).sorted()), to: output.appendingPathComponent("manifest.json"))
        try StudyRunner.writeJSON(StudyRunner.Header(format: 1, config: study, shard: .whole), to: output.appendingPathComponent("study.json"))
        let report = try StudyRunner.report(study, units: units, directory: output)
        try report.write(to: output.appendingPathComponent("report"))
        log("merged \(units.count) units from \(inputs.count) folders into \(output.path)")
        return report
    }

    /// The number of selected samples, from any folder's `selection/indices.json`.
    static func sampleCount(_ inputs: [URL]) -> Int? {
        for input in inputs {
            if let data = try? Data(contentsOf: input.appendingPathComponent("selection/indices.json")),
               let indices = try? JSONDecoder().decode([Int].self, from: data) {
                return indices.count
            }
        }
        return nil
    }
}
