import Foundation

/// A CSV with header `file,label` naming images (relative to an input folder) and their
/// class indices — what `robustctl attack` and `evaluate` take as `--labels`.
///
/// Fields follow RFC 4180: a field holding a comma, a quote, a line break or edge spaces is
/// quoted, quotes inside doubled (`"cat, tabby.png"`, `"say ""cheese"".png"`); unquoted fields
/// are trimmed of spaces; lines end in LF or CRLF.
public enum LabelFile {
    public struct Entry: Hashable, Sendable {
        public let file: String
        public let label: Int

        public init(file: String, label: Int) {
            self.file = file
            self.label = label
        }
    }

    public struct ParseError: Error, CustomStringConvertible, Equatable {
        public let file: String
        public let line: Int?
        public let reason: String
        public var description: String { "\(file)\(line.map { ":\($0)" } ?? ""): \(reason)" }
    }

    /// Reads and checks the file: header, one `file,label` record per line, labels in
    /// 0..<classes, no duplicate files.
    public static func read(_ path: String, classes: Int) throws -> [Entry] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ParseError(file: path, line: nil, reason: "cannot read the labels file")
        }
        let rows = try records(text, file: path)
        guard let header = rows.first, header.fields.map({ $0.lowercased() }) == ["file", "label"] else {
            throw ParseError(file: path, line: 1, reason: "expected the header 'file,label'")
        }
        var entries: [Entry] = []
        var seen = Set<String>()
        for row in rows.dropFirst() {
            guard row.fields.count == 2, !row.fields[0].isEmpty, let label = Int(row.fields[1]) else {
                throw ParseError(file: path, line: row.line, reason: "expected 'file,label', got '\(row.fields.joined(separator: ","))'")
            }
            guard (0..<classes).contains(label) else {
                throw ParseError(file: path, line: row.line, reason: "label \(label) is outside the model's classes 0..<\(classes)")
            }
            guard seen.insert(row.fields[0]).inserted else {
                throw ParseError(file: path, line: row.line, reason: "'\(row.fields[0])' is listed twice")
            }
            entries.append(Entry(file: row.fields[0], label: label))
        }
        guard !entries.isEmpty else { throw ParseError(file: path, line: nil, reason: "no images listed") }
        return entries
    }

    /// The file's text for `entries`: the header, then one record per entry, names quoted
    /// where they need it, so that `read` returns the same entries.
    public static func text(_ entries: [Entry]) -> String {
        "file,label\n" + entries.map { "\(field($0.file)),\($0.label)\n" }.joined()
    }

    /// Writes `text(entries)` to `url` atomically.
    public static func write(_ entries: [Entry], to url: URL) throws {
        try Data(text(entries).utf8).write(to: url, options: .atomic)
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
}
