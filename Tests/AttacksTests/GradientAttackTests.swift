import Foundation
import XCTest
@testable import Attacks
import ModelZoo
import TensorCore

/// FGSM, BIM, PGD (random start off) and L2 FGM against Foolbox 3.3.4 on the seeded fixture
/// networks of both flavours (fixtures: Tools/reference/make_attack_fixtures.py; Keras ones
/// through Foolbox's TensorFlowModel).
final class GradientAttackTests: XCTestCase {
    static let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    static let fixtures = here.appendingPathComponent("Fixtures")
    static let models = here.deletingLastPathComponent().appendingPathComponent("ModelZooTests/Fixtures")

    struct Entry: Decodable {
        struct Run: Decodable { let attack: String; let epsilon: Float; let key: String }
        let architecture: String
        let flavor: String
        let width: Double
        let input_size: Int
        let classes: Int
        let weights: String
        let file: String
        let runs: [Run]
    }

    static func cases() throws -> [(Entry, Model, [String: Tensor])] {
        let entries = try JSONDecoder().decode([Entry].self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("manifest.json")))
        return try entries.map { entry in
            let config = ModelConfig(architecture: Architecture(rawValue: entry.architecture)!, flavor: Flavor(rawValue: entry.flavor)!,
                                     widthMultiplier: entry.width, inputSize: entry.input_size, numClasses: entry.classes)
            let model = try Model(config: config, weights: Self.models.appendingPathComponent(entry.weights).path)
            return (entry, model, try SafeTensors.read(Self.fixtures.appendingPathComponent(entry.file).path))
        }
    }

    func testBothFlavoursAreCovered() throws {
        XCTAssertEqual(Set(try Self.cases().map { "\($0.0.architecture)/\($0.0.flavor)" }).count, 6)
    }

    func testInputGradientsMatchTorchAutograd() throws {
        for (entry, model, reference) in try Self.cases() {
            let images = reference["inputs"]! * (1 / 255)
            let labels = reference["labels"]!.scalars.map { Int($0) }
            let ours = GradientAttack.lossGradient(model: model, images: images, labels: labels)
            let expected = reference["gradient"]!
            let relative = (ours - expected).l2Norm() / expected.l2Norm()
            XCTAssertLessThanOrEqual(relative, 1e-3, "\(entry.architecture) \(entry.flavor): relative error \(relative)")
        }
    }

    func testAdversarialsMatchFoolbox() throws {
        for (entry, model, reference) in try Self.cases() {
            let images = reference["inputs"]! * (1 / 255)
            let labels = reference["labels"]!.scalars.map { Int($0) }
            for run in entry.runs {
                let attack: GradientAttack
                switch run.attack {
                case "fgsm": attack = .fgsm(epsilon: run.epsilon)
                case "bim": attack = .bim(epsilon: run.epsilon)
                case "pgd": attack = .pgd(epsilon: run.epsilon, steps: 10, randomStart: false)
                case "fgm_l2": attack = .fgmL2(epsilon: run.epsilon)
                default: return XCTFail("unknown attack \(run.attack)")
                }
                let adversarial = attack.perturb(model: model, images: images, labels: labels)
                let ours = adversarial.scalars.map(RGBImage.quantize)
                let expected = reference[run.key]!.scalars.map { UInt8($0) }
                let equal = zip(ours, expected).filter { $0 == $1 }.count
                let share = Double(equal) / Double(expected.count)
                // The seeded Keras networks are chaotic under iterated sign steps: Foolbox itself,
                // started from inputs moved by at most 1e-6, reproduces only 51–86 % of its own
                // BIM/PGD pixels (`self_agreement`, written by the fixture script). There we must
                // agree with Foolbox at least as well as Foolbox agrees with itself; elsewhere
                // (torch, and every single-step attack) on 99.9 % of pixels.
                var required = 0.999
                if attack.steps > 1, let selfAgreement = reference[run.key + "/self_agreement"] {
                    required = min(required, Double(selfAgreement.scalars[0]))
                }
                XCTAssertGreaterThanOrEqual(share, required, "\(entry.architecture) \(entry.flavor) \(run.key): \(equal)/\(expected.count) pixels equal")
                let success = zip(model.predictions(adversarial), labels).map { $0 != $1 }
                let foolbox = reference[run.key + "/success"]!.scalars.map { $0 != 0 }
                XCTAssertEqual(success, foolbox, "\(entry.architecture) \(entry.flavor) \(run.key): success flags")
                // Stated property: within ε of the input and inside [0, 1].
                let delta = adversarial - images
                if attack.norm == .linf { XCTAssertLessThanOrEqual(delta.maxAbs(), run.epsilon * (1 + 1e-6)) }
                XCTAssertGreaterThanOrEqual(adversarial.scalars.min()!, 0)
                XCTAssertLessThanOrEqual(adversarial.scalars.max()!, 1)
            }
        }
    }

    func testRandomStartIsSeededAndStaysInTheBall() throws {
        let (_, model, reference) = try Self.cases()[0]
        let images = reference["inputs"]! * (1 / 255)
        let labels = reference["labels"]!.scalars.map { Int($0) }
        for attack in [GradientAttack.pgd(epsilon: 0.01, steps: 3), .pgdL2(epsilon: 0.5, steps: 3)] {
            let first = attack.perturb(model: model, images: images, labels: labels, seed: 7)
            XCTAssertEqual(first, attack.perturb(model: model, images: images, labels: labels, seed: 7), "same seed, same bytes")
            XCTAssertNotEqual(first, attack.perturb(model: model, images: images, labels: labels, seed: 8))
            let delta = first - images
            let n = delta.count / delta.shape[0]
            for sample in 0..<delta.shape[0] {
                let values = Array(delta.scalars[(sample * n)..<((sample + 1) * n)])
                let size = attack.norm == .linf ? values.map(abs).max()! : values.reduce(0) { $0 + $1 * $1 }.squareRoot()
                XCTAssertLessThanOrEqual(size, attack.epsilon * 1.0001, "\(attack.name) sample \(sample)")
            }
        }
    }
}
