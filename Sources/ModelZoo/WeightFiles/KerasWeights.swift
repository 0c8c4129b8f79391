import CHDF5Shim
import Foundation
import TensorCore
import ZIPFoundation

/// Reads Keras HDF5 weight files in the three layouts Keras writes:
/// - weights alone in the layout of the Keras Applications downloads and of Keras 2's
///   `model.save_weights('x.h5')`: a root attribute `layer_names`, and per layer an
///   attribute `weight_names` naming its datasets in the order the layer declares them;
/// - a whole model saved as HDF5 (`model.save('x.h5')`, Keras 2 and 3): the same under the
///   group `/model_weights` (the model's configuration beside it is not read);
/// - Keras 3's `model.save_weights('x.weights.h5')`: a group `/layers/NAME/vars` per layer
///   with datasets `0`, `1`, … in declaration order, NAME being the layer's class in snake
///   case numbered in model order (`conv2d`, `conv2d_1`, …, `batch_normalization_3`); and
///   the same as `model.weights.h5` inside Keras 3's `.keras` zip (`model.save('x.keras')`).
///
/// In the first two, layers are matched by name when every layer of the network appears in
/// the file, and otherwise by position among the layers that have weights (auto-generated
/// names such as `conv2d_57` differ between Keras versions; the order does not).
public enum KerasWeights {
    /// One layer's weights in the file: its name there and its datasets' paths.
    private struct FileLayer {
        let name: String
        let datasets: [String]
    }

    /// The entry of a `.keras` zip that holds the weights.
    static let archiveWeights = "model.weights.h5"

    /// Whether the zip at `path` is a `.keras` file (it holds `model.weights.h5`).
    static func isArchive(_ path: String) -> Bool {
        (try? Archive.weightFile(path))?[archiveWeights] != nil
    }

    /// Reads the weights of a `.keras` zip: its `model.weights.h5`, extracted (CRC-checked)
    /// to a temporary file that libhdf5 opens; errors name the zip.
    static func readArchive(_ path: String, layers: [KerasLayer]) throws -> [String: Tensor] {
        let archive = try Archive.weightFile(path)
        guard let entry = archive[archiveWeights] else {
            throw WeightFileError.corrupt(file: path, reason: "zip archive without \(archiveWeights) (not a .keras file)")
        }
        let extracted = FileManager.default.temporaryDirectory.appendingPathComponent("robustctl-\(UUID().uuidString).weights.h5")
        defer { try? FileManager.default.removeItem(at: extracted) }
        try archive.checkedExtract(entry, to: extracted, file: path)
        return try read(extracted.path, layers: layers, naming: path)
    }

    /// Reads the weights of an HDF5 file in any of the layouts above, strictly: missing and
    /// unexpected weights, and weights of another rank, are reported together (other extents
    /// are left to `Model`'s check). The read is rehearsed in a child process first
    /// (`CrashIsolation`): a file that makes libhdf5 crash is refused as damaged instead of
    /// ending the process.
    /// - Parameter source: the file to name in errors (the zip it was extracted from).
    static func read(_ path: String, layers: [KerasLayer], naming source: String? = nil) throws -> [String: Tensor] {
        // A generous limit for the child (a read takes about 1 s per 100 MB here): one that
        // hangs (a lock held by another thread at the fork) costs that long, then the read
        // happens in process as before.
        let bytes = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
        let limit = 10 + Double(bytes) / 20e6
        if case let .crashed(signal) = CrashIsolation.rehearse(limit: limit, { _ = try readInProcess(path, layers: layers, naming: source) }) {
            throw WeightFileError.corrupt(file: source ?? path, reason: "libhdf5 crashed reading it (signal \(signal)): a damaged HDF5 file")
        }
        return try readInProcess(path, layers: layers, naming: source)
    }

