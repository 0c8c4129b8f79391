import Foundation
import TensorCore

/// Creates the folder if needed and checks that it is writable, before any work starts.
func prepareOutputDirectory(_ path: String) throws -> URL {
    let url = URL(fileURLWithPath: path)
    do {
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        try probeWrite(in: url)
    } catch {
        // Why the folder, or a file in it, cannot be created.
        let failed = FileManager.default.fileExists(atPath: path) ? url.appendingPathComponent("file").path : path
        throw CommandError("cannot write to output folder \(path): \(FileFailure.writeReason(failed, error))")
    }
    return url
}

/// Checks, before any work starts, that the file `path` can be written (creating its folder
/// if needed), so that minutes of calibration, training or evaluation are not lost to a
/// mistyped --out.
func checkOutputFile(_ path: String) throws {
    let url = URL(fileURLWithPath: path)
    do {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw CocoaError(.fileWriteNoPermission)
        }
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try probeWrite(in: url.deletingLastPathComponent())
    } catch {
        throw CommandError("cannot write \(path): \(FileFailure.writeReason(path, error))")
    }
}

/// Refuses an output file that is one of the command's inputs (symbolic links followed): the
/// result would replace what it was made from — `convert --out` the weight file, `select`'s
/// labels.csv the dataset's own.
func refuseOverwriting(input: String, with output: String, option: String) throws {
    let resolved = { (path: String) in URL(fileURLWithPath: path).resolvingSymlinksInPath().path }
    if resolved(input) == resolved(output) {
        throw CommandError("\(output) is \(option) \(input), which this command reads: writing there would replace it; choose another --out")
    }
}

private func probeWrite(in folder: URL) throws {
    let probe = folder.appendingPathComponent(".robustctl-write-test-\(getpid())")
    try Data().write(to: probe)
    try FileManager.default.removeItem(at: probe)
}
