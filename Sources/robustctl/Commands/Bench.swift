import ArgumentParser
import Attacks
import Foundation
import ModelZoo
import Quantize
import TensorCore

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure kernel, network and attack speed on this machine.",
        discussion: """
        Prints one row per measurement: the median wall time over --repeats runs (after two \
        warm-up runs) and, for kernels, the achieved GFLOP/s. With --json the output is \
        {"results": [{"name", "implementation", "threads", "batch", "ms", "gflops", \
        "callsPerSecond"}]}.

        Suites:
          kernels   conv2d forward / backward-data / backward-weights on ResNet50,
                    MobileNetV2 and InceptionV3 layers for each kernel backend, the
                    channels-last forward (oneDNN's direct kernels, its Winograd kernel on
                    wide 3×3 layers, robustctl's own 1×1 / depthwise kernels), and OpenBLAS
                    sgemm on the same GEMM shapes.
          networks  full-size networks with seeded weights: forward latency at batch 1 and 8,
                    forward + input gradient at batch 8, for each architecture and flavour.
          attacks   FGSM and BIM (10 steps) on full-size networks with seeded weights,
                    batch 8 and 32; Boundary attack (batch 8, 100 steps): ms per step,
                    ms per step outside model calls, initialisation ms, model calls/s.
          mobile    full-size networks on the mobile engine: fp32, int8-tflite and
                    int8-qnnpack latency at batch 1, the three engines of a network
                    timed in turns of five runs (one warm-up run per turn), so that a
                    slow phase of the machine weighs on all three alike.
          int8-kernels
                    the mobile engine's int8 convolution kernels on single MobileNetV2 and
                    ResNet50 layers, each against the oneDNN path it competes with
                    (GFLOP/s column: 2 operations per multiply-accumulate), and the
                    input quantization of a 224² RGB image in both schemes.
        """
    )

    enum Suite: String, ExpressibleByArgument, CaseIterable {
        case kernels, networks, attacks, mobile
        case int8Kernels = "int8-kernels"
        case all
    }

    @Option(help: "Which suite to run: \(Suite.allCases.map(\.rawValue).joined(separator: ", ")).")
    var suite: Suite = .kernels

    @OptionGroup var compute: ComputeOptions

    @Option(help: "Timed runs per measurement; the median is reported.")
    var repeats: Int = 10

    @Option(help: "Only rows whose layer or network contains this text, e.g. 3x3_64 or resnet50/torch.")
    var filter: String?

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func validate() throws {
        if repeats < 1 { throw ValidationError("--repeats must be at least 1") }
    }

    func run() throws {
        compute.apply()
        var results: [BenchmarkResult] = []
        let suites: [Suite] = suite == .all ? [.kernels, .networks, .attacks, .mobile, .int8Kernels] : [suite]
        let progress: (BenchmarkResult) -> Void = { result in if !json { print(Self.row(result)) } }
        if !json { print(Self.header) }
        for suite in suites {
            switch suite {
            case .kernels: results += KernelBenchmarks.run(repeats: repeats, layerFilter: filter, progress: progress)
            case .networks: results += try NetworkBenchmarks.run(repeats: repeats, filter: filter, progress: progress)
            case .attacks: results += try AttackBenchmarks.run(repeats: repeats, filter: filter, progress: progress)
            case .mobile: results += try MobileBenchmarks.run(repeats: repeats, filter: filter, progress: progress)
            case .int8Kernels: results += try Int8KernelBenchmarks.run(repeats: repeats, filter: filter, progress: progress)
            case .all: break
            }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(["results": results]), as: UTF8.self))
        }
    }

    static let header = "name".padding(toLength: 44, withPad: " ", startingAt: 0)
        + "impl".padding(toLength: 23, withPad: " ", startingAt: 0) + "threads batch       ms   GFLOP/s   calls/s"

    static func row(_ r: BenchmarkResult) -> String {
        r.name.padding(toLength: 44, withPad: " ", startingAt: 0)
            + r.implementation.padding(toLength: 23, withPad: " ", startingAt: 0)
            + String(format: "%7d %5d %8.3f", r.threads, r.batch, r.ms) + column(r.gflops) + column(r.callsPerSecond)
    }

    /// A right-aligned column of ten characters: the value to one decimal, or "-".
    private static func column(_ value: Double?) -> String {
        let text = value.map { String(format: "%.1f", $0) } ?? "-"
        return String(repeating: " ", count: max(10 - text.count, 1)) + text
    }
}
