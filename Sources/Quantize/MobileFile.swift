import Foundation
import ModelZoo
import TensorCore
import ZIPFoundation

/// A mobile model file that cannot be read, naming the file and the fault.
public enum MobileFileError: Error, CustomStringConvertible, Equatable {
    case notMobileFile(String)
    case unsupportedVersion(file: String, version: UInt32, supported: UInt32)
    case truncated(file: String, expectedBytes: Int, actualBytes: Int)
    case checksumMismatch(file: String)
    case corrupt(file: String, reason: String)
    case unreadable(file: String, reason: String)
    case unwritable(file: String, reason: String)

    public var description: String {
        switch self {
        case let .notMobileFile(file): "\(file): not a robustctl mobile model (bad magic bytes)"
        case let .unsupportedVersion(file, version, supported):
            "\(file): mobile format version \(version) is newer than this robustctl reads (\(supported)); convert the model again or upgrade"
        case let .truncated(file, expected, actual): "\(file): truncated mobile model (\(actual) bytes, expected \(expected))"
        case let .checksumMismatch(file): "\(file): checksum mismatch — the mobile model is corrupted"
        case let .corrupt(file, reason): "\(file): corrupt mobile model: \(reason)"
        case let .unreadable(file, reason): "cannot read mobile model \(file): \(reason)"
        case let .unwritable(file, reason): "cannot write mobile model \(file): \(reason)"
        }
    }
}

/// The `.mobile` file: one self-contained, versioned, checksummed file per mobile model.
///
/// Layout (little-endian):
/// ```
/// 0   "RCMOBILE"            magic
/// 8   u32 format version    (1)
/// 12  u32 header length H
/// 16  header (JSON: metadata, graph, tensor directory, quantization parameters)
///     zero padding to a multiple of 64
/// P   payload: tensors, each 64-byte aligned (float32, int8 or int32, raw)
/// end u32 CRC-32 of every byte before it
/// ```
/// Tensors are aligned so the payload can be used from a memory map. Reading checks the
/// magic, the version, the length and the checksum before it parses anything.
public enum MobileFile {
    public static let formatVersion: UInt32 = 1
    static let magic = Array("RCMOBILE".utf8)

    struct TensorEntry: Codable {
        var name: String
        var dtype: String
        var shape: [Int]
        var offset: Int
        var bytes: Int
    }

    struct ActivationEntry: Codable {
        var node: Int
        var scale: Float
        var zeroPoint: Int32
        enum CodingKeys: String, CodingKey { case node, scale, zeroPoint = "zero_point" }
    }

    struct LayerEntry: Codable {
        var node: Int
        var weights: String
        var bias: String
        var weightShape: [Int]
        var weightScales: [Float]
        enum CodingKeys: String, CodingKey { case node, weights, bias, weightShape = "weight_shape", weightScales = "weight_scales" }
    }

    struct QuantizationEntry: Codable {
        var scheme: QuantizationScheme
        var floatPrefixEnd: Int
        var activations: [ActivationEntry]
        var layers: [LayerEntry]
        enum CodingKeys: String, CodingKey { case scheme, activations, layers, floatPrefixEnd = "float_prefix_end" }
    }

    struct Header: Codable {
        var metadata: MobileModel.Metadata
        var graph: Graph
        var tensors: [TensorEntry]
        var quantization: QuantizationEntry?
        var payloadBytes: Int
        enum CodingKeys: String, CodingKey { case metadata, graph, tensors, quantization, payloadBytes = "payload_bytes" }
    }

    /// Serialises a model; the bytes are deterministic for a given model.
    public static func encode(_ model: MobileModel) throws -> Data {
        var payload = Data()
        var entries: [TensorEntry] = []
        func append(_ name: String, _ dtype: String, _ shape: [Int], _ bytes: Data) {
            let padding = (64 - payload.count % 64) % 64
            payload.append(Data(count: padding))
            entries.append(TensorEntry(name: name, dtype: dtype, shape: shape, offset: payload.count, bytes: bytes.count))
            payload.append(bytes)
        }
        for name in model.parameters.keys.sorted() {
            let tensor = model.parameters[name]!
            append(name, "f32", tensor.shape, tensor.withUnsafeBufferPointer { Data(buffer: $0) })
        }
        var quantization: QuantizationEntry?
        if let table = model.quantization {
            var layers: [LayerEntry] = []
            for node in table.layers.keys.sorted() {
                let layer = table.layers[node]!
                let base = "#int8/\(node)"
                append(base + "/weights", "i8", layer.weightShape, layer.weights.withUnsafeBufferPointer { Data(buffer: $0) })
                append(base + "/bias", "i32", [layer.bias.count], layer.bias.withUnsafeBufferPointer { Data(buffer: $0) })
                layers.append(LayerEntry(node: node, weights: base + "/weights", bias: base + "/bias",
                                         weightShape: layer.weightShape, weightScales: layer.weightScales))
            }
            quantization = QuantizationEntry(
                scheme: table.scheme, floatPrefixEnd: table.floatPrefixEnd,
                activations: table.activations.keys.sorted().map { ActivationEntry(node: $0, scale: table.activations[$0]!.scale,
                                                                                    zeroPoint: table.activations[$0]!.zeroPoint) },
                layers: layers)
        }
        let header = Header(metadata: model.metadata, graph: model.graph, tensors: entries, quantization: quantization,
                            payloadBytes: payload.count)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = try encoder.encode(header)
        var data = Data(magic)
        appendLE(&data, formatVersion)
        appendLE(&data, UInt32(json.count))
        data.append(json)
        data.append(Data(count: (64 - data.count % 64) % 64))
        data.append(payload)
        appendLE(&data, data.crc32(checksum: 0))
        return data
    }

