import Foundation
import XCTest
@testable import Evaluation

final class StudyConfigTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("config-\(UUID())")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("weights"), withIntermediateDirectories: true)
        for name in ["r_torch.pth", "r_keras.h5"] { try Data([0]).write(to: directory.appendingPathComponent("weights/\(name)")) }
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("prepared"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("calib"), withIntermediateDirectories: true)
        try Data("file,label\na.png,0\n".utf8).write(to: directory.appendingPathComponent("prepared/labels.csv"))
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    let yaml = """
        title: grid
        seed: 7
        data: {dataset: prepared}
        selection: {count: 100}
        models:
          - {architecture: resnet50, flavor: torch, weights: weights/r_torch.pth}
          - architecture: resnet50
            flavor: keras
            weights: weights/r_keras.h5
        attacks:
          - attack: fgsm
            epsilon: 0.01
          - {attack: bim, steps: 5}
          - {attack: boundary, steps: 300, name: boundary-300}
        engines: [pc, mobile-fp32, mobile-int8, mobile-int8-tflite]
        calibration: {images: calib, count: 50, observer: histogram}
        chunk_size: 25
        """

    func testYAMLAndJSONGiveTheSameConfigWithDefaultsAndResolvedPaths() throws {
        let fromYAML = try StudyConfig.parse(yaml, baseDirectory: directory.path)
        let json = """
            {"title": "grid", "seed": 7, "data": {"dataset": "prepared"}, "selection": {"count": 100},
             "models": [{"architecture": "resnet50", "flavor": "torch", "weights": "weights/r_torch.pth"},
                        {"architecture": "resnet50", "flavor": "keras", "weights": "\(directory.path)/weights/r_keras.h5"}],
             "attacks": [{"attack": "fgsm", "epsilon": 0.01}, {"attack": "bim", "steps": 5}, {"attack": "boundary", "steps": 300, "name": "boundary-300"}],
             "engines": ["pc", "mobile-fp32", "mobile-int8", "mobile-int8-tflite"],
             "calibration": {"images": "calib", "count": 50, "observer": "histogram"}, "chunk_size": 25}
            """
        XCTAssertEqual(try StudyConfig.parse(json, baseDirectory: directory.path), fromYAML)
        XCTAssertEqual(fromYAML.data.prepared, [0: directory.appendingPathComponent("prepared").path])
        XCTAssertEqual(fromYAML.selection.seed, 7, "the selection seed defaults to the study seed")
        XCTAssertEqual(fromYAML.attacks.map(\.name), ["fgsm", "bim", "boundary-300"])
        XCTAssertEqual(fromYAML.attacks[0].gradient?.epsilon, 0.01)
        XCTAssertEqual(fromYAML.attacks[1].gradient?.epsilon, 0.005, "the study's ε by default")
        XCTAssertEqual(fromYAML.attacks[1].gradient?.relativeStepsize, 0.2, "Foolbox's BIM step")
        XCTAssertEqual(fromYAML.attacks[2].boundary?.steps, 300)
        XCTAssertEqual(fromYAML.attacks[2].boundary?.sphericalStep, 0.01)
        XCTAssertEqual(fromYAML.engines.map(\.name), ["pc", "mobile-fp32", "mobile-int8", "mobile-int8-tflite"])
        XCTAssertEqual(fromYAML.engines[2].scheme(for: .torch), .qnnpack, "mobile-int8 is PyTorch Mobile's scheme for torch models")
        XCTAssertEqual(fromYAML.engines[2].scheme(for: .keras), .tflite)
        XCTAssertEqual(fromYAML.chunkSize, 25)
        XCTAssertEqual(fromYAML.calibration?.observer, .histogram)
    }

    func testEveryProblemIsReportedWithItsPathBeforeAnyWork() throws {
        let bad = """
            data: {dataset: prepared, size: 224}
            colour: blue
            models:
              - {architecture: resnet51, flavor: torch, weights: weights/r_torch.pth}
              - {architecture: resnet50, flavor: keras, weights: weights/missing.h5}
              - {architecture: resnet50, flavor: torch, weights: weights/r_torch.pth}
              - {architecture: resnet50, flavor: torch, weights: weights/r_torch.pth}
            attacks:
              - {attack: fgsm, steps: 3}
              - {attack: deepfool}
              - {attack: boundary, epsilon: 0.1}
              - {attack: bim, epsilon: -1}
              - {attack: pgd, name: "pgd 8/255"}
              - {attack: pgd, name: ..}
            engines: [pc, mobile-int4]
            chunk_size: 0
            """
        XCTAssertThrowsError(try StudyConfig.parse(bad, file: "bad.yaml", baseDirectory: directory.path)) { error in
            guard let error = error as? StudyConfigError else { return XCTFail("\(error)") }
            let expected = [
                "colour: unknown key",
                "data.size: only applies with 'source'",
                "models[0].architecture: unknown value 'resnet51'",
                "models[1].weights: no such file",
                "models[3]: resnet50/torch appears twice",
                "attacks[0].steps: fgsm takes one step",
                "attacks[1].attack: unknown value 'deepfool'",
                "attacks[2].epsilon: does not apply to boundary",
                "attacks[3].epsilon: must be positive",
                "attacks[4].name: 'pgd 8/255' cannot name a folder",
                "attacks[5].name: '..' cannot name a folder",
                "engines[1]: unknown engine 'mobile-int4'",
                "chunk_size: must be at least 1",
            ]
            for fragment in expected {
                XCTAssertTrue(error.problems.contains { $0.hasPrefix(fragment) }, "missing '\(fragment)' in:\n" + error.problems.joined(separator: "\n"))
            }
            XCTAssertTrue(error.description.hasPrefix("bad.yaml: "))
        }
        // Datasets by input size must cover every model's size.
        let bySize = yaml.replacingOccurrences(of: "data: {dataset: prepared}", with: "data: {dataset: {299: prepared}}")
        XCTAssertThrowsError(try StudyConfig.parse(bySize, baseDirectory: directory.path)) { error in
            XCTAssertTrue((error as! StudyConfigError).problems.contains { $0.hasPrefix("models[0]: data.dataset has no folder for its input size 224") }, "\(error)")
        }
        XCTAssertThrowsError(try StudyConfig.parse("models: [", baseDirectory: directory.path)) {
            XCTAssertTrue("\($0)".contains("not valid JSON or YAML"), "\($0)")
        }
        XCTAssertThrowsError(try StudyConfig.parse("engines: [mobile-int8]\nmodels: []\nattacks: []\ndata: {source: x}", baseDirectory: directory.path)) { error in
            let problems = (error as! StudyConfigError).problems
            for fragment in ["models: must not be empty", "attacks: must not be empty", "data.source: no such file", "calibration: missing"] {
                XCTAssertTrue(problems.contains { $0.hasPrefix(fragment) }, "missing '\(fragment)' in \(problems)")
            }
        }
    }
}

