import CBLAS
import CShims

/// The `kernels` benchmark suite: convolution forward, backward-data and backward-weights
/// on representative ResNet50, MobileNetV2 and InceptionV3 layers, per backend, and OpenBLAS sgemm on
/// the GEMM shapes these layers lower to.
public enum KernelBenchmarks {
    public struct Layer: Sendable {
        public let name: String
        public let channels: Int
        public let outChannels: Int
        public let kernel: Int
        public let size: Int
        public let stride: Int
        public let depthwise: Bool

        var config: Conv2DConfig {
            Conv2DConfig(stride: stride, padding: .symmetric(kernel / 2), groups: depthwise ? channels : 1)
        }
        var weightShape: [Int] { [outChannels, depthwise ? 1 : channels, kernel, kernel] }
        func inputShape(batch: Int) -> [Int] { [batch, channels, size, size] }
    }

    public static let layers: [Layer] = [
        Layer(name: "3x3_64_64_56", channels: 64, outChannels: 64, kernel: 3, size: 56, stride: 1, depthwise: false),
        Layer(name: "1x1_256_64_56", channels: 256, outChannels: 64, kernel: 1, size: 56, stride: 1, depthwise: false),
        Layer(name: "3x3_512_512_7", channels: 512, outChannels: 512, kernel: 3, size: 7, stride: 1, depthwise: false),
        // InceptionV3's widest 3×3 layer (its stem's last, here with padding).
        Layer(name: "3x3_80_192_73", channels: 80, outChannels: 192, kernel: 3, size: 73, stride: 1, depthwise: false),
        Layer(name: "dw3x3_144_56_s1", channels: 144, outChannels: 144, kernel: 3, size: 56, stride: 1, depthwise: true),
        Layer(name: "dw3x3_144_56_s2", channels: 144, outChannels: 144, kernel: 3, size: 56, stride: 2, depthwise: true),
        Layer(name: "dw3x3_960_7", channels: 960, outChannels: 960, kernel: 3, size: 7, stride: 1, depthwise: true),
        // MobileNetV2's expand and project layers.
        Layer(name: "1x1_16_96_112", channels: 16, outChannels: 96, kernel: 1, size: 112, stride: 1, depthwise: false),
        Layer(name: "1x1_144_24_56", channels: 144, outChannels: 24, kernel: 1, size: 56, stride: 1, depthwise: false),
        Layer(name: "1x1_960_160_7", channels: 960, outChannels: 160, kernel: 1, size: 7, stride: 1, depthwise: false),
        // First layers on an image's three channels: MobileNetV2's, ResNet50's, InceptionV3's.
        Layer(name: "3x3_3_32_224_s2", channels: 3, outChannels: 32, kernel: 3, size: 224, stride: 2, depthwise: false),
        Layer(name: "7x7_3_64_224_s2", channels: 3, outChannels: 64, kernel: 7, size: 224, stride: 2, depthwise: false),
        Layer(name: "3x3_3_32_299_s2", channels: 3, outChannels: 32, kernel: 3, size: 299, stride: 2, depthwise: false),
    ]

