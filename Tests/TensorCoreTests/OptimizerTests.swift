import Foundation
import XCTest
@testable import TensorCore

/// Optimizer steps against torch.optim (fixture: Tools/reference/make_optimizer_fixtures.py).
final class OptimizerTests: XCTestCase {
    struct Fixture: Decodable {
        struct Case: Decodable {
            let kind: String
            let momentum: Float
            let weight_decay: Float
            let learning_rates: [Float]
            let initial: [Float]
            let gradients: [[Float]]
            let trajectory: [[Float]]
        }
        let cases: [Case]
    }

    func testStepsFollowTorchOptim() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/optimizers/trajectories.json")
        let fixture = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
        XCTAssertEqual(Set(fixture.cases.map(\.kind)), ["sgd", "adam"])
        for item in fixture.cases {
            var optimizer = Optimizer(kind: Optimizer.Kind(rawValue: item.kind)!, momentum: item.momentum, weightDecay: item.weight_decay)
            var parameters: Parameters = ["w": Tensor(shape: [item.initial.count], scalars: item.initial)]
            for (step, (gradient, learningRate)) in zip(item.gradients, item.learning_rates).enumerated() {
                optimizer.step(&parameters, gradients: ["w": Tensor(shape: [gradient.count], scalars: gradient)], learningRate: learningRate)
                for (ours, expected) in zip(parameters["w"]!.scalars, item.trajectory[step]) {
                    XCTAssertEqual(ours, expected, accuracy: 1e-6 * Swift.max(1, abs(expected)), "\(item.kind) step \(step + 1)")
                }
            }
        }
    }
}
