import Foundation
import TensorCore

/// A CSV with header `file,label` naming images (relative to an input folder) and their
/// class indices — what `robustctl attack` and `evaluate` take as `--labels`.
/// Names that need it are quoted as RFC 4180 says (`"cat, tabby.png"`; see `CSV`).
public enum LabelFile {
    public struct Entry: Hashable, Sendable {
        public let file: String
        public let label: Int

        public init(file: String, label: Int) {
            self.file = file
            self.label = label
        }
    }

    public typealias ParseError = CSV.ParseError

    /// Reads and checks the file: header, one `file,label` record per line, labels in
    /// 0..<classes, no duplicate files, every name inside its folder (`staysInside`).
    public static func read(_ path: String, classes: Int) throws -> [Entry] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ParseError(file: path, line: nil, reason: "cannot read the labels file")
        }
        let rows = try CSV.records(text, file: path)
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
            guard staysInside(row.fields[0]) else {
                throw ParseError(file: path, line: row.line, reason: "'\(row.fields[0])' leaves the folder it is relative to (an absolute path or a '..' component)")
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
        "file,label\n" + entries.map { "\(CSV.field($0.file)),\($0.label)\n" }.joined()
    }

    /// Whether the relative name `file` stays inside the folder it is joined to: not absolute,
    /// no `..` component. Names are joined to an input folder for reading and to an output
    /// folder for writing (`attack`, `study`, `merge`), so one that leaves it would overwrite
    /// files elsewhere — the input images among them.
    public static func staysInside(_ file: String) -> Bool {
        !file.hasPrefix("/") && !file.split(separator: "/", omittingEmptySubsequences: false).contains("..")
    }

    /// The file an adversarial of the image `file` is written as (by `attack` and `study`): its
    /// path with the extension replaced by `.png`, since adversarials are lossless 8-bit PNGs.
    public static func adversarialName(_ file: String) -> String { (file as NSString).deletingPathExtension + ".png" }

    /// Writes `text(entries)` to `url` atomically.
    public static func write(_ entries: [Entry], to url: URL) throws {
        try Data(text(entries).utf8).write(to: url, options: .atomic)
    }
}
