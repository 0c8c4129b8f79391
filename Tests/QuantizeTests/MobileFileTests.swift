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

    /// `data` with its JSON header edited and the checksum made right again: what a file
    /// written inconsistently (by a bug, or by hand) looks like once it passes the CRC.
    static func tampered(_ data: Data, _ edit: (inout [String: Any]) -> Void) throws -> Data {
        let headerLength = Int(MobileFile.readLE(data, at: 12))
        let payloadStart = (16 + headerLength + 63) / 64 * 64
        var header = try JSONSerialization.jsonObject(with: data.subdata(in: 16..<(16 + headerLength))) as! [String: Any]
        edit(&header)
        let json = try JSONSerialization.data(withJSONObject: header)
        var out = Data("RCMOBILE".utf8)
        MobileFile.appendLE(&out, 1)
        MobileFile.appendLE(&out, UInt32(json.count))
        out.append(json)
        out.append(Data(count: (64 - out.count % 64) % 64))
        out.append(data.subdata(in: payloadStart..<(data.count - 4)))
        // CRC-32 (zlib's polynomial), as MobileFile writes it.
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in out {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        MobileFile.appendLE(&out, ~crc)
        return out
    }

    /// A header that passes the checksum but does not fit together is refused as corrupt,
    /// naming what is wrong, instead of tripping a kernel's precondition (a fuzzer found two
    /// such files: an add of two shapes, a convolution whose weights did not fit its input).
    func testInconsistentHeadersAreRefusedNotRun() throws {
        let (model, _) = try int8Model()
        let data = try MobileFile.encode(model)
        XCTAssertNoThrow(try MobileFile.decode(try Self.tampered(data) { _ in }, file: "f.mobile"), "the rebuilt file itself is valid")
        func node(_ header: inout [String: Any], _ index: Int, _ edit: (inout [String: Any]) -> Void) {
            var graph = header["graph"] as! [String: Any], nodes = graph["nodes"] as! [[String: Any]]
            edit(&nodes[index])
            graph["nodes"] = nodes
            header["graph"] = graph
        }
        let cases: [(String, (inout [String: Any]) -> Void)] = [
            ("node 'layer1.0.add': adds shapes", { h in node(&h, 8) { $0["inputs"] = [6, 3] } }),
            ("node 'layer1.0.relu2': invalid convolution geometry", { h in node(&h, 5) { n in
                var op = n["operation"] as! [String: Any], conv = op["fusedConv2d"] as! [String: Any], config = conv["_0"] as! [String: Any]
                config["strideH"] = 0; conv["_0"] = config; op["fusedConv2d"] = conv; n["operation"] = op
            } }),
            ("node 'layer1.0.relu1': weight [4, 5, 1, 1] does not fit input", { h in
                var q = h["quantization"] as! [String: Any], layers = q["layers"] as! [[String: Any]]
                let index = layers.firstIndex { $0["node"] as! Int == 4 }!
                layers[index]["weight_shape"] = [4, 5, 1, 1]
                q["layers"] = layers; h["quantization"] = q
            }),
            ("tensor '#int8/2/weights' has an invalid directory entry", { h in
                var tensors = h["tensors"] as! [[String: Any]]
                tensors[0]["shape"] = [1 << 40, 1 << 40, 1 << 40]
                h["tensors"] = tensors
            }),
            ("the float prefix ends at node 1000000", { h in
                var q = h["quantization"] as! [String: Any]; q["float_prefix_end"] = 1_000_000; h["quantization"] = q
            }),
            ("the graph's output has shape [1, 4, 32, 32]", { h in
                var graph = h["graph"] as! [String: Any]; graph["output"] = 2; h["graph"] = graph
            }),
            ("node 5 has two activation quantizations", { h in
                var q = h["quantization"] as! [String: Any], activations = q["activations"] as! [[String: Any]]
                var copy = activations.first { $0["node"] as! Int == 5 }!
                copy["zero_point"] = 3
                activations.append(copy)
                q["activations"] = activations; h["quantization"] = q
            }),
            ("node 'layer1.0.relu2' has scale 0.0", { h in
                var q = h["quantization"] as! [String: Any], activations = q["activations"] as! [[String: Any]]
                let index = activations.firstIndex { $0["node"] as! Int == 5 }!
                activations[index]["scale"] = 0
                q["activations"] = activations; h["quantization"] = q
            }),
            ("node 'layer1.0.relu1' has weight scales that are not positive numbers", { h in
                var q = h["quantization"] as! [String: Any], layers = q["layers"] as! [[String: Any]]
                let index = layers.firstIndex { $0["node"] as! Int == 4 }!
                layers[index]["weight_scales"] = [-1.0] + (layers[index]["weight_scales"] as! [Double]).dropFirst()
                q["layers"] = layers; h["quantization"] = q
            }),
        ]
        for (message, edit) in cases {
            XCTAssertThrowsError(try MobileFile.decode(try Self.tampered(data, edit), file: "f.mobile"), message) { error in
                guard case let .corrupt(file, reason)? = error as? MobileFileError else { return XCTFail("\(message): \(error)") }
                XCTAssertEqual(file, "f.mobile")
                XCTAssertTrue(reason.contains(message), "expected '\(message)' in '\(reason)'")
            }
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

    /// Finite weights whose folded form overflows (a batch norm scale of 3e38 over a zero
    /// variance), or so large that the float model overflows, are refused by the int8
    /// converter naming the node (NaN used to trap converting to an integer; weight files
    /// holding NaN themselves are refused on loading).
    func testConverterNamesNonFiniteWeightsAndRanges() throws {
        let item = try XCTUnwrap(MobileEngineTests.models().first { $0.entry.architecture == "mobilenet_v2" && $0.entry.flavor == "torch" })
        let file = MobileEngineTests.zooFixtures.appendingPathComponent(item.entry.files["safetensors"]!).path
        let overflowingFold: ([String: Tensor]) -> [String: Tensor] = { tensors in
            var tensors = tensors
            tensors["features.0.1.weight"] = tensors["features.0.1.weight"]!.map { _ in 3e38 }
            tensors["features.0.1.running_var"] = tensors["features.0.1.running_var"]!.map { _ in 0 }
            return tensors
        }
        let overflowingActivations: ([String: Tensor]) -> [String: Tensor] = { tensors in
            var tensors = tensors
            tensors["features.0.0.weight"] = tensors["features.0.0.weight"]!.map { 3e38 * $0.magnitude.squareRoot() + $0 }
            return tensors
        }
        for (edit, scheme, what) in [(overflowingFold, QuantizationScheme.tflite, "weights or bias"),
                                     (overflowingActivations, .qnnpack, "calibrated range")] {
            let model = try Model(definition: item.model.definition, tensors: edit(try SafeTensors.read(file)), source: "damaged")
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
