import Foundation
import XCTest
@testable import Evaluation

final class StudyConfigTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("config-\(UUID())")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("weights"), withIntermediateDirectories: true)
        for name in ["r_torch.pth", "r_keras.h5"] { try Data([0]).write(to: directory.appendingPathComponent("weights/\(name)")) }
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
        XCTAssertEqual(fromYAML.data.dataset, directory.appendingPathComponent("prepared").path)
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
                "engines[1]: unknown engine 'mobile-int4'",
                "chunk_size: must be at least 1",
            ]
            for fragment in expected {
                XCTAssertTrue(error.problems.contains { $0.hasPrefix(fragment) }, "missing '\(fragment)' in:\n" + error.problems.joined(separator: "\n"))
            }
            XCTAssertTrue(error.description.hasPrefix("bad.yaml: "))
        }
        XCTAssertThrowsError(try StudyConfig.parse("models: [", baseDirectory: directory.path)) {
            XCTAssertTrue("\($0)".contains("not valid JSON or YAML"), "\($0)")
        }
        XCTAssertThrowsError(try StudyConfig.parse("engines: [mobile-int8]\nmodels: []\nattacks: []\ndata: {source: x}", baseDirectory: directory.path)) { error in
            let problems = (error as! StudyConfigError).problems
            for fragment in ["models: must not be empty", "attacks: must not be empty", "data.size: missing", "calibration: missing"] {
                XCTAssertTrue(problems.contains { $0.hasPrefix(fragment) }, "missing '\(fragment)' in \(problems)")
            }
        }
    }
}