extension StudyConfigTests {
    /// Examples/paper-grid.yaml reads cleanly once its files exist, and spans the paper's grid:
    /// 18 PC and 36 mobile configurations with the study's parameters.
    func testPaperGridExampleDescribesTheStudy() throws {
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: repository.appendingPathComponent("Examples/paper-grid.yaml"), encoding: .utf8)
        // Stand-ins for the user's weights and ImageNet.
        let manager = FileManager.default
        for line in text.split(separator: "\n") {
            for key in ["weights: ", "ground_truth: ", "synsets: "] {
                guard let range = line.range(of: key) else { continue }
                let value = line[range.upperBound...].prefix { $0 != "}" && $0 != " " && $0 != "#" }
                let file = directory.appendingPathComponent(String(value))
                try manager.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
                try Data([0]).write(to: file)
            }
        }
        for folder in ["imagenet/val", "imagenet/calibration"] {
            try manager.createDirectory(at: directory.appendingPathComponent(folder), withIntermediateDirectories: true)
        }
        let config = try StudyConfig.parse(text, baseDirectory: directory.path)
        XCTAssertEqual(config.models.count, 6)
        XCTAssertEqual(Set(config.models.map(\.tag)).count, 6)
        XCTAssertEqual(config.attacks.map(\.name), ["fgsm", "bim", "boundary"])
        let pcConfigurations = config.models.count * config.attacks.count * config.engines.filter { $0 == .pc }.count
        let mobileConfigurations = config.models.count * config.attacks.count * config.engines.filter { $0 != .pc }.count
        XCTAssertEqual(pcConfigurations, 18)
        XCTAssertEqual(mobileConfigurations, 36)
        XCTAssertEqual(config.attacks[0].gradient?.epsilon, 0.005)
        XCTAssertEqual(config.attacks[1].gradient?.steps, 10)
        XCTAssertEqual(config.attacks[2].boundary?.steps, 5000)
        XCTAssertEqual(config.selection.count, 3000)
        XCTAssertEqual(config.calibration?.count, 1000)
        XCTAssertNil(config.data.size, "each model gets its own input size")
        XCTAssertEqual(Set(config.models.map(\.config.inputSize)), [224, 299])
    }
}
