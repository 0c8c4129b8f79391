import Foundation
import XCTest
import ModelZoo
@testable import Quantize
import TensorCore

/// The mobile engine against the PC engine on the ModelZoo fixtures (torchvision / Keras
/// seeded reduced networks).
final class MobileEngineTests: XCTestCase {
    static let zooFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("ModelZooTests/Fixtures")

    struct Entry: Decodable {
        let architecture: String
        let flavor: String
        let width: Double
        let input_size: Int
        let classes: Int
        let files: [String: String]
        let expected: String
    }

    static func models() throws -> [(entry: Entry, model: Model, inputs: Tensor, reference: Tensor)] {
        let entries = try JSONDecoder().decode([Entry].self, from: Data(contentsOf: zooFixtures.appendingPathComponent("manifest.json")))
        return try entries.map { entry in
            let config = ModelConfig(architecture: Architecture(rawValue: entry.architecture)!, flavor: Flavor(rawValue: entry.flavor)!,
                                     widthMultiplier: entry.width, inputSize: entry.input_size, numClasses: entry.classes)
            let file = entry.files["safetensors"] ?? entry.files["h5"]!
            let model = try Model(config: config, weights: zooFixtures.appendingPathComponent(file).path)
            let expected = try SafeTensors.read(zooFixtures.appendingPathComponent(entry.expected).path)
            return (entry, model, expected["inputs"]!.map { $0 / 255 }, expected["logits"]!)
        }
    }

    func testFloatMobileModelMatchesPCEngineAndReference() throws {
        for (entry, model, inputs, reference) in try Self.models() {
            let mobile = try MobileConverter.convert(model, labels: [], sourceWeights: "fixture")
            let engine = MobileEngine(try MobileFile.decode(MobileFile.encode(mobile), file: "memory"))
            let logits = try engine.logits(inputs)
            // The PC engine's default inference is the same channels-last program; the NCHW
            // Executor on the reference kernels is an independent implementation.
            let nchw = model.logits(inputs, executor: Executor(backend: .reference))
            for (name, target) in [("PC engine", model.logits(inputs)), ("NCHW reference kernels", nchw), ("reference", reference)] {
                let error = (logits - target).maxAbs()
                XCTAssertLessThanOrEqual(error, 1e-3 * target.maxAbs(), "\(entry.architecture)/\(entry.flavor) vs \(name)")
                XCTAssertEqual(Model.argmax(logits), Model.argmax(target), "\(entry.architecture)/\(entry.flavor) top-1 vs \(name)")
            }
        }
    }

    func testInt8LogitsFollowFloatLogits() throws {
        for (entry, model, inputs, _) in try Self.models() {
            let float = model.logits(inputs)
            for scheme in QuantizationScheme.allCases {
                var calibrator = try Calibrator(model: model, scheme: scheme)
                try calibrator.observe(inputs)
                let mobile = try calibrator.finish(labels: [], sourceWeights: "fixture")
                let logits = try MobileEngine(mobile).logits(inputs)
                let cosine = cosineSimilarity(logits, float)
                print("\(entry.architecture)/\(entry.flavor) \(scheme): cosine \(cosine)")
                XCTAssertGreaterThan(cosine, 0.9, "\(entry.architecture)/\(entry.flavor) \(scheme)")
            }
        }
    }

    /// Depthwise layers run with the projection reading them (`Int8Program.projections`) give
    /// the bytes of the layers in turn: observing every node's value turns the fusion off.
    func testFusedDepthwiseProjectionEqualsLayersInTurn() throws {
        for (entry, model, inputs, _) in try Self.models() where entry.architecture == Architecture.mobilenetV2.rawValue {
            for scheme in QuantizationScheme.allCases {
                var calibrator = try Calibrator(model: model, scheme: scheme)
                try calibrator.observe(inputs)
                let program = Int8Program(try calibrator.finish(labels: [], sourceWeights: "fixture"))
                XCTAssertEqual(program.projections.count, 17, "\(entry.flavor) \(scheme): every block's depthwise layer and projection")
                let layered = try program.run(inputs, observe: { _, _ in })
                for threads in [1, 2] {
                    let previous = Threading.threads
                    Threading.setThreads(threads)
                    defer { Threading.setThreads(previous) }
                    XCTAssertEqual(try program.run(inputs).scalars, layered.scalars, "\(entry.flavor) \(scheme), \(threads) threads")
                }
            }
        }
    }
}

func cosineSimilarity(_ a: Tensor, _ b: Tensor) -> Double {
    let x = a.scalars.map(Double.init), y = b.scalars.map(Double.init)
    let dot = zip(x, y).reduce(0) { $0 + $1.0 * $1.1 }
    let nx = x.reduce(0) { $0 + $1 * $1 }.squareRoot(), ny = y.reduce(0) { $0 + $1 * $1 }.squareRoot()
    return dot / (nx * ny)
}
