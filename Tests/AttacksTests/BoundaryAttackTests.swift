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
        let flavor: String
        let file: String
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
    /// the six networks (both flavours; Keras through Foolbox's TensorFlowModel) the geometric
    /// mean of the ratios is within a factor of two; both succeed on every sample.
    func testStatisticsMatchFoolbox() throws {
        var logRatios: [Double] = []
        let entries = try JSONDecoder().decode([Entry].self, from: Data(contentsOf: GradientAttackTests.fixtures.appendingPathComponent("manifest.json")))
        for entry in entries {
            guard let boundary = entry.boundary else { continue }
            let config = ModelConfig(architecture: Architecture(rawValue: entry.architecture)!, flavor: Flavor(rawValue: entry.flavor)!,
                                     widthMultiplier: entry.width, inputSize: entry.input_size, numClasses: entry.classes)
            let model = try Model(config: config, weights: GradientAttackTests.models.appendingPathComponent(entry.weights).path)
            let fixture = try SafeTensors.read(GradientAttackTests.fixtures.appendingPathComponent(entry.file).path)
            let images = fixture["inputs"]! * (1 / 255)
            let labels = model.predictions(images)
            var distances: [Double] = []
            for seed in 0..<3 {
                let output = BoundaryAttack(steps: boundary.steps).run(model: model, images: images, labels: labels, seed: UInt64(seed))
                XCTAssertEqual(output.initialized, [Bool](repeating: true, count: labels.count))
                let predictions = model.predictions(output.adversarials)
                XCTAssertTrue(zip(predictions, labels).allSatisfy { $0 != $1 }, "\(entry.architecture) \(entry.flavor): every result is adversarial")
                distances += AttackResult.distances(output.adversarials, images).map { Double($0.l2) }
            }
            let ours = median(distances)
            let foolbox = median(boundary.runs.flatMap(\.l2))
            XCTAssertEqual(boundary.runs.map(\.success), [1, 1, 1])
            XCTAssertGreaterThan(ours, foolbox / 3, "\(entry.architecture) \(entry.flavor): median L2 \(ours) vs Foolbox \(foolbox)")
            XCTAssertLessThan(ours, foolbox * 3, "\(entry.architecture) \(entry.flavor): median L2 \(ours) vs Foolbox \(foolbox)")
            logRatios.append(log(ours / foolbox))
        }
        XCTAssertEqual(logRatios.count, 6, "Boundary statistics for all six networks")
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

    /// One proposal against Foolbox's `draw_proposals`, transcribed in double precision, on
    /// the same Gaussian draw — with an image size that is not a multiple of the C loop's
    /// sixteen lanes, pixels at both bounds (so the clips act) and a far start.
    func testProposalMatchesFoolboxDrawProposals() {
        let d = 3 * 17 * 13
        var generator = SeededGenerator(seed: 21)
        let original = (0..<d).map { i in i % 11 == 0 ? 0 : (i % 13 == 0 ? 1 : Float(generator.nextUniform())) }
        let current = original.enumerated().map { i, x in i % 5 == 0 ? 1 - x : Float(generator.nextUniform()) }
        let (sphericalStep, sourceStep): (Float, Float) = (0.05, 0.02)
        var drawing = generator
        var eta = [Float](repeating: 0, count: d)
        eta.withUnsafeMutableBufferPointer { drawing.fillNormal($0) }
        var spherical = [Float](repeating: 0, count: d), candidate = [Float](repeating: 0, count: d)
        let norms = spherical.withUnsafeMutableBufferPointer { s in candidate.withUnsafeMutableBufferPointer { c in
            BoundaryAttack().propose(original: original, current: current, sphericalStep: sphericalStep, sourceStep: sourceStep,
                                     generator: &generator, spherical: s, candidate: c)
        } }

        // foolbox/attacks/boundary_attack.py, draw_proposals, for one sample.
        let x0 = original.map(Double.init), x = current.map(Double.init), normal = eta.map(Double.init)
        func norm(_ v: [Double]) -> Double { v.reduce(0) { $0 + $1 * $1 }.squareRoot() }
        func clip(_ v: Double) -> Double { min(max(v, 0), 1) }
        let unnormalized = zip(x0, x).map { $0 - $1 }
        let sourceNorm = norm(unnormalized)
        let direction = unnormalized.map { $0 / sourceNorm }
        let dot = zip(direction, normal).reduce(0) { $0 + $1.0 * $1.1 }
        var orthogonal = zip(normal, direction).map { $0 - dot * $1 }
        let scale = Double(sphericalStep) * sourceNorm / norm(orthogonal)
        orthogonal = orthogonal.map { $0 * scale }
        let distance = (Double(sphericalStep) * Double(sphericalStep) + 1).squareRoot()
        let sphericalReference = (0..<d).map { clip(x0[$0] + (orthogonal[$0] - unnormalized[$0]) / distance) }
        let newDirection = zip(x0, sphericalReference).map { $0 - $1 }
        let newNorm = norm(newDirection)
        let length = max(Double(sourceStep) * sourceNorm + newNorm - sourceNorm, 0) / newNorm
        let candidateReference = (0..<d).map { clip(sphericalReference[$0] + length * newDirection[$0]) }

        XCTAssertEqual(Double(norms.source), sourceNorm, accuracy: 1e-5 * sourceNorm)
        XCTAssertEqual(Double(norms.candidate), norm(zip(x0, candidateReference).map { $0 - $1 }), accuracy: 1e-5 * sourceNorm)
        for i in 0..<d {
            XCTAssertEqual(Double(spherical[i]), sphericalReference[i], accuracy: 1e-5, "spherical candidate, pixel \(i)")
            XCTAssertEqual(Double(candidate[i]), candidateReference[i], accuracy: 1e-5, "candidate, pixel \(i)")
        }
        XCTAssertTrue(sphericalReference.contains(0) && sphericalReference.contains(1), "the clips should act somewhere")
        XCTAssertLessThan(norm(zip(x0, candidateReference).map { $0 - $1 }), sourceNorm, "a step towards the original")
    }
}

extension BoundaryAttack.Output: Equatable {
    public static func == (a: Self, b: Self) -> Bool {
        a.adversarials == b.adversarials && a.initialized == b.initialized && a.queries == b.queries
    }
}
