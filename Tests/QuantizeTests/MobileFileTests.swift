import Foundation
import XCTest
import ModelZoo
@testable import Quantize
import TensorCore

final class MobileFileTests: XCTestCase {
    func int8Model() throws -> (MobileModel, Tensor) {
        let item = try MobileEngineTests.models().first { $0.entry.architecture == "resnet50" && $0.entry.flavor == "torch" }!
        var calibrator = try Calibrator(model: item.model, scheme: .tflite)
        try calibrator.observe(item.inputs)
        return (try calibrator.finish(labels: (0..<10).map { "class \($0)" }, sourceWeights: "/some/dir/resnet50.safetensors"), item.inputs)
    }

    func testRoundTripKeepsEveryBitOfTheModel() throws {
        let (model, inputs) = try int8Model()
        let data = try MobileFile.encode(model)
        let decoded = try MobileFile.decode(data, file: "memory")
        XCTAssertEqual(decoded.metadata, model.metadata)
        XCTAssertEqual(decoded.metadata.sourceWeights, "resnet50.safetensors")
        XCTAssertEqual(decoded.graph, model.graph)
        XCTAssertEqual(decoded.quantization!.activations, model.quantization!.activations)
        XCTAssertEqual(decoded.quantization!.layers, model.quantization!.layers)
        XCTAssertEqual(try MobileEngine(decoded).logits(inputs), try MobileEngine(model).logits(inputs))
        XCTAssertEqual(try MobileFile.encode(decoded), data, "encoding is deterministic")
        // Payload tensors are 64-byte aligned in the file (memory-map friendly).
        let headerLength = Int(MobileFile.readLE(data, at: 12))
        XCTAssertEqual((16 + headerLength + 63) / 64 * 64 % 64, 0)
    }

    func testDamagedFilesAreRefusedWithTheReason() throws {
        let (model, _) = try int8Model()
        let data = try MobileFile.encode(model)
        var flipped = data
        flipped[data.count / 2] ^= 0x40
        XCTAssertThrowsError(try MobileFile.decode(flipped, file: "f.mobile")) {
            XCTAssertEqual($0 as? MobileFileError, .checksumMismatch(file: "f.mobile"))
        }
        XCTAssertThrowsError(try MobileFile.decode(data.prefix(data.count - 100), file: "f.mobile")) {
            guard case .truncated? = $0 as? MobileFileError else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try MobileFile.decode(data.prefix(10), file: "f.mobile")) {
            XCTAssertEqual($0 as? MobileFileError, .notMobileFile("f.mobile"))
        }
        var future = data
        future[8] = 2
        XCTAssertThrowsError(try MobileFile.decode(future, file: "f.mobile")) {
            XCTAssertEqual($0 as? MobileFileError, .unsupportedVersion(file: "f.mobile", version: 2, supported: 1))
            XCTAssertTrue("\($0)".contains("newer"))
        }
        XCTAssertThrowsError(try MobileFile.decode(Data("PK\u{3}\u{4} not a model at all".utf8), file: "g.pth")) {
            XCTAssertEqual($0 as? MobileFileError, .notMobileFile("g.pth"))
        }
        XCTAssertThrowsError(try MobileFile.read("/nonexistent/model.mobile")) {
            guard case .unreadable? = $0 as? MobileFileError else { return XCTFail("\($0)") }
        }
    }

    func testWriteIsAtomicAndReadable() throws {
        let (model, inputs) = try int8Model()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mobile-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("m.mobile").path
        try MobileFile.write(model, to: path)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["m.mobile"], "no temporary left behind")
        XCTAssertEqual(try MobileEngine(MobileFile.read(path)).logits(inputs), try MobileEngine(model).logits(inputs))
    }

    /// Weights holding NaN, or so large that the float model overflows, are refused by the
    /// int8 converter naming the node (they used to trap converting NaN to an integer).
    func testConverterNamesNonFiniteWeightsAndRanges() throws {
        let item = try XCTUnwrap(MobileEngineTests.models().first { $0.entry.architecture == "mobilenet_v2" && $0.entry.flavor == "torch" })
        let file = MobileEngineTests.zooFixtures.appendingPathComponent(item.entry.files["safetensors"]!).path
        for (value, scheme, what) in [(Float.nan, QuantizationScheme.tflite, "weights or bias"), (3e38, .qnnpack, "calibrated range")] {
            var tensors = try SafeTensors.read(file)
            tensors["features.0.0.weight"] = tensors["features.0.0.weight"]!.map { value * $0.magnitude.squareRoot() + $0 }
            let model = try Model(definition: item.model.definition, tensors: tensors, source: "damaged")
            var calibrator = try Calibrator(model: model, scheme: scheme)
            try calibrator.observe(item.inputs)
            XCTAssertThrowsError(try calibrator.finish(labels: [], sourceWeights: "damaged"), "\(scheme)") { error in
                guard case let ConversionError.nonFinite(node, reason) = error else { return XCTFail("\(error)") }
                XCTAssertTrue(node.hasPrefix("features."), node)
                XCTAssertTrue(reason.contains(what), reason)
            }
        }
    }

    func testConverterNamesAnUnsupportedOperation() throws {
        let item = try MobileEngineTests.models().first!
        var graph = item.model.inferenceGraph
        graph.add("probabilities", .softmax, inputs: [graph.output])
        XCTAssertThrowsError(try MobileConverter.mobileGraph(graph, parameters: item.model.inferenceParameters, scheme: .qnnpack)) {
            XCTAssertEqual($0 as? ConversionError, .unsupportedOperation(node: "probabilities", kind: "softmax", precision: "int8-qnnpack"))
            XCTAssertTrue("\($0)".contains("'probabilities'"))
        }
        XCTAssertNoThrow(try MobileConverter.mobileGraph(graph, parameters: item.model.inferenceParameters, scheme: nil), "fp32 runs softmax")
        XCTAssertThrowsError(try Calibrator(model: item.model, scheme: .tflite).finish(labels: [], sourceWeights: "x")) {
            XCTAssertEqual($0 as? ConversionError, .noCalibrationData)
        }
    }
}
