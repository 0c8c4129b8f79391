import Foundation
import TensorCore
import XCTest

/// FileFailure's reasons follow the file system's state.
final class FileFailureTests: XCTestCase {
    func testReasonsNameWhatToFix() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("file-failure-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("a.bin")
        try Data([1]).write(to: file)
        let error = CocoaError(.fileNoSuchFile)
        XCTAssertEqual(FileFailure.readReason(directory.appendingPathComponent("none").path, error), "no such file")
        XCTAssertEqual(FileFailure.readReason(directory.path, error), "it is a folder, not a file")
        XCTAssertEqual(FileFailure.readReason("/dev/null", error), "it is not a regular file (a device, pipe or socket)")
        let pipe = directory.appendingPathComponent("pipe.png")
        XCTAssertEqual(mkfifo(pipe.path, 0o600), 0)
        XCTAssertThrowsError(try ImageCodec.read(pipe.path)) { error in
            XCTAssertEqual(error as? ImageError, .unreadable(file: pipe.path, reason: "it is not a regular file (a device, pipe or socket)"))
        }
        XCTAssertEqual(FileFailure.writeReason(directory.path, error), "it is a folder")
        let nested = directory.appendingPathComponent("missing/b.bin").path
        XCTAssertEqual(FileFailure.writeReason(nested, error), "its folder \(directory.path)/missing does not exist")
        XCTAssertEqual(FileFailure.writeReason(file.appendingPathComponent("c.bin").path, error), "\(file.path) is not a folder")
        // Where the state explains nothing, Foundation's own words, without its preamble.
        XCTAssertTrue((error as NSError).localizedDescription.hasSuffix(FileFailure.readReason(file.path, error)))
        let full = CocoaError(.fileWriteOutOfSpace)
        let reason = FileFailure.writeReason(directory.appendingPathComponent("d.bin").path, full)
        XCTAssertFalse(reason.isEmpty || reason.hasPrefix("The operation could not be completed"), reason)
        XCTAssertTrue((full as NSError).localizedDescription.hasSuffix(reason), reason)
    }

    func testImageErrorsUseThem() throws {
        XCTAssertThrowsError(try ImageCodec.read("/nonexistent-robustctl/x.png")) { error in
            XCTAssertEqual(error as? ImageError, .unreadable(file: "/nonexistent-robustctl/x.png", reason: "no such file"))
        }
        XCTAssertThrowsError(try ImageCodec.writePNG(RGBImage(width: 1, height: 1, pixels: [0, 0, 0]), to: "/nonexistent-robustctl/x.png")) { error in
            XCTAssertEqual(error as? ImageError, .writeFailed(file: "/nonexistent-robustctl/x.png", reason: "its folder /nonexistent-robustctl does not exist"))
        }
    }
}