    private static func readInProcess(_ path: String, layers: [KerasLayer], naming source: String?) throws -> [String: Tensor] {
        let file = rc_h5_open(path)
        let path = source ?? path
        guard file > 0 else { throw WeightFileError.corrupt(file: path, reason: "not a readable HDF5 file") }
        defer { rc_h5_close(file) }
        var problems: [String] = []
        let sources: [FileLayer?]
        let named = ["", "/model_weights"].lazy.compactMap { root in stringList(file, root.isEmpty ? "/" : root, "layer_names").map { (root, $0) } }
        if let (root, names) = named.first {
            sources = try namedLayers(file, path, root: root, names: names, layers: layers, problems: &problems)
        } else if let members = groupMembers(file, "/layers") {
            sources = numberedLayers(file, members: members, layers: layers, problems: &problems)
        } else {
            throw WeightFileError.unsupportedFormat(file: path, reason: "HDF5 without Keras weights (no 'layer_names' attribute "
                + "at the root or in /model_weights, and no Keras 3 /layers group)")
        }
        var tensors: [String: Tensor] = [:]
        for (layer, source) in zip(layers, sources) {
            guard let source else { continue }
            guard source.datasets.count == layer.weights.count else {
                problems.append("layer '\(source.name)' has \(source.datasets.count) weights, expected \(layer.weights.count) for '\(layer.name)'")
                continue
            }
            for (datasetPath, weight) in zip(source.datasets, layer.weights) {
                var dims = [Int64](repeating: 0, count: 8)
                let rank = Int(rc_h5_dataset_shape(file, datasetPath, &dims, Int32(dims.count)))
                if rank == -2 {
                    throw WeightFileError.unsupportedFormat(file: path, reason: "dataset \(datasetPath) keeps its values outside the file "
                        + "(an external link, external storage or a virtual dataset); weights are read only from the file itself")
                }
                guard rank >= 0 else {
                    problems.append("missing dataset \(datasetPath)")
                    continue
                }
                guard rank == weight.kerasShape.count else {
                    let stored = rank <= dims.count ? "shape \(dims.prefix(rank).map { Int($0) })" : "\(rank) dimensions"
                    problems.append("'\(datasetPath.dropFirst())' has \(stored), expected shape \(weight.kerasShape) for '\(weight.parameter)'")
                    continue
                }
                // Other extents of the right rank are read and laid out as ours: the model's
                // strict check names them, and can tell which width and class count they fit.
                // Up to a bound, so that a crafted (or compressed) dataset cannot ask for more
                // memory than another width or classifier of the network would.
                let shape = dims.prefix(rank).map { Int($0) }
                let expected = weight.kerasShape.reduce(1, *)
                guard let count = Graph.elementCount(shape), count <= 16 * expected + (1 << 22) else {
                    problems.append("'\(datasetPath.dropFirst())' has shape \(shape), expected \(weight.kerasShape) for '\(weight.parameter)'")
                    continue
                }
                var raw = Tensor(shape: shape)
                let status = raw.withUnsafeMutableBufferPointer { rc_h5_read_floats(file, datasetPath, $0.baseAddress, Int64($0.count)) }
                guard status == 0 else { throw WeightFileError.corrupt(file: path, reason: "cannot read dataset \(datasetPath)") }
                tensors[weight.parameter] = convert(raw, weight.layout)
            }
        }
        if !problems.isEmpty {
            throw WeightFileError.mismatch(file: path, expected: "the network's Keras layers", problems: Array(problems.prefix(25)))
        }
        return tensors
    }

