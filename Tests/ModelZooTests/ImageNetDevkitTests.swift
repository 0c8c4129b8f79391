import Foundation
import TensorCore
import XCTest
@testable import ModelZoo

/// The devkit's meta.mat (SciPy-written miniature, Tools/reference/make_devkit_fixture.py)
/// and a flat validation folder labelled through it.
final class ImageNetDevkitTests: XCTestCase {
    static let devkit = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/devkit")

    func testMetaMatMapsDevkitIDsToWordNetIDsCompressedOrNot() throws {
        for file in ["meta.mat", "meta_uncompressed.mat"] {
            let table = try FlatImageNetFolder.idToWnid(Self.devkit.appendingPathComponent(file).path)
            XCTAssertEqual(table, [1: "n02119789", 2: "n02100735", 3: "n02110185", 4: "n02096294", 1001: "n00001740"], file)
            guard case let .structure(elements)? = try MATFile.read(Self.devkit.appendingPathComponent(file).path)["synsets"] else {
                return XCTFail("no struct array")
            }
            XCTAssertEqual(elements[0]["words"], .text("kit fox, Vulpes macrotis"))
            XCTAssertEqual(elements[4]["children"], .numbers([1, 2, 3]))
            XCTAssertEqual(elements[0]["children"], .numbers([]))
        }
    }

    func testFlatFolderGetsStandardClassIndicesFromTheDevkit() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flat-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let image = RGBImage(width: 4, height: 4, pixels: [UInt8](repeating: 128, count: 48))
        for number in [6, 1, 3] {  // a subset, written out of order
            try ImageCodec.writePNG(image, to: folder.appendingPathComponent(String(format: "ILSVRC2012_val_%08d.png", number)).path)
        }
        let dataset = try FlatImageNetFolder(directory: folder.path, groundTruth: Self.devkit.appendingPathComponent("ground_truth.txt").path,
                                             synsets: Self.devkit.appendingPathComponent("meta.mat").path)
        XCTAssertEqual(dataset.files, ["ILSVRC2012_val_00000001.png", "ILSVRC2012_val_00000003.png", "ILSVRC2012_val_00000006.png"])
        // Lines 1, 3, 6 hold IDs 3, 4, 1 → Siberian husky, Australian terrier, kit fox.
        XCTAssertEqual(dataset.labels, ["n02110185", "n02096294", "n02119789"].map { ImageNet.indexByWnid[$0]! })
        XCTAssertEqual(ImageNet.indexByWnid["n02119789"], 278, "kit fox is class 278 in the standard order")

        // Devkit IDs without the synset table: a clear error, not a silent misnumbering.
        XCTAssertThrowsError(try FlatImageNetFolder(directory: folder.path, groundTruth: Self.devkit.appendingPathComponent("ground_truth.txt").path)) {
            XCTAssertTrue("\($0)".contains("meta.mat"), "\($0)")
        }
        // A WordNet id per line needs no table.
        let wnids = folder.appendingPathComponent("wnids.txt")
        try Data((["n01440764", "n01443537", "n01484850", "n01491361", "n01494475", "n01496331"].joined(separator: "\n") + "\n").utf8).write(to: wnids)
        XCTAssertEqual(try FlatImageNetFolder(directory: folder.path, groundTruth: wnids.path).labels, [0, 2, 5])
        // Kaggle's LOC_val_solution.csv, in any row order.
        let kaggle = folder.appendingPathComponent("LOC_val_solution.csv")
        try Data("ImageId,PredictionString\nILSVRC2012_val_00000006,n01496331 1 2 3 4\nILSVRC2012_val_00000001,n01440764 5 6 7 8 n01440764 1 1 2 2\nILSVRC2012_val_00000003,n01484850 0 0 9 9\n".utf8).write(to: kaggle)
        XCTAssertEqual(try FlatImageNetFolder(directory: folder.path, groundTruth: kaggle.path).labels, [0, 2, 5])
    }

    func testDamagedMatFilesAreRefusedWithTheFileNamed() throws {
        let bytes = try Data(contentsOf: Self.devkit.appendingPathComponent("meta_uncompressed.mat"))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mat-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let truncated = directory.appendingPathComponent("truncated.mat")
        try bytes.prefix(bytes.count - 100).write(to: truncated)
        XCTAssertThrowsError(try MATFile.read(truncated.path)) { XCTAssertTrue("\($0)".contains("truncated.mat"), "\($0)") }
        let garbage = directory.appendingPathComponent("garbage.mat")
        try Data(repeating: 0x41, count: 300).write(to: garbage)
        XCTAssertThrowsError(try MATFile.read(garbage.path)) { XCTAssertTrue("\($0)".contains("not a little-endian level-5 MAT file"), "\($0)") }
    }
}
