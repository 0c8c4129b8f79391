import XCTest
@testable import Attacks
import ModelZoo
import TensorCore

/// `--uint8-aware`: results on the 8-bit grid that stay adversarial there.
final class UInt8AwareTests: XCTestCase {
    func onGrid(_ tensor: Tensor) -> Bool {
        tensor.scalars.allSatisfy { abs($0 * 255 - ($0 * 255).rounded()) < 1e-3 }
    }

    func testGradientAttacksStayAdversarialAfterRounding() throws {
        for (entry, model, reference) in try GradientAttackTests.cases() {
            let images = reference["inputs"]! * (1 / 255)
            let labels = reference["labels"]!.scalars.map { Int($0) }
            for attack in [GradientAttack.fgsm(epsilon: 0.005), .bim(epsilon: 0.005)] {
                let plain = attack.attack(model: model, images: images, labels: labels)
                let aware = attack.attack(model: model, images: images, labels: labels, uint8Aware: true)
                XCTAssertTrue(onGrid(aware.adversarials), "\(entry.architecture) \(attack.name)")
                XCTAssertLessThanOrEqual((aware.adversarials - images).maxAbs(), 0.005 + 1e-6)
                // Rounding the result changes nothing, and at least as many samples survive it.
                XCTAssertEqual(aware.outcomes.map(\.success), aware.outcomes.map(\.successUInt8))
                XCTAssertGreaterThanOrEqual(aware.outcomes.filter(\.successUInt8).count, plain.outcomes.filter(\.successUInt8).count,
                                            "\(entry.architecture) \(attack.name)")
            }
        }
    }

    func testBoundaryResultsAreAdversarialOnTheGrid() throws {
        let (_, model, reference) = try GradientAttackTests.cases()[0]
        let images = reference["inputs"]! * (1 / 255)
        let labels = model.predictions(images)
        let output = BoundaryAttack(steps: 200, uint8Aware: true).run(model: model, images: images, labels: labels, seed: 3)
        XCTAssertTrue(onGrid(output.adversarials))
        for (prediction, (label, initialized)) in zip(model.predictions(output.adversarials), zip(labels, output.initialized)) where initialized {
            XCTAssertNotEqual(prediction, label)
        }
    }
}
