import ArgumentParser
import Evaluation
import Foundation

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare evaluation results: RQ1–RQ3 tables, tests and figures.",
        discussion: """
        Reads every JSON file under --results that is an 'evaluate --attack NAME --out FILE' \
        result or a study cell (as 'demo' writes in cells/), and writes report.md, \
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
        var cells: [StudyCell] = []
        let enumerator = FileManager.default.enumerator(atPath: results)
        while let relative = enumerator?.nextObject() as? String {
            guard relative.hasSuffix(".json"), let data = FileManager.default.contents(atPath: (results as NSString).appendingPathComponent(relative)) else { continue }
            if let cell = try? JSONDecoder().decode(StudyCell.self, from: data) {
                cells.append(cell)
            } else if let result = try? JSONDecoder().decode(EvaluationResult.self, from: data), let cell = StudyCell(result) {
                cells.append(cell)
            }
        }
        guard !cells.isEmpty else { throw CommandError("no evaluation results (evaluate --attack NAME --out FILE.json) under \(results)") }
        let directory = try prepareOutputDirectory(out)
        let report = StudyReport(cells: cells, title: title)
        try report.write(to: directory)
        print(report.successTableMarkdown)
        print("wrote \(directory.appendingPathComponent("report.md").path) (\(cells.count) results)")
    }
}
