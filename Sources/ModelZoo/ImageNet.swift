/// The ImageNet-1k classes in the order torchvision and Keras Applications index them
/// (sorted WordNet ids).
public enum ImageNet {
    public struct Class: Hashable, Sendable {
        public let index: Int
        /// WordNet id, e.g. `n01440764`; also the folder name of an ImageFolder layout.
        public let wnid: String
        /// The first of the class's names, e.g. "tench".
        public let label: String
        /// All names, e.g. "tench, Tinca tinca".
        public let names: String
    }

    /// All 1000 classes, by index.
    public static let classes: [Class] = table.split(separator: "\n").enumerated().map { index, line in
        let fields = line.split(separator: "\t", maxSplits: 1)
        let names = String(fields[1])
        return Class(index: index, wnid: String(fields[0]),
                     label: names.split(separator: ",").first.map { String($0) } ?? names, names: names)
    }

    /// Class index by WordNet id.
    public static let indexByWnid: [String: Int] = Dictionary(uniqueKeysWithValues: classes.map { ($0.wnid, $0.index) })
}
