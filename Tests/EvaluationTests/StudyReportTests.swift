import Foundation
import TensorCore
import XCTest
@testable import Evaluation

final class StudyReportTests: XCTestCase {
    func cells() -> [StudyCell] {
        // Two flavours × one attack × three engines, 8 samples each.
        func cell(_ model: String, _ engine: String, _ success: [Int]) -> StudyCell {
            StudyCell(model: model, attack: "fgsm", engine: engine, success: success.map { $0 == 1 }, inferenceMs: 1.5, generationSeconds: 0.01)
        }
        return [
            cell("resnet50/torch", "pc", [1, 1, 1, 1, 0, 0, 0, 0]),
            cell("resnet50/torch", "mobile-fp32", [1, 1, 1, 1, 0, 0, 0, 0]),
            cell("resnet50/torch", "mobile-int8-tflite", [1, 1, 0, 0, 0, 0, 0, 0]),
            cell("resnet50/keras", "pc", [1, 1, 1, 1, 1, 1, 0, 0]),
            cell("resnet50/keras", "mobile-fp32", [1, 1, 1, 1, 1, 1, 0, 0]),
            cell("resnet50/keras", "mobile-int8-tflite", [1, 1, 1, 1, 1, 1, 1, 0]),
        ]
    }

    func testComparisonsPairTheRightCells() throws {
        let report = StudyReport(cells: cells(), title: "t")
        let comparisons = report.comparisons()
        XCTAssertEqual(comparisons.map(\.question), ["RQ1", "RQ1", "RQ2", "RQ3"])
        let rq1 = comparisons.first { $0.question == "RQ1" && $0.a.contains("mobile-fp32") }!
        XCTAssertEqual(rq1.ratesA, [0.5])
        XCTAssertEqual(rq1.ratesB, [0.75])
        let rq3 = comparisons.first { $0.question == "RQ3" }!
        XCTAssertEqual(rq3.pairs, 2)
        // torch: fp32 fooled on 4, int8 on 2 (subset) → b = 2, c = 0, p = 2 · 0.5² = 0.5.
        let torch = rq3.mcnemar["resnet50/torch fgsm"]!
        XCTAssertEqual(torch.b, 2)
        XCTAssertEqual(torch.c, 0)
        XCTAssertEqual(torch.pvalue, 0.5, accuracy: 1e-12)
        let rq2 = comparisons.first { $0.question == "RQ2" }!
        XCTAssertEqual(rq2.mcnemar.values.map(\.pvalue), [1, 1], "identical outcomes")
        XCTAssertEqual(rq2.varghaDelaney?.a, 0.5)
    }

    func testCSVsQuoteNamesThatNeedIt() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("report-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        let cells = [StudyCell(model: "resnet50/torch", attack: "pgd, eps \"8\"", engine: "pc", success: [true, false], inferenceMs: 1.5, generationSeconds: 0.01)]
        try StudyReport(cells: cells, title: "t").write(to: directory)
        for (name, columns) in [("success_rates.csv", 8), ("timing.csv", 5)] {
            let path = directory.appendingPathComponent(name).path
            let records = try CSV.records(String(contentsOfFile: path, encoding: .utf8), file: path)
            XCTAssertEqual(records.map(\.fields.count), [columns, columns], name)
            XCTAssertEqual(records[1].fields[1], "pgd, eps \"8\"", name)
            XCTAssertFalse(try NumericColumns.read(path).columns.isEmpty, name)
        }
        let piped = StudyReport(cells: [StudyCell(model: "resnet50/torch", attack: "a|b", engine: "pc", success: [true], inferenceMs: 1, generationSeconds: 0.01)], title: "t")
        for table in [piped.successTableMarkdown, piped.timingMarkdown] {
            // The row has as many cell separators as the header above it.
            let lines = table.split(separator: "\n")
            let index = try XCTUnwrap(lines.firstIndex { $0.contains("a\\|b") }, table)
            XCTAssertEqual(lines[index].replacingOccurrences(of: "\\|", with: "").filter { $0 == "|" }.count,
                           lines[index - 2].filter { $0 == "|" }.count, table)
        }
    }

    func testWrittenReportHoldsEveryCell() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("report-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        let report = StudyReport(cells: cells().shuffled(), title: "t")
        try report.write(to: directory)
        let csv = try String(contentsOf: directory.appendingPathComponent("success_rates.csv"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(csv.count, 7)
        XCTAssertTrue(csv.contains("resnet50/keras,fgsm,mobile-int8-tflite,8,0.875000,0.529112,0.977583,"), csv.joined(separator: "\n"))
        let timing = try String(contentsOf: directory.appendingPathComponent("timing.csv"), encoding: .utf8)
        XCTAssertTrue(timing.contains("resnet50/keras,fgsm,mobile-int8-tflite,1.5000,0.010000"), timing)
        // Bars and legend swatches carry the engine colours: 2 bars + 1 swatch per engine.
        let svg = try String(contentsOf: directory.appendingPathComponent("success_rates.svg"), encoding: .utf8)
        for colour in ["#4C72B0", "#DD8452", "#55A868"] {
            XCTAssertEqual(svg.components(separatedBy: "fill=\"\(colour)\"").count - 1, 3, colour)
        }
        // The PNG draws the same chart: inside the keras/fgsm int8 bar (87.5 %: from y = 60 down
        // to the axis at y = 270, x from 87 to 99 with its whisker at 93) the pixels are the
        // third engine's colour; above the bar the background shows.
        let png = try ImageCodec.read(directory.appendingPathComponent("success_rates.png").path)
        func pixel(_ x: Int, _ y: Int) -> [UInt8] { Array(png.pixels[(y * png.width + x) * 3..<(y * png.width + x) * 3 + 3]) }
        XCTAssertEqual(pixel(89, 200), [85, 168, 104])
        XCTAssertEqual(pixel(89, 62), [85, 168, 104])
        XCTAssertEqual(pixel(89, 57), [255, 255, 255])
        XCTAssertEqual(pixel(93, 100), [34, 34, 34], "the Wilson whisker (52.9–97.8 %: y 35…143)")
        let markdown = try String(contentsOf: directory.appendingPathComponent("report.md"), encoding: .utf8)
        XCTAssertTrue(markdown.contains("### RQ3: mobile-fp32 vs mobile-int8-tflite"))
        // One figure per research question, linked from the report: RQ3 pairs two models, so
        // each side has two bars and a legend swatch.
        XCTAssertTrue(markdown.contains("![RQ3](rq3_mobile-fp32_vs_mobile-int8-tflite.png)"), markdown)
        let rq3 = try String(contentsOf: directory.appendingPathComponent("rq3_mobile-fp32_vs_mobile-int8-tflite.svg"), encoding: .utf8)
        XCTAssertEqual(rq3.components(separatedBy: "fill=\"#4C72B0\"").count - 1, 3)
        XCTAssertEqual(rq3.components(separatedBy: "fill=\"#DD8452\"").count - 1, 3)
        XCTAssertEqual(rq3.components(separatedBy: "fill=\"#55A868\"").count - 1, 0)
        for name in ["rq1_torch_mobile-fp32_vs_keras_mobile-fp32", "rq2_pc_vs_mobile-fp32"] {
            XCTAssertNoThrow(try ImageCodec.read(directory.appendingPathComponent("\(name).png").path), name)
        }
        // Cell order does not change the report.
        let again = directory.appendingPathComponent("again")
        try StudyReport(cells: cells(), title: "t").write(to: again)
        XCTAssertEqual(try Data(contentsOf: again.appendingPathComponent("report.json")), try Data(contentsOf: directory.appendingPathComponent("report.json")))
    }
}
