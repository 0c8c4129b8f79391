import Attacks
import Foundation
import XCTest

/// `file,label` CSVs: RFC 4180 quoting both ways, line numbers in errors.
final class LabelFileTests: XCTestCase {
    func temporaryFile(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("labels-\(UUID().uuidString).csv").path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func testNamesThatNeedQuotesRoundTrip() throws {
        let entries = [
            LabelFile.Entry(file: "000_cat, tabby.png", label: 3), LabelFile.Entry(file: "say \"cheese\".png", label: 0),
            LabelFile.Entry(file: " padded .png", label: 9), LabelFile.Entry(file: "two\nlines.png", label: 1),
            LabelFile.Entry(file: "plain.png", label: 2),
        ]
        let text = LabelFile.text(entries)
        XCTAssertTrue(text.contains("\"000_cat, tabby.png\",3\n"), text)
        XCTAssertTrue(text.contains("\"say \"\"cheese\"\".png\",0\n"), text)
        XCTAssertTrue(text.contains("\nplain.png,2\n"), text)
        XCTAssertEqual(try LabelFile.read(try temporaryFile(text), classes: 10), entries)
    }

    func testQuotedFieldsCRLFAndBlankLinesAsSpreadsheetsWriteThem() throws {
        let path = try temporaryFile("File,Label\r\n\"a,b.png\", 4\r\n\r\n  c.png ,\"5\"\r\n")
        XCTAssertEqual(try LabelFile.read(path, classes: 10), [LabelFile.Entry(file: "a,b.png", label: 4), LabelFile.Entry(file: "c.png", label: 5)])
    }

    /// `attack` writes each adversarial under --out by its image's name: a name that leaves
    /// the folder would overwrite a file elsewhere (it overwrote an input image).
    func testNamesStayInsideTheirFolder() throws {
        for name in ["a.png", "sub/b.png", "a..b.png", "sub/..hidden.png", "./c.png", "d/./e.png"] {
            XCTAssertTrue(LabelFile.staysInside(name), name)
        }
        for name in ["../a.png", "sub/../../a.png", "sub/..", "..", "/abs/a.png", "/a.png"] {
            XCTAssertFalse(LabelFile.staysInside(name), name)
        }
    }

    func testMalformedFilesNameTheLine() throws {
        let cases: [(String, Int?, String)] = [
            ("file,label\na.png,1\n\"b.png,2\n", 3, "never closed"),
            ("file,label\n\"b.png\"x,2\n", 2, "after a closing quote"),
            ("file,label\n\"two\nlines.png\",1\nc.png\n", 4, "expected 'file,label'"),
            ("file,label\na.png,1\na.png,2\n", 3, "listed twice"),
            ("label,file\n1,a.png\n", 1, "expected the header"),
            ("file,label\na.png,10\n", 2, "outside the model's classes"),
            ("file,label\na.png,1\n../b.png,2\n", 3, "leaves the folder"),
            ("file,label\nsub/../../b.png,2\n", 2, "leaves the folder"),
            ("file,label\n/tmp/b.png,2\n", 2, "leaves the folder"),
        ]
        for (text, line, reason) in cases {
            XCTAssertThrowsError(try LabelFile.read(try temporaryFile(text), classes: 10), text) { error in
                guard let error = error as? LabelFile.ParseError else { return XCTFail("\(error)") }
                XCTAssertEqual(error.line, line, text)
                XCTAssertTrue(error.reason.contains(reason), "\(text): \(error.reason)")
            }
        }
    }
}
