import Attacks
import Foundation
import XCTest
import ModelZoo
import TensorCore

/// robustctl study and merge: one config, run whole, killed and resumed, sharded and merged,
/// on one thread and on two — the results must be the same bytes every time.
extension CLITests {
    func studyConfig(in directory: URL) throws -> URL {
        let shipped = Self.repository.appendingPathComponent("Sources/robustctl/DemoModels").path
        let config = """
            title: determinism check
            seed: 5
            data: {source: "builtin:shapes", size: 75, count: 60}
            selection: {count: 8}
            models:
              - {architecture: resnet50, flavor: torch, weights: \(shipped)/resnet50_torch.safetensors, width_multiplier: 0.125, input_size: 75, num_classes: 10}
              - {architecture: resnet50, flavor: keras, weights: \(shipped)/resnet50_keras.h5, width_multiplier: 0.125, input_size: 75, num_classes: 10}
            attacks:
              - {attack: fgsm, epsilon: 0.03}
              - {attack: pgd, epsilon: 0.03, steps: 3}
              - {attack: boundary, steps: 10}
            engines: [pc, mobile-fp32, mobile-int8]
            calibration: {images: "builtin:shapes", count: 8}
            chunk_size: 3
            attack_batch_size: 2
            """
        let file = directory.appendingPathComponent("study.yaml")
        try Data(config.utf8).write(to: file)
        return file
    }

