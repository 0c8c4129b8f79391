import TensorCore

/// Finds a network's state dict inside a training checkpoint.
///
/// Training scripts rarely save a bare state dict: PyTorch Lightning keeps it under
/// `state_dict`, torchvision's reference scripts under `model` (beside the optimizer's state
/// and the epoch), and `nn.DataParallel` prefixes every name with `module.`. The checkpoint
/// readers join nested names with ".", so such a file reads as `model.module.conv1.weight`.
enum NestedStateDict {
    /// The tensors under the one prefix (ending in ".", or empty) where the most of the
    /// network's parameter `names` are found, with that prefix removed; everything outside it
    /// (an optimizer's state, other metadata) is left out. Unchanged when the top level holds
    /// the most, or no prefix holds more than half of them.
    /// - Throws: `WeightFileError.unsupportedFormat` when two prefixes hold equally many, such
    ///   as a model and its moving-average copy (`model.`, `model_ema.`).
    /// - Complexity: O(total length of the keys).
    static func located(in tensors: [String: Tensor], names: [String], file: String) throws -> [String: Tensor] {
        let wanted = Set(names)
        var found: [Substring: Int] = [:]
        for key in tensors.keys {
            for dot in key.indices where key[dot] == "." && wanted.contains(String(key[key.index(after: dot)...])) {
                found[key[...dot], default: 0] += 1
            }
        }
        let atTop = tensors.keys.filter(wanted.contains).count
        // Below half, the file is another network's (whose error names what it looks like):
        // stem names such as `conv1.weight` recur inside blocks (`layer1.0.conv1.weight`).
        guard let most = found.values.max(), most > atTop, 2 * most > wanted.count else { return tensors }
        let best = found.filter { $0.value == most }.keys.map(String.init).sorted()
        guard best.count == 1, let prefix = best.first else {
            throw WeightFileError.unsupportedFormat(file: file, reason: "it holds \(best.count) state dicts for this network, under "
                + best.map { "'\($0)'" }.joined(separator: ", ") + "; save the one to use on its own")
        }
        return Dictionary(uniqueKeysWithValues: tensors.compactMap { key, tensor in
            key.hasPrefix(prefix) ? (String(key.dropFirst(prefix.count)), tensor) : nil
        })
    }
}
