import CHDF5Shim
import Foundation
import TensorCore

extension SafeTensors {
    /// The bytes of a `.safetensors` file holding float32 tensors: keys sorted, data in key
    /// order, header padded with spaces to a multiple of 8 bytes (as the reference writer does).
    public static func encode(_ tensors: [String: Tensor], metadata: [String: String] = [:]) throws -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var body = Data()
        for name in tensors.keys.sorted() {
            let tensor = tensors[name]!
            let begin = body.count
            tensor.withUnsafeBufferPointer { body.append(Data(buffer: $0)) }
            header[name] = ["dtype": "F32", "shape": tensor.shape, "data_offsets": [begin, body.count]] as [String: Any]
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        json.append(Data(repeating: 0x20, count: (8 - json.count % 8) % 8))
        var data = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(json)
        data.append(body)
        return data
    }

    /// Writes a `.safetensors` file atomically.
    public static func write(_ tensors: [String: Tensor], to path: String, metadata: [String: String] = [:]) throws {
        do { try encode(tensors, metadata: metadata).write(to: URL(fileURLWithPath: path), options: .atomic) } catch let error as WeightFileError {
            throw error
        } catch {
            throw WeightFileError.unwritable(file: path, reason: FileFailure.writeReason(path, error))
        }
    }
}

extension KerasWeights {
    /// Writes a Keras `.h5` weight file in the layout of `model.save_weights('x.h5')`
    /// (root attribute `layer_names`; per layer a group with `weight_names` and one
    /// dataset per weight, kernels in Keras's HWIO order), readable by Keras and by
    /// `KerasWeights.read`. The file appears atomically (written beside, then renamed).
    public static func write(_ parameters: Parameters, definition: NetworkDefinition, to path: String) throws {
        try write(parameters, layers: definition.kerasLayers, of: definition.config.architecture.rawValue, to: path)
    }

    /// Writes `layers` (a network's, or some of them) as `write(_:definition:to:)` does.
    /// - Parameter network: the architecture named in errors.
    static func write(_ parameters: Parameters, layers: [KerasLayer], of network: String, to path: String) throws {
        let temporary = path + ".partial-\(getpid())"
        let file = rc_h5_create(temporary)
        guard file > 0 else { throw WeightFileError.unwritable(file: path, reason: FileFailure.writeReason(path, nil)) }
        var closed = false
        defer { if !closed { rc_h5_close(file); try? FileManager.default.removeItem(atPath: temporary) } }
        func check(_ status: Int32, _ what: String) throws {
            if status != 0 { throw WeightFileError.unwritable(file: path, reason: "HDF5 write failed: \(what)") }
        }
        try check(writeStrings(file, "/", "layer_names", layers.map(\.name)), "layer_names")
        try check(writeStrings(file, "/", "backend", ["tensorflow"]), "backend")
        try check(writeStrings(file, "/", "keras_version", ["2.15.0"]), "keras_version")
        for layer in layers {
            try check(rc_h5_create_group(file, "/" + layer.name), "group \(layer.name)")
            let names = layer.weights.map { "\(layer.name)/\($0.parameter.split(separator: "/").last!):0" }
            try check(writeStrings(file, "/" + layer.name, "weight_names", names), "weight_names of \(layer.name)")
            for (weight, name) in zip(layer.weights, names) {
                guard let tensor = parameters[weight.parameter] else {
                    throw WeightFileError.mismatch(file: path, expected: "parameters of \(network)",
                                                   problems: ["missing '\(weight.parameter)'"])
                }
                let keras = toKeras(tensor, weight.layout)
                let group = "/" + layer.name + "/" + layer.name
                try check(rc_h5_ensure_group(file, group), "group \(group)")
                let dims = keras.shape.map { Int64($0) }
                let status = keras.withUnsafeBufferPointer { values in
                    dims.withUnsafeBufferPointer { rc_h5_write_floats(file, "/" + layer.name + "/" + name, $0.baseAddress, Int32(dims.count), values.baseAddress) }
                }
                try check(status, "dataset \(name)")
            }
        }
        rc_h5_close(file)
        closed = true
        // rename(2) replaces an existing file in one step: the old weights stay until the new are whole.
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: temporary)
            throw WeightFileError.unwritable(file: path, reason: reason)
        }
    }

    static func writeStrings(_ file: Int64, _ object: String, _ attribute: String, _ strings: [String]) -> Int32 {
        var pointers = strings.map { strdup($0) }
        defer { pointers.forEach { free($0) } }
        return pointers.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buffer.count) {
                rc_h5_write_string_list_attribute(file, object, attribute, $0, Int64(strings.count))
            }
        }
    }
}

extension KerasWeights {
    /// Our OIHW / (out, in) layouts back to Keras's (inverse of `convert`).
    static func toKeras(_ tensor: Tensor, _ layout: KerasWeight.Layout) -> Tensor {
        let s = tensor.shape
        switch layout {
        case .vector: return tensor
        case .dense:
            return Tensor.build(shape: [s[1], s[0]]) { out in tensor.withUnsafeBufferPointer { t in
                for o in 0..<s[0] { for i in 0..<s[1] { out[i * s[0] + o] = t[o * s[1] + i] } }
            } }
        case .convolution:
            let (o, i, h, w) = (s[0], s[1], s[2], s[3])
            return Tensor.build(shape: [h, w, i, o]) { out in tensor.withUnsafeBufferPointer { t in
                for a in 0..<o { for b in 0..<i { for y in 0..<h { for x in 0..<w {
                    out[((y * w + x) * i + b) * o + a] = t[((a * i + b) * h + y) * w + x]
                } } } }
            } }
        case .depthwise:
            let (c, h, w) = (s[0], s[2], s[3])
            return Tensor.build(shape: [h, w, c, 1]) { out in tensor.withUnsafeBufferPointer { t in
                for a in 0..<c { for y in 0..<h { for x in 0..<w { out[(y * w + x) * c + a] = t[(a * h + y) * w + x] } } }
            } }
        }
    }
}
