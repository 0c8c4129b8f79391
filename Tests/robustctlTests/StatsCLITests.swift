import Foundation
import XCTest
import TensorCore

/// robustctl stats, run as a process, against SciPy values.
extension CLITests {
    func testStatsCommandsPrintSciPysNumbers() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("robustctl-stats-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let paired = directory.appendingPathComponent("paired.csv")
        try "engine,pc,mobile\nx,1.2,0.5\nx,3.1,2.0\nx,2.2,2.9\nx,4.0,1.0\nx,5.5,2.2\nx,0.3,0.1\n".write(to: paired, atomically: true, encoding: .utf8)
        struct Output: Decodable { let statistic: Double?; let pvalue: Double?; let a: Double?; let magnitude: String? }
        // scipy.stats.wilcoxon([1.2,3.1,2.2,4.0,5.5,0.3], [0.5,2.0,2.9,1.0,2.2,0.1]) → (2.0, 0.09375)
        let wilcoxon = try run(["stats", "wilcoxon", "--input", paired.path, "--json"])
        XCTAssertEqual(wilcoxon.status, 0, wilcoxon.stderr)
        let w = try JSONDecoder().decode(Output.self, from: Data(wilcoxon.stdout.utf8))
        XCTAssertEqual(w.statistic, 2)
        XCTAssertEqual(w.pvalue!, 0.09375, accuracy: 1e-12)
        // The same columns beside a quoted text column holding commas, headers quoted.
        let quoted = directory.appendingPathComponent("quoted.csv")
        try "\"engine, kind\",\"pc\",mobile\n\"a, b\",1.2,0.5\nx,3.1,2.0\n\"c\",2.2,2.9\nx,4.0,1.0\nx,5.5,2.2\nx,0.3,0.1\n"
            .write(to: quoted, atomically: true, encoding: .utf8)
        let fromQuoted = try run(["stats", "wilcoxon", "--input", quoted.path, "--json"])
        XCTAssertEqual(fromQuoted.status, 0, fromQuoted.stderr)
        XCTAssertEqual(try JSONDecoder().decode(Output.self, from: Data(fromQuoted.stdout.utf8)).pvalue!, 0.09375, accuracy: 1e-12)
        // One-sided, asymptotic with continuity correction: scipy gives p = 0.046746241844917824.
        let greater = try run(["stats", "wilcoxon", "--input", paired.path, "--alternative", "greater", "--method", "asymptotic",
                               "--correction", "--json"])
        XCTAssertEqual(try JSONDecoder().decode(Output.self, from: Data(greater.stdout.utf8)).pvalue!, 0.046746241844917824, accuracy: 1e-12)
        // Unpaired A12 with columns of different lengths (empty cells).
        let unequal = directory.appendingPathComponent("unequal.csv")
        try "a,b\n1,0\n2,3\n3,\n4,\n".write(to: unequal, atomically: true, encoding: .utf8)
        let vda = try run(["stats", "vda", "--input", unequal.path, "--json"])
        let v = try JSONDecoder().decode(Output.self, from: Data(vda.stdout.utf8))
        // scipy.stats.mannwhitneyu([1, 2, 3, 4], [0, 3]).statistic / 8 = 0.6875
        XCTAssertEqual(v.a!, 0.6875, accuracy: 1e-12)
        XCTAssertEqual(v.magnitude, "medium")
        // McNemar on 0/1 outcomes: b = 3, c = 0 → p = 2 · 0.5³ = 0.25.
        let outcomes = directory.appendingPathComponent("outcomes.csv")
        try "pc,mobile\n1,0\n1,0\n1,0\n1,1\n0,0\n".write(to: outcomes, atomically: true, encoding: .utf8)
        let mcnemar = try JSONDecoder().decode(Output.self, from: Data(run(["stats", "mcnemar", "--input", outcomes.path, "--json"]).stdout.utf8))
        XCTAssertEqual(mcnemar.statistic, 0)
        XCTAssertEqual(mcnemar.pvalue!, 0.25, accuracy: 1e-12)
        // Bad input: one line, non-zero exit.
        let bad = try run(["stats", "wilcoxon", "--input", unequal.path])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertEqual(bad.stderr.split(separator: "\n").count, 1, bad.stderr)
        XCTAssertTrue(bad.stderr.contains("must both have a value"), bad.stderr)
        // A column of numbers with one that is not is named, not skipped for the next column.
        let stray = directory.appendingPathComponent("stray.csv")
        try "model,pc,mobile,other\nm1,0.5,0.4,1\nm2,nan,0.6,2\nm3,0.7,0.1,3\n".write(to: stray, atomically: true, encoding: .utf8)
        let strayed = try run(["stats", "wilcoxon", "--input", stray.path])
        XCTAssertEqual(strayed.status, 1, strayed.stdout)
        XCTAssertTrue(strayed.stderr.contains("stray.csv:3: column 'pc' holds numbers and 'nan', which is not a finite number"), strayed.stderr)
    }
}

