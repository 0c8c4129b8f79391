import TensorCore

/// ResNet50 as torchvision's `resnet50` (v1.5: stride on the 3x3 convolution, no conv
/// biases, BN eps 1e-5) and Keras Applications' `ResNet50` (v1: stride on the first 1x1
/// convolution, convolutions with bias, BN eps 1.001e-5, explicit ZeroPadding2D).
enum ResNet50 {
    /// Bottleneck widths and block counts of the four stages.
    static let stages: [(width: Int, blocks: Int)] = [(64, 3), (128, 4), (256, 6), (512, 3)]

    static func torch(_ config: ModelConfig, _ b: inout NetworkBuilder, input: Int) -> Int {
        let c = channelScale(config)
        func bn(_ name: String, _ x: Int) -> Int { b.batchNorm(name, x, epsilon: 1e-5) }
        var x = b.conv("conv1", input, out: c(64), kernel: (7, 7), stride: 2, padding: .symmetric(3))
        x = b.relu("relu", bn("bn1", x))
        x = b.maxPool("maxpool", x, Pool2DConfig(kernel: 3, stride: 2, padding: .symmetric(1)))
        for (stageIndex, stage) in stages.enumerated() {
            for block in 0..<stage.blocks {
                let prefix = "layer\(stageIndex + 1).\(block)"
                let stride = block == 0 && stageIndex > 0 ? 2 : 1
                let out = c(stage.width * 4)
                var y = b.relu(prefix + ".relu1", bn(prefix + ".bn1", b.conv(prefix + ".conv1", x, out: c(stage.width), kernel: (1, 1))))
                y = b.conv(prefix + ".conv2", y, out: c(stage.width), kernel: (3, 3), stride: stride, padding: .symmetric(1))
                y = b.relu(prefix + ".relu2", bn(prefix + ".bn2", y))
                y = bn(prefix + ".bn3", b.conv(prefix + ".conv3", y, out: out, kernel: (1, 1)))
                var shortcut = x
                if block == 0 {
                    shortcut = b.conv(prefix + ".downsample.0", x, out: out, kernel: (1, 1), stride: stride)
                    shortcut = bn(prefix + ".downsample.1", shortcut)
                }
                x = b.relu(prefix + ".relu", b.sum(prefix + ".add", [y, shortcut]))
            }
        }
        x = b.globalPool("avgpool", x)
        return b.linear("fc", x, out: config.numClasses)
    }

    static func keras(_ config: ModelConfig, _ b: inout NetworkBuilder, input: Int) -> Int {
        let c = channelScale(config)
        func bn(_ name: String, _ x: Int) -> Int { b.batchNorm(name, x, epsilon: 1.001e-5) }
        var x = b.zeroPad("conv1_pad", input, .symmetric(3))
        x = b.conv("conv1_conv", x, out: c(64), kernel: (7, 7), stride: 2, bias: true)
        x = b.relu("conv1_relu", bn("conv1_bn", x))
        x = b.zeroPad("pool1_pad", x, .symmetric(1))
        x = b.maxPool("pool1_pool", x, Pool2DConfig(kernel: 3, stride: 2))
        for (stageIndex, stage) in stages.enumerated() {
            for block in 0..<stage.blocks {
                let name = "conv\(stageIndex + 2)_block\(block + 1)"
                let stride = block == 0 && stageIndex > 0 ? 2 : 1
                let out = c(stage.width * 4)
                var shortcut = x
                if block == 0 {
                    shortcut = b.conv(name + "_0_conv", x, out: out, kernel: (1, 1), stride: stride, bias: true)
                    shortcut = bn(name + "_0_bn", shortcut)
                }
                var y = b.conv(name + "_1_conv", x, out: c(stage.width), kernel: (1, 1), stride: stride, bias: true)
                y = b.relu(name + "_1_relu", bn(name + "_1_bn", y))
                y = b.convSame(name + "_2_conv", y, out: c(stage.width), kernel: (3, 3), bias: true)
                y = b.relu(name + "_2_relu", bn(name + "_2_bn", y))
                y = bn(name + "_3_bn", b.conv(name + "_3_conv", y, out: out, kernel: (1, 1), bias: true))
                x = b.relu(name + "_out", b.sum(name + "_add", [shortcut, y]))
            }
        }
        x = b.globalPool("avg_pool", x)
        return b.linear("predictions", x, out: config.numClasses)
    }
}

/// Exact channel scaling for reduced ResNet50 / InceptionV3 variants (validated integral).
func channelScale(_ config: ModelConfig) -> (Int) -> Int {
    let w = config.widthMultiplier
    return { channels in Int((Double(channels) * w).rounded()) }
}