    /// The file layers of the `layer_names` layouts (at the root or under `/model_weights`;
    /// `names` the attribute's list), one per network layer (nil past the file's end);
    /// unmatched layers go to `problems`.
    private static func namedLayers(_ file: Int64, _ path: String, root: String, names: [String], layers: [KerasLayer],
                                    problems: inout [String]) throws -> [FileLayer?] {
        var fileLayers: [FileLayer] = []
        for name in names {
            guard let weights = stringList(file, "\(root)/\(name)", "weight_names") else {
                throw WeightFileError.corrupt(file: path, reason: "layer '\(name)' has no 'weight_names' attribute")
            }
            fileLayers += layersNamed(in: weights).map { inner, weights in
                FileLayer(name: inner ?? name, datasets: weights.map { "\(root)/\(name)/\($0)" })
            }
        }
        let byName = Dictionary(fileLayers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let networkNames = Set(layers.map(\.name))
        if layers.allSatisfy({ byName[$0.name] != nil }) {
            // Weighted layers beyond the network's are another network's (a deeper ResNet holds
            // every ResNet50 name) or a head that is not the classifier.
            let extra = fileLayers.filter { !networkNames.contains($0.name) }
            if !extra.isEmpty { problems.append("unexpected " + listing(extra.map(\.name), "layer")) }
            return layers.map { byName[$0.name] }
        }
        if fileLayers.allSatisfy({ networkNames.contains($0.name) }) {
            // The file's layers are the network's, some missing: name them rather than fall back
            // to positions.
            let missing = layers.filter { byName[$0.name] == nil }
            let headless = missing.count == 1 && missing[0].name == layers.last?.name
            problems.append("missing " + listing(missing.map(\.name), "layer")
                + (headless ? " (the classifier: weights without it, like Keras's *_notop.h5 files, cannot classify)" : ""))
            return layers.map { byName[$0.name] }
        }
        if fileLayers.count != layers.count {
            problems.append("the file has \(fileLayers.count) layers with weights, the network \(layers.count)")
        }
        if fileLayers.count > layers.count {
            problems.append("unexpected " + listing(fileLayers[layers.count...].map(\.name), "layer"))
        }
        return layers.indices.map { $0 < fileLayers.count ? fileLayers[$0] : nil }
    }

    /// "layer 'a'" or "layers 'a', 'b', …" (the first five).
    private static func listing(_ names: [String], _ noun: String) -> String {
        (names.count == 1 ? "\(noun) " : "\(noun)s ") + names.prefix(5).map { "'\($0)'" }.joined(separator: ", ") + (names.count > 5 ? ", …" : "")
    }

    /// A file layer's weight names split by the layer they belong to. A model nested as one
    /// layer (a Keras Applications base inside a fine-tuning script's Sequential model) lists
    /// its inner layers' weights, `Conv1/kernel:0`, `bn_Conv1/gamma:0`, …, trainable ones
    /// first: two or more distinct prefixes before "/" give one (name, weights) per inner layer
    /// in order of first appearance. Otherwise the one layer, unnamed (nil); none when empty.
    static func layersNamed(in weights: [String]) -> [(name: String?, weights: [String])] {
        let prefixes = weights.map { weight in weight.firstIndex(of: "/").map { String(weight[..<$0]) } }
        guard prefixes.allSatisfy({ $0 != nil }), Set(prefixes).count >= 2 else { return weights.isEmpty ? [] : [(nil, weights)] }
        var order: [String] = []
        var grouped: [String: [String]] = [:]
        for (prefix, weight) in zip(prefixes.map { $0! }, weights) {
            if grouped[prefix] == nil { order.append(prefix) }
            grouped[prefix, default: []].append(weight)
        }
        return order.map { ($0, grouped[$0]!) }
    }

    /// The file layers of Keras 3's `.weights.h5` layout, one per network layer: each layer's
    /// group named by its class and its number among the network's layers of that class, under
    /// /layers or, for a model nested as one layer (a Keras Applications base inside a
    /// fine-tuning script's Sequential model), under /layers/<its group>/layers, where Keras
    /// numbers its layers. Layers in the file (`members`: the groups under /layers) with
    /// weights that no network layer takes go to `problems`.
    private static func numberedLayers(_ file: Int64, members: [String], layers: [KerasLayer], problems: inout [String]) -> [FileLayer?] {
        let containers = ["layers"] + members.filter { groupMembers(file, "/layers/\($0)/layers") != nil }.map { "layers/\($0)/layers" }
        var counts: [String: Int] = [:]
        let sources = layers.map { layer -> FileLayer? in
            let className = layer.kerasClassName
            let number = counts[className, default: 0]
            counts[className] = number + 1
            let name = number == 0 ? className : "\(className)_\(number)"
            let found = containers.lazy.compactMap { container in
                groupMembers(file, "/\(container)/\(name)/vars").map { ("\(container)/\(name)", $0) }
            }.first
            guard let (group, variables) = found else {
                problems.append("missing layer group layers/\(name) for '\(layer.name)'")
                return nil
            }
            // Datasets are named 0, 1, …; listed in name order, 10 would come before 2.
            return FileLayer(name: group, datasets: variables.indices.map { "/\(group)/vars/\($0)" })
        }
        let taken = Set(sources.compactMap { $0?.name })
        let unexpected = containers.flatMap { container in
            (groupMembers(file, "/\(container)") ?? []).map { "\(container)/\($0)" }.filter {
                !taken.contains($0) && !(groupMembers(file, "/\($0)/vars") ?? []).isEmpty
            }
        }
        if !unexpected.isEmpty {
            problems.append("unexpected " + listing(unexpected, "layer"))
        }
        return sources
    }

    static func groupMembers(_ file: Int64, _ group: String) -> [String]? {
        var buffer: UnsafeMutablePointer<CChar>?
        let count = rc_h5_group_members(file, group, &buffer)
        guard count >= 0 else { return nil }
        defer { rc_h5_free(buffer) }
        return unpack(buffer, count: Int(count))
    }

    static func stringList(_ file: Int64, _ object: String, _ attribute: String) -> [String]? {
        var buffer: UnsafeMutablePointer<CChar>?
        let count = rc_h5_string_list_attribute(file, object, attribute, &buffer)
        guard count >= 0 else { return nil }
        defer { rc_h5_free(buffer) }
        return unpack(buffer, count: Int(count))
    }

    /// `count` NUL-terminated strings stored one after another.
    private static func unpack(_ buffer: UnsafeMutablePointer<CChar>?, count: Int) -> [String] {
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
