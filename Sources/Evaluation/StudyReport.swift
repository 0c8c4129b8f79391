import Foundation
import TensorCore

/// One evaluated cell of a study: an attack's adversarials, generated on the PC engine for
/// one model, classified by one engine.
public struct StudyCell: Codable, Hashable, Sendable {
    /// "resnet50/torch"
    public var model: String
    public var attack: String
    /// "pc", "mobile-fp32", "mobile-int8-tflite", "mobile-int8-qnnpack"
    public var engine: String
    /// Per selected sample, in selection order: still adversarial on this engine?
    public var success: [Bool]
    /// Median per-image inference time on this engine, ms.
    public var inferenceMs: Double
    /// Adversarial generation time per image on the PC engine, seconds.
    public var generationSeconds: Double
    /// PC cells: success of the float adversarials, before 8-bit rounding.
    public var successFloat: [Bool]?

    public var successRate: Double { Double(success.filter { $0 }.count) / Double(Swift.max(success.count, 1)) }
    public var interval: (low: Double, high: Double) { Proportion.wilson(successes: success.filter { $0 }.count, n: success.count) }

    enum CodingKeys: String, CodingKey {
        case model, attack, engine, success
        case inferenceMs = "inference_ms", generationSeconds = "generation_seconds", successFloat = "success_float"
    }

    public init(model: String, attack: String, engine: String, success: [Bool], inferenceMs: Double, generationSeconds: Double,
                successFloat: [Bool]? = nil) {
        self.model = model; self.attack = attack; self.engine = engine; self.success = success
        self.inferenceMs = inferenceMs; self.generationSeconds = generationSeconds; self.successFloat = successFloat
    }

    /// Success rate of the float adversarials (PC cells of a study), before 8-bit rounding.
    public var successRateFloat: Double? {
        successFloat.map { Double($0.filter { $0 }.count) / Double(Swift.max($0.count, 1)) }
    }
}

/// Turns study cells into the paper's tables, figures and tests: RQ1 (torch vs keras
/// flavour on mobile), RQ2 (PC vs mobile), RQ3 (fp32 vs int8).
public struct StudyReport: Sendable {
    public let cells: [StudyCell]
    public let title: String

    public init(cells: [StudyCell], title: String) {
        self.cells = cells.sorted { ($0.model, $0.attack, $0.engine) < ($1.model, $1.attack, $1.engine) }
        self.title = title
    }

    /// A comparison of two engines (or flavours) over matching cells.
    public struct Comparison: Codable, Sendable {
        public var question: String
        public var a: String
        public var b: String
        public var pairs: Int
        /// Success rates of a and b per matching cell.
        public var ratesA: [Double]
        public var ratesB: [Double]
        public var wilcoxon: Wilcoxon.Result?
        public var varghaDelaney: VarghaDelaney.Result?
        /// Per cell: McNemar's exact test on the paired per-sample outcomes.
        public var mcnemar: [String: McNemar.Result]
        /// The paired cells (for the figure; not encoded).
        var cellPairs: [(StudyCell, StudyCell)] = []

        /// File stem of the comparison's figure, e.g. "rq3_mobile-fp32_vs_mobile-int8-tflite".
        public var figureName: String {
            func slug(_ text: String) -> String {
                String(text.lowercased().map { $0.isLetter || $0.isNumber || $0 == "-" ? $0 : "_" })
                    .split(separator: "_", omittingEmptySubsequences: true).joined(separator: "_")
            }
            return "\(question.lowercased())_\(slug(a))_vs_\(slug(b))"
        }

        enum CodingKeys: String, CodingKey {
            case question, a, b, pairs, wilcoxon, mcnemar
            case ratesA = "rates_a", ratesB = "rates_b", varghaDelaney = "vargha_delaney"
        }
    }

    func cell(_ model: String, _ attack: String, _ engine: String) -> StudyCell? {
        cells.first { $0.model == model && $0.attack == attack && $0.engine == engine }
    }

    /// Pairs (a, b) of cells over which a research question compares.
    func comparison(_ question: String, _ a: String, _ b: String, pairs: [(StudyCell, StudyCell)]) -> Comparison {
        let ratesA = pairs.map(\.0.successRate), ratesB = pairs.map(\.1.successRate)
        var mcnemar: [String: McNemar.Result] = [:]
        for (x, y) in pairs where x.success.count == y.success.count {
            let key = x.model == y.model ? "\(x.model) \(x.attack)" : "\(x.model.split(separator: "/")[0]) \(x.attack) \(x.engine)"
            mcnemar[key] = McNemar.exact(x.success, y.success)
        }
        let wilcoxon = pairs.count >= 2 ? try? Wilcoxon.test(ratesA, ratesB) : nil
        let vda = pairs.isEmpty ? nil : VarghaDelaney.paired(ratesA, ratesB)
        return Comparison(question: question, a: a, b: b, pairs: pairs.count, ratesA: ratesA, ratesB: ratesB,
                          wilcoxon: wilcoxon, varghaDelaney: vda, mcnemar: mcnemar, cellPairs: pairs)
    }

