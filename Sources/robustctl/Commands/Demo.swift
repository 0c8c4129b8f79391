import ArgumentParser
import Evaluation
import Foundation
import ModelZoo

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the whole study on the built-in dataset: train or load models, attack, convert, evaluate, report.",
        discussion: """
        The paper's workflow end to end, offline: small MobileNetV2, ResNet50 and InceptionV3 \
        models in both flavours at 75 px (shipped weights, or trained here when missing), a \
        selection of validation images every model classifies correctly, FGSM and BIM \
        (ε = 0.03, 10 steps) and the Boundary attack (100 steps instead of the study's 5000) on \
        the PC engine on 50 samples, adversarials stored as 8-bit PNG, conversion to mobile fp32 and int8 \
        (tflite and qnnpack schemes, calibrated on 200 training images), evaluation of every \
        adversarial set on every engine, and the report with RQ1–RQ3 tables, statistics and a \
        figure. Every finished step is written to --out; --resume continues a stopped run. \
        --quick: two ResNet50 models, 12 samples, a short Boundary run.
        """)

    @Option(help: "Output folder.")
    var out: String = "robustctl-demo"

    @Flag(help: "The one-minute variant.")
    var quick = false

    @Flag(help: "Reuse finished steps in --out.")
    var resume = false

    @OptionGroup var compute: ComputeOptions

    func run() throws {
        compute.apply()
        let start = Date()
        let directory = try prepareOutputDirectory(out)
        let shipped = Bundle.module.url(forResource: "DemoModels", withExtension: nil)
        let runner = DemoRunner(plan: .standard(quick: quick), directory: directory, resume: resume, shippedWeights: shipped) { print($0) }
        let report: StudyReport
        do { report = try runner.run() } catch let error as DemoError { throw CommandError(error.description) }
        print("")
        print(report.successTableMarkdown)
        for comparison in report.comparisons() {
            let w = comparison.wilcoxon.map { String(format: "Wilcoxon p = %.3g", $0.pvalue) }
                ?? (comparison.ratesA == comparison.ratesB ? "identical success rates" : "too few pairs for Wilcoxon")
            let a = comparison.varghaDelaney.map { String(format: ", A12 = %.2f (%@)", $0.a, $0.magnitude.rawValue) } ?? ""
            print("\(comparison.question) \(comparison.a) vs \(comparison.b): \(w)\(a)")
        }
        print(String(format: "\nreport: %@ (%.0f s)", directory.appendingPathComponent("report/report.md").path, Date().timeIntervalSince(start)))
    }
}
