import Attacks
import Foundation
import TensorCore

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
        guard let selected = try sampleCount(inputs) else {
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
        let pngs = checked.flatMap { unit, source, _, result in
            result.files.map { file in (source, "adversarials/\(study.models[unit.model].stem)/\(result.attack)/\(LabelFile.adversarialName(file))") }
        }
        if let (source, png) = pngs.first(where: { !manager.isReadableFile(atPath: $0.0.appendingPathComponent($0.1).path) }) {
            throw StudyError("\(source.appendingPathComponent(png).path) is missing; resume that shard to write it again")
        }
        if manager.fileExists(atPath: output.path),
           (try? manager.contentsOfDirectory(atPath: output.path).isEmpty) != true {
            throw StudyError("\(output.path) already exists and is not empty; merge into a new folder")
        }
        // Written into a staging folder beside the output and renamed into place at the end, so
        // that a merge stopped by an error (or killed) leaves no half-merged study behind.
        let staging = output.deletingLastPathComponent().appendingPathComponent(".\(output.lastPathComponent).merging-\(getpid())")
        try? manager.removeItem(at: staging)
        do {
            try manager.createDirectory(at: staging.appendingPathComponent("units"), withIntermediateDirectories: true)
            for (unit, _, data, _) in checked {
                try data.write(to: staging.appendingPathComponent("units/\(unit.id).json"), options: .atomic)
            }
            // The adversarial PNGs travel with their unit.
            for (source, png) in pngs {
                let target = staging.appendingPathComponent(png)
                try manager.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
                try manager.copyItem(at: source.appendingPathComponent(png), to: target)
            }
            let selection = inputs[0].appendingPathComponent("selection")
            if manager.fileExists(atPath: selection.path) { try manager.copyItem(at: selection, to: staging.appendingPathComponent("selection")) }
            try StudyRunner.writeJSON(StudyRunner.Manifest(finished: units.map(\.id).sorted()), to: staging.appendingPathComponent("manifest.json"))
            try StudyRunner.writeJSON(StudyRunner.Header(format: 1, config: study, shard: .whole), to: staging.appendingPathComponent("study.json"))
            let report = try StudyRunner.report(study, units: units, directory: staging)
            try report.write(to: staging.appendingPathComponent("report"))
            // rename(2) replaces an empty folder, and refuses one that filled up meanwhile.
            guard rename(staging.path, output.path) == 0 else {
                throw StudyError("cannot move the merged study to \(output.path): \(String(cString: strerror(errno)))")
            }
            log("merged \(units.count) units from \(inputs.count) folders into \(output.path)")
            return report
        } catch let error as StudyError {
            try? manager.removeItem(at: staging)
            throw error
        } catch {
            try? manager.removeItem(at: staging)
            throw StudyError("cannot write the merged study next to \(output.path): \(FileFailure.writeReason(staging.path, error))")
        }
    }

    /// The number of selected samples, from the folders' `selection/indices.json` (nil when no
    /// folder has one yet). Every shard selects the same samples; a file that does not read,
    /// or that disagrees with another folder's, is named as damaged.
    static func sampleCount(_ inputs: [URL]) throws -> Int? {
        var first: (file: URL, indices: [Int])?
        for input in inputs {
            let file = input.appendingPathComponent("selection/indices.json")
            guard let data = try? Data(contentsOf: file) else { continue }
            guard let indices = try? JSONDecoder().decode([Int].self, from: data) else {
                throw StudyError("\(file.path) is damaged (not a list of sample positions); resume that shard to write it again")
            }
            if let first, first.indices != indices {
                throw StudyError("\(file.path) and \(first.file.path) select other samples; one is damaged, or the folders are not shards of one study")
            }
            if first == nil { first = (file, indices) }
        }
        return first?.indices.count
    }
}