/// robustctl train and prepare: constraints named in one line.
extension CLITests {
    /// Infinite, huge or out-of-range numbers are refused with a message before anything is
    /// allocated or written (an infinite width trapped; a 100,000-pixel input asked for 44 GB;
    /// an 8-pixel built-in image failed a precondition; a huge --count filled the disk).
    func testOutOfRangeNumbersAreRefused() throws {
        let weights = Self.modelFixtures.appendingPathComponent("mobilenet_v2_torch.safetensors").path
        let image = Self.repository.appendingPathComponent("Tests/ModelZooTests/Fixtures/devkit").path
        let model = ["--model", "mobilenet_v2", "--flavor", "torch", "--weights", weights]
        let cases: [([String], Int32, String)] = [
            (["predict"] + model + ["--width-multiplier", "inf", image], 1, "width multiplier must be in (0, 8.0], got inf"),
            (["predict"] + model + ["--width-multiplier", "1e9", image], 1, "width multiplier must be in (0, 8.0]"),
            (["predict"] + model + ["--input-size", "100000", image], 1, "input size 100000 is above the supported 4096 pixels"),
            (["predict"] + model + ["--num-classes", "1000000000", image], 1, "number of classes must be in 1...100000"),
            (["attack"] + model + ["--attack", "fgsm", "--epsilon", "1e40", "--input", image, "--labels", weights, "--out", image], 64,
             "--epsilon must be a positive number"),
            (["train", "--model", "mobilenet_v2", "--flavor", "torch", "--dataset", "builtin:shapes", "--epochs", "1", "--momentum", "1", "--out", "x.safetensors"], 64,
             "--momentum must be in [0, 1)"),
            (["prepare", "--source", "builtin:shapes", "--size", "100000", "--out", "x"], 64, "--size must be from 16 to 4096"),
            (["prepare", "--source", "builtin:shapes", "--size", "40", "--count", "9223372036854775807", "--out", "/nonexistent-robustctl/x"], 1,
             "a built-in dataset split has 1 to 1000000 images"),
            (["train", "--model", "mobilenet_v2", "--flavor", "torch", "--dataset", "builtin:shapes", "--image-size", "8", "--epochs", "1",
              "--out", "x.safetensors"], 1, "built-in images are 16 to 4096 pixels, got 8"),
        ]
        for (arguments, status, message) in cases {
            let result = try run(arguments)
            XCTAssertEqual(result.status, status, "\(arguments): \(result.stderr)")
            XCTAssertTrue(result.stderr.hasPrefix("Error: ") && result.stderr.contains(message), "\(arguments): \(result.stderr)")
        }
    }

