import Foundation
import XCTest
import ModelZoo
import TensorCore

/// convert / predict --mobile / evaluate, run as processes.
extension CLITests {
    func testConvertPredictAndEvaluateOnEveryEngine() throws {
        let (directory, labels) = try makeInputs()
        defer { try? FileManager.default.removeItem(at: directory) }
        let fp32 = directory.appendingPathComponent("model.mobile").path
        let int8 = directory.appendingPathComponent("model-int8.mobile").path
        let converted = try run(["convert"] + modelArguments + ["--out", fp32, "--json"])
        XCTAssertEqual(converted.status, 0, converted.stderr)
        let quantized = try run(["convert"] + modelArguments + ["--quantize", "int8", "--scheme", "qnnpack", "--calibration", directory.path,
                                                                "--calibration-count", "4", "--out", int8, "--json"])
        XCTAssertEqual(quantized.status, 0, quantized.stderr)
        struct Summary: Decodable { let precision: String; let calibration_images: Int; let observer: String? }
        let summary = try JSONDecoder().decode(Summary.self, from: Data(quantized.stdout.utf8))
        XCTAssertEqual(summary.precision, "int8-qnnpack")
        XCTAssertEqual(summary.calibration_images, 4)
        XCTAssertEqual(summary.observer, "histogram")

        // predict --mobile prints what predict prints; fp32 logits equal the PC engine's.
        struct Prediction: Decodable { let logits: [Float] }
        let image = directory.appendingPathComponent("img1.png").path
        let pc = try JSONDecoder().decode([Prediction].self, from: Data(run(["predict"] + modelArguments + ["--json", image]).stdout.utf8))
        let mobile = try run(["predict", "--mobile", fp32, "--json", image])
        XCTAssertEqual(mobile.status, 0, mobile.stderr)
        let mobileLogits = try JSONDecoder().decode([Prediction].self, from: Data(mobile.stdout.utf8))[0].logits
        let scale = pc[0].logits.map(abs).max()!
        for (a, b) in zip(mobileLogits, pc[0].logits) { XCTAssertEqual(a, b, accuracy: 1e-3 * scale) }

        // evaluate: the labels are the PC model's top-1, so the PC engine scores 100 %.
        struct Result: Decodable {
            struct Sample: Decodable { let file: String; let label: Int; let prediction: Int; let correct: Bool }
            let accuracy: Double; let success_rate: Double; let inference_ms_per_image: Double
            let inference_seconds_total: Double; let threads: Int; let samples: [Sample]; let engine: String
        }
        for (source, engine) in [(modelArguments, "pc"), (["--mobile", fp32, "--threads", "1"], "mobile-fp32"),
                                 (["--mobile", int8, "--threads", "1"], "mobile-int8-qnnpack")] {
            let out = directory.appendingPathComponent("\(engine).json")
            let evaluated = try run(["evaluate"] + source + ["--input", directory.path, "--labels", labels.path, "--json", "--out", out.path,
                                                             "--attack", "clean"])
            XCTAssertEqual(evaluated.status, 0, evaluated.stderr)
            let result = try JSONDecoder().decode(Result.self, from: Data(evaluated.stdout.utf8))
            XCTAssertEqual(result.engine, engine)
            XCTAssertEqual(result.samples.count, 4)
            XCTAssertEqual(result.threads, 1)
            XCTAssertEqual(result.accuracy, Double(result.samples.filter(\.correct).count) / 4)
            XCTAssertEqual(result.success_rate, 1 - result.accuracy, accuracy: 1e-12)
            XCTAssertTrue(result.samples.allSatisfy { $0.correct == ($0.prediction == $0.label) })
            XCTAssertGreaterThan(result.inference_ms_per_image, 0)
            XCTAssertGreaterThanOrEqual(result.inference_seconds_total * 1000, result.inference_ms_per_image)
            if engine != "mobile-int8-qnnpack" { XCTAssertEqual(result.accuracy, 1, engine) }
            XCTAssertEqual(try Data(contentsOf: out), Data(evaluated.stdout.utf8).dropLast(), "--out holds the same result")
        }

        // compare: the three results become one table with RQ2 (pc vs mobile-fp32) and RQ3.
        let report = directory.appendingPathComponent("report")
        let compared = try run(["compare", "--results", directory.path, "--out", report.path])
        XCTAssertEqual(compared.status, 0, compared.stderr)
        let csv = try String(contentsOf: report.appendingPathComponent("success_rates.csv"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(csv.count, 4)
        XCTAssertTrue(csv.contains { $0.hasPrefix("resnet50/torch,clean,pc,4,0.000000") }, csv.joined(separator: "\n"))
        let markdown = try String(contentsOf: report.appendingPathComponent("report.md"), encoding: .utf8)
        XCTAssertTrue(markdown.contains("### RQ2: pc vs mobile-fp32"), markdown)
        XCTAssertTrue(markdown.contains("### RQ3: mobile-fp32 vs mobile-int8-qnnpack"), markdown)

        // What would change the numbers silently stops it: a truncated result, a copy of one
        // cell, a result without --attack. Other JSON files are skipped and named.
        let results = directory.appendingPathComponent("results")
        try FileManager.default.createDirectory(at: results.appendingPathComponent("old"), withIntermediateDirectories: true)
        let pcResult = try Data(contentsOf: directory.appendingPathComponent("pc.json"))
        try pcResult.write(to: results.appendingPathComponent("pc.json"))
        try Data("{\"attack\": {\"name\": \"fgsm\"}}".utf8).write(to: results.appendingPathComponent("manifest.json"))
        let skipping = try run(["compare", "--results", results.path, "--out", directory.appendingPathComponent("r1").path])
        XCTAssertEqual(skipping.status, 0, skipping.stderr)
        XCTAssertTrue(skipping.stderr.contains("skipped 1 JSON file(s) that are not results: manifest.json"), skipping.stderr)
        let noAttack = String(decoding: pcResult, as: UTF8.self).replacingOccurrences(of: "\"attack\" : \"clean\",", with: "")
        XCTAssertNotEqual(noAttack, String(decoding: pcResult, as: UTF8.self))
        // A damaged result that still reads would change a cell: named, not used or skipped.
        func edited(_ old: String, _ new: String) -> Data {
            let text = String(decoding: pcResult, as: UTF8.self)
            XCTAssertTrue(text.contains(old), old)
            return Data(text.replacingOccurrences(of: old, with: new).utf8)
        }
        let cases: [(Data, String)] = [
            (edited("\"correct\" : true", "\"correct\" : false"), "old/x.json is damaged ('"),
            (edited("\"accuracy\" : 1,", "\"accuracy\" : 0.5,"), "old/x.json is damaged (its accuracy 0.5 and success rate 0"),
            (edited("\"success_rate\" : 0,", "\"success_rate\" : \"none\","), "old/x.json is damaged (a result whose fields do not read)"),
            (pcResult.prefix(pcResult.count / 2), "old/x.json: not readable JSON"),
            (pcResult, "old/x.json and pc.json under \(results.path) both hold results for resnet50/torch clean pc; keep one"),
            (Data(noAttack.utf8), "old/x.json: an evaluate result without --attack NAME"),
        ]
        for (data, message) in cases {
            try data.write(to: results.appendingPathComponent("old/x.json"))
            let refused = try run(["compare", "--results", results.path, "--out", directory.appendingPathComponent("r2").path])
            XCTAssertEqual(refused.status, 1, refused.stderr)
            XCTAssertEqual(refused.stderr.split(separator: "\n").count, 1, refused.stderr)
            XCTAssertTrue(refused.stderr.contains(message), refused.stderr)
        }
    }

    func testConvertRefusesBadCalibrationAndCorruptModels() throws {
        let (directory, labels) = try makeInputs()
        defer { try? FileManager.default.removeItem(at: directory) }
        let empty = directory.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        let out = directory.appendingPathComponent("m.mobile")
        let cases: [([String], String)] = [
            (["--calibration", directory.path, "--calibration-count", "10"], "fewer than --calibration-count 10"),
            (["--calibration", empty.path], "no PNG or JPEG images"),
            (["--calibration", directory.path + "/missing"], "missing: not a folder"),
        ]
        for (arguments, message) in cases {
            let result = try run(["convert"] + modelArguments + ["--quantize", "int8", "--scheme", "tflite", "--out", out.path] + arguments)
            XCTAssertNotEqual(result.status, 0)
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
            XCTAssertTrue(result.stderr.contains(message), result.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "nothing written")
        }
        let fewer = try run(["convert"] + modelArguments + ["--quantize", "int8", "--scheme", "tflite", "--calibration", directory.path,
                                                            "--calibration-count", "10", "--allow-fewer", "--out", out.path])
        XCTAssertEqual(fewer.status, 0, fewer.stderr)
        XCTAssertTrue(fewer.stdout.contains("calibrated on 4 images"), fewer.stdout)

        var data = try Data(contentsOf: out)
        data[data.count / 3] ^= 1
        let corrupt = directory.appendingPathComponent("corrupt.mobile")
        try data.write(to: corrupt)
        let refused = try run(["evaluate", "--mobile", corrupt.path, "--input", directory.path, "--labels", labels.path])
        XCTAssertEqual(refused.status, 1)
        XCTAssertEqual(refused.stderr.split(separator: "\n").count, 1, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("checksum mismatch"), refused.stderr)
        let both = try run(["predict", "--mobile", out.path] + modelArguments + [directory.appendingPathComponent("img0.png").path])
        XCTAssertNotEqual(both.status, 0)
        XCTAssertTrue(both.stderr.contains("either --mobile or --model"), both.stderr)
    }

    /// An --out that cannot be written stops convert and evaluate before any work, naming why:
    /// the inputs below would fail that work (a truncated calibration image, a labelled
    /// image that does not exist), so the out error shows the check came first.
    func testUnwritableOutputIsRefusedBeforeAnyWork() throws {
        let (directory, _) = try makeInputs()
        defer { try? FileManager.default.removeItem(at: directory) }
        let blocker = directory.appendingPathComponent("blocker")
        try Data("a file".utf8).write(to: blocker)
        let calibration = directory.appendingPathComponent("calibration")
        try FileManager.default.createDirectory(at: calibration, withIntermediateDirectories: true)
        try Data(contentsOf: directory.appendingPathComponent("img0.png")).prefix(100).write(to: calibration.appendingPathComponent("broken.png"))
        let labels = directory.appendingPathComponent("missing.csv")
        try Data("file,label\nnone.png,1\n".utf8).write(to: labels)
        let cases: [([String], String)] = [
            (["convert"] + modelArguments + ["--quantize", "int8", "--scheme", "tflite", "--calibration", calibration.path,
                                             "--calibration-count", "1", "--out", directory.path], "cannot write \(directory.path): it is a folder"),
            (["convert"] + modelArguments + ["--out", blocker.appendingPathComponent("m.mobile").path], "\(blocker.path) is not a folder"),
            (["evaluate"] + modelArguments + ["--input", directory.path, "--labels", labels.path, "--out", directory.path], "it is a folder"),
        ]
        for (arguments, message) in cases {
            let result = try run(arguments)
            XCTAssertEqual(result.status, 1, result.stderr)
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
            XCTAssertTrue(result.stderr.contains(message), result.stderr)
        }
        // --out the weight file itself (a copy here) would replace the weights with the mobile model.
        let weights = directory.appendingPathComponent("w.safetensors")
        try FileManager.default.copyItem(at: Self.modelFixtures.appendingPathComponent("resnet50_torch.safetensors"), to: weights)
        let original = try Data(contentsOf: weights)
        var copied = modelArguments
        copied[copied.firstIndex(of: "--weights")! + 1] = weights.path
        let replacing = try run(["convert"] + copied + ["--out", directory.path + "/./w.safetensors"])
        XCTAssertEqual(replacing.status, 1, replacing.stderr)
        XCTAssertTrue(replacing.stderr.contains("is --weights \(weights.path), which this command reads"), replacing.stderr)
        XCTAssertEqual(try Data(contentsOf: weights), original)
        let labelsBefore = try Data(contentsOf: labels)
        let overLabels = try run(["evaluate"] + copied + ["--input", directory.path, "--labels", labels.path, "--out", labels.path])
        XCTAssertEqual(overLabels.status, 1, overLabels.stderr)
        XCTAssertTrue(overLabels.stderr.contains("is --labels \(labels.path), which this command reads"), overLabels.stderr)
        XCTAssertEqual(try Data(contentsOf: labels), labelsBefore)
        let missing = try run(["predict", "--mobile", directory.appendingPathComponent("none.mobile").path, directory.appendingPathComponent("img0.png").path])
        XCTAssertTrue(missing.stderr.contains("cannot read mobile model") && missing.stderr.contains("no such file"), missing.stderr)
        let folder = try run(["predict"] + modelArguments + [directory.path])
        XCTAssertTrue(folder.stderr.contains("it is a folder, not a file"), folder.stderr)
    }
}
