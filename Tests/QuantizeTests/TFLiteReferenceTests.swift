import CShims
import Foundation
import XCTest
import ModelZoo
@testable import Quantize
import TensorCore

/// int8 parity with TFLite (fixtures: Tools/reference/make_quantization_fixtures.py): the
/// keras-flavour networks converted by the TFLite converter (full int8, representative
/// dataset) and run on TFLite's reference kernels.
final class TFLiteReferenceTests: XCTestCase {
    struct Parameters: Decodable {
        let scale: Float
        let zero_point: Int32
        /// TFLite's int8 zero point as our uint8 storage's.
        var quantization: AffineQuantization { AffineQuantization(scale: scale, zeroPoint: zero_point + 128) }
    }
    struct Op: Decodable {
        let op: String
        let segments: [String]
        let output: Parameters
        let input: Parameters?
        let weight_scales: [Float]?
        let key: String?
    }
    struct Entry: Decodable {
        let architecture: String
        let flavor: String
        let file: String
        let ops: [Op]
    }

    struct Case {
        let entry: Entry
        let model: Model
        let tensors: [String: Tensor]
        let inputs: Tensor
    }

    static func cases() throws -> [Case] {
        let data = try Data(contentsOf: ReferenceQuantizationTests.fixtures.appendingPathComponent("manifest.json"))
        let raw = try JSONSerialization.jsonObject(with: data) as! [[String: Any]]
        let keras = try raw.filter { $0["flavor"] as? String == "keras" }.map {
            try JSONDecoder().decode(Entry.self, from: JSONSerialization.data(withJSONObject: $0))
        }
        let zoo = try MobileEngineTests.models()
        return try keras.map { entry in
            let item = zoo.first { $0.entry.architecture == entry.architecture && $0.entry.flavor == "keras" }!
            return Case(entry: entry, model: item.model,
                        tensors: try SafeTensors.read(ReferenceQuantizationTests.fixtures.appendingPathComponent(entry.file).path),
                        inputs: item.inputs)
        }
    }

    func calibrate(_ item: Case) throws -> MobileModel {
        var calibrator = try Calibrator(model: item.model, scheme: .tflite, observer: .minmax)
        let images = item.tensors["calibration"]!.map { $0 / 255 }
        for index in 0..<images.shape[0] { try calibrator.observe(images.slice(index).reshaped([1] + images.shape.dropFirst())) }
        return try calibrator.finish(labels: [], sourceWeights: "fixture")
    }

    /// The TFLite op computing each mobile node (matched by Keras layer name).
    func referenceOps(_ mobile: MobileModel, _ item: Case) -> [Int: Op] {
        let original = Dictionary(item.model.graph.nodes.map { ($0.name, $0.operation) }, uniquingKeysWith: { a, _ in a })
        var result: [Int: Op] = [:]
        for (index, node) in mobile.graph.nodes.enumerated() {
            switch node.operation {
            case let .fusedConv2d(_, weight, _, _):
                let convNode = String(weight.dropLast(".fused_weight".count))
                guard case let .conv2d(_, key, _)? = original[convNode] else { continue }
                let layer = String(key.split(separator: "/")[0])
                result[index] = item.entry.ops.first { ["CONV_2D", "DEPTHWISE_CONV_2D"].contains($0.op) && $0.segments.contains(layer) }
            case .linear: result[index] = item.entry.ops.first { $0.op == "FULLY_CONNECTED" }
            case .globalAvgPool: result[index] = item.entry.ops.first { $0.op == "MEAN" }
            case .add: result[index] = item.entry.ops.first { $0.op == "ADD" && $0.segments.contains(node.name) }
            case .concat: result[index] = item.entry.ops.first { $0.op == "CONCATENATION" && $0.segments.contains(node.name) }
            default: break
            }
        }
        return result
    }

    func testMinMaxQuantizationParametersMatchTFLite() throws {
        for item in try Self.cases() {
            let mobile = try calibrate(item)
            let table = mobile.quantization!
            let input = item.entry.ops.first { $0.op == "QUANTIZE" }!.output.quantization
            XCTAssertEqual(table.activations[table.floatPrefixEnd]!.scale, input.scale, accuracy: 1e-5 * input.scale)
            XCTAssertEqual(table.activations[table.floatPrefixEnd]!.zeroPoint, input.zeroPoint)
            let ops = referenceOps(mobile, item)
            var compared = 0, residualOperands = 0, residualMatches = 0
            var readers = [Int](repeating: 0, count: mobile.graph.nodes.count)
            var readBy = [Int: Int]()
            for (index, node) in mobile.graph.nodes.enumerated() { for input in node.inputs { readers[input] += 1; readBy[input] = index } }
            for (index, op) in ops.sorted(by: { $0.key < $1.key }) {
                let expected = op.output.quantization, ours = table.activations[index]!
                let name = mobile.graph.nodes[index].name
                let feedsAddOnly = readers[index] == 1 && readBy[index].map { mobile.graph.nodes[$0].operation == .add } == true
                if feedsAddOnly {
                    // TFLite's converter moves batch-norm offsets across residual adds, so the
                    // float tensors it calibrates there are not the model's; counted, not required.
                    residualOperands += 1
                    if abs(ours.scale - expected.scale) <= 5e-5 * expected.scale && ours.zeroPoint == expected.zeroPoint { residualMatches += 1 }
                } else {
                    // 5e-5: our float forward pass and TensorFlow's differ by ~1e-5 relative in deep layers.
                    XCTAssertEqual(ours.scale, expected.scale, accuracy: 5e-5 * expected.scale, "\(item.entry.architecture) \(name) scale")
                    XCTAssertEqual(ours.zeroPoint, expected.zeroPoint, "\(item.entry.architecture) \(name) zero point")
                }
                if let scales = op.weight_scales, let layer = table.layers[index] {
                    XCTAssertEqual(layer.weightScales.count, scales.count, name)
                    for (a, b) in zip(layer.weightScales, scales) { XCTAssertEqual(a, b, accuracy: 1e-5 * b, "\(name) weight scale") }
                }
                compared += 1
            }
            let expectedCount = mobile.graph.nodes.filter {
                switch $0.operation { case .fusedConv2d, .linear, .add, .concat, .globalAvgPool: true; default: false }
            }.count
            XCTAssertEqual(compared, expectedCount, "\(item.entry.architecture): every quantized layer has a TFLite counterpart")
            print("\(item.entry.architecture) keras: \(compared - residualOperands) layers compared strictly, residual-add operands matching \(residualMatches)/\(residualOperands)")
        }
    }

