import TensorCore

/// The `int8-kernels` benchmark suite: the mobile engine's int8 convolution kernels on single
/// layers of MobileNetV2 and ResNet50 (seeded data), each against the oneDNN path it competes
/// with — whole networks mix too many layers (and this VM's drift) to show a kernel change.
///
/// Implementations, per layer and scheme:
/// - `fused-tflite` / `fused-qnnpack`: our kernels with the requantization in registers
///   (`FusedInt8Conv`, `FusedDepthwiseConv`);
/// - `onednn-s32+epi-*`: oneDNN's u8×s8→s32 convolution, then our separate epilogue pass;
/// - `onednn-u8-qnnpack`: oneDNN's own uint8 output (exact for the QNNPACK scheme with output
///   zero point 0; the layers here use that zero point and a ReLU so that it applies).
///
/// And the input quantization of a 224² RGB image (`input/quantize_3x224`, Keras's caffe
/// preprocessing folded in, as in ResNet50's program): `tflite` / `qnnpack`, no `gflops`.
///
/// `gflops` counts 2 operations per multiply-accumulate (GOP/s).
public enum Int8KernelBenchmarks {
    enum Layer {
        /// 1×1 convolution on an [1, inputs, side, side] map.
        case pointwise(inputs: Int, outputs: Int, side: Int, relu: Bool)
        /// 3×3 depthwise convolution with ReLU6, padding 1.
        case depthwise(channels: Int, side: Int, stride: Int)
        /// Float [1, 3, side, side] image → uint8 NHWC, preprocessing folded in.
        case inputQuantization(side: Int)

        var name: String {
            switch self {
            case let .pointwise(inputs, outputs, side, _): "1x1_\(inputs)-\(outputs)@\(side)"
            case let .depthwise(channels, side, stride): "dw3x3_\(channels)@\(side)/s\(stride)"
            case let .inputQuantization(side): "quantize_3x\(side)"
            }
        }
    }

    static let layers: [(network: String, layer: Layer)] = [
        ("mobilenet_v2", .pointwise(inputs: 16, outputs: 96, side: 112, relu: true)),
        ("mobilenet_v2", .pointwise(inputs: 24, outputs: 144, side: 56, relu: true)),
        ("mobilenet_v2", .pointwise(inputs: 144, outputs: 24, side: 56, relu: false)),
        ("mobilenet_v2", .pointwise(inputs: 384, outputs: 64, side: 14, relu: false)),
        ("mobilenet_v2", .pointwise(inputs: 960, outputs: 160, side: 7, relu: false)),
        ("mobilenet_v2", .depthwise(channels: 32, side: 112, stride: 1)),
        ("mobilenet_v2", .depthwise(channels: 144, side: 56, stride: 1)),
        ("mobilenet_v2", .depthwise(channels: 96, side: 112, stride: 2)),
        ("mobilenet_v2", .depthwise(channels: 384, side: 14, stride: 1)),
        ("mobilenet_v2", .depthwise(channels: 960, side: 7, stride: 1)),
        ("resnet50", .pointwise(inputs: 64, outputs: 256, side: 56, relu: false)),
        ("resnet50", .pointwise(inputs: 256, outputs: 64, side: 56, relu: true)),
        ("resnet50", .pointwise(inputs: 512, outputs: 128, side: 28, relu: true)),
        ("resnet50", .pointwise(inputs: 512, outputs: 2048, side: 7, relu: false)),
        ("input", .inputQuantization(side: 224)),
    ]

    public static func run(repeats: Int, filter: String? = nil, progress: (BenchmarkResult) -> Void = { _ in }) throws -> [BenchmarkResult] {
        var results: [BenchmarkResult] = []
        var generator = SeededGenerator(seed: 5)
        for (network, layer) in layers {
            let name = "int8-kernel/\(network)/\(layer.name)"
            if let filter, !name.contains(filter) { continue }
            let timings = try measure(layer, repeats: repeats, generator: &generator)
            for (implementation, ms, macs) in timings {
                let result = BenchmarkResult(name: name, implementation: implementation, threads: Threading.threads, batch: 1,
                                             ms: ms, gflops: macs > 0 ? 2 * Double(macs) / (ms * 1e6) : nil)
                results.append(result)
                progress(result)
            }
        }
        return results
    }

