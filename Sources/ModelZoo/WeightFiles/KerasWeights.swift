import CHDF5Shim
import Foundation
import TensorCore

/// Reads Keras HDF5 weight files in the layout of the Keras Applications downloads
/// (`model.save_weights('x.h5')`): a root attribute `layer_names`, and per layer an
/// attribute `weight_names` naming its datasets in the order the layer declares them.
///
/// Layers are matched by name when every layer of the network appears in the file, and
/// otherwise by position among the layers that have weights (auto-generated names such as
/// `conv2d_57` differ between Keras versions; the order does not).
public enum KerasWeights {
    static func read(_ path: String, layers: [KerasLayer]) throws -> [String: Tensor] {
        let file = rc_h5_open(path)
        guard file > 0 else { throw WeightFileError.corrupt(file: path, reason: "not a readable HDF5 file") }
        defer { rc_h5_close(file) }
        guard let layerNames = stringList(file, "/", "layer_names") else {
            throw WeightFileError.unsupportedFormat(file: path, reason: "HDF5 without a 'layer_names' attribute (not a Keras weight file)")
        }
        var fileLayers: [(name: String, weights: [String])] = []
        for name in layerNames {
            guard let weights = stringList(file, "/" + name, "weight_names") else {
                throw WeightFileError.corrupt(file: path, reason: "layer '\(name)' has no 'weight_names' attribute")
            }
            if !weights.isEmpty { fileLayers.append((name, weights)) }
        }
        let byName = Dictionary(fileLayers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let matchByName = layers.allSatisfy { byName[$0.name] != nil }
        var problems: [String] = []
        if !matchByName && fileLayers.count != layers.count {
            problems.append("the file has \(fileLayers.count) layers with weights, the network \(layers.count)")
        }
        var tensors: [String: Tensor] = [:]
        for (index, layer) in layers.enumerated() {
            guard let source = matchByName ? byName[layer.name] : (index < fileLayers.count ? fileLayers[index] : nil) else { break }
            guard source.weights.count == layer.weights.count else {
                problems.append("layer '\(source.name)' has \(source.weights.count) weights, expected \(layer.weights.count) for '\(layer.name)'")
                continue
            }
            for (weightName, weight) in zip(source.weights, layer.weights) {
                let datasetPath = "/\(source.name)/\(weightName)"
                var dims = [Int64](repeating: 0, count: 8)
                let rank = Int(rc_h5_dataset_shape(file, datasetPath, &dims, 8))
                guard rank >= 0 else {
                    problems.append("missing dataset \(datasetPath)")
                    continue
                }
                let shape = dims.prefix(rank).map { Int($0) }
                guard shape == weight.kerasShape else {
                    problems.append("'\(source.name)/\(weightName)' has shape \(shape), expected \(weight.kerasShape) for '\(weight.parameter)'")
                    continue
                }
                var raw = Tensor(shape: shape)
                let status = raw.withUnsafeMutableBufferPointer { rc_h5_read_floats(file, datasetPath, $0.baseAddress, Int64($0.count)) }
                guard status == 0 else { throw WeightFileError.corrupt(file: path, reason: "cannot read dataset \(datasetPath)") }
                tensors[weight.parameter] = convert(raw, weight.layout)
            }
        }
        if !matchByName && fileLayers.count > layers.count {
            problems.append("unexpected layers " + fileLayers[layers.count...].prefix(5).map { "'\($0.name)'" }.joined(separator: ", "))
        }
        if !problems.isEmpty {
            throw WeightFileError.mismatch(file: path, expected: "the network's Keras layers", problems: Array(problems.prefix(25)))
        }
        return tensors
    }

    static func stringList(_ file: Int64, _ object: String, _ attribute: String) -> [String]? {
        var buffer: UnsafeMutablePointer<CChar>?
        let count = rc_h5_string_list_attribute(file, object, attribute, &buffer)
        guard count >= 0 else { return nil }
        defer { rc_h5_free(buffer) }
        var strings: [String] = []
        var cursor = buffer
        for _ in 0..<count {
            let string = String(cString: cursor!)
            strings.append(string)
            cursor = cursor! + string.utf8.count + 1
        }
        return strings
    }

    /// Keras layouts → TensorCore's: HWIO → OIHW, (H, W, C, 1) → (C, 1, H, W), (in, out) → (out, in).
    static func convert(_ tensor: Tensor, _ layout: KerasWeight.Layout) -> Tensor {
        let s = tensor.shape
        switch layout {
        case .vector:
            return tensor
        case .dense:
            return transpose(tensor, rows: s[0], columns: s[1], outputShape: [s[1], s[0]])
        case .convolution, .depthwise:
            // Both are (H·W) × (C·K) matrices in Keras and (C·K) × (H·W) ones in ours,
            // with (C, K) = (in, out) for Conv2D, whose OIHW puts out first.
            let (kernel, inputs, outputs) = (s[0] * s[1], s[2], s[3])
            if layout == .depthwise { return transpose(tensor, rows: kernel, columns: inputs * outputs, outputShape: [inputs, 1, s[0], s[1]]) }
            return Tensor.build(shape: [outputs, inputs, s[0], s[1]]) { out in
                tensor.withUnsafeBufferPointer { source in
                    for k in 0..<kernel {
                        for i in 0..<inputs {
                            let row = source.baseAddress! + (k * inputs + i) * outputs
                            for o in 0..<outputs { out[(o * inputs + i) * kernel + k] = row[o] }
                        }
                    }
                }
            }
        }
    }

    /// A rows × columns row-major matrix transposed, viewed with `outputShape`.
    static func transpose(_ tensor: Tensor, rows: Int, columns: Int, outputShape: [Int]) -> Tensor {
        Tensor.build(shape: outputShape) { out in
            tensor.withUnsafeBufferPointer { source in
                for r in 0..<rows {
                    for c in 0..<columns { out[c * rows + r] = source[r * columns + c] }
                }
            }
        }
    }
}
