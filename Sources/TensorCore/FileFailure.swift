import Foundation

/// Why reading or writing a file failed, in words that say what to fix ("no such file", "its
/// folder /x does not exist") rather than Foundation's "The operation could not be completed".
public enum FileFailure {
    /// The reason reading `path` failed with `error`, from the file system's state.
    public static func readReason(_ path: String, _ error: any Error) -> String {
        let manager = FileManager.default
        var isDirectory: ObjCBool = false
        if !manager.fileExists(atPath: path, isDirectory: &isDirectory) { return "no such file" }
        if isDirectory.boolValue { return "it is a folder, not a file" }
        if !manager.isReadableFile(atPath: path) { return "permission denied" }
        return plain(error)
    }

    /// The reason writing `path` failed (or would fail) with `error`, from the file system's state.
    public static func writeReason(_ path: String, _ error: (any Error)?) -> String {
        let manager = FileManager.default
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        if manager.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue { return "it is a folder" }
        if !manager.fileExists(atPath: folder, isDirectory: &isDirectory) { return "its folder \(folder) does not exist" }
        if !isDirectory.boolValue { return "\(folder) is not a folder" }
        if !manager.isWritableFile(atPath: folder) { return "permission denied in \(folder)" }
        return error.map(plain) ?? "not writable"
    }

    /// Foundation's description without its "The operation could not be completed." preamble
    /// ("There isn’t enough space." for a full disk).
    static func plain(_ error: any Error) -> String {
        let text = (error as NSError).localizedDescription
        let preamble = "The operation could not be completed. "
        return text.hasPrefix(preamble) && text.count > preamble.count ? String(text.dropFirst(preamble.count)) : text
    }
}
