import TensorCore

/// MobileNetV2 (Sandler et al. 2018) as torchvision's `mobilenet_v2` and Keras
/// Applications' `MobileNetV2` build it.
enum MobileNetV2 {
    /// (expansion t, channels c, repeats n, first stride s), the paper's Table 2.
    static let settings: [(t: Int, c: Int, n: Int, s: Int)] = [
        (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
    ]

    /// Both references' `_make_divisible`: round to a multiple of `divisor`, never below
    /// `divisor` nor more than 10 % below `value`.
    static func makeDivisible(_ value: Double, _ divisor: Int = 8) -> Int {
        var rounded = max(divisor, Int(value + Double(divisor) / 2) / divisor * divisor)
        if Double(rounded) < 0.9 * value { rounded += divisor }
        return rounded
    }

    /// torchvision: features.0 stem, features.1–17 inverted residuals, features.18 1x1 conv,
    /// classifier = Dropout(0.2) + Linear. BatchNorm eps 1e-5, symmetric padding.
    static func torch(_ config: ModelConfig, _ b: inout NetworkBuilder, input: Int) -> Int {
        let w = config.widthMultiplier
        func convBN(_ prefix: String, _ x: Int, out: Int, kernel: Int, stride: Int = 1, groups: Int = 1, activation: Bool = true) -> Int {
            var y = b.conv("\(prefix).0", x, out: out, kernel: (kernel, kernel), stride: stride,
                           padding: .symmetric((kernel - 1) / 2), groups: groups)
            y = b.batchNorm("\(prefix).1", y, epsilon: 1e-5)
            return activation ? b.relu6("\(prefix).2", y) : y
        }
        var x = convBN("features.0", input, out: makeDivisible(32 * w), kernel: 3, stride: 2)
        var index = 1
        for setting in settings {
            let out = makeDivisible(Double(setting.c) * w)
            for repeatIndex in 0..<setting.n {
                let stride = repeatIndex == 0 ? setting.s : 1
                let inChannels = b.shape(x)[0]
                let hidden = Int((Double(inChannels) * Double(setting.t)).rounded())
                let prefix = "features.\(index).conv"
                var y = x, layer = 0
                if setting.t != 1 {
                    y = convBN("\(prefix).0", y, out: hidden, kernel: 1)
                    layer = 1
                }
                y = convBN("\(prefix).\(layer)", y, out: hidden, kernel: 3, stride: stride, groups: hidden)
                y = b.conv("\(prefix).\(layer + 1)", y, out: out, kernel: (1, 1))
                y = b.batchNorm("\(prefix).\(layer + 2)", y, epsilon: 1e-5)
                x = (stride == 1 && inChannels == out) ? b.sum("features.\(index).add", [x, y]) : y
                index += 1
            }
        }
        x = convBN("features.\(index)", x, out: makeDivisible(1280 * max(1, w)), kernel: 1)
        x = b.globalPool("pool", x)
        x = b.dropout("classifier.0", x, probability: 0.2)
        return b.linear("classifier.1", x, out: config.numClasses)
    }

    /// Keras: Conv1 with TF 'same' padding, `block_N_*` layers with ZeroPadding2D
    /// (`correct_pad`) before stride-2 depthwise convolutions, Conv_1, global pool, Dense.
    /// BatchNorm eps 1e-3, momentum 0.999.
    static func keras(_ config: ModelConfig, _ b: inout NetworkBuilder, input: Int) -> Int {
        let alpha = config.widthMultiplier
        func bn(_ name: String, _ x: Int) -> Int { b.batchNorm(name, x, epsilon: 1e-3, momentum: 0.001) }
        var x = b.convSame("Conv1", input, out: makeDivisible(32 * alpha), kernel: (3, 3), stride: 2)
        x = bn("bn_Conv1", x)
        x = b.relu6("Conv1_relu", x)
        var blockID = 0
        for setting in settings {
            for repeatIndex in 0..<setting.n {
                let stride = repeatIndex == 0 ? setting.s : 1
                let inChannels = b.shape(x)[0]
                let pointwise = makeDivisible(Double(Int(Double(setting.c) * alpha)))
                let prefix = blockID == 0 ? "expanded_conv_" : "block_\(blockID)_"
                var y = x
                if blockID != 0 {
                    y = b.conv(prefix + "expand", y, out: setting.t * inChannels, kernel: (1, 1))
                    y = bn(prefix + "expand_BN", y)
                    y = b.relu6(prefix + "expand_relu", y)
                }
                if stride == 2 {
                    // imagenet_utils.correct_pad: one less cell before on even extents.
                    let (h, w) = (b.shape(y)[1], b.shape(y)[2])
                    y = b.zeroPad(prefix + "pad", y, Padding2D(top: 1 - (1 - h % 2), bottom: 1, left: 1 - (1 - w % 2), right: 1))
                    y = b.conv(prefix + "depthwise", y, out: b.shape(y)[0], kernel: (3, 3), stride: 2, groups: b.shape(y)[0])
                } else {
                    y = b.convSame(prefix + "depthwise", y, out: b.shape(y)[0], kernel: (3, 3), groups: b.shape(y)[0])
                }
                y = bn(prefix + "depthwise_BN", y)
                y = b.relu6(prefix + "depthwise_relu", y)
                y = b.conv(prefix + "project", y, out: pointwise, kernel: (1, 1))
                y = bn(prefix + "project_BN", y)
                x = (stride == 1 && inChannels == pointwise) ? b.sum(prefix + "add", [x, y]) : y
                blockID += 1
            }
        }
        x = b.conv("Conv_1", x, out: alpha > 1 ? makeDivisible(1280 * alpha) : 1280, kernel: (1, 1))
        x = bn("Conv_1_bn", x)
        x = b.relu6("out_relu", x)
        x = b.globalPool("global_average_pooling2d", x)
        return b.linear("predictions", x, out: config.numClasses)
    }
}
