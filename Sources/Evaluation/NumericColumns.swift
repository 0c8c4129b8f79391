import Foundation

/// The numeric columns of a CSV file with a header: what `robustctl stats` reads.
public struct NumericColumns: Sendable {
    public struct Column: Sendable {
        public var name: String
        /// One entry per data row; nil where the cell is empty.
        public var values: [Double?]
        public var present: [Double] { values.compactMap { $0 } }
    }

    public struct ParseError: Error, CustomStringConvertible, Equatable {
        public let file: String
        public let line: Int?
        public let reason: String
        public var description: String { "\(file)\(line.map { ":\($0)" } ?? ""): \(reason)" }
    }

    /// Numeric columns in file order (a column is numeric when every non-empty cell is a number).
    public var columns: [Column]

    public static func read(_ path: String) throws -> NumericColumns {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ParseError(file: path, line: nil, reason: "cannot read the file")
        }
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map(String.init)
        while lines.last?.trimmingCharacters(in: .whitespaces).isEmpty == true { lines.removeLast() }
        guard let header = lines.first else { throw ParseError(file: path, line: nil, reason: "the file is empty") }
        let names = header.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        var cells = [[String]](repeating: [], count: names.count)
        for (offset, line) in lines.enumerated().dropFirst() {
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard fields.count == names.count else {
                throw ParseError(file: path, line: offset + 1, reason: "expected \(names.count) fields, got \(fields.count)")
            }
            for (column, field) in fields.enumerated() { cells[column].append(field) }
        }
        var columns: [Column] = []
        for (name, column) in zip(names, cells) {
            let values = column.map { $0.isEmpty ? nil : Double($0) }
            let numeric = zip(column, values).allSatisfy { $0.isEmpty || ($1.map { $0.isFinite } ?? false) }
            if numeric && values.contains(where: { $0 != nil }) { columns.append(Column(name: name, values: values)) }
        }
        return NumericColumns(columns: columns)
    }

    /// The first two numeric columns as complete pairs.
    /// - Throws: when a row has one value but not the other.
    public func pairs(file: String) throws -> (x: [Double], y: [Double]) {
        guard columns.count >= 2 else { throw ParseError(file: file, line: nil, reason: "need two numeric columns, found \(columns.count)") }
        var x: [Double] = [], y: [Double] = []
        for (row, (a, b)) in zip(columns[0].values, columns[1].values).enumerated() {
            switch (a, b) {
            case let (a?, b?): x.append(a); y.append(b)
            case (nil, nil): continue
            default: throw ParseError(file: file, line: row + 2, reason: "paired test: '\(columns[0].name)' and '\(columns[1].name)' must both have a value")
            }
        }
        return (x, y)
    }
}
