import Foundation
import TensorCore

/// The numeric columns of a CSV file with a header: what `robustctl stats` reads.
public struct NumericColumns: Sendable {
    public struct Column: Sendable {
        public var name: String
        /// One entry per data row; nil where the cell is empty.
        public var values: [Double?]
        public var present: [Double] { values.compactMap { $0 } }
    }

    public typealias ParseError = CSV.ParseError

    /// Numeric columns in file order (a column is numeric when every non-empty cell is a number).
    public var columns: [Column]

    public static func read(_ path: String) throws -> NumericColumns {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ParseError(file: path, line: nil, reason: "cannot read the file")
        }
        let rows = try CSV.records(text, file: path)
        guard let names = rows.first?.fields else { throw ParseError(file: path, line: nil, reason: "the file is empty") }
        var cells = [[String]](repeating: [], count: names.count)
        for (line, fields) in rows.dropFirst() {
            guard fields.count == names.count else {
                throw ParseError(file: path, line: line, reason: "expected \(names.count) fields, got \(fields.count)")
            }
            for (column, field) in fields.enumerated() { cells[column].append(field) }
        }
        var columns: [Column] = []
        for (name, column) in zip(names, cells) {
            let values = column.map { $0.isEmpty ? nil : Double($0).flatMap { $0.isFinite ? $0 : nil } }
            let strays = zip(column, values).enumerated().filter { !$0.element.0.isEmpty && $0.element.1 == nil }
            let numbers = values.count { $0 != nil }
            // A column of numbers with a stray cell ("n/a", "nan", a typo) would be skipped and the
            // next numeric column tested in its place, without a word.
            if let (row, (text, _)) = strays.first, numbers > strays.count {
                throw ParseError(file: path, line: rows[row + 1].line,
                                 reason: "column '\(name)' holds numbers and '\(text)', which is not a finite number")
            }
            if strays.isEmpty && numbers > 0 { columns.append(Column(name: name, values: values)) }
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
