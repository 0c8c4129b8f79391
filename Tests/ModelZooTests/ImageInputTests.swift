import Foundation
import ModelZoo
import TensorCore
import XCTest

/// ImageInput decodes on every thread but returns what a one-by-one loop would.
final class ImageInputTests: XCTestCase {
    func testParallelDecodingKeepsFileOrderAndReportsTheFirstFailure() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("image-input-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = ModelConfig(architecture: .mobilenetV2, flavor: .torch, widthMultiplier: 0.1, inputSize: 32, numClasses: 10)
        var files: [String] = []
        for index in 0..<13 {
            // Sizes differ so that some images are resized and decoding costs differ.
            let width = 32 + 9 * (index % 4), height = 32 + 5 * (index % 3)
            let image = RGBImage(width: width, height: height, pixels: (0..<(width * height * 3)).map { UInt8(($0 * (index + 7)) % 256) })
            files.append(directory.appendingPathComponent("\(index).png").path)
            try ImageCodec.writePNG(image, to: files.last!)
        }
        let expected = try files.map { try ImageInput.prepare(ImageCodec.read($0), file: $0, config: config, policy: .auto) }
        let previous = Threading.threads
        defer { Threading.setThreads(previous) }
        for threads in [1, 2, 3] {
            Threading.setThreads(threads)
            XCTAssertEqual(try ImageInput.images(files, config: config), expected, "\(threads) threads")
        }
        // Two bad files: the error names the earlier one, whichever thread met it first.
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: files[9]))
        try Data([0x89, 0x50, 0x4E, 0x47]).write(to: URL(fileURLWithPath: files[4]))
        XCTAssertThrowsError(try ImageInput.images(files, config: config)) { error in
            XCTAssertTrue("\(error)".contains("4.png"), "\(error)")
        }
    }

    /// A subset spread over an ordered list: from 10 classes of 130 images in path order,
    /// 100 take 10 of each class (the first 100 would all be class 0), in order, none twice.
    func testEvenlySpreadDrawsOnEveryPartOfTheOrder() {
        let files = (0..<10).flatMap { label in (0..<130).map { "train/class\(label)/\($0).png" } }
        let picked = ImageInput.evenlySpread(files, count: 100)
        XCTAssertEqual(picked.count, 100)
        XCTAssertEqual(picked, picked.sorted { files.firstIndex(of: $0)! < files.firstIndex(of: $1)! })
        XCTAssertEqual(Set(picked).count, 100)
        for label in 0..<10 { XCTAssertEqual(picked.filter { $0.hasPrefix("train/class\(label)/") }.count, 10, "class \(label)") }
        XCTAssertEqual(picked.first, files.first)
        XCTAssertEqual(ImageInput.evenlySpread(files, count: 1300), files)
        XCTAssertEqual(ImageInput.evenlySpread(files, count: 5000), files)
        XCTAssertEqual(ImageInput.evenlySpread(Array(0..<6), count: 3), [0, 2, 4])
    }
}
