import Foundation
import TensorCore

/// Recognises a weight file by its first bytes and reads it with the matching reader.
public enum WeightFiles {
    public enum Format: String, Sendable, CaseIterable {
        case safetensors
        case torchZip = "pth (zip)"
        case torchLegacy = "pth (legacy)"
        case kerasH5 = "h5"
        /// Keras 3's `.keras` zip (its `model.weights.h5`).
        case kerasArchive = "keras"
    }

    /// The format of a file, from its signature.
    public static func format(of path: String) throws -> Format {
        if let reason = FileFailure.unreadableReason(path) { throw WeightFileError.unreadable(file: path, reason: reason) }
        guard let handle = FileHandle(forReadingAtPath: path) else { throw WeightFileError.unreadable(file: path, reason: "cannot be opened") }
        defer { try? handle.close() }
        let head = [UInt8]((try? handle.read(upToCount: 16)) ?? Data())
        if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) { return KerasWeights.isArchive(path) ? .kerasArchive : .torchZip }
        if head.starts(with: [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]) { return .kerasH5 }
        if head.starts(with: [0x80]) && head.count >= 2 && head[1] <= 5 { return .torchLegacy }
        if head.count > 8 && head[8] == UInt8(ascii: "{") { return .safetensors }
        throw WeightFileError.unsupportedFormat(file: path, reason: "not a safetensors, PyTorch (.pth), Keras HDF5 (.h5) or .keras file")
    }

    /// Named tensors in TensorCore's layout. Keras files are mapped onto the definition's
    /// parameter names (they store layers, not a flat dictionary); in the others, a state dict
    /// nested in a training checkpoint is found (`NestedStateDict`).
    static func read(_ path: String, for definition: NetworkDefinition) throws -> [String: Tensor] {
        let names = definition.parameters.map(\.name)
        let kind = try format(of: path)
        switch kind {
        case .safetensors: return try NestedStateDict.located(in: SafeTensors.read(path), names: names, file: path)
        case .torchZip, .torchLegacy: return try NestedStateDict.located(in: TorchCheckpoint.read(path), names: names, file: path)
        case .kerasH5, .kerasArchive:
            // Matched by position, a Keras file would fill the torchvision architecture's
            // layers too, and give another network's predictions without a word.
            guard definition.config.flavor == .keras else {
                throw WeightFileError.unsupportedFormat(file: path, reason: "a Keras weight file, for the keras flavour "
                    + "(the torch flavour reads PyTorch .pth and .safetensors state dicts): pass --flavor keras")
            }
            return try kind == .kerasH5 ? KerasWeights.read(path, layers: definition.kerasLayers)
                : KerasWeights.readArchive(path, layers: definition.kerasLayers)
        }
    }
}
