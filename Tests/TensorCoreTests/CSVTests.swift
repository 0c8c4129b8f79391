import Foundation
import TensorCore
import XCTest

/// RFC 4180 records: what `CSV.record` writes, `CSV.records` reads back.
final class CSVTests: XCTestCase {
    func testRecordsRoundTripAnyFields() throws {
        var generator = SeededGenerator(seed: 7)
        let pieces = ["a", "Z9", ",", "\"", "\n", "\r\n", " ", "é", "\t", "\"\"", ""]
        for _ in 0..<300 {
            let rows = (0..<Int.random(in: 1...4, using: &generator)).map { _ in
                (0..<3).map { _ in (0..<Int.random(in: 0...5, using: &generator)).map { _ in pieces.randomElement(using: &generator)! }.joined() }
            }
            // A record whose fields are all empty is a blank line, which readers skip.
            let written = rows.filter { $0.contains { !$0.isEmpty } }
            let text = written.map { CSV.record($0) + "\n" }.joined()
            XCTAssertEqual(try CSV.records(text, file: "f").map(\.fields), written, text.debugDescription)
        }
    }

    func testSpreadsheetFormsAndLineNumbers() throws {
        let records = try CSV.records("a, \"b,c\" ,d\r\n\r\n\"x\ny\",2,\n  ", file: "f")
        XCTAssertEqual(records.map(\.line), [1, 3])
        XCTAssertEqual(records.map(\.fields), [["a", "b,c", "d"], ["x\ny", "2", ""]])
        XCTAssertThrowsError(try CSV.records("a\n\"b\nc", file: "f")) { error in
            XCTAssertEqual(error as? CSV.ParseError, CSV.ParseError(file: "f", line: 2, reason: "a quoted field is never closed"))
        }
        XCTAssertThrowsError(try CSV.records("a\n\"b\"c", file: "f")) { error in
            XCTAssertEqual((error as? CSV.ParseError)?.line, 2)
        }
    }
}
