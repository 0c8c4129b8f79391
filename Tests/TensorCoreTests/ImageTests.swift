import Foundation
import XCTest
@testable import TensorCore

final class ImageTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/images")

    struct Manifest: Decodable {
        struct Resize: Decodable { let source: String; let width: Int; let height: Int; let interpolation: String; let expected: String }
        struct Decode: Decodable { let file: String; let expected: String }
        struct Paper: Decodable { let source: String; let resize: Int; let crop: Int; let expected: String }
        let resize: [Resize]
        let decode: [Decode]
        let paper: Paper
    }

    func manifest() throws -> Manifest {
        try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("manifest.json")))
    }

    func image(_ name: String) throws -> RGBImage { try ImageCodec.read(Self.fixtures.appendingPathComponent(name).path) }

    func maxDifference(_ a: RGBImage, _ b: RGBImage) -> Int {
        XCTAssertEqual(a.width, b.width)
        XCTAssertEqual(a.height, b.height)
        return zip(a.pixels, b.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0
    }

    func testPNGRoundTripIsBitExact() throws {
        var generator = SeededGenerator(seed: 3)
        let pixels = (0..<(17 * 13 * 3)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        let original = RGBImage(width: 17, height: 13, pixels: pixels)
        let decoded = try ImageCodec.decode(ImageCodec.encodePNG(original))
        XCTAssertEqual(decoded, original)
    }

    func testDecodingMatchesOpenCV() throws {
        for entry in try manifest().decode {
            let ours = try image(entry.file)
            let reference = try image(entry.expected)
            // PNG decoding is exact; JPEG allows one level for IDCT implementation differences.
            let tolerance = entry.file.hasPrefix("jpeg") ? 1 : 0
            XCTAssertLessThanOrEqual(maxDifference(ours, reference), tolerance, entry.file)
        }
    }

    func testResizeMatchesOpenCVWithinOneLevel() throws {
        for entry in try manifest().resize {
            let source = try image(entry.source)
            let ours = source.resized(width: entry.width, height: entry.height,
                                      interpolation: ResizeInterpolation(rawValue: entry.interpolation)!)
            XCTAssertLessThanOrEqual(maxDifference(ours, try image(entry.expected)), 1, entry.expected)
        }
    }

    func testPaperPreprocessingMatchesOpenCVPipeline() throws {
        let paper = try manifest().paper
        let ours = try image(paper.source).resizedAndCentreCropped(resizeTo: paper.resize, cropTo: paper.crop)
        XCTAssertEqual(ours.width, 224)
        XCTAssertLessThanOrEqual(maxDifference(ours, try image(paper.expected)), 1)
    }

    func testTensorConversionRoundTrips() {
        let image = RGBImage(width: 2, height: 1, pixels: [0, 128, 255, 10, 20, 30])
        let tensor = image.tensor()
        XCTAssertEqual(tensor.shape, [1, 3, 1, 2])
        XCTAssertEqual(tensor[0, 0, 0, 1], 10 / 255, accuracy: 1e-7)
        XCTAssertEqual(tensor[0, 2, 0, 0], 1)
        XCTAssertEqual(RGBImage(tensor: tensor), image)
        XCTAssertEqual(RGBImage.quantize(0.5 / 255), 0, "ties go to even")
        XCTAssertEqual(RGBImage.quantize(1.5 / 255), 2)
        XCTAssertEqual(RGBImage.quantize(1.2), 255)
        XCTAssertEqual(RGBImage.quantize(-0.1), 0)
    }

    func testCentreCropFollowsTorchvisionRounding() {
        // (5 - 2) / 2 = 1.5 rounds to 2 (ties to even); (4 - 2) / 2 = 1.
        let pixels = (0..<(5 * 4 * 3)).map { UInt8($0) }
        let crop = RGBImage(width: 5, height: 4, pixels: pixels).centerCropped(width: 2, height: 2)
        XCTAssertEqual(crop[0, 0].0, pixels[(1 * 5 + 2) * 3])
    }

    func testCorruptAndTruncatedFilesThrowNamingTheFile() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("robustctl-image-tests-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var cases: [(String, Data)] = []
        for name in ["jpeg_baseline.jpg", "jpeg_progressive.jpg", "png_rgb16.png", "png_palette.png", "png_interlaced.png"] {
            let data = try Data(contentsOf: Self.fixtures.appendingPathComponent(name))
            cases.append(("truncated_" + name, data.prefix(data.count / 2)))
            cases.append(("header_only_" + name, data.prefix(12)))
            var flipped = data
            for i in stride(from: data.count / 3, to: data.count - 20, by: 7) { flipped[i] ^= 0x5A }
            cases.append(("garbled_" + name, flipped))
        }
        var generator = SeededGenerator(seed: 1)
        cases.append(("garbage.png", Data((0..<500).map { _ in UInt8(truncatingIfNeeded: generator.next()) })))
        cases.append(("empty.jpg", Data()))
        for (name, data) in cases {
            let path = directory.appendingPathComponent(name).path
            try data.write(to: URL(fileURLWithPath: path))
            do {
                _ = try ImageCodec.read(path)
                // A garbled JPEG can still decode (JPEG has no checksum); it must not crash.
                if !name.hasPrefix("garbled_jpeg") { XCTFail("\(name) decoded without error") }
            } catch let error as ImageError {
                XCTAssertTrue(error.description.contains(name), "\(error) names the file")
            }
        }
        XCTAssertThrowsError(try ImageCodec.read(directory.appendingPathComponent("missing.png").path)) { error in
            XCTAssertTrue("\(error)".contains("missing.png"))
        }
    }

    func testAtomicPNGWriteRefusesUnwritableLocation() {
        let image = RGBImage(width: 1, height: 1, pixels: [1, 2, 3])
        XCTAssertThrowsError(try ImageCodec.writePNG(image, to: "/nonexistent-dir/x.png")) { error in
            XCTAssertTrue("\(error)".contains("/nonexistent-dir/x.png"))
        }
    }
}