    /// RQ1, RQ2 and RQ3 as the paper poses them, over the cells present.
    public func comparisons() -> [Comparison] {
        var result: [Comparison] = []
        let engines = Set(cells.map(\.engine))
        // RQ1: the same architecture and attack, torch vs keras flavour, on each mobile engine.
        for engine in engines.sorted() where engine != "pc" {
            var pairs: [(StudyCell, StudyCell)] = []
            for x in cells where x.engine == engine && x.model.hasSuffix("/torch") {
                let other = x.model.replacingOccurrences(of: "/torch", with: "/keras")
                if let y = cell(other, x.attack, engine) { pairs.append((x, y)) }
            }
            if !pairs.isEmpty { result.append(comparison("RQ1", "torch (\(engine))", "keras (\(engine))", pairs: pairs)) }
        }
        // RQ2: PC vs mobile fp32 on the same adversarials.
        let rq2 = cells.filter { $0.engine == "pc" }.compactMap { x in cell(x.model, x.attack, "mobile-fp32").map { (x, $0) } }
        if !rq2.isEmpty { result.append(comparison("RQ2", "pc", "mobile-fp32", pairs: rq2)) }
        // RQ3: mobile fp32 vs each int8 scheme.
        for engine in engines.sorted() where engine.hasPrefix("mobile-int8") {
            let pairs = cells.filter { $0.engine == "mobile-fp32" }.compactMap { x in cell(x.model, x.attack, engine).map { (x, $0) } }
            if !pairs.isEmpty { result.append(comparison("RQ3", "mobile-fp32", engine, pairs: pairs)) }
        }
        return result
    }

    // MARK: - Output

    static func percent(_ value: Double) -> String { String(format: "%.1f", value * 100) }

    /// A name as a Markdown table cell: its pipes escaped so that they do not split the row.
    static func markdownCell(_ name: String) -> String { name.replacingOccurrences(of: "|", with: "\\|") }