    /// Runs the suite with the current `Threading.threads`.
    /// - Parameter progress: called with each result as it is measured.
    public static func run(batches: [Int] = [1, 8], backends: [KernelBackend] = KernelBackend.allCases, repeats: Int,
                           layerFilter: String? = nil,
                           progress: (BenchmarkResult) -> Void = { _ in }) -> [BenchmarkResult] {
        var results: [BenchmarkResult] = []
        func record(_ result: BenchmarkResult) { results.append(result); progress(result) }
        var generator = SeededGenerator(seed: 1)
        let threads = Threading.threads
        // The machine's own single-core FMA peak, the yardstick for every GFLOP/s below.
        let peak = (0..<3).map { _ in rc_peak_fma_gflops(50_000_000) }.max()!
        record(BenchmarkResult(name: "peak_fma/core", implementation: "avx", threads: 1, batch: 1,
                               ms: 50_000_000 * 12 * 32 / peak / 1e6, gflops: peak))
        for layer in layers where layerFilter.map({ layer.name.contains($0) }) ?? true {
            for batch in batches {
                let x = Tensor.randomUniform(shape: layer.inputShape(batch: batch), lower: -1, upper: 1, generator: &generator)
                let w = Tensor.randomUniform(shape: layer.weightShape, lower: -0.1, upper: 0.1, generator: &generator)
                let b = Tensor.randomUniform(shape: [layer.outChannels], generator: &generator)
                let outputShape = layer.config.outputShape(input: x.shape, weight: w.shape)
                let dy = Tensor.randomUniform(shape: outputShape, lower: -1, upper: 1, generator: &generator)
                let flops = Conv2D.flops(inputShape: x.shape, weightShape: w.shape, config: layer.config)
                for backend in backends {
                    let forward = Benchmark.medianMilliseconds(repeats: repeats) {
                        _ = Conv2D.forward(x, weight: w, bias: b, config: layer.config, backend: backend)
                    }
                    record(BenchmarkResult(name: "conv2d_forward/\(layer.name)/b\(batch)", implementation: backend.rawValue,
                                           threads: threads, batch: batch, ms: forward, gflops: flops / forward / 1e6))
                    let data = Benchmark.medianMilliseconds(repeats: repeats) {
                        _ = Conv2D.backwardData(dy, weight: w, inputShape: x.shape, config: layer.config, backend: backend)
                    }
                    record(BenchmarkResult(name: "conv2d_backward_data/\(layer.name)/b\(batch)", implementation: backend.rawValue,
                                           threads: threads, batch: batch, ms: data, gflops: flops / data / 1e6))
                    let weights = Benchmark.medianMilliseconds(repeats: repeats) {
                        _ = Conv2D.backwardWeights(dy, input: x, weightShape: w.shape, config: layer.config, backend: backend)
                    }
                    record(BenchmarkResult(name: "conv2d_backward_weights/\(layer.name)/b\(batch)", implementation: backend.rawValue,
                                           threads: threads, batch: batch, ms: weights, gflops: flops / weights / 1e6))
                }
                // The channels-last convolution inference runs (no layout reorder per call):
                // oneDNN's direct kernels, its Winograd kernels (reorders from and to NHWC
                // included) and robustctl's own 1×1 / depthwise kernels, where they apply.
                // A 64-byte-aligned output, as in a network (a Swift array's storage is not).
                var output = Tensor(shape: [outputShape.reduce(1, *)])
                for (own, winograd, label) in [(false, false, "onednn-nhwc"), (false, true, "onednn-nhwc-winograd"), (true, false, "own-nhwc")] {
                    let channelsLast = ChannelsLastConv2D(weights: w, bias: b, config: layer.config, activation: .none, ownKernels: own,
                                                          winograd: winograd)
                    if own, channelsLast.thin == nil { continue }
                    if winograd, !channelsLast.winograd { continue }
                    let nhwc = Benchmark.medianMilliseconds(repeats: repeats) {
                        x.withUnsafeBufferPointer { input in output.withUnsafeMutableBufferPointer { out in
                            try? channelsLast.apply(input, inputShape: x.shape, into: out)
                        } }
                    }
                    record(BenchmarkResult(name: "conv2d_forward/\(layer.name)/b\(batch)", implementation: label,
                                           threads: threads, batch: batch, ms: nhwc, gflops: flops / nhwc / 1e6))
                }
                // The GEMM a full convolution lowers to: [Cout × K] · [K × batch·OH·OW].
                if !layer.depthwise {
                    let m = layer.outChannels, k = layer.channels * layer.kernel * layer.kernel
                    let n = batch * outputShape[2] * outputShape[3]
                    let a = Tensor.randomUniform(shape: [m, k], generator: &generator)
                    let bMatrix = Tensor.randomUniform(shape: [k, n], generator: &generator)
                    var c = Tensor(shape: [m, n])
                    let ms = Benchmark.medianMilliseconds(repeats: repeats) {
                        a.withUnsafeBufferPointer { pa in bMatrix.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), 1,
                                        pa.baseAddress!, Int32(k), pb.baseAddress!, Int32(n), 0, pc.baseAddress!, Int32(n))
                        } } }
                    }
                    record(BenchmarkResult(name: "sgemm/\(layer.name)/b\(batch)", implementation: "openblas", threads: threads,
                                           batch: batch, ms: ms, gflops: 2 * Double(m) * Double(n) * Double(k) / ms / 1e6))
                }
            }
        }
        return results
    }
}