    /// Every file of the report and every adversarial, by relative path (timing excluded: it is measured).
    func results(_ directory: URL) throws -> [String: Data] {
        var files: [String: Data] = [:]
        for folder in ["report", "adversarials"] {
            let root = directory.appendingPathComponent(folder)
            let enumerator = FileManager.default.enumerator(atPath: root.path)!
            for case let relative as String in enumerator where !relative.hasPrefix("timing") {
                var isDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: root.appendingPathComponent(relative).path, isDirectory: &isDirectory), !isDirectory.boolValue {
                    files["\(folder)/\(relative)"] = try Data(contentsOf: root.appendingPathComponent(relative))
                }
            }
        }
        return files
    }

    /// Runs robustctl with `arguments` while `file`'s JSON is changed by `edit`, expects the
    /// one-line refusal to contain `message`, and puts the file back byte for byte.
    func expectDamaged(_ file: URL, _ edit: (Any) -> Any, _ arguments: [String], _ message: String, line: UInt = #line) throws {
        let original = try Data(contentsOf: file)
        defer { try? original.write(to: file) }
        try JSONSerialization.data(withJSONObject: edit(try JSONSerialization.jsonObject(with: original))).write(to: file)
        let result = try run(arguments)
        XCTAssertEqual(result.status, 1, result.stderr, line: line)
        XCTAssertTrue(result.stderr.contains(message), result.stderr, line: line)
    }

    /// An edit for `expectDamaged`: element `index` of the object's array `key` transformed.
    func setting(_ key: String, _ index: Int, _ transform: @escaping (Any) -> Any) -> (Any) -> Any {
        { json in
            var object = json as! [String: Any], array = object[key] as! [Any]
            array[index] = transform(array[index])
            object[key] = array
            return object
        }
    }

    func testStudyIsReproducibleAcrossThreadsResumesAndShards() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("robustctl-study-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = try studyConfig(in: directory).path

        // Whole, on one thread.
        let whole = directory.appendingPathComponent("whole")
        let first = try run(["study", "--config", config, "--out", whole.path, "--threads", "1"])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stdout.contains("18 units"), first.stdout)  // 2 models × 3 attacks × 3 chunks of 3, 3, 2
        let reference = try results(whole)
        XCTAssertEqual(reference.keys.filter { $0.hasPrefix("adversarials/") }.count, 2 * 3 * 8)
        for file in ["report.md", "report.json", "success_rates.csv", "success_rates.svg", "success_rates.png"] {
            XCTAssertNotNil(reference["report/\(file)"], file)
        }
        struct Document: Decodable { struct Cell: Decodable { let engine: String; let samples: Int }; let cells: [Cell] }
        let cells = try JSONDecoder().decode(Document.self, from: reference["report/report.json"]!).cells
        XCTAssertEqual(cells.count, 2 * 3 * 3)
        XCTAssertEqual(Set(cells.map(\.samples)), [8])
        XCTAssertEqual(Set(cells.map(\.engine)), ["pc", "mobile-fp32", "mobile-int8"])

        // The same folder again without --resume: refused, nothing lost.
        let again = try run(["study", "--config", config, "--out", whole.path])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains("already holds a study"), again.stderr)
        XCTAssertEqual(try results(whole), reference)

        // Killed after 5 units on two threads, then resumed: same bytes, finished units not redone.
        let resumed = directory.appendingPathComponent("resumed")
        let killed = try run(["study", "--config", config, "--out", resumed.path, "--threads", "2", "--stop-after", "5"])
        XCTAssertEqual(killed.status, 0, killed.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: resumed.appendingPathComponent("report").path))
        let continued = try run(["study", "--config", config, "--out", resumed.path, "--threads", "2", "--resume"])
        XCTAssertEqual(continued.status, 0, continued.stderr)
        XCTAssertTrue(continued.stdout.contains("5 already done"), continued.stdout)
        XCTAssertEqual(continued.stdout.components(separatedBy: "] resnet50/").count - 1, 13, continued.stdout)
        XCTAssertEqual(try results(resumed), reference)

        // A damaged saved selection (a sample beyond the dataset) is named, not a crash; so are
        // units of one chunk that disagree on its samples' labels.
        let resume = ["study", "--config", config, "--out", resumed.path, "--resume"]
        try expectDamaged(resumed.appendingPathComponent("selection/selection.json"), setting("indices", 1) { _ in 60 }, resume,
                          "selection.json is damaged")
        try expectDamaged(resumed.appendingPathComponent("units/resnet50_keras__pgd__00001.json"), setting("labels", 0) { ($0 as! Int + 1) % 10 },
                          resume, "resnet50_keras__pgd__00001.json record other samples or labels for the same chunk")

        // Two shards on two machines' worth of folders, merged.
        var shards: [String] = []
        for index in 1...2 {
            let out = directory.appendingPathComponent("shard\(index)")
            let result = try run(["study", "--config", config, "--out", out.path, "--threads", "2", "--shard", "\(index)/2"])
            XCTAssertEqual(result.status, 0, result.stderr)
            XCTAssertTrue(result.stdout.contains("9 in shard \(index)/2"), result.stdout)
            shards.append(out.path)
        }
        let early = try run(["merge", shards[0], "--out", directory.appendingPathComponent("partial").path])
        XCTAssertNotEqual(early.status, 0)
        XCTAssertTrue(early.stderr.contains("9 of 18 units are in none of the folders"), early.stderr)
        let merged = directory.appendingPathComponent("merged")
        let merge = try run(["merge"] + shards + ["--out", merged.path])
        XCTAssertEqual(merge.status, 0, merge.stderr)
        XCTAssertEqual(try results(merged), reference)

        // A damaged unit whose sample name leaves the folder (it would have deleted and
        // replaced a file beside the output) stops the merge before anything is written; one
        // found only when the report is made (its labels disagree with the other units of its
        // chunk) leaves neither the output nor the staging folder behind; shards that selected
        // other samples (a damaged indices.json) are not merged.
        let canary = directory.appendingPathComponent("canary.png")
        try Data("keep me".utf8).write(to: canary)
        let unitFile = try FileManager.default.contentsOfDirectory(atPath: shards[1] + "/units").sorted().first!
        let unit = URL(fileURLWithPath: shards[1]).appendingPathComponent("units").appendingPathComponent(unitFile)
        let damaged = directory.appendingPathComponent("merged-damaged")
        let mergeAgain = ["merge"] + shards + ["--out", damaged.path]
        try expectDamaged(unit, setting("files", 0) { _ in "../../../../canary.png" }, mergeAgain, "\(unitFile) is damaged (it names '../../../../canary.png', which leaves the dataset folder)")
        XCTAssertEqual(try Data(contentsOf: canary), Data("keep me".utf8))
        try expectDamaged(unit, setting("labels", 0) { ($0 as! Int + 1) % 10 }, mergeAgain, "record other samples or labels for the same chunk")
        try expectDamaged(URL(fileURLWithPath: shards[1]).appendingPathComponent("selection/indices.json"), { Array(($0 as! [Int]).dropLast()) },
                          mergeAgain, "select other samples")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.contains("merged-damaged") }, [])

        // Resuming with another config is refused.
        let edited = try String(contentsOfFile: config, encoding: .utf8).replacingOccurrences(of: "seed: 5", with: "seed: 6")
        try Data(edited.utf8).write(to: URL(fileURLWithPath: config))
        let mismatch = try run(["study", "--config", config, "--out", whole.path, "--resume"])
        XCTAssertNotEqual(mismatch.status, 0)
        XCTAssertTrue(mismatch.stderr.contains("another config"), mismatch.stderr)
    }

    func testBadStudyConfigIsRejectedInOneLineBeforeAnyWork() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("robustctl-study-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = directory.appendingPathComponent("bad.json")
        try Data(#"{"data": {"dataset": "nowhere"}, "models": [{"architecture": "vgg16", "flavor": "torch", "weights": "w.pth"}], "attacks": [{"attack": "cw"}], "engines": ["gpu"], "extra": 1}"#.utf8).write(to: config)
        let out = directory.appendingPathComponent("out")
        let result = try run(["study", "--config", config.path, "--out", out.path])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        for fragment in ["extra: unknown key", "data.dataset: ", "is not a prepared dataset", "models[0].architecture: unknown value 'vgg16'",
                         "models[0].weights: no such file", "attacks[0].attack: unknown value 'cw'", "engines[0]: unknown engine 'gpu'"] {
            XCTAssertTrue(result.stderr.contains(fragment), "\(fragment) in \(result.stderr)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "nothing is written before the config is valid")
    }
}

/// robustctl prepare: the paper's resize and crop, the same bytes on any thread count, and
/// ImageNet's flat validation folder labelled through the devkit.
extension CLITests {
    func testPrepareIsThreadIndependentAndReadsTheDevkit() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("robustctl-prepare-\(UUID().uuidString)")
        let flat = directory.appendingPathComponent("val")
        try FileManager.default.createDirectory(at: flat, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // Six landscape images of different content, numbered like ILSVRC2012_val_*.
        var generator = SystemRandomNumberGenerator()
        var sources: [RGBImage] = []
        for number in 1...6 {
            let image = RGBImage(width: 90, height: 60, pixels: (0..<(90 * 60 * 3)).map { _ in UInt8.random(in: 0...255, using: &generator) })
            try ImageCodec.writePNG(image, to: flat.appendingPathComponent(String(format: "ILSVRC2012_val_%08d.png", number)).path)
            sources.append(image)
        }
        let devkit = Self.modelFixtures.appendingPathComponent("devkit")
        var outputs: [[String: Data]] = []
        for threads in ["1", "2"] {
            let out = directory.appendingPathComponent("prepared-\(threads)")
            let result = try run(["prepare", "--source", flat.path, "--ground-truth", devkit.appendingPathComponent("ground_truth.txt").path,
                                  "--synsets", devkit.appendingPathComponent("meta.mat").path, "--size", "32", "--out", out.path, "--threads", threads])
            XCTAssertEqual(result.status, 0, result.stderr)
            var files: [String: Data] = [:]
            for name in try FileManager.default.contentsOfDirectory(atPath: out.path) { files[name] = try Data(contentsOf: out.appendingPathComponent(name)) }
            outputs.append(files)
        }
        XCTAssertEqual(outputs[0], outputs[1], "byte-identical on 1 and 2 threads")
        let labels = String(decoding: outputs[0]["labels.csv"]!, as: UTF8.self).split(separator: "\n").dropFirst().map { Int($0.split(separator: ",")[1])! }
        // Ground truth lines hold devkit IDs 3 1 4 2 2 1 → husky, kit fox, terrier, setter, setter, kit fox.
        let wnids = ["n02110185", "n02119789", "n02096294", "n02100735", "n02100735", "n02119789"]
        XCTAssertEqual(labels, wnids.map { ImageNet.indexByWnid[$0]! })
        let index = String(decoding: outputs[0]["index.csv"]!, as: UTF8.self).split(separator: "\n")
        XCTAssertEqual(index[0], "id,file,source,label")
        XCTAssertEqual(index[1], "0,0_n02110185.png,ILSVRC2012_val_00000001.png,\(ImageNet.indexByWnid["n02110185"]!)")
        // Each output is the paper's preprocessing of its source: shorter side 37 (32·256/224), centre crop 32.
        let first = try ImageCodec.decode(outputs[0]["0_n02110185.png"]!)
        XCTAssertEqual(first, sources[0].resizedAndCentreCropped(resizeTo: 37, cropTo: 32))

        // --count takes images spread over the source (every second of six for three), not
        // its first ones — an ImageFolder lists its classes one after another.
        let gt = ["--ground-truth", devkit.appendingPathComponent("ground_truth.txt").path, "--synsets", devkit.appendingPathComponent("meta.mat").path]
        let three = directory.appendingPathComponent("three")
        XCTAssertEqual(try run(["prepare", "--source", flat.path] + gt + ["--size", "32", "--count", "3", "--out", three.path]).status, 0)
        let picked = try String(contentsOf: three.appendingPathComponent("index.csv"), encoding: .utf8).split(separator: "\n").dropFirst()
        XCTAssertEqual(picked.map { $0.split(separator: ",")[2] }, ["ILSVRC2012_val_00000001.png", "ILSVRC2012_val_00000003.png", "ILSVRC2012_val_00000005.png"])
        XCTAssertEqual(picked.map { Int($0.split(separator: ",")[3])! }, [wnids[0], wnids[2], wnids[4]].map { ImageNet.indexByWnid[$0]! })
        let more = try run(["prepare", "--source", flat.path] + gt + ["--size", "32", "--count", "10", "--out", directory.appendingPathComponent("ten").path])
        XCTAssertTrue(more.stdout.contains("wrote 6 images (all the source holds, fewer than --count 10)"), more.stdout)

        let missing = try run(["prepare", "--source", flat.path, "--ground-truth", devkit.appendingPathComponent("ground_truth.txt").path,
                               "--size", "32", "--out", directory.appendingPathComponent("x").path])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("meta.mat"), missing.stderr)
    }

    func testClassNamesWithCommasAndQuotesSurvivePrepareAndEvaluate() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("robustctl-prepare-names-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let classes = ["cat, tabby", "dog \"good\""]
        for (number, name) in classes.enumerated() {
            let folder = directory.appendingPathComponent("folder").appendingPathComponent(name)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let image = RGBImage(width: 70, height: 64, pixels: (0..<(70 * 64 * 3)).map { UInt8(($0 * (number + 3)) % 251) })
            try ImageCodec.writePNG(image, to: folder.appendingPathComponent("a.png").path)
        }
        let out = directory.appendingPathComponent("prepared")
        let prepared = try run(["prepare", "--source", directory.appendingPathComponent("folder").path, "--size", "64", "--out", out.path])
        XCTAssertEqual(prepared.status, 0, prepared.stderr)
        let entries = try LabelFile.read(out.appendingPathComponent("labels.csv").path, classes: 2)
        XCTAssertEqual(entries, [LabelFile.Entry(file: "0_cat, tabby.png", label: 0), LabelFile.Entry(file: "1_dog \"good\".png", label: 1)])
        let classList = try CSV.records(String(contentsOf: out.appendingPathComponent("classes.csv"), encoding: .utf8), file: "classes.csv")
        XCTAssertEqual(classList.map(\.fields), [["index", "class"], ["0", classes[0]], ["1", classes[1]]])
        let evaluated = try run(["evaluate"] + modelArguments + ["--input", out.path, "--labels", out.appendingPathComponent("labels.csv").path, "--json"])
        XCTAssertEqual(evaluated.status, 0, evaluated.stderr)
        let json = try JSONSerialization.jsonObject(with: Data(evaluated.stdout.utf8)) as! [String: Any]
        XCTAssertEqual((json["samples"] as! [[String: Any]]).map { $0["file"] as! String }, entries.map(\.file))
    }
}

