import Foundation
import TensorCore
import ZIPFoundation

/// Reads PyTorch state dicts saved by `torch.save`: the zip format (PyTorch ≥ 1.6) and the
/// legacy format (a run of pickles followed by raw storages), through the restricted
/// `Unpickler`. Nothing in the file is executed.
public enum TorchCheckpoint {
    /// The flat name → tensor dictionary of a state dict (nested dicts are joined with ".").
    public static func read(_ path: String) throws -> [String: Tensor] {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw WeightFileError.unreadable(file: path, reason: FileFailure.readReason(path, error))
        }
        if data.starts(with: [0x50, 0x4B, 0x03, 0x04]) { return try readZip(path) }
        return try readLegacy(data, name: path)
    }

    // MARK: Zip format

    static func readZip(_ path: String) throws -> [String: Tensor] {
        let archive = try Archive.weightFile(path)
        guard let pickleEntry = archive.first(where: { $0.path.hasSuffix("data.pkl") && $0.path.split(separator: "/").count == 2 })
                ?? archive.first(where: { $0.path == "data.pkl" }) else {
            throw WeightFileError.corrupt(file: path, reason: "zip archive without data.pkl (not a torch.save file)")
        }
        let prefix = String(pickleEntry.path.dropLast("data.pkl".count))
        func contents(_ entry: Entry) throws -> Data { try archive.checkedContents(of: entry, file: path) }
        if let order = archive[prefix + "byteorder"], String(decoding: try contents(order), as: UTF8.self) != "little" {
            throw WeightFileError.unsupportedFormat(file: path, reason: "big-endian tensors")
        }
        var unpickler = Unpickler(bytes: [UInt8](try contents(pickleEntry)), file: path)
        var storages: [String: Unpickler.StorageReference] = [:]
        let root = try unpickler.load { id in
            // ('storage', storage_type, key, location, numel)
            guard let fields = id.elements, fields.count >= 5, fields[0].string == "storage",
                  case let .global(type) = fields[1], let key = fields[2].string, let count = fields[4].int else {
                throw WeightFileError.corrupt(file: path, reason: "malformed storage reference")
            }
            let reference = Unpickler.StorageReference(key: key, type: type, count: count)
            storages[key] = reference
            return .storage(reference)
        }
        var loaded: [String: Data] = [:]
        for key in storages.keys {
            guard let entry = archive[prefix + "data/" + key] else {
                throw WeightFileError.corrupt(file: path, reason: "storage \(key) is missing from the archive")
            }
            loaded[key] = try contents(entry)
        }
        return try materialize(root, storages: loaded, file: path)
    }

    // MARK: Legacy format

    /// torch.save's pre-1.6 magic number, 0x1950a86a20f9469cfc6c, little-endian.
    static let legacyMagic: [UInt8] = [0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]

    static func readLegacy(_ data: Data, name: String) throws -> [String: Tensor] {
        let bytes = [UInt8](data)
        var unpickler = Unpickler(bytes: bytes, file: name)
        let noPersistent: (Unpickler.Value) throws -> Unpickler.Value = { _ in
            throw WeightFileError.corrupt(file: name, reason: "unexpected storage reference in the header")
        }
        guard case let .bytes(magic) = try unpickler.load(persistent: noPersistent), magic == legacyMagic else {
            throw WeightFileError.unsupportedFormat(file: name, reason: "a pickle, but not a torch.save file (no magic number)")
        }
        guard try unpickler.load(persistent: noPersistent).int == 1001 else {
            throw WeightFileError.unsupportedFormat(file: name, reason: "unknown legacy torch.save protocol version")
        }
        if case let .dict(info) = try unpickler.load(persistent: noPersistent),
           let little = info.first(where: { $0.0.string == "little_endian" })?.1, case .bool(false) = little {
            throw WeightFileError.unsupportedFormat(file: name, reason: "big-endian tensors")
        }
        var storages: [String: Unpickler.StorageReference] = [:]
        let root = try unpickler.load { id in
            // ('storage', storage_type, root_key, location, size, view_metadata)
            guard let fields = id.elements, fields.count >= 5, fields[0].string == "storage",
                  case let .global(type) = fields[1], let key = fields[2].string, let count = fields[4].int else {
                throw WeightFileError.corrupt(file: name, reason: "malformed storage reference")
            }
            if fields.count > 5, case .tuple = fields[5] {
                throw WeightFileError.unsupportedFormat(file: name, reason: "storage views (legacy view metadata)")
            }
            let reference = Unpickler.StorageReference(key: key, type: type, count: count)
            storages[key] = reference
            return .storage(reference)
        }
        guard let keys = try unpickler.load(persistent: noPersistent).elements?.compactMap(\.string) else {
            throw WeightFileError.corrupt(file: name, reason: "missing storage key list")
        }
        var position = unpickler.position
        var loaded: [String: Data] = [:]
        for key in keys {
            guard position + 8 <= bytes.count else { throw WeightFileError.corrupt(file: name, reason: "truncated before storage \(key)") }
            let count = Int(Int64(littleEndian: bytes[position..<(position + 8)].withUnsafeBytes { $0.loadUnaligned(as: Int64.self) }))
            position += 8
            let width = try elementType(storages[key]?.type ?? "torch.FloatStorage", file: name).byteWidth
            guard count >= 0, position + count * width <= bytes.count else {
                throw WeightFileError.corrupt(file: name, reason: "truncated storage \(key) (\(count) elements)")
            }
            loaded[key] = data.subdata(in: position..<(position + count * width))
            position += count * width
        }
        return try materialize(root, storages: loaded, file: name)
    }

    // MARK: Tensors

    static func elementType(_ storageType: String, file: String) throws -> ScalarType {
        switch storageType {
        case "torch.FloatStorage": return .float32
        case "torch.DoubleStorage": return .float64
        case "torch.HalfStorage": return .float16
        case "torch.BFloat16Storage": return .bfloat16
        case "torch.LongStorage": return .int64
        case "torch.IntStorage": return .int32
        case "torch.ShortStorage": return .int16
        case "torch.CharStorage": return .int8
        case "torch.ByteStorage": return .uint8
        case "torch.BoolStorage": return .bool
        default: throw WeightFileError.unsupportedFormat(file: file, reason: "storage type \(storageType)")
        }
    }

    /// Turns the unpickled state dict into tensors, copying strided views densely.
    static func materialize(_ root: Unpickler.Value, storages: [String: Data], file: String) throws -> [String: Tensor] {
        var result: [String: Tensor] = [:]
        func visit(_ value: Unpickler.Value, prefix: String) throws {
            switch value {
            case let .dict(pairs):
                for (key, item) in pairs {
                    guard let name = key.string else { continue }
                    try visit(item, prefix: prefix.isEmpty ? name : prefix + "." + name)
                }
            case let .tensor(reference):
                guard let data = storages[reference.storage.key] else {
                    throw WeightFileError.corrupt(file: file, reason: "tensor '\(prefix)' refers to missing storage \(reference.storage.key)")
                }
                let type = try elementType(reference.storage.type, file: file)
                guard let count = Graph.elementCount(reference.shape), reference.offset >= 0,
                      let span = storageSpan(shape: reference.shape, strides: reference.strides),
                      count == 0 || (span <= data.count / type.byteWidth && reference.offset <= data.count / type.byteWidth - span) else {
                    throw WeightFileError.corrupt(file: file, reason: "tensor '\(prefix)' \(reference.shape) reads past its storage")
                }
                let contiguous = reference.strides == contiguousStrides(reference.shape)
                result[prefix] = data.withUnsafeBytes { raw in
                    if contiguous {
                        let start = reference.offset * type.byteWidth
                        return type.decode(UnsafeRawBufferPointer(rebasing: raw[start..<(start + count * type.byteWidth)]), shape: reference.shape)
                    }
                    let whole = type.decode(raw, shape: [data.count / type.byteWidth])
                    return gather(whole, offset: reference.offset, shape: reference.shape, strides: reference.strides)
                }
            default:
                break // hyper-parameters or metadata stored beside the tensors
            }
        }
        try visit(root, prefix: "")
        return result
    }

    /// Elements from a tensor's first to its last storage element, plus one (0 when it has
    /// none): nil when the pickle's shape and strides are impossible (negative, mismatched, or
    /// overflowing), which reading them would turn into an out-of-bounds access.
    static func storageSpan(shape: [Int], strides: [Int]) -> Int? {
        guard shape.count == strides.count, shape.allSatisfy({ $0 >= 0 }), strides.allSatisfy({ $0 >= 0 }) else { return nil }
        if shape.contains(0) { return 0 }
        var span = 1
        for (size, stride) in zip(shape, strides) {
            let (step, overflow) = (size - 1).multipliedReportingOverflow(by: stride)
            guard !overflow, case let (sum, carry) = span.addingReportingOverflow(step), !carry else { return nil }
            span = sum
        }
        return span
    }

    static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        for index in stride(from: shape.count - 2, through: 0, by: -1) { strides[index] = strides[index + 1] * shape[index + 1] }
        return strides
    }

    static func gather(_ source: Tensor, offset: Int, shape: [Int], strides: [Int]) -> Tensor {
        let values = source.scalars
        let count = shape.reduce(1, *)
        return Tensor.build(shape: shape) { out in
            var index = [Int](repeating: 0, count: shape.count)
            for flat in 0..<count {
                out[flat] = values[offset + zip(index, strides).reduce(0) { $0 + $1.0 * $1.1 }]
                var axis = shape.count - 1
                while axis >= 0 {
                    index[axis] += 1
                    if index[axis] < shape[axis] { break }
                    index[axis] = 0
                    axis -= 1
                }
            }
        }
    }
}
