/// A weight file that cannot be used, naming the file and what is wrong with it.
public enum WeightFileError: Error, CustomStringConvertible, Equatable {
    case unreadable(file: String, reason: String)
    case unwritable(file: String, reason: String)
    case corrupt(file: String, reason: String)
    case unsupportedFormat(file: String, reason: String)
    /// A pickle referred to a global outside the allowlist; nothing was executed.
    case forbiddenGlobal(file: String, global: String)
    /// The tensors do not fit the network. Every problem is listed at once.
    case mismatch(file: String, expected: String, problems: [String])

    public var description: String {
        switch self {
        case let .unreadable(file, reason): "cannot read weight file \(file): \(reason)"
        case let .unwritable(file, reason): "cannot write weight file \(file): \(reason)"
        case let .corrupt(file, reason): "corrupt weight file \(file): \(reason)"
        case let .unsupportedFormat(file, reason): "unsupported weight file \(file): \(reason)"
        case let .forbiddenGlobal(file, global):
            "refusing to load \(file): its pickle refers to '\(global)', which is not a tensor, storage or dictionary "
                + "(loading never executes code from a weight file)"
        case let .mismatch(file, expected, problems):
            "weight file \(file) does not fit \(expected): " + problems.joined(separator: "; ")
        }
    }
}
