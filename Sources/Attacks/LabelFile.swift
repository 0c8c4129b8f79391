import Foundation

/// A CSV with header `file,label` naming images (relative to an input folder) and their
/// class indices — what `robustctl attack` and `evaluate` take as `--labels`.
public enum LabelFile {
    public struct Entry: Hashable, Sendable {
        public let file: String
        public let label: Int
    }

    public struct ParseError: Error, CustomStringConvertible, Equatable {
        public let file: String
        public let line: Int?
        public let reason: String
        public var description: String { "\(file)\(line.map { ":\($0)" } ?? ""): \(reason)" }
    }

    /// Reads and checks the file: header, one `file,label` pair per line, labels in
    /// 0..<classes, no duplicate files.
    public static func read(_ path: String, classes: Int) throws -> [Entry] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ParseError(file: path, line: nil, reason: "cannot read the labels file")
        }
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        while lines.last?.isEmpty == true { lines.removeLast() }
        guard let header = lines.first, header.replacingOccurrences(of: " ", with: "").lowercased() == "file,label" else {
            throw ParseError(file: path, line: 1, reason: "expected the header 'file,label'")
        }
        var entries: [Entry] = []
        var seen = Set<String>()
        for (offset, line) in lines.enumerated().dropFirst() where !line.isEmpty {
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard fields.count == 2, !fields[0].isEmpty, let label = Int(fields[1]) else {
                throw ParseError(file: path, line: offset + 1, reason: "expected 'file,label', got '\(line)'")
            }
            guard (0..<classes).contains(label) else {
                throw ParseError(file: path, line: offset + 1, reason: "label \(label) is outside the model's classes 0..<\(classes)")
            }
            guard seen.insert(fields[0]).inserted else {
                throw ParseError(file: path, line: offset + 1, reason: "'\(fields[0])' is listed twice")
            }
            entries.append(Entry(file: fields[0], label: label))
        }
        guard !entries.isEmpty else { throw ParseError(file: path, line: nil, reason: "no images listed") }
        return entries
    }
}