    /// Writes a model atomically (a reader never sees a partial file).
    public static func write(_ model: MobileModel, to path: String) throws {
        let data = try encode(model)
        do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw MobileFileError.unwritable(file: path, reason: FileFailure.writeReason(path, error))
        }
    }

    /// Reads and verifies a mobile model file.
    public static func read(_ path: String) throws -> MobileModel {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw MobileFileError.unreadable(file: path, reason: FileFailure.readReason(path, error))
        }
        return try decode(data, file: path)
    }

    public static func decode(_ data: Data, file: String) throws -> MobileModel {
        guard data.count >= 16, Array(data.prefix(8)) == magic else { throw MobileFileError.notMobileFile(file) }
        let version = readLE(data, at: 8)
        guard version <= formatVersion, version >= 1 else {
            throw MobileFileError.unsupportedVersion(file: file, version: version, supported: formatVersion)
        }
        let headerLength = Int(readLE(data, at: 12))
        guard 16 + headerLength + 4 <= data.count else {
            throw MobileFileError.truncated(file: file, expectedBytes: 16 + headerLength + 4, actualBytes: data.count)
        }
        // Lengths first (a truncated file is named as such), then the checksum (any flipped
        // byte, header included), then the header's contents.
        let header = try? JSONDecoder().decode(Header.self, from: data.subdata(in: 16..<(16 + headerLength)))
        let payloadStart = (16 + headerLength + 63) / 64 * 64
        if let header {
            guard (0...(Int.max / 2)).contains(header.payloadBytes) else {
                throw MobileFileError.corrupt(file: file, reason: "payload size \(header.payloadBytes) is impossible")
            }
            let expected = payloadStart + header.payloadBytes + 4
            if data.count < expected { throw MobileFileError.truncated(file: file, expectedBytes: expected, actualBytes: data.count) }
            if data.count > expected { throw MobileFileError.corrupt(file: file, reason: "\(data.count - expected) unexpected bytes after the payload") }
        }
        let stored = readLE(data, at: data.count - 4)
        guard data.prefix(data.count - 4).crc32(checksum: 0) == stored else { throw MobileFileError.checksumMismatch(file: file) }
        guard let header else { throw MobileFileError.corrupt(file: file, reason: "unreadable header") }

        var tensors: [String: (entry: TensorEntry, data: Data)] = [:]
        for entry in header.tensors {
            let elementSize = ["f32": 4, "i32": 4, "i8": 1][entry.dtype]
            guard let elementSize, entry.offset >= 0, let count = Graph.elementCount(entry.shape), count <= header.payloadBytes,
                  entry.bytes == count * elementSize, entry.bytes <= header.payloadBytes - entry.offset else {
                throw MobileFileError.corrupt(file: file, reason: "tensor '\(entry.name)' has an invalid directory entry")
            }
            let start = payloadStart + entry.offset
            guard tensors.updateValue((entry, data.subdata(in: start..<(start + entry.bytes))), forKey: entry.name) == nil else {
                throw MobileFileError.corrupt(file: file, reason: "tensor '\(entry.name)' is listed twice")
            }
        }
        var parameters: Parameters = [:]
        for (name, item) in tensors where item.entry.dtype == "f32" {
            parameters[name] = Tensor.build(shape: item.entry.shape) { out in
                _ = item.data.copyBytes(to: out)
            }
        }
        var table: QuantizationTable?
        if let q = header.quantization {
            var layers: [Int: QuantizedLayer] = [:]
            for layer in q.layers {
                guard let weights = tensors[layer.weights], weights.entry.dtype == "i8", let bias = tensors[layer.bias], bias.entry.dtype == "i32" else {
                    throw MobileFileError.corrupt(file: file, reason: "int8 layer of node \(layer.node) lacks its tensors")
                }
                let w = weights.data.withUnsafeBytes { Array($0.bindMemory(to: Int8.self)) }
                let b = bias.data.withUnsafeBytes { raw in (0..<(raw.count / 4)).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self) } }
                guard layers.updateValue(QuantizedLayer(weights: w, weightShape: layer.weightShape, weightScales: layer.weightScales, bias: b),
                                         forKey: layer.node) == nil else {
                    throw MobileFileError.corrupt(file: file, reason: "node \(layer.node) has two int8 layers")
                }
            }
            var activations: [Int: AffineQuantization] = [:]
            for entry in q.activations {
                guard activations.updateValue(AffineQuantization(scale: entry.scale, zeroPoint: entry.zeroPoint), forKey: entry.node) == nil else {
                    throw MobileFileError.corrupt(file: file, reason: "node \(entry.node) has two activation quantizations")
                }
            }
            table = QuantizationTable(scheme: q.scheme, floatPrefixEnd: q.floatPrefixEnd, activations: activations, layers: layers)
        }
        let model = MobileModel(metadata: header.metadata, graph: header.graph, parameters: parameters, quantization: table)
        try validate(model, file: file)
        return model
    }

    /// Structural checks so that a consistent-but-wrong header fails here, not in the engine.
    static func validate(_ model: MobileModel, file: String) throws {
        let graph = model.graph, quantization = model.quantization, metadata = model.metadata
        guard graph.nodes.first?.operation == .input, (0..<graph.nodes.count).contains(graph.output) else {
            throw MobileFileError.corrupt(file: file, reason: "graph has no input or output")
        }
        if let quantization, !(0..<graph.nodes.count).contains(quantization.floatPrefixEnd) {
            throw MobileFileError.corrupt(file: file, reason: "the float prefix ends at node \(quantization.floatPrefixEnd), outside the graph")
        }
        // Every operation's geometry and parameter shapes against its inputs' shapes: the
        // engines' kernels take them as given.
        guard (1...ModelConfig.maximumInputSize).contains(metadata.inputSize), (1...ModelConfig.maximumClasses).contains(metadata.numClasses) else {
            throw MobileFileError.corrupt(file: file, reason: "input size \(metadata.inputSize) or class count \(metadata.numClasses) out of range")
        }
        let shapes: [[Int]]
        do {
            shapes = try graph.checkedShapes(input: [1, 3, metadata.inputSize, metadata.inputSize]) { node, name in
                if let quantization, node >= quantization.floatPrefixEnd, let layer = quantization.layers[node] {
                    let isBias: Bool = switch graph.nodes[node].operation {
                    case let .fusedConv2d(_, _, bias, _): name == bias
                    case let .linear(_, bias), let .conv2d(_, _, bias): name == bias
                    default: false
                    }
                    return isBias ? [layer.bias.count] : layer.weightShape
                }
                return model.parameters[name]?.shape
            }
        } catch let error as GraphShapeError {
            throw MobileFileError.corrupt(file: file, reason: error.description)
        }
        guard shapes[graph.output] == [1, metadata.numClasses] else {
            throw MobileFileError.corrupt(file: file, reason: "the graph's output has shape \(shapes[graph.output]), not [1, \(metadata.numClasses)]")
        }
        if let table = quantization {
            for (index, node) in graph.nodes.enumerated() where index >= table.floatPrefixEnd {
                guard let activation = table.activations[index] else {
                    throw MobileFileError.corrupt(file: file, reason: "node '\(node.name)' has no quantization parameters")
                }
                // The requantization multipliers are derived from these: a zero, negative or
                // non-finite scale would trap converting them to integers.
                guard activation.scale.isFinite, activation.scale > 0, (0...255).contains(activation.zeroPoint) else {
                    throw MobileFileError.corrupt(file: file, reason: "node '\(node.name)' has scale \(activation.scale) and zero point \(activation.zeroPoint)")
                }
                switch node.operation {
                case .fusedConv2d, .linear:
                    guard let layer = table.layers[index], layer.weightShape.count >= 2, layer.bias.count == layer.weightShape[0],
                          layer.weights.count == Graph.elementCount(layer.weightShape),
                          [1, layer.weightShape[0]].contains(layer.weightScales.count) else {
                        throw MobileFileError.corrupt(file: file, reason: "node '\(node.name)' has no int8 weights")
                    }
                    guard layer.weightScales.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                        throw MobileFileError.corrupt(file: file, reason: "node '\(node.name)' has weight scales that are not positive numbers")
                    }
                default: break
                }
            }
            for name in graph.nodes[0...table.floatPrefixEnd].flatMap(\.operation.parameterNames) where model.parameters[name] == nil {
                throw MobileFileError.corrupt(file: file, reason: "missing parameter '\(name)'")
            }
        } else {
            for name in graph.parameterNames where model.parameters[name] == nil {
                throw MobileFileError.corrupt(file: file, reason: "missing parameter '\(name)'")
            }
        }
    }

    static func appendLE(_ data: inout Data, _ value: UInt32) {
        withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) }
    }

    static func readLE(_ data: Data, at offset: Int) -> UInt32 {
        data.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
    }
}
