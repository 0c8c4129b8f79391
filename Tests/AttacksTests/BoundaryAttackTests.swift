import Foundation
import XCTest
@testable import Attacks
import ModelZoo
import TensorCore

/// The Boundary attack against Foolbox 3.3.4's statistics on the fixture networks (the attack
/// is a random search: outcomes are compared as distributions, not bytes), plus properties.
final class BoundaryAttackTests: XCTestCase {
    struct Entry: Decodable {
        struct Boundary: Decodable {
            struct Run: Decodable { let seed: Int; let success: Double; let median_l2: Double; let l2: [Double] }
            let steps: Int
            let runs: [Run]
        }
        let architecture: String
        let width: Double
        let input_size: Int
        let classes: Int
        let weights: String
        let boundary: Boundary?
    }

    func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    /// Stated tolerance: per network, pooled over three seeds and four images (12 distances,
    /// a noisy median), our median L2 distance is within a factor of three of Foolbox's; over
    /// the three networks the geometric mean of the ratios is within a factor of two; both
    /// succeed on every sample.
    func testStatisticsMatchFoolbox() throws {
        var logRatios: [Double] = []
        let entries = try JSONDecoder().decode([Entry].self, from: Data(contentsOf: GradientAttackTests.fixtures.appendingPathComponent("manifest.json")))
        for entry in entries {
            guard let boundary = entry.boundary else { continue }
            let config = ModelConfig(architecture: Architecture(rawValue: entry.architecture)!, flavor: .torch,
                                     widthMultiplier: entry.width, inputSize: entry.input_size, numClasses: entry.classes)
            let model = try Model(config: config, weights: GradientAttackTests.models.appendingPathComponent(entry.weights).path)
            let expected = try SafeTensors.read(GradientAttackTests.models.appendingPathComponent(entry.weights.replacingOccurrences(of: ".safetensors", with: ".expected.safetensors")).path)
            let images = expected["inputs"]! * (1 / 255)
            let labels = model.predictions(images)
            var distances: [Double] = []
            for seed in 0..<3 {
                let output = BoundaryAttack(steps: boundary.steps).run(model: model, images: images, labels: labels, seed: UInt64(seed))
                XCTAssertEqual(output.initialized, [Bool](repeating: true, count: labels.count))
                let predictions = model.predictions(output.adversarials)
                XCTAssertTrue(zip(predictions, labels).allSatisfy { $0 != $1 }, "\(entry.architecture): every result is adversarial")
                distances += AttackResult.distances(output.adversarials, images).map { Double($0.l2) }
            }
            let ours = median(distances)
            let foolbox = median(boundary.runs.flatMap(\.l2))
            XCTAssertEqual(boundary.runs.map(\.success), [1, 1, 1])
            XCTAssertGreaterThan(ours, foolbox / 3, "\(entry.architecture): median L2 \(ours) vs Foolbox \(foolbox)")
            XCTAssertLessThan(ours, foolbox * 3, "\(entry.architecture): median L2 \(ours) vs Foolbox \(foolbox)")
            logRatios.append(log(ours / foolbox))
        }
        let geometricMean = exp(logRatios.reduce(0, +) / Double(logRatios.count))
        XCTAssertGreaterThan(geometricMean, 0.5)
        XCTAssertLessThan(geometricMean, 2)
    }

    /// Foolbox aborts the whole batch when one sample's initialisation fails; we report that
    /// sample as failed and go on. A network whose bias forces class 0 everywhere makes the
    /// samples labelled 0 impossible and those labelled 1 adversarial from the start.
    func testFailedInitialisationDoesNotStopTheBatch() throws {
        let entry = try GradientAttackTests.cases()[1]
        var tensors = entry.1.parameters
        var bias = tensors["fc.bias"]!
        bias[0] = 1e4
        tensors["fc.bias"] = bias
        let model = try Model(definition: entry.1.definition, tensors: tensors, source: "biased")
        let images = entry.2["inputs"]! * (1 / 255)
        let labels = [0, 1, 0, 1]
        let output = BoundaryAttack(steps: 30, initDirections: 5).run(model: model, images: images, labels: labels, seed: 1)
        XCTAssertEqual(output.initialized, [false, true, false, true])
        XCTAssertEqual(output.queries[0], 5, "five noise draws, then the sample is given up")
        let distances = AttackResult.distances(output.adversarials, images)
        XCTAssertEqual(distances[1].l2, 0, "already misclassified: the input itself is the closest adversarial")
        XCTAssertEqual(output, BoundaryAttack(steps: 30, initDirections: 5).run(model: model, images: images, labels: labels, seed: 1),
                       "same seed, same result")
    }
}

extension BoundaryAttack.Output: Equatable {
    public static func == (a: Self, b: Self) -> Bool {
        a.adversarials == b.adversarials && a.initialized == b.initialized && a.queries == b.queries
    }
}
