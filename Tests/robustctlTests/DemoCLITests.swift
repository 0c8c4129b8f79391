import Foundation
import XCTest

/// robustctl demo --quick, end to end, with the shipped demo models.
extension CLITests {
    func testQuickDemoRunsTheStudyAndResumesToTheSameReport() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("robustctl-demo-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = try run(["demo", "--quick", "--out", directory.path, "--threads", "2"])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stdout.contains("shipped weights"), first.stdout)
        let report = directory.appendingPathComponent("report")
        let json = try Data(contentsOf: report.appendingPathComponent("report.json"))
        struct Document: Decodable {
            struct Cell: Decodable, Equatable { let model: String; let attack: String; let engine: String; let success: [Bool] }
            let cells: [Cell]
        }
        let cells = try JSONDecoder().decode(Document.self, from: json).cells
        // 2 models × 3 attacks × 4 engines, every cell over the same selected samples.
        XCTAssertEqual(cells.count, 24)
        XCTAssertEqual(Set(cells.map(\.success.count)).count, 1)
        XCTAssertEqual(Set(cells.map(\.engine)), ["pc", "mobile-fp32", "mobile-int8-tflite", "mobile-int8-qnnpack"])
        // The fp32 mobile engine computes the PC model's function: same outcome on (nearly) every adversarial.
        for pc in cells where pc.engine == "pc" {
            let mobile = cells.first { $0.model == pc.model && $0.attack == pc.attack && $0.engine == "mobile-fp32" }!
            let agree = zip(pc.success, mobile.success).filter { $0 == $1 }.count
            XCTAssertGreaterThanOrEqual(Double(agree), 0.9 * Double(pc.success.count), "\(pc.model) \(pc.attack)")
        }
        // BIM (10 steps of ε/5, projected) fools the PC model at least as often as one FGSM step of ε.
        for bim in cells where bim.engine == "pc" && bim.attack == "bim" {
            let fgsm = cells.first { $0.model == bim.model && $0.attack == "fgsm" && $0.engine == "pc" }!
            XCTAssertGreaterThanOrEqual(bim.success.filter { $0 }.count, fgsm.success.filter { $0 }.count, bim.model)
        }
        for file in ["report.md", "success_rates.csv", "success_rates.svg"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: report.appendingPathComponent(file).path), file)
        }
        // Kill-and-resume: drop some finished units and the report; --resume recomputes only those
        // and ends with the same results and statistics (only measured times may differ).
        let units = directory.appendingPathComponent("units")
        for name in try FileManager.default.contentsOfDirectory(atPath: units.path).sorted().prefix(2) {
            try FileManager.default.removeItem(at: units.appendingPathComponent(name))
        }
        try FileManager.default.removeItem(at: report)
        let second = try run(["demo", "--quick", "--resume", "--out", directory.path, "--threads", "2"])
        XCTAssertEqual(second.status, 0, second.stderr)
        XCTAssertTrue(second.stdout.contains("4 already done"), "finished units are not rerun:\n" + second.stdout)
        let resumed = try Data(contentsOf: report.appendingPathComponent("report.json"))
        XCTAssertEqual(try JSONDecoder().decode(Document.self, from: resumed).cells, cells)
        func comparisons(_ data: Data) throws -> NSArray { (try JSONSerialization.jsonObject(with: data) as! NSDictionary)["comparisons"] as! NSArray }
        XCTAssertEqual(try comparisons(resumed), try comparisons(json))
    }
}

/// robustctl select: the intersection of correct classifications, drawn with a seed.
extension CLITests {
    func testSelectDrawsOnlySamplesEveryModelGetsRight() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("robustctl-select-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let dataset = directory.appendingPathComponent("dataset")
        XCTAssertEqual(try run(["prepare", "--source", "builtin:shapes", "--count", "40", "--size", "75", "--out", dataset.path]).status, 0)
        let shipped = Self.repository.appendingPathComponent("Sources/robustctl/DemoModels")
        let models = ["--model", "resnet50", "--flavor", "torch", "--weights", shipped.appendingPathComponent("resnet50_torch.safetensors").path,
                      "--model", "resnet50", "--flavor", "keras", "--weights", shipped.appendingPathComponent("resnet50_keras.h5").path,
                      "--width-multiplier", "0.125", "--input-size", "75", "--num-classes", "10", "--threads", "2"]
        var selections: [String] = []
        for (name, seed) in [("a", "3"), ("b", "3"), ("c", "4")] {
            let out = directory.appendingPathComponent(name)
            let result = try run(["select", "--dataset", dataset.path, "--count", "10", "--seed", seed, "--out", out.path] + models)
            XCTAssertEqual(result.status, 0, result.stderr)
            selections.append(try String(contentsOf: out.appendingPathComponent("labels.csv"), encoding: .utf8))
        }
        XCTAssertEqual(selections[0], selections[1], "same seed, same selection")
        XCTAssertNotEqual(selections[0], selections[2], "another seed, another draw")
        XCTAssertEqual(selections[0].split(separator: "\n").count, 11)
        // Every selected image is classified correctly by both models.
        for (flavor, file) in [("torch", "resnet50_torch.safetensors"), ("keras", "resnet50_keras.h5")] {
            let evaluated = try run(["evaluate", "--model", "resnet50", "--flavor", flavor, "--weights", shipped.appendingPathComponent(file).path,
                                     "--width-multiplier", "0.125", "--input-size", "75", "--num-classes", "10", "--input", dataset.path,
                                     "--labels", directory.appendingPathComponent("a/labels.csv").path, "--json"])
            XCTAssertEqual(evaluated.status, 0, evaluated.stderr)
            struct Result: Decodable { let accuracy: Double }
            XCTAssertEqual(try JSONDecoder().decode(Result.self, from: Data(evaluated.stdout.utf8)).accuracy, 1)
        }
        let mismatched = try run(["select", "--dataset", dataset.path, "--out", directory.appendingPathComponent("d").path,
                                  "--model", "resnet50", "--flavor", "torch"])
        XCTAssertNotEqual(mismatched.status, 0)
        XCTAssertTrue(mismatched.stderr.contains("one --flavor and one --weights per --model"), mismatched.stderr)
    }
}
