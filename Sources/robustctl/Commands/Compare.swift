import ArgumentParser
import Evaluation
import Foundation

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare evaluation results: RQ1–RQ3 tables, tests and figures.",
        discussion: """
        Reads every JSON file under --results that is an 'evaluate --attack NAME --out FILE' \
        result or a study cell (StudyCell JSON), and writes report.md, \
        success_rates.csv, success_rates.svg and report.json to --out. RQ1 compares the torch \
        and keras flavours of an architecture on each mobile engine, RQ2 the PC engine with \
        mobile fp32, RQ3 mobile fp32 with each int8 scheme: a Wilcoxon signed-rank test and \
        Vargha–Delaney A12 over matching configurations, and McNemar's exact test per \
        configuration on the per-sample outcomes.
        """)

    @Option(help: "Folder of result JSON files (searched recursively).")
    var results: String

    @Option(help: "Report folder.")
    var out: String

    @Option(help: "Report title.")
    var title: String = "robustctl comparison"

    func run() throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: results, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CommandError("--results \(results) is not a folder")
        }
        // A result that cannot be read, or two results for one cell, would change the report's
        // numbers without a trace: both stop the comparison. Other JSON files (an attack's
        // manifest, an earlier report) are skipped and named.
        var cells: [StudyCell] = [], sources: [String: String] = [:], skipped: [String] = []
        let files = (FileManager.default.enumerator(atPath: results)?.allObjects as? [String] ?? []).filter { $0.hasSuffix(".json") }.sorted()
        for relative in files {
            let path = (results as NSString).appendingPathComponent(relative)
            guard let data = FileManager.default.contents(atPath: path), (try? JSONSerialization.jsonObject(with: data)) != nil else {
                throw CommandError("\(path): not readable JSON (truncated?); remove it or evaluate again")
            }
            let cell: StudyCell
            if let studyCell = try? JSONDecoder().decode(StudyCell.self, from: data) {
                cell = studyCell
            } else if let result = try? JSONDecoder().decode(EvaluationResult.self, from: data) {
                if let problem = result.inconsistency {
                    throw CommandError("\(path) is damaged (\(problem)); remove it or evaluate again")
                }
                guard let resultCell = StudyCell(result) else {
                    throw CommandError("\(path): an evaluate result without --attack NAME, so it belongs to no cell; evaluate again with --attack")
                }
                cell = resultCell
            } else if let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                      Set(object.keys).isSuperset(of: ["samples", "success_rate"]) || Set(object.keys).isSuperset(of: ["success", "engine"]) {
                // A result or cell with a field gone or of the wrong kind: not a file to skip.
                throw CommandError("\(path) is damaged (a result whose fields do not read); remove it or evaluate again")
            } else {
                skipped.append(relative)
                continue
            }
            let key = "\(cell.model) \(cell.attack) \(cell.engine)"
            if let other = sources.updateValue(relative, forKey: key) {
                throw CommandError("\(other) and \(relative) under \(results) both hold results for \(key); keep one")
            }
            cells.append(cell)
        }
        guard !cells.isEmpty else { throw CommandError("no evaluation results (evaluate --attack NAME --out FILE.json) under \(results)") }
        if !skipped.isEmpty {
            printError("skipped \(skipped.count) JSON file(s) that are not results: \(skipped.prefix(5).joined(separator: ", "))\(skipped.count > 5 ? ", ..." : "")")
        }
        let directory = try prepareOutputDirectory(out)
        let report = StudyReport(cells: cells, title: title)
        try report.write(to: directory)
        print(report.successTableMarkdown)
        print("wrote \(directory.appendingPathComponent("report.md").path) (\(cells.count) results)")
    }
}
