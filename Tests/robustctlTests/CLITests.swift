import Attacks
import Foundation
import XCTest
import ModelZoo
import TensorCore

/// The command-line interface, run as a process: outputs, exit codes, one-line errors.
final class CLITests: XCTestCase {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let modelFixtures = repository.appendingPathComponent("Tests/ModelZooTests/Fixtures")

    /// The built `robustctl`, next to the test bundle.
    var binary: URL {
        var directory = Bundle(for: CLITests.self).bundleURL
        while !FileManager.default.fileExists(atPath: directory.appendingPathComponent("robustctl").path), directory.path != "/" {
            directory.deleteLastPathComponent()
        }
        return directory.appendingPathComponent("robustctl")
    }

    func run(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }

    let modelArguments = ["--model", "resnet50", "--flavor", "torch", "--weights", modelFixtures.appendingPathComponent("resnet50_torch.safetensors").path,
                          "--width-multiplier", "0.0625", "--input-size", "64", "--num-classes", "10", "--threads", "1"]

    /// Four fixture images as PNGs, labelled with the reference top-1.
    func makeInputs() throws -> (directory: URL, labels: URL) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("robustctl-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let expected = try SafeTensors.read(Self.modelFixtures.appendingPathComponent("resnet50_torch.expected.safetensors").path)
        let images = expected["inputs"]! * (1 / 255)
        var csv = "file,label\n"
        for (index, label) in Model.argmax(expected["logits"]!).enumerated() {
            try ImageCodec.writePNG(RGBImage(tensor: images.slice(index)), to: directory.appendingPathComponent("img\(index).png").path)
            csv += "img\(index).png,\(label)\n"
        }
        let labels = directory.appendingPathComponent("labels.csv")
        try csv.write(to: labels, atomically: true, encoding: .utf8)
        return (directory, labels)
    }

    func testAttackWritesPNGsWhoseSuccessMatchesPrediction() throws {
        let (directory, labels) = try makeInputs()
        defer { try? FileManager.default.removeItem(at: directory) }
        let out = directory.appendingPathComponent("adversarials")
        let result = try run(["attack"] + modelArguments + ["--attack", "fgsm", "--epsilon", "0.01", "--input", directory.path,
                                                            "--labels", labels.path, "--out", out.path, "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        struct Manifest: Decodable {
            struct Sample: Decodable { let file: String; let output: String; let label: Int; let success_uint8: Bool; let linf_uint8: Float }
            let samples: [Sample]
        }
        let manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: out.appendingPathComponent("manifest.json")))
        XCTAssertEqual(manifest.samples.count, 4)
        // The 8-bit success recorded in the manifest is what the model says about the PNG on disk.
        let model = try Model(config: ModelConfig(architecture: .resnet50, flavor: .torch, widthMultiplier: 0.0625, inputSize: 64, numClasses: 10),
                              weights: Self.modelFixtures.appendingPathComponent("resnet50_torch.safetensors").path)
        for sample in manifest.samples {
            let adversarial = try ImageCodec.read(out.appendingPathComponent(sample.output).path).tensor()
            let clean = try ImageCodec.read(directory.appendingPathComponent(sample.file).path).tensor()
            XCTAssertEqual(model.predictions(adversarial)[0] != sample.label, sample.success_uint8, sample.file)
            XCTAssertEqual((adversarial - clean).maxAbs(), sample.linf_uint8, accuracy: 1e-6)
            XCTAssertLessThanOrEqual((adversarial - clean).maxAbs(), 0.01 + 0.5 / 255)
        }

