import Foundation
import TensorCore

/// Reads `.safetensors` files: an 8-byte little-endian header length, a JSON header
/// mapping each name to its dtype, shape and byte range, then the raw little-endian data.
public enum SafeTensors {
    /// All tensors of a file, converted to float32 (integer and half types included, so
    /// bookkeeping entries such as `num_batches_tracked` can be shape-checked too).
    public static func read(_ path: String) throws -> [String: Tensor] {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw WeightFileError.unreadable(file: path, reason: FileFailure.readReason(path, error))
        }
        return try decode(data, name: path)
    }

    struct Entry: Decodable {
        let dtype: String
        let shape: [Int]
        let data_offsets: [Int]
    }

    public static func decode(_ data: Data, name: String) throws -> [String: Tensor] {
        guard data.count >= 8 else { throw WeightFileError.corrupt(file: name, reason: "shorter than the 8-byte header length") }
        let headerLength = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard headerLength <= UInt64(data.count - 8), headerLength < 100_000_000 else {
            throw WeightFileError.corrupt(file: name, reason: "header length \(headerLength) exceeds the file (\(data.count) bytes)")
        }
        let headerData = data.subdata(in: 8..<(8 + Int(headerLength)))
        guard let object = try? JSONSerialization.jsonObject(with: headerData) as? [String: Any] else {
            throw WeightFileError.corrupt(file: name, reason: "header is not a JSON object")
        }
        let bodyStart = 8 + Int(headerLength)
        var tensors: [String: Tensor] = [:]
        for (key, value) in object where key != "__metadata__" {
            guard let json = try? JSONSerialization.data(withJSONObject: value),
                  let entry = try? JSONDecoder().decode(Entry.self, from: json), entry.data_offsets.count == 2 else {
                throw WeightFileError.corrupt(file: name, reason: "malformed header entry for '\(key)'")
            }
            guard let type = ScalarType(safetensors: entry.dtype) else {
                throw WeightFileError.unsupportedFormat(file: name, reason: "tensor '\(key)' has dtype \(entry.dtype)")
            }
            // Sizes from the header are checked without overflowing (a crafted header could
            // make any product or sum trap).
            let (begin, end) = (entry.data_offsets[0], entry.data_offsets[1])
            guard let count = Graph.elementCount(entry.shape), begin >= 0, end >= begin, end <= data.count - bodyStart,
                  case let (bytes, overflow) = count.multipliedReportingOverflow(by: type.byteWidth), !overflow, end - begin == bytes else {
                throw WeightFileError.corrupt(file: name, reason: "tensor '\(key)' (\(entry.dtype) \(entry.shape)) has byte range \(begin)..<\(end) outside the file or of the wrong size")
            }
            tensors[key] = data.withUnsafeBytes { raw in
                type.decode(UnsafeRawBufferPointer(rebasing: raw[(bodyStart + begin)..<(bodyStart + end)]), shape: entry.shape)
            }
        }
        return tensors
    }
}

/// Element types found in weight files, and their conversion to float32.
enum ScalarType: Sendable {
    case float32, float64, float16, bfloat16, int64, int32, int16, int8, uint8, bool

    init?(safetensors name: String) {
        switch name {
        case "F32": self = .float32
        case "F64": self = .float64
        case "F16": self = .float16
        case "BF16": self = .bfloat16
        case "I64": self = .int64
        case "I32": self = .int32
        case "I16": self = .int16
        case "I8": self = .int8
        case "U8": self = .uint8
        case "BOOL": self = .bool
        default: return nil
        }
    }

    var byteWidth: Int {
        switch self {
        case .float64, .int64: 8
        case .float32, .int32: 4
        case .float16, .bfloat16, .int16: 2
        case .int8, .uint8, .bool: 1
        }
    }

    /// Little-endian bytes → float32 tensor. `bytes` may be unaligned (memory-mapped files).
    func decode(_ bytes: UnsafeRawBufferPointer, shape: [Int]) -> Tensor {
        let count = shape.reduce(1, *)
        return Tensor.build(shape: shape) { out in
            switch self {
            case .float32:
                if count > 0 { UnsafeMutableRawBufferPointer(out).copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[0..<(count * 4)])) }
                for i in 0..<count { out[i] = Float(bitPattern: UInt32(littleEndian: out[i].bitPattern)) }
            case .float64:
                for i in 0..<count { out[i] = Float(Double(bitPattern: UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))) }
            case .float16:
                for i in 0..<count { out[i] = Float(Float16(bitPattern: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))) }
            case .bfloat16:
                for i in 0..<count {
                    out[i] = Float(bitPattern: UInt32(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16)
                }
            case .int64:
                for i in 0..<count { out[i] = Float(Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))) }
            case .int32:
                for i in 0..<count { out[i] = Float(Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))) }
            case .int16:
                for i in 0..<count { out[i] = Float(Int16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))) }
            case .int8:
                for i in 0..<count { out[i] = Float(bytes.load(fromByteOffset: i, as: Int8.self)) }
            case .uint8, .bool:
                for i in 0..<count { out[i] = Float(bytes[i]) }
            }
        }
    }
}