    func testTrainAndPrepareRefuseBadInputs() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("robustctl-train-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let out = directory.appendingPathComponent("w.safetensors").path
        let cases: [([String], String)] = [
            (["--model", "mobilenet_v2", "--flavor", "torch", "--dataset", "builtin:faces"], "unknown built-in dataset 'faces'"),
            (["--model", "mobilenet_v2", "--flavor", "torch", "--dataset", directory.path], "no class subfolders"),
            (["--model", "inception_v3", "--flavor", "torch", "--dataset", "builtin:shapes", "--image-size", "64"], "at least 75x75"),
        ]
        for (arguments, message) in cases {
            let result = try run(["train"] + arguments + ["--epochs", "1", "--out", out])
            XCTAssertNotEqual(result.status, 0)
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
            XCTAssertTrue(result.stderr.contains(message), result.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        }
        let prepared = directory.appendingPathComponent("set")
        let result = try run(["prepare", "--source", "builtin:shapes", "--count", "12", "--size", "40", "--out", prepared.path])
        XCTAssertEqual(result.stderr, "", "a short run writes no progress to a log")
        // A long one does, every ROBUSTCTL_PROGRESS_SECONDS (here every update), ending at 100 %.
        let logged = try run(["prepare", "--source", "builtin:shapes", "--count", "12", "--size", "40", "--out", directory.appendingPathComponent("logged").path],
                             environment: ["ROBUSTCTL_PROGRESS_SECONDS": "0"])
        let lines = logged.stderr.split(separator: "\n")
        XCTAssertFalse(lines.isEmpty, logged.stderr)
        XCTAssertTrue(lines.allSatisfy { $0.hasPrefix("preparing ") } && !logged.stderr.contains("\r"), logged.stderr)
        XCTAssertTrue(lines.last?.hasPrefix("preparing 12/12  100%") == true, logged.stderr)
        XCTAssertEqual(result.status, 0, result.stderr)
        let labels = try String(contentsOf: prepared.appendingPathComponent("labels.csv"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(labels.count, 13)
        XCTAssertEqual(labels[1], "00_circle.png,0")
        XCTAssertEqual(try ImageCodec.read(prepared.appendingPathComponent("11_square.png").path).width, 40)

        // A model of another input size than the prepared images is warned about (they would
        // be resized again); at the same size, not.
        let weights = Self.repository.appendingPathComponent("Sources/robustctl/DemoModels/resnet50_torch.safetensors").path
        let model = ["--model", "resnet50", "--flavor", "torch", "--weights", weights, "--width-multiplier", "0.125", "--num-classes", "10"]
        let inputs = ["--input", prepared.path, "--labels", prepared.appendingPathComponent("labels.csv").path]
        let other = try run(["evaluate"] + model + ["--input-size", "75"] + inputs)
        XCTAssertEqual(other.status, 0, other.stderr)
        XCTAssertTrue(other.stderr.contains("warning: resnet50/torch takes 75-pixel images and \(prepared.path) was prepared at 40"), other.stderr)
        let same = try run(["evaluate"] + model + ["--input-size", "40"] + inputs)
        XCTAssertEqual(same.status, 0, same.stderr)
        XCTAssertFalse(same.stderr.contains("warning"), same.stderr)
        let selected = try run(["select", "--dataset", prepared.path] + model + ["--input-size", "75", "--count", "2", "--out", directory.appendingPathComponent("sel").path])
        XCTAssertTrue(selected.stderr.contains("warning: resnet50/torch takes 75-pixel images"), selected.stderr)
        // The selection written over the dataset's own labels.csv would lose the dataset: refused.
        let datasetLabels = try Data(contentsOf: prepared.appendingPathComponent("labels.csv"))
        let over = try run(["select", "--dataset", prepared.path] + model + ["--input-size", "40", "--count", "2", "--out", prepared.path])
        XCTAssertEqual(over.status, 1, over.stderr)
        XCTAssertTrue(over.stderr.contains("is the dataset's \(prepared.path)/labels.csv, which this command reads"), over.stderr)
        XCTAssertEqual(try Data(contentsOf: prepared.appendingPathComponent("labels.csv")), datasetLabels)
        // Nor does prepare write into the folder it reads.
        let into = try run(["prepare", "--source", prepared.path, "--size", "40", "--out", prepared.path + "/"])
        XCTAssertEqual(into.status, 1, into.stderr)
        XCTAssertTrue(into.stderr.contains("is --source \(prepared.path)"), into.stderr)
        XCTAssertEqual(try Data(contentsOf: prepared.appendingPathComponent("labels.csv")), datasetLabels)
    }
}