    /// Given TFLite's quantization parameters, int8 weights and int32 biases, every
    /// convolution's output equals TFLite's reference kernels' within 1 LSB on ≥ 99.9 %
    /// of values.
    func testIntegerLayerOutputsMatchTFLiteGivenItsParameters() throws {
        for item in try Self.cases() {
            var mobile = try calibrate(item)
            var table = mobile.quantization!
            let ops = referenceOps(mobile, item)
            table.activations[table.floatPrefixEnd] = item.entry.ops.first { $0.op == "QUANTIZE" }!.output.quantization
            for (index, node) in mobile.graph.nodes.enumerated() where index > table.floatPrefixEnd {
                if let op = ops[index] {
                    table.activations[index] = op.output.quantization
                    if let key = op.key, let weights = item.tensors[key + ".int8_weight"], let bias = item.tensors[key + ".int32_bias"] {
                        let shape = weights.rank == 2 ? weights.shape + [1, 1] : weights.shape
                        table.layers[index] = QuantizedLayer(weights: weights.scalars.map { Int8($0) }, weightShape: shape,
                                                             weightScales: op.weight_scales!, bias: bias.scalars.map { Int32($0) })
                    }
                } else {
                    table.activations[index] = table.activations[node.inputs[0]]
                }
            }
            mobile.quantization = table
            let program = Int8Program(mobile)
            // ResNet50's stem padding is read by its max pool directly (later layers check it).
            if item.entry.architecture == "resnet50" {
                let pooledPads = mobile.graph.nodes.enumerated().compactMap { index, node -> Int? in
                    guard case .maxPool = node.operation, case .zeroPad = mobile.graph.nodes[node.inputs[0]].operation else { return nil }
                    return node.inputs[0]
                }
                XCTAssertEqual(pooledPads.count, 1)
                for pad in pooledPads {
                    guard case .identity? = program.steps[pad] else { return XCTFail("the stem's padding is not read by its max pool") }
                }
            }
            // The convolutions with the requantization fused into our own kernels are checked too.
            let fused = program.steps.values.filter {
                switch $0 { case .fusedConv, .fusedDepthwise: true; default: false }
            }.count
            if rc_use_vnni() != 0 { XCTAssertGreaterThan(fused, 5, "\(item.entry.architecture): fused convolutions") }
            var within = 0, exact = 0, total = 0, layers = 0
            _ = try program.run(item.inputs.slice(0).reshaped([1] + item.inputs.shape.dropFirst())) { index, value in
                guard let key = ops[index]?.key, let expected = item.tensors[key + ".output"] else { return }
                layers += 1
                let ours = value.buffer.array
                expected.withUnsafeBufferPointer { reference in
                    XCTAssertEqual(reference.count, ours.count, key)
                    for i in 0..<Swift.min(reference.count, ours.count) {
                        let difference = abs(Int(ours[i]) - 128 - Int(reference[i]))
                        if difference <= 1 { within += 1 }
                        if difference == 0 { exact += 1 }
                        total += 1
                    }
                }
            }
            let share = Double(within) / Double(Swift.max(total, 1))
            print("\(item.entry.architecture) keras: \(layers) conv layers (\(fused) fused), \(within)/\(total) within 1 LSB (\(share)), \(exact) exact")
            XCTAssertEqual(exact, total, "\(item.entry.architecture): integer outputs equal TFLite's")
            XCTAssertGreaterThan(layers, 20)
            XCTAssertGreaterThanOrEqual(share, 0.999, item.entry.architecture)
        }
    }

    func testInt8LogitsFollowTFLite() throws {
        for item in try Self.cases() {
            let logits = try MobileEngine(calibrate(item)).logits(item.inputs)
            let cosine = cosineSimilarity(logits, item.tensors["logits"]!)
            print("\(item.entry.architecture) keras: int8 logits cosine vs TFLite \(cosine)")
            XCTAssertGreaterThanOrEqual(cosine, 0.99, item.entry.architecture)
        }
    }
}