        // --out the --input folder would write the adversarials over the images: refused.
        let image = try Data(contentsOf: directory.appendingPathComponent("img0.png"))
        let over = try run(["attack"] + modelArguments + ["--attack", "fgsm", "--epsilon", "0.01", "--input", directory.path,
                                                          "--labels", labels.path, "--out", directory.path + "/."])
        XCTAssertEqual(over.status, 1, over.stderr)
        XCTAssertTrue(over.stderr.contains("would write the adversarial of img0.png over an input image"), over.stderr)
        XCTAssertEqual(try Data(contentsOf: directory.appendingPathComponent("img0.png")), image)
    }

    /// Inputs of other formats come out as PNGs, with a labels.csv naming them, so that the
    /// attack's output is evaluated as it is: on the PC engine, evaluate's success rate is the
    /// manifest's 8-bit one. Two inputs that would be written to one PNG are refused.
    func testAttackOutputOfJPEGInputsEvaluatesWithItsOwnLabels() throws {
        let (directory, labels) = try makeInputs()
        defer { try? FileManager.default.removeItem(at: directory) }
        let jpegs = directory.appendingPathComponent("jpeg")
        try FileManager.default.createDirectory(at: jpegs, withIntermediateDirectories: true)
        let entries = try LabelFile.read(labels.path, classes: 10)
        for entry in entries {
            let png = try Data(contentsOf: directory.appendingPathComponent(entry.file))
            try png.write(to: jpegs.appendingPathComponent((entry.file as NSString).deletingPathExtension + ".JPEG"))
        }
        let jpegLabels = jpegs.appendingPathComponent("labels.csv")
        try LabelFile.write(entries.map { LabelFile.Entry(file: ($0.file as NSString).deletingPathExtension + ".JPEG", label: $0.label) }, to: jpegLabels)
        let out = directory.appendingPathComponent("adversarials")
        let attack = try run(["attack"] + modelArguments + ["--attack", "fgsm", "--epsilon", "0.01", "--input", jpegs.path,
                                                            "--labels", jpegLabels.path, "--out", out.path, "--json"])
        XCTAssertEqual(attack.status, 0, attack.stderr)
        struct Manifest: Decodable { struct Totals: Decodable { let success_rate_uint8: Double }; let totals: Totals }
        let manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: out.appendingPathComponent("manifest.json")))
        XCTAssertEqual(try LabelFile.read(out.appendingPathComponent("labels.csv").path, classes: 10),
                       entries.map { LabelFile.Entry(file: ($0.file as NSString).deletingPathExtension + ".png", label: $0.label) })
        let evaluated = try run(["evaluate"] + modelArguments + ["--input", out.path, "--labels", out.appendingPathComponent("labels.csv").path, "--json"])
        XCTAssertEqual(evaluated.status, 0, evaluated.stderr)
        let result = try JSONSerialization.jsonObject(with: Data(evaluated.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(result["success_rate"] as! Double, manifest.totals.success_rate_uint8)
        // The input labels against the output folder: refused, pointing at the right file.
        let wrong = try run(["evaluate"] + modelArguments + ["--input", out.path, "--labels", jpegLabels.path])
        XCTAssertTrue(wrong.stderr.contains("for 'attack' output pass --labels \(out.path)/labels.csv"), wrong.stderr)
        // img0.JPEG and img0.png would share img0.png.
        let clash = jpegs.appendingPathComponent("clash.csv")
        try LabelFile.write([LabelFile.Entry(file: "img0.JPEG", label: 1), LabelFile.Entry(file: "img0.png", label: 1)], to: clash)
        try Data(contentsOf: directory.appendingPathComponent("img0.png")).write(to: jpegs.appendingPathComponent("img0.png"))
        let refused = try run(["attack"] + modelArguments + ["--attack", "fgsm", "--input", jpegs.path, "--labels", clash.path,
                                                             "--out", directory.appendingPathComponent("clash").path])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("img0.JPEG and img0.png in \(clash.path) would both be written as img0.png"), refused.stderr)
        // JPEG inputs and --out their folder: no image would be overwritten, but their labels.csv would.
        let labelsBefore = try Data(contentsOf: jpegLabels)
        let replacing = try run(["attack"] + modelArguments + ["--attack", "fgsm", "--input", jpegs.path, "--labels", jpegLabels.path, "--out", jpegs.path])
        XCTAssertEqual(replacing.status, 1, replacing.stderr)
        XCTAssertTrue(replacing.stderr.contains("labels.csv is --labels \(jpegLabels.path), which this command reads"), replacing.stderr)
        XCTAssertEqual(try Data(contentsOf: jpegLabels), labelsBefore)
    }

    func testBadInputsFailWithOneLineAndNothingWritten() throws {
        let (directory, labels) = try makeInputs()
        defer { try? FileManager.default.removeItem(at: directory) }
        let badLabels = directory.appendingPathComponent("bad.csv")
        try "file,label\nimg0.png,10\n".write(to: badLabels, atomically: true, encoding: .utf8)
        let empty = directory.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        let cases: [([String], String)] = [
            (["--labels", badLabels.path, "--input", directory.path], "label 10 is outside"),
            (["--labels", labels.path, "--input", empty.path], "does not exist"),
            (["--labels", labels.path, "--input", directory.path + "/missing"], "is not a folder"),
        ]
        for (arguments, message) in cases {
            let out = directory.appendingPathComponent("out-\(UUID().uuidString)")
            let result = try run(["attack"] + modelArguments + ["--attack", "fgsm", "--out", out.path] + arguments)
            XCTAssertNotEqual(result.status, 0)
            let lines = result.stderr.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, result.stderr)
            XCTAssertTrue(result.stderr.contains(message), result.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("manifest.json").path))
        }
        let unwritable = try run(["attack"] + modelArguments + ["--attack", "fgsm", "--input", directory.path, "--labels", labels.path,
                                                                "--out", "/proc/robustctl-cannot-write"])
        XCTAssertNotEqual(unwritable.status, 0)
        XCTAssertTrue(unwritable.stderr.contains("cannot write to output folder"), unwritable.stderr)
    }

    /// More threads than cores run (results do not depend on the count) with a warning that
    /// the work and its timings will be slower.
    func testMoreThreadsThanCoresWarns() throws {
        let (directory, _) = try makeInputs()
        defer { try? FileManager.default.removeItem(at: directory) }
        let arguments = ["predict"] + modelArguments.dropLast(2) + ["--json", directory.appendingPathComponent("img0.png").path]
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let crowded = try run(arguments + ["--threads", "\(4 * cores)"])
        XCTAssertEqual(crowded.status, 0, crowded.stderr)
        XCTAssertEqual(crowded.stderr, "warning: --threads \(4 * cores) is more than this machine's \(cores) cores; "
                       + "the work and its timings will be slower\n")
        let fitting = try run(arguments + ["--threads", "\(cores)"])
        XCTAssertEqual(fitting.stderr, "")
        XCTAssertEqual(crowded.stdout, fitting.stdout)
    }

    func testPredictJSONAndRefusedWeights() throws {
        let (directory, _) = try makeInputs()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try run(["predict"] + modelArguments + ["--json", "--top", "2", directory.appendingPathComponent("img0.png").path])
        XCTAssertEqual(result.status, 0, result.stderr)
        struct Prediction: Decodable {
            struct Entry: Decodable { let index: Int; let probability: Float }
            let file: String
            let top: [Entry]
            let logits: [Float]
        }
        let predictions = try JSONDecoder().decode([Prediction].self, from: Data(result.stdout.utf8))
        XCTAssertEqual(predictions.count, 1)
        XCTAssertEqual(predictions[0].logits.count, 10)
        XCTAssertEqual(predictions[0].top.count, 2)
        XCTAssertEqual(predictions[0].top[0].index, predictions[0].logits.indices.max { predictions[0].logits[$0] < predictions[0].logits[$1] })
        let malicious = try run(["predict", "--model", "resnet50", "--flavor", "torch", "--weights",
                                 Self.modelFixtures.appendingPathComponent("malicious.pth").path, directory.appendingPathComponent("img0.png").path])
        XCTAssertEqual(malicious.status, 1)
        XCTAssertEqual(malicious.stderr.split(separator: "\n").count, 1)
        XCTAssertTrue(malicious.stderr.contains("refusing to load"), malicious.stderr)
    }
}
