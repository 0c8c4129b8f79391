import Foundation
import XCTest
@testable import ModelZoo
import TensorCore

/// Every (architecture, flavour) against logits computed by torchvision or Keras on the
/// same seeded weights, read from every weight format (fixtures: Tools/reference/make_model_fixtures.py).
final class ParityTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    struct Entry: Decodable {
        let architecture: String
        let flavor: String
        let width: Double
        let input_size: Int
        let classes: Int
        let files: [String: String]
        let expected: String
        let keras_weighted_layers: [String]?
    }

    static func manifest() throws -> [Entry] {
        try JSONDecoder().decode([Entry].self, from: Data(contentsOf: fixtures.appendingPathComponent("manifest.json")))
    }

    static func config(_ entry: Entry) -> ModelConfig {
        ModelConfig(architecture: Architecture(rawValue: entry.architecture)!, flavor: Flavor(rawValue: entry.flavor)!,
                    widthMultiplier: entry.width, inputSize: entry.input_size, numClasses: entry.classes)
    }

    static func expected(_ entry: Entry) throws -> (inputs: Tensor, logits: Tensor) {
        let tensors = try SafeTensors.read(fixtures.appendingPathComponent(entry.expected).path)
        return (tensors["inputs"]! * (1 / 255), tensors["logits"]!)
    }

    func testLogitsMatchReferenceFrameworksForEveryFormat() throws {
        let entries = try Self.manifest()
        XCTAssertEqual(Set(entries.map { "\($0.architecture)/\($0.flavor)" }).count, 6, "all six (architecture, flavour) pairs")
        var formats = Set<String>()
        for entry in entries {
            let (inputs, reference) = try Self.expected(entry)
            for (format, file) in entry.files.sorted(by: { $0.key < $1.key }) {
                formats.insert(format)
                let model = try Model(config: Self.config(entry), weights: Self.fixtures.appendingPathComponent(file).path)
                for backend in KernelBackend.allCases {
                    let logits = model.logits(inputs, executor: Executor(backend: backend))
                    let scale = reference.maxAbs()
                    let error = (logits - reference).maxAbs()
                    XCTAssertLessThanOrEqual(error, 1e-4 * scale, "\(file) \(backend): max |Δlogit| \(error) vs max |logit| \(scale)")
                    XCTAssertEqual(argmax(logits), argmax(reference), "\(file) \(backend): top-1")
                }
            }
        }
        XCTAssertEqual(formats, ["safetensors", "pth", "legacy_pth", "h5"])
    }

    /// Our Keras layer order is the order Keras itself lists weighted layers in.
    func testKerasLayerOrderMatchesKeras() throws {
        for entry in try Self.manifest() where entry.flavor == "keras" {
            let definition = try NetworkDefinition(Self.config(entry))
            XCTAssertEqual(definition.kerasLayers.map(\.name), entry.keras_weighted_layers, entry.architecture)
        }
    }

    func argmax(_ logits: Tensor) -> [Int] {
        (0..<logits.shape[0]).map { row in
            let values = (0..<logits.shape[1]).map { logits[row, $0] }
            return values.indices.max { values[$0] < values[$1] }!
        }
    }
}
