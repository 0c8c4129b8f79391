import Foundation

/// Why reading or writing a file failed, in words that say what to fix ("no such file", "its
/// folder /x does not exist") rather than Foundation's "The operation could not be completed".
public enum FileFailure {
    /// The reason reading `path` failed with `error`, from the file system's state.
    public static func readReason(_ path: String, _ error: any Error) -> String {
        unreadableReason(path) ?? plain(error)
    }

    /// What stops `path` being read as a file, from the file system's state alone; nil for a
    /// readable regular file. Worth asking before opening: opening a named pipe blocks until
    /// something writes to it.
    public static func unreadableReason(_ path: String) -> String? {
        let manager = FileManager.default
        var isDirectory: ObjCBool = false
        if !manager.fileExists(atPath: path, isDirectory: &isDirectory) { return "no such file" }
        if isDirectory.boolValue { return "it is a folder, not a file" }
        if let type = try? manager.attributesOfItem(atPath: path)[.type] as? FileAttributeType, type != .typeRegular {
            return "it is not a regular file (a device, pipe or socket)"
        }
        if !manager.isReadableFile(atPath: path) { return "permission denied" }
        return nil
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
