import ArgumentParser
import Evaluation
import Foundation

extension Wilcoxon.ZeroMethod: ExpressibleByArgument {}
extension Wilcoxon.Alternative: ExpressibleByArgument {}
extension Wilcoxon.Method: ExpressibleByArgument {}

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Statistical tests on the first two numeric columns of a CSV file.",
        discussion: """
        The CSV has a header row. Columns of text (names) are passed over; a column of numbers \
        with a cell that is not one ("n/a", "nan") is an error, not passed over. Tests:

          wilcoxon  Wilcoxon signed-rank test of the paired differences (column 1 − column 2;
                    with a single numeric column, a one-sample test against 0). Equal to
                    scipy.stats.wilcoxon: --method auto uses the exact distribution when there
                    are no ties or zeros, an exhaustive permutation test for n ≤ 13 otherwise,
                    and the normal approximation (with tie correction) beyond; n > 50 is always
                    asymptotic.
          vda       Vargha–Delaney A12 effect size, with magnitude (negligible < 0.56 ≤ small
                    < 0.64 ≤ medium < 0.71 ≤ large, on max(A, 1 − A)). Unpaired by default
                    (columns may differ in length: leave cells empty); --paired compares rows.
          mcnemar   McNemar's exact test on paired 0/1 outcomes (e.g. per-sample attack
                    success on two engines).

        JSON: {"test", "statistic", "pvalue", ...} for wilcoxon and mcnemar; {"test", "a",
        "magnitude", ...} for vda.
        """)

    enum Test: String, ExpressibleByArgument, CaseIterable { case wilcoxon, vda, mcnemar }

    @Argument(help: "The test: \(Test.allCases.map(\.rawValue).joined(separator: ", ")).")
    var test: Test

    @Option(help: "CSV file with a header row.")
    var input: String

    @Flag(help: "vda: compare row by row instead of all pairs.")
    var paired = false

    @Option(help: "wilcoxon: wilcox (drop zeros), pratt or zsplit.")
    var zeroMethod: Wilcoxon.ZeroMethod = .wilcox

    @Flag(help: "wilcoxon: continuity correction in the normal approximation.")
    var correction = false

    @Option(help: "wilcoxon: two-sided, greater or less.")
    var alternative: Wilcoxon.Alternative = .twoSided

    @Option(help: "wilcoxon: auto, exact or asymptotic.")
    var method: Wilcoxon.Method = .auto

    @Flag(help: "Print JSON.")
    var json = false

    struct Output: Encodable {
        var test: String
        var statistic: Double?
        var pvalue: Double?
        var method: String?
        var a: Double?
        var magnitude: String?
        var n: Int?
        var nX: Int?
        var nY: Int?
        var b: Int?
        var c: Int?
        enum CodingKeys: String, CodingKey {
            case test, statistic, pvalue, method, a, magnitude, n, b, c, nX = "n_x", nY = "n_y"
        }
    }

    func run() throws {
        let table = try NumericColumns.read(input)
        var output = Output(test: test.rawValue)
        switch test {
        case .wilcoxon:
            let x: [Double], y: [Double]?
            if table.columns.count == 1 {
                x = table.columns[0].present; y = nil
            } else {
                (x, y) = try table.pairs(file: input)
            }
            do {
                let result = try Wilcoxon.test(x, y, zeroMethod: zeroMethod, correction: correction, alternative: alternative, method: method)
                (output.statistic, output.pvalue, output.method, output.n) = (result.statistic, result.pvalue, result.method, x.count)
            } catch let error as Wilcoxon.TestError {
                throw CommandError("\(input): \(error)")
            }
        case .vda:
            guard table.columns.count >= 2 else { throw CommandError("\(input): need two numeric columns, found \(table.columns.count)") }
            let result: VarghaDelaney.Result
            if paired {
                let (x, y) = try table.pairs(file: input)
                guard !x.isEmpty else { throw CommandError("\(input): no complete rows") }
                result = VarghaDelaney.paired(x, y)
                (output.nX, output.nY) = (x.count, y.count)
            } else {
                let x = table.columns[0].present, y = table.columns[1].present
                guard !x.isEmpty, !y.isEmpty else { throw CommandError("\(input): a column has no values") }
                result = VarghaDelaney.unpaired(x, y)
                (output.nX, output.nY) = (x.count, y.count)
            }
            (output.a, output.magnitude) = (result.a, result.magnitude.rawValue)
        case .mcnemar:
            let (x, y) = try table.pairs(file: input)
            guard (x + y).allSatisfy({ $0 == 0 || $0 == 1 }) else { throw CommandError("\(input): McNemar's test needs 0/1 outcomes") }
            let result = McNemar.exact(x.map { $0 == 1 }, y.map { $0 == 1 })
            (output.statistic, output.pvalue, output.b, output.c, output.n) = (result.statistic, result.pvalue, result.b, result.c, x.count)
        }
        if json {
            printJSON(output)
        } else if let a = output.a {
            print(String(format: "Vargha–Delaney A12 = %.4f (%@)", a, output.magnitude!))
        } else {
            print(String(format: "%@: statistic %.6g, p-value %.6g%@", test.rawValue, output.statistic!, output.pvalue!,
                         output.method.map { " (\($0))" } ?? ""))
        }
    }
}