    private static func measure(_ layer: Layer, repeats: Int, generator: inout SeededGenerator) throws -> [(String, Double, Int)] {
        if case let .inputQuantization(side) = layer { return measureInputQuantization(side: side, repeats: repeats, generator: &generator) }
        let (inputShape, weightShape, config, clamp): ([Int], [Int], Conv2DConfig, FusedClamp)
        switch layer {
        case let .pointwise(inputs, outputs, side, relu):
            (inputShape, weightShape, config, clamp) = ([1, inputs, side, side], [outputs, inputs, 1, 1], Conv2DConfig(), relu ? .relu6 : .none)
        case let .depthwise(channels, side, stride):
            (inputShape, weightShape, config, clamp) = ([1, channels, side, side], [channels, 1, 3, 3],
                                                        Conv2DConfig(stride: stride, padding: .symmetric(1), groups: channels), .relu6)
        case .inputQuantization:
            preconditionFailure("measured by measureInputQuantization")
        }
        // Weights in ±40 keep oneDNN's float requantization exact (accumulators below 2²⁴) up
        // to 960 inputs, as trained networks' weights do.
        let weights = (0..<weightShape.reduce(1, *)).map { _ in Int8.random(in: -40...40, using: &generator) }
        let outputs = weightShape[0]
        let layerParameters = QuantizedLayer(weights: weights, weightShape: weightShape,
                                             weightScales: (0..<outputs).map { _ in Float.random(in: 2e-3...6e-3, using: &generator) },
                                             bias: (0..<outputs).map { _ in Int32.random(in: -3000...3000, using: &generator) })
        let x = QuantizedValue(buffer: IntegerBuffer((0..<inputShape.reduce(1, *)).map { _ in UInt8.random(in: 0...255, using: &generator) }),
                               shape: inputShape)
        let input = AffineQuantization(scale: 0.05, zeroPoint: 0)
        let outputShape = config.outputShape(input: inputShape, weight: weightShape)
        let macs = outputShape.reduce(1, *) * weightShape[1] * weightShape[2] * weightShape[3]
        var timings: [(String, Double, Int)] = []
        func time(_ implementation: String, _ body: () throws -> Void) throws {
            var failure: Error?
            let ms = Benchmark.medianMilliseconds(repeats: repeats) { do { try body() } catch { failure = error } }
            if let failure { throw failure }
            timings.append((implementation, ms, macs))
        }
        for scheme in QuantizationScheme.allCases {
            let output = AffineQuantization(scale: 0.08, zeroPoint: clamp == .none ? 128 : 0)
            // The QNNPACK scheme turns ReLU6 into ReLU, as torchvision's quantizable models do.
            let schemeClamp = scheme == .qnnpack && clamp == .relu6 ? .relu : clamp
            let requantizer = Requantizer(layer: layerParameters, input: input, output: output, clamp: schemeClamp, scheme: scheme)
            let tag = scheme == .tflite ? "tflite" : "qnnpack"
            if case .depthwise = layer {
                let fused = FusedDepthwiseConv(weights: weights, shape: weightShape, config: config, inputZeroPoint: 0, requantizer: requantizer)
                try time("fused-\(tag)") { _ = fused.apply(x) }
            } else {
                let fused = FusedInt8Conv(weights: weights, shape: weightShape, config: config, inputZeroPoint: 0, requantizer: requantizer)
                try time("fused-\(tag)") { _ = fused.apply(x) }
            }
            let accumulating = QuantizedConv2D(weights: weights, shape: weightShape, config: config, inputZeroPoint: 0)
            try time("onednn-s32+epi-\(tag)") {
                let accumulators = IntegerBuffer<Int32>(count: outputShape.reduce(1, *))
                try accumulating.accumulate(x.buffer, inputShape: inputShape, into: accumulators)
                requantizer.apply(accumulators, pixels: accumulators.count / outputs, into: IntegerBuffer<UInt8>(count: accumulators.count))
            }
            if let exact = requantizer.floatRequantization() {
                let requantizing = QuantizedConv2D(weights: weights, shape: weightShape, config: config, inputZeroPoint: 0, requantization: exact)
                try time("onednn-u8-\(tag)") {
                    try requantizing.requantize(x.buffer, inputShape: inputShape, into: IntegerBuffer<UInt8>(count: outputShape.reduce(1, *)))
                }
            }
        }
        return timings
    }

    /// `gflops` stays nil: the step has no multiply-accumulates (reported as 0 of them).
    private static func measureInputQuantization(side: Int, repeats: Int, generator: inout SeededGenerator) -> [(String, Double, Int)] {
        let image = Tensor.randomUniform(shape: [1, 3, side, side], generator: &generator)
        // Keras's caffe preprocessing of an image in [0, 1]: RGB → BGR, ×255, minus the means.
        let preprocessing = ChannelPreprocessing(source: [2, 1, 0], scale: [255, 255, 255], shift: [-103.939, -116.779, -123.68])
        let q = AffineQuantization(scale: 0.9, zeroPoint: 131)
        return QuantizationScheme.allCases.map { scheme in
            let ms = Benchmark.medianMilliseconds(repeats: repeats) { _ = Int8Kernels.quantize(image, q, scheme: scheme, preprocessing: preprocessing) }
            return (scheme == .tflite ? "tflite" : "qnnpack", ms, 0)
        }
    }
}