    public var successTableCSV: String {
        var lines = ["model,attack,engine,samples,success_rate,ci_low,ci_high,success_rate_float"]
        for c in cells {
            let ci = c.interval
            lines.append(CSV.record([c.model, c.attack, c.engine]) + ",\(c.success.count),\(String(format: "%.6f", c.successRate)),"
                         + "\(String(format: "%.6f", ci.low)),\(String(format: "%.6f", ci.high)),"
                         + (c.successRateFloat.map { String(format: "%.6f", $0) } ?? ""))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Inference and generation time per cell (timings vary run to run, so they live apart
    /// from the results, which are reproducible byte for byte).
    public var timingCSV: String {
        var lines = ["model,attack,engine,inference_ms,generation_seconds"]
        for c in cells {
            lines.append(CSV.record([c.model, c.attack, c.engine]) + ",\(String(format: "%.4f", c.inferenceMs)),\(String(format: "%.6f", c.generationSeconds))")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    public var successTableMarkdown: String {
        let engines = Array(Set(cells.map(\.engine))).sorted { Self.engineOrder($0) < Self.engineOrder($1) }
        let float = cells.contains { $0.successFloat != nil }
        var lines = ["| model | attack | " + (float ? "pc (float) | " : "") + engines.joined(separator: " | ") + " |",
                     "|---|---|" + (float ? "---:|" : "") + engines.map { _ in "---:" }.joined(separator: "|") + "|"]
        let keys = Array(Set(cells.map { "\($0.model)\t\($0.attack)" })).sorted()
        for key in keys {
            let parts = key.split(separator: "\t").map(String.init)
            let values = engines.map { engine -> String in
                guard let c = cell(parts[0], parts[1], engine) else { return "–" }
                let ci = c.interval
                return "\(Self.percent(c.successRate)) [\(Self.percent(ci.low)), \(Self.percent(ci.high))]"
            }
            let floatValue = cell(parts[0], parts[1], "pc")?.successRateFloat.map { Self.percent($0) } ?? "–"
            lines.append("| \(parts[0]) | \(Self.markdownCell(parts[1])) | " + (float ? floatValue + " | " : "") + values.joined(separator: " | ") + " |")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Inference time per model and engine (the paper's Tables 2–4) and generation time per attack.
    public var timingMarkdown: String {
        let engines = Array(Set(cells.map(\.engine))).sorted { Self.engineOrder($0) < Self.engineOrder($1) }
        var lines = ["| model | " + engines.map { "\($0) ms/image" }.joined(separator: " | ") + " |",
                     "|---|" + engines.map { _ in "---:" }.joined(separator: "|") + "|"]
        for model in Array(Set(cells.map(\.model))).sorted() {
            let values = engines.map { engine -> String in
                let times = cells.filter { $0.model == model && $0.engine == engine }.map(\.inferenceMs).sorted()
                return times.isEmpty ? "–" : String(format: "%.2f", times[times.count / 2])
            }
            lines.append("| \(model) | " + values.joined(separator: " | ") + " |")
        }
        lines += ["", "| model | attack | generation s/image (PC) |", "|---|---|---:|"]
        for c in cells where c.engine == "pc" { lines.append("| \(c.model) | \(Self.markdownCell(c.attack)) | \(String(format: "%.4f", c.generationSeconds)) |") }
        return lines.joined(separator: "\n") + "\n"
    }

    static func engineOrder(_ engine: String) -> String {
        ["pc": "0", "mobile-fp32": "1"][engine] ?? "2" + engine
    }

    /// Grouped bar chart of success rates (bars: engines; groups: model × attack), with
    /// Wilson intervals as whiskers.
    public var successChart: Chart {
        let engines = Array(Set(cells.map(\.engine))).sorted { Self.engineOrder($0) < Self.engineOrder($1) }
        let groups = Array(Set(cells.map { "\($0.model)\t\($0.attack)" })).sorted().map { key in
            let parts = key.split(separator: "\t").map(String.init)
            return (label: "\(parts[0]) \(parts[1])", bars: engines.map { cell(parts[0], parts[1], $0) })
        }
        return Self.barChart(title: "\(title): attack success rate (95% Wilson intervals)", series: engines, groups: groups)
    }

    /// A research question's figure, like the paper's Figures 2–5: its paired configurations,
    /// side A against side B.
    public func chart(_ comparison: Comparison) -> Chart {
        let groups = comparison.cellPairs.map { x, y in
            (label: x.model == y.model ? "\(x.model) \(x.attack)" : "\(x.model.split(separator: "/")[0]) \(x.attack)", bars: [Optional(x), Optional(y)])
        }
        return Self.barChart(title: "\(comparison.question): \(comparison.a) vs \(comparison.b), attack success rate (95% Wilson intervals)",
                             series: [comparison.a, comparison.b], groups: groups)
    }

    static func barChart(title: String, series: [String], groups: [(label: String, bars: [StudyCell?])]) -> Chart {
        let palette: [Chart.Color] = [(76, 114, 176), (221, 132, 82), (85, 168, 104), (196, 78, 82), (129, 114, 179), (147, 120, 96)].map(Chart.Color.init)
        let barWidth = 14, gap = 18, left = 50, top = 30, height = 240, glyph = 7
        let groupWidth = series.count * barWidth + gap
        let labelDepth = (groups.map(\.label.count).max() ?? 0) * glyph + 12
        let legendStep = (series.map(\.count).max() ?? 0) * glyph + 30
        let width = [left + groups.count * groupWidth + 20, left + series.count * legendStep, left + title.count * glyph + 10].max()!
        let legendTop = top + height + labelDepth
        var chart = Chart(width: width, height: legendTop + 24)
        chart.text(left, 6, title, size: 11)
        for tick in stride(from: 0, through: 100, by: 25) {
            let y = top + height * (100 - tick) / 100
            chart.rect(left - 4, y, width - 10 - (left - 4), 1, Chart.Color(221, 221, 221))
            chart.text(left - 8, y - 6, "\(tick)%", anchorEnd: true)
        }
        for (g, group) in groups.enumerated() {
            let x0 = left + g * groupWidth + gap / 2
            for (e, bar) in group.bars.enumerated() {
                guard let c = bar else { continue }
                let x = x0 + e * barWidth
                let y = top + Int((Double(height) * (1 - c.successRate)).rounded())
                chart.rect(x, y, barWidth - 2, top + height - y, palette[e % palette.count])
                let ci = c.interval, mid = x + (barWidth - 2) / 2
                let high = top + Int((Double(height) * (1 - ci.high)).rounded()), low = top + Int((Double(height) * (1 - ci.low)).rounded())
                chart.rect(mid, high, 1, low - high + 1, Chart.Color(34, 34, 34))
            }
            chart.text(x0 + (series.count * barWidth) / 2 - 7, top + height + 6, group.label, rotated: true)
        }
        for (e, name) in series.enumerated() {
            let x = left + e * legendStep
            chart.rect(x, legendTop + 2, 10, 10, palette[e % palette.count])
            chart.text(x + 14, legendTop, name)
        }
        return chart
    }

    public var successChartSVG: String { successChart.svg }
    public var successChartImage: RGBImage { successChart.image }

    /// report.md: the tables, the figure and each research question's tests in words.
    public var markdown: String {
        var text = "# \(title)\n\n![success rates](success_rates.png)\n\n(also as [SVG](success_rates.svg))\n\n"
        text += "## Attack success rate (%), 95% Wilson interval\n\nEvery engine classifies the 8-bit PNG adversarials"
        text += cells.contains { $0.successFloat != nil } ? "; 'pc (float)' is the PC engine on the float adversarials, before rounding.\n\n" : ".\n\n"
        text += successTableMarkdown + "\nCSV: [success_rates.csv](success_rates.csv) · JSON: [report.json](report.json) · "
        text += "inference and generation times: [timing.md](timing.md)\n\n## Research questions\n\n"
        for comparison in comparisons() {
            text += "### \(comparison.question): \(comparison.a) vs \(comparison.b)\n\n"
            text += "![\(comparison.question)](\(comparison.figureName).png) ([SVG](\(comparison.figureName).svg))\n\n"
            let meanA = comparison.ratesA.reduce(0, +) / Double(Swift.max(comparison.pairs, 1))
            let meanB = comparison.ratesB.reduce(0, +) / Double(Swift.max(comparison.pairs, 1))
            text += "Over \(comparison.pairs) paired configurations the mean success rate is \(Self.percent(meanA))% on \(comparison.a) and \(Self.percent(meanB))% on \(comparison.b). "
            if let w = comparison.wilcoxon, let v = comparison.varghaDelaney {
                let verdict = w.pvalue < 0.05 ? "a significant difference" : "no significant difference"
                text += String(format: "The Wilcoxon signed-rank test (two-sided, %@) finds %@ (statistic %.1f, p = %.4g); ", w.method, verdict, w.statistic, w.pvalue)
                text += String(format: "the effect size is %@ (Vargha–Delaney A = %.3f).\n\n", v.magnitude.rawValue, v.a)
            } else if comparison.pairs >= 2 && comparison.ratesA == comparison.ratesB {
                text += "The success rates are identical in every configuration, so there is no difference to test.\n\n"
            } else {
                text += "Too few configurations for a Wilcoxon test.\n\n"
            }
            if !comparison.mcnemar.isEmpty {
                text += "| configuration | only \(comparison.a) fooled | only \(comparison.b) fooled | McNemar exact p |\n|---|---:|---:|---:|\n"
                for key in comparison.mcnemar.keys.sorted() {
                    let m = comparison.mcnemar[key]!
                    text += "| \(key) | \(m.b) | \(m.c) | \(String(format: "%.4g", m.pvalue)) |\n"
                }
                text += "\n"
            }
        }
        return text
    }

    /// Writes report.md, report.json, success_rates.csv/.svg/.png, one figure per research
    /// question (`<figureName>.svg/.png`) and timing.md/.csv into a folder, each atomically.
    public func write(to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        struct Result: Encodable {
            let model, attack, engine: String
            let samples: Int
            let success: [Bool]
            let success_float: [Bool]?
            let success_rate, ci_low, ci_high: Double
            let success_rate_float: Double?
        }
        struct Document: Encodable { let title: String; let cells: [Result]; let comparisons: [Comparison] }
        let results = cells.map { c in
            Result(model: c.model, attack: c.attack, engine: c.engine, samples: c.success.count, success: c.success, success_float: c.successFloat,
                   success_rate: c.successRate, ci_low: c.interval.low, ci_high: c.interval.high, success_rate_float: c.successRateFloat)
        }
        try encoder.encode(Document(title: title, cells: results, comparisons: comparisons()))
            .write(to: directory.appendingPathComponent("report.json"), options: .atomic)
        try Data(successTableCSV.utf8).write(to: directory.appendingPathComponent("success_rates.csv"), options: .atomic)
        try Data(successChartSVG.utf8).write(to: directory.appendingPathComponent("success_rates.svg"), options: .atomic)
        try ImageCodec.writePNG(successChartImage, to: directory.appendingPathComponent("success_rates.png").path)
        for comparison in comparisons() {
            let figure = chart(comparison)
            try Data(figure.svg.utf8).write(to: directory.appendingPathComponent("\(comparison.figureName).svg"), options: .atomic)
            try ImageCodec.writePNG(figure.image, to: directory.appendingPathComponent("\(comparison.figureName).png").path)
        }
        try Data(markdown.utf8).write(to: directory.appendingPathComponent("report.md"), options: .atomic)
        try Data(("# \(title): timing\n\n" + timingMarkdown).utf8).write(to: directory.appendingPathComponent("timing.md"), options: .atomic)
        try Data(timingCSV.utf8).write(to: directory.appendingPathComponent("timing.csv"), options: .atomic)
    }
}