/// A study stopped by bad data keeps its finished units and resumes once the data is fixed.
extension CLITests {
    func testStudyStoppedByAnUnreadableImageResumesAfterTheFix() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("robustctl-study-image-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let dataset = directory.appendingPathComponent("dataset")
        XCTAssertEqual(try run(["prepare", "--source", "builtin:shapes", "--count", "30", "--size", "75", "--out", dataset.path]).status, 0)
        let weights = Self.repository.appendingPathComponent("Sources/robustctl/DemoModels/resnet50_torch.safetensors").path
        let config = directory.appendingPathComponent("study.json")
        try Data("""
            {"data": {"dataset": "dataset"}, "selection": {"count": 6},
             "models": [{"architecture": "resnet50", "flavor": "torch", "weights": "\(weights)", "width_multiplier": 0.125, "input_size": 75, "num_classes": 10}],
             "attacks": [{"attack": "fgsm", "epsilon": 0.03}], "engines": ["pc", "mobile-fp32"], "chunk_size": 2}
            """.utf8).write(to: config)
        let out = directory.appendingPathComponent("out")
        let first = try run(["study", "--config", config.path, "--out", out.path, "--stop-after", "1"])
        XCTAssertEqual(first.status, 0, first.stderr)
        // The last selected sample's image goes bad.
        let selected = try String(contentsOf: out.appendingPathComponent("selection/labels.csv"), encoding: .utf8).split(separator: "\n")
        let victim = dataset.appendingPathComponent(String(selected.last!.split(separator: ",")[0]))
        let original = try Data(contentsOf: victim)
        try original.prefix(original.count / 2).write(to: victim)
        let stopped = try run(["study", "--config", config.path, "--out", out.path, "--resume"])
        XCTAssertNotEqual(stopped.status, 0)
        XCTAssertEqual(stopped.stderr.split(separator: "\n").count, 1, stopped.stderr)
        XCTAssertTrue(stopped.stderr.contains(victim.lastPathComponent), stopped.stderr)
        XCTAssertTrue(stopped.stderr.contains("finished units are kept"), stopped.stderr)
        try original.write(to: victim)
        let resumed = try run(["study", "--config", config.path, "--out", out.path, "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("2 already done"), resumed.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("report/report.md").path))

        // A unit file that reads but lost a prediction stops the report, naming the file;
        // deleted, it is recomputed and the report comes back byte for byte.
        let report = try Data(contentsOf: out.appendingPathComponent("report/success_rates.csv"))
        let unitFile = try XCTUnwrap(FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("units").path).sorted().first)
        let unit = out.appendingPathComponent("units").appendingPathComponent(unitFile)
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: unit)) as! [String: Any]
        var engines = json["engines"] as! [[String: Any]]
        engines[1]["predictions"] = Array((engines[1]["predictions"] as! [Int]).dropLast())
        json["engines"] = engines
        try JSONSerialization.data(withJSONObject: json).write(to: unit)
        let damaged = try run(["study", "--config", config.path, "--out", out.path, "--resume"])
        XCTAssertEqual(damaged.status, 1, damaged.stderr)
        XCTAssertTrue(damaged.stderr.contains("\(unitFile) is damaged (its mobile-fp32 outcomes are not one per sample)"), damaged.stderr)
        try FileManager.default.removeItem(at: unit)
        let recomputed = try run(["study", "--config", config.path, "--out", out.path, "--resume"])
        XCTAssertEqual(recomputed.status, 0, recomputed.stderr)
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("report/success_rates.csv")), report)

        // A prediction outside the model's classes is named too.
        try expectDamaged(unit, { json in
            var object = json as! [String: Any], engines = object["engines"] as! [[String: Any]]
            engines[0]["predictions"] = [10] + (engines[0]["predictions"] as! [Int]).dropFirst()
            object["engines"] = engines
            return object
        }, ["study", "--config", config.path, "--out", out.path, "--resume"], "\(unitFile) is damaged (it records class 10, outside the model's 0..<10)")
    }
}
