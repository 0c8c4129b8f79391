import CShims
import Foundation
import XCTest
import ModelZoo
@testable import Quantize
import TensorCore

/// int8 parity with the reference toolchains (fixtures: Tools/reference/make_quantization_fixtures.py):
/// PyTorch eager-mode qnnpack quantization of torchvision's quantizable models (torch flavour).
final class ReferenceQuantizationTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    struct LayerParameters: Decodable {
        let scale: Float
        let zero_point: Int32
        let weight_scale: Float?
    }
    struct Functional: Decodable {
        let name: String
        let scale: Float
        let zero_point: Int32
    }
    struct ObserverResult: Decodable {
        let input: LayerParameters
        let layers: [String: LayerParameters]
        let functionals: [Functional]
    }
    struct Entry: Decodable {
        let architecture: String
        let flavor: String
        let file: String
        let calibration_batch: Int
        let histogram: ObserverResult
        let minmax: ObserverResult
    }

    struct Case {
        let entry: Entry
        let model: Model
        let tensors: [String: Tensor]
        let inputs: Tensor
        var calibration: Tensor { tensors["calibration"]!.map { $0 / 255 } }
    }

    static func cases(flavor: String) throws -> [Case] {
        let raw = try JSONSerialization.jsonObject(with: Data(contentsOf: fixtures.appendingPathComponent("manifest.json"))) as! [[String: Any]]
        let entries = try raw.filter { $0["flavor"] as? String == flavor }.map {
            try JSONDecoder().decode(Entry.self, from: JSONSerialization.data(withJSONObject: $0))
        }
        let zoo = try MobileEngineTests.models()
        return try entries.filter { $0.flavor == flavor }.map { entry in
            let item = zoo.first { $0.entry.architecture == entry.architecture && $0.entry.flavor == entry.flavor }!
            return Case(entry: entry, model: item.model, tensors: try SafeTensors.read(fixtures.appendingPathComponent(entry.file).path),
                        inputs: item.inputs)
        }
    }

    func calibrate(_ item: Case, observer: ObserverKind) throws -> MobileModel {
        var calibrator = try Calibrator(model: item.model, scheme: .qnnpack, observer: observer)
        let images = item.calibration
        for start in stride(from: 0, to: images.shape[0], by: item.entry.calibration_batch) {
            let end = Swift.min(start + item.entry.calibration_batch, images.shape[0])
            try calibrator.observe(Tensor.concatenateBatch((start..<end).map { images.slice($0) }))
        }
        return try calibrator.finish(labels: [], sourceWeights: "fixture")
    }

    /// The torch module each mobile node computes: convolutions and linear layers by their
    /// checkpoint key; adds and concats by the reference's FloatFunctional of the same block.
    func referenceNames(_ mobile: MobileModel, _ model: Model) -> [Int: String] {
        var names: [Int: String] = [:]
        let original = Dictionary(model.graph.nodes.map { ($0.name, $0.operation) }, uniquingKeysWith: { a, _ in a })
        var adds = 0
        for (index, node) in mobile.graph.nodes.enumerated() {
            switch node.operation {
            case let .fusedConv2d(_, weight, _, _):
                let convNode = weight.hasSuffix(".fused_weight") ? String(weight.dropLast(".fused_weight".count)) : nil
                if let convNode, case let .conv2d(_, key, _)? = original[convNode] { names[index] = String(key.dropLast(".weight".count)) }
                else { names[index] = String(weight.dropLast(".weight".count)) }
            case let .linear(weight, _): names[index] = String(weight.dropLast(".weight".count))
            case .add: names[index] = "#add\(adds)"; adds += 1
            case .concat: names[index] = node.name
            default: break
            }
        }
        return names
    }

    func reference(_ result: ObserverResult, name: String) -> (scale: Float, zeroPoint: Int32)? {
        if let layer = result.layers[name] { return (layer.scale, layer.zero_point) }
        let outer = result.functionals.filter { !$0.name.contains(".myop1") && !$0.name.contains(".myop2") }
        if name.hasPrefix("#add") {
            let adds = outer.filter { $0.name.contains("skip_add") }
            let add = adds[Int(name.dropFirst(4))!]
            return (add.scale, add.zero_point)
        }
        return outer.first { $0.name == name + ".myop" || $0.name == name + ".myop3" }.map { ($0.scale, $0.zero_point) }
    }

    func testMinMaxQuantizationParametersMatchPyTorch() throws {
        for item in try Self.cases(flavor: "torch") {
            let mobile = try calibrate(item, observer: .minmax)
            let table = mobile.quantization!
            let names = referenceNames(mobile, item.model)
            let input = table.activations[table.floatPrefixEnd]!
            XCTAssertEqual(input.scale, item.entry.minmax.input.scale, accuracy: 1e-5 * input.scale, "\(item.entry.architecture) input")
            XCTAssertEqual(input.zeroPoint, item.entry.minmax.input.zero_point, "\(item.entry.architecture) input")
            var compared = 0
            for (index, name) in names.sorted(by: { $0.key < $1.key }) {
                guard let expected = reference(item.entry.minmax, name: name) else { XCTFail("\(name) has no reference"); continue }
                let ours = table.activations[index]!
                XCTAssertEqual(ours.scale, expected.scale, accuracy: 1e-5 * expected.scale, "\(item.entry.architecture) \(name) scale")
                XCTAssertEqual(ours.zeroPoint, expected.zeroPoint, "\(item.entry.architecture) \(name) zero point")
                if let layer = table.layers[index], let weightScale = item.entry.minmax.layers[name]?.weight_scale {
                    XCTAssertEqual(layer.weightScales[0], weightScale, accuracy: 1e-5 * weightScale, "\(name) weight scale")
                }
                compared += 1
            }
            XCTAssertGreaterThan(compared, 20, item.entry.architecture)
        }
    }

    func testHistogramQuantizationParametersMatchPyTorch() throws {
        for item in try Self.cases(flavor: "torch") {
            let mobile = try calibrate(item, observer: .histogram)
            let table = mobile.quantization!
            var within = 0, total = 0, worst = 0.0
            for (index, name) in referenceNames(mobile, item.model) {
                guard let expected = reference(item.entry.histogram, name: name) else { continue }
                let ours = table.activations[index]!
                let relative = Double(abs(ours.scale - expected.scale) / expected.scale)
                worst = Swift.max(worst, relative)
                if relative <= 1e-5 && ours.zeroPoint == expected.zeroPoint { within += 1 }
                total += 1
            }
            print("\(item.entry.architecture) histogram observer: \(within)/\(total) layers within 1e-5, worst relative scale error \(worst)")
            XCTAssertGreaterThanOrEqual(Double(within), 0.95 * Double(total), item.entry.architecture)
        }
    }

    /// Given PyTorch's own quantization parameters and int8 weights, every convolution's
    /// uint8 output equals PyTorch's within 1 LSB on ≥ 99.9 % of values, and the int8
    /// logits follow PyTorch's int8 logits.
    func testIntegerLayerOutputsMatchPyTorchGivenItsParameters() throws {
        for item in try Self.cases(flavor: "torch") {
            var mobile = try calibrate(item, observer: .histogram)
            var table = mobile.quantization!
            let names = referenceNames(mobile, item.model)
            let result = item.entry.histogram
            table.activations[table.floatPrefixEnd] = AffineQuantization(scale: result.input.scale, zeroPoint: result.input.zero_point)
            for (index, node) in mobile.graph.nodes.enumerated() where index > table.floatPrefixEnd {
                let inputScale = table.activations[node.inputs[0]]!.scale
                if let name = names[index], let expected = reference(result, name: name) {
                    table.activations[index] = AffineQuantization(scale: expected.scale, zeroPoint: expected.zeroPoint)
                } else if case .globalAvgPool = node.operation {
                    table.activations[index] = table.activations[node.inputs[0]]
                } else if case .add = node.operation {
                    XCTFail("add without reference")
                } else {
                    table.activations[index] = table.activations[node.inputs[0]]
                }
                if let name = names[index], let weights = item.tensors[name + ".int8_weight"], let bias = item.tensors[name + ".bias"] {
                    let shape = weights.rank == 2 ? weights.shape + [1, 1] : weights.shape
                    let weightScale = result.layers[name]!.weight_scale!
                    let biasQ = bias.scalars.map { Int32((($0) * (1 / Float(Double(inputScale) * Double(weightScale)))).rounded(.toNearestOrEven)) }
                    table.layers[index] = QuantizedLayer(weights: weights.scalars.map { Int8($0) }, weightShape: shape, weightScales: [weightScale], bias: biasQ)
                }
            }
            mobile.quantization = table
            let program = Int8Program(mobile)
            // Convolutions whose requantization oneDNN performs (k×k, zero point 0 after ReLU)
            // are checked here too.
            let requantizing = program.steps.values.filter { if case .requantizingConv = $0 { true } else { false } }.count
            XCTAssertGreaterThan(requantizing, 0, "\(item.entry.architecture): convolutions requantized by oneDNN")
            // So are the convolutions with the requantization fused into our own GEMM.
            let fused = program.steps.values.filter {
                switch $0 { case .fusedConv, .fusedDepthwise: true; default: false }
            }.count
            if rc_use_vnni() != 0 { XCTAssertGreaterThan(fused, 0, "\(item.entry.architecture): fused convolutions") }
            var within = 0, exact = 0, total = 0, layersCompared = 0
            _ = try program.run(item.inputs.slice(0).reshaped([1] + item.inputs.shape.dropFirst())) { index, value in
                guard let name = names[index], let expected = item.tensors[name + ".output"], expected.rank == 4 else { return }
                layersCompared += 1
                let (c, h, w) = (expected.shape[1], expected.shape[2], expected.shape[3])
                let ours = value.buffer.array
                expected.withUnsafeBufferPointer { reference in
                    for ch in 0..<c { for p in 0..<(h * w) {
                        total += 1
                        let difference = abs(Int(ours[p * c + ch]) - Int(reference[ch * h * w + p]))
                        if difference <= 1 { within += 1 }
                        if difference == 0 { exact += 1 }
                    } }
                }
            }
            let share = Double(within) / Double(Swift.max(total, 1))
            print("\(item.entry.architecture): \(layersCompared) conv layers (\(requantizing) requantized by oneDNN, \(fused) fused), \(within)/\(total) values within 1 LSB (\(share)), \(exact) exact")
            XCTAssertEqual(exact, total, "\(item.entry.architecture): integer outputs equal PyTorch's")
            XCTAssertGreaterThan(layersCompared, 20)
            XCTAssertGreaterThanOrEqual(share, 0.999, item.entry.architecture)
            let logits = try program.run(item.inputs)
            let cosine = cosineSimilarity(logits, item.tensors["logits_histogram"]!)
            print("\(item.entry.architecture): logits cosine given PyTorch's parameters \(cosine)")
            XCTAssertGreaterThanOrEqual(cosine, 0.99)
        }
    }

    /// Our own calibration and quantization, end to end, against PyTorch's int8 logits.
    func testInt8LogitsFollowPyTorch() throws {
        for item in try Self.cases(flavor: "torch") {
            for observer in [ObserverKind.histogram, .minmax] {
                let logits = try MobileEngine(calibrate(item, observer: observer)).logits(item.inputs)
                let cosine = cosineSimilarity(logits, item.tensors["logits_\(observer.rawValue)"]!)
                print("\(item.entry.architecture) \(observer): int8 logits cosine vs PyTorch \(cosine)")
                XCTAssertGreaterThanOrEqual(cosine, 0.99, "\(item.entry.architecture) \(observer)")
            }
        }
    }
}
