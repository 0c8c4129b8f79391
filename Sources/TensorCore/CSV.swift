import Foundation

/// RFC 4180 CSV, as spreadsheets and pandas write it: fields separated by commas, a field
/// holding a comma, a quote, a line break or edge spaces quoted with its quotes doubled
/// (`"cat, tabby"`, `"say ""cheese"""`), unquoted fields trimmed of spaces, records ending in
/// LF or CRLF.
public enum CSV {
    /// A malformed file, naming the file and the line.
    public struct ParseError: Error, CustomStringConvertible, Equatable {
        public let file: String
        public let line: Int?
        public let reason: String

        public init(file: String, line: Int?, reason: String) {
            self.file = file
            self.line = line
            self.reason = reason
        }

        public var description: String { "\(file)\(line.map { ":\($0)" } ?? ""): \(reason)" }
    }

    /// One CSV field: `text` itself, or quoted (quotes doubled) when it holds a comma, a quote,
    /// a line break or spaces at either end.
    public static func field(_ text: String) -> String {
        let needsQuotes = text.contains { $0 == "," || $0 == "\"" || $0.isNewline }
            || text.first?.isWhitespace == true || text.last?.isWhitespace == true
        return needsQuotes ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
    }

    /// The non-blank records of CSV `text` with the line each starts on. A quoted field may
    /// span lines; an unterminated quote or text after a closing quote is an error naming
    /// `file` and the line. Complexity O(text length).
    public static func records(_ text: String, file: String) throws -> [(line: Int, fields: [String])] {
        var rows: [(line: Int, fields: [String])] = []
        var fields: [String] = []
        var current = "", quoted = false, inQuotes = false, afterQuote = false
        var line = 1, recordLine = 1
        func endField() {
            fields.append(quoted ? current : current.trimmingCharacters(in: .whitespaces))
            current = ""
            quoted = false
            afterQuote = false
        }
        func endRecord() {
            let blank = fields.isEmpty && !quoted && current.allSatisfy(\.isWhitespace)
            endField()
            if !blank { rows.append((recordLine, fields)) }
            fields = []
        }
        var characters = text.makeIterator()
        var pending: Character? = nil
        while let character = pending ?? characters.next() {
            pending = nil
            if inQuotes {
                if character == "\"" {
                    let next = characters.next()
                    if next == "\"" { current.append("\"") } else { inQuotes = false; afterQuote = true; pending = next }
                } else {
                    if character.isNewline { line += 1 }
                    current.append(character)
                }
                continue
            }
            switch character {
            case ",":
                endField()
            case _ where character.isNewline:
                endRecord()
                line += 1
                recordLine = line
            case "\"" where current.allSatisfy(\.isWhitespace) && !afterQuote:
                current = ""
                quoted = true
                inQuotes = true
            default:
                if afterQuote {
                    guard character.isWhitespace else {
                        throw ParseError(file: file, line: line, reason: "unexpected '\(character)' after a closing quote")
                    }
                } else {
                    current.append(character)
                }
            }
        }
        if inQuotes { throw ParseError(file: file, line: recordLine, reason: "a quoted field is never closed") }
        endRecord()
        return rows
    }

    /// One record without its line end: the fields, each quoted where it needs it.
    public static func record(_ fields: [String]) -> String { fields.map(field).joined(separator: ",") }
}
