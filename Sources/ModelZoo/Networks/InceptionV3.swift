import TensorCore

/// InceptionV3 (Szegedy et al. 2016) as torchvision's `inception_v3` and Keras
/// Applications' `InceptionV3` build it.
///
/// torchvision: `BasicConv2d` = conv (no bias) + BN (eps 1e-3) + ReLU, modules named
/// `Conv2d_1a_3x3` … `Mixed_7c`, 3x3/1/1 average pooling that counts padded cells,
/// dropout 0.5 + `fc`; the auxiliary classifier's parameters are accepted but unused.
/// Keras: `conv2d_bn` = conv (no bias) + BN (`scale=False`, eps 1e-3) + ReLU with
/// auto-named layers (`conv2d`, `conv2d_1`, …), 'same' average pooling that excludes padded
/// cells, branch concatenations in Keras's order, `predictions` Dense.
enum InceptionV3 {
    static func torch(_ config: ModelConfig, _ b: inout NetworkBuilder, input: Int) -> Int {
        let c = channelScale(config)
        var x = input
        if config.transformInput {
            // x_c · (std_c / 0.5) + (mean_c − 0.5) / 0.5, applied to ImageNet-normalised input.
            let mean: [Float] = [0.485, 0.456, 0.406], std: [Float] = [0.229, 0.224, 0.225]
            x = b.affine("transform_input", x, scale: std.map { $0 / 0.5 }, shift: mean.map { ($0 - 0.5) / 0.5 })
        }
        func basic(_ name: String, _ x: Int, _ out: Int, _ kernel: (Int, Int), stride: Int = 1, padding: (Int, Int) = (0, 0)) -> Int {
            var y = b.conv(name + ".conv", x, out: c(out), kernel: kernel, stride: stride,
                           padding: Padding2D(top: padding.0, bottom: padding.0, left: padding.1, right: padding.1))
            y = b.batchNorm(name + ".bn", y, epsilon: 1e-3)
            return b.relu(name + ".relu", y)
        }
        let avg = Pool2DConfig(kernel: 3, stride: 1, padding: .symmetric(1), countIncludesPadding: true)
        let max = Pool2DConfig(kernel: 3, stride: 2)
        x = basic("Conv2d_1a_3x3", x, 32, (3, 3), stride: 2)
        x = basic("Conv2d_2a_3x3", x, 32, (3, 3))
        x = basic("Conv2d_2b_3x3", x, 64, (3, 3), padding: (1, 1))
        x = b.maxPool("maxpool1", x, max)
        x = basic("Conv2d_3b_1x1", x, 80, (1, 1))
        x = basic("Conv2d_4a_3x3", x, 192, (3, 3))
        x = b.maxPool("maxpool2", x, max)
        for (name, poolFeatures) in [("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)] {
            let b1 = basic(name + ".branch1x1", x, 64, (1, 1))
            let b5 = basic(name + ".branch5x5_2", basic(name + ".branch5x5_1", x, 48, (1, 1)), 64, (5, 5), padding: (2, 2))
            var b3 = basic(name + ".branch3x3dbl_1", x, 64, (1, 1))
            b3 = basic(name + ".branch3x3dbl_2", b3, 96, (3, 3), padding: (1, 1))
            b3 = basic(name + ".branch3x3dbl_3", b3, 96, (3, 3), padding: (1, 1))
            let bp = basic(name + ".branch_pool", b.avgPool(name + ".avg_pool", x, avg), poolFeatures, (1, 1))
            x = b.concat(name, [b1, b5, b3, bp])
        }
        do {
            let name = "Mixed_6a"
            let b3 = basic(name + ".branch3x3", x, 384, (3, 3), stride: 2)
            var bd = basic(name + ".branch3x3dbl_1", x, 64, (1, 1))
            bd = basic(name + ".branch3x3dbl_2", bd, 96, (3, 3), padding: (1, 1))
            bd = basic(name + ".branch3x3dbl_3", bd, 96, (3, 3), stride: 2)
            x = b.concat(name, [b3, bd, b.maxPool(name + ".max_pool", x, max)])
        }
        for (name, c7) in [("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)] {
            let b1 = basic(name + ".branch1x1", x, 192, (1, 1))
            var b7 = basic(name + ".branch7x7_1", x, c7, (1, 1))
            b7 = basic(name + ".branch7x7_2", b7, c7, (1, 7), padding: (0, 3))
            b7 = basic(name + ".branch7x7_3", b7, 192, (7, 1), padding: (3, 0))
            var bd = basic(name + ".branch7x7dbl_1", x, c7, (1, 1))
            bd = basic(name + ".branch7x7dbl_2", bd, c7, (7, 1), padding: (3, 0))
            bd = basic(name + ".branch7x7dbl_3", bd, c7, (1, 7), padding: (0, 3))
            bd = basic(name + ".branch7x7dbl_4", bd, c7, (7, 1), padding: (3, 0))
            bd = basic(name + ".branch7x7dbl_5", bd, 192, (1, 7), padding: (0, 3))
            let bp = basic(name + ".branch_pool", b.avgPool(name + ".avg_pool", x, avg), 192, (1, 1))
            x = b.concat(name, [b1, b7, bd, bp])
        }
        do {
            let name = "Mixed_7a"
            let b3 = basic(name + ".branch3x3_2", basic(name + ".branch3x3_1", x, 192, (1, 1)), 320, (3, 3), stride: 2)
            var b7 = basic(name + ".branch7x7x3_1", x, 192, (1, 1))
            b7 = basic(name + ".branch7x7x3_2", b7, 192, (1, 7), padding: (0, 3))
            b7 = basic(name + ".branch7x7x3_3", b7, 192, (7, 1), padding: (3, 0))
            b7 = basic(name + ".branch7x7x3_4", b7, 192, (3, 3), stride: 2)
            x = b.concat(name, [b3, b7, b.maxPool(name + ".max_pool", x, max)])
        }
        for name in ["Mixed_7b", "Mixed_7c"] {
            let b1 = basic(name + ".branch1x1", x, 320, (1, 1))
            let b3 = basic(name + ".branch3x3_1", x, 384, (1, 1))
            let b3a = basic(name + ".branch3x3_2a", b3, 384, (1, 3), padding: (0, 1))
            let b3b = basic(name + ".branch3x3_2b", b3, 384, (3, 1), padding: (1, 0))
            var bd = basic(name + ".branch3x3dbl_1", x, 448, (1, 1))
            bd = basic(name + ".branch3x3dbl_2", bd, 384, (3, 3), padding: (1, 1))
            let bda = basic(name + ".branch3x3dbl_3a", bd, 384, (1, 3), padding: (0, 1))
            let bdb = basic(name + ".branch3x3dbl_3b", bd, 384, (3, 1), padding: (1, 0))
            let bp = basic(name + ".branch_pool", b.avgPool(name + ".avg_pool", x, avg), 192, (1, 1))
            x = b.concat(name, [b1, b3a, b3b, bda, bdb, bp])
        }
        x = b.globalPool("avgpool", x)
        x = b.dropout("dropout", x, probability: 0.5)
        x = b.linear("fc", x, out: config.numClasses)
        // torchvision's InceptionAux(768): conv0 1x1 → 128, conv1 5x5 → 768, fc → classes.
        var aux: [ParameterSpec] = []
        for (name, inputs, out, k) in [("AuxLogits.conv0", c(768), c(128), 1), ("AuxLogits.conv1", c(128), c(768), 5)] {
            aux.append(ParameterSpec(name: name + ".conv.weight", shape: [out, inputs, k, k]))
            for suffix in ["weight", "bias", "running_mean", "running_var"] { aux.append(ParameterSpec(name: "\(name).bn.\(suffix)", shape: [out])) }
            aux.append(ParameterSpec(name: name + ".bn.num_batches_tracked", shape: []))
        }
        aux.append(ParameterSpec(name: "AuxLogits.fc.weight", shape: [config.numClasses, c(768)]))
        aux.append(ParameterSpec(name: "AuxLogits.fc.bias", shape: [config.numClasses]))
        b.declareOptional(aux)
        return x
    }

    static func keras(_ config: ModelConfig, _ b: inout NetworkBuilder, input: Int) -> Int {
        let c = channelScale(config)
        var convCount = 0, bnCount = 0, activationCount = 0, poolCount = 0, concatCount = 0
        func numbered(_ base: String, _ counter: inout Int) -> String {
            defer { counter += 1 }
            return counter == 0 ? base : "\(base)_\(counter)"
        }
        func conv2dBN(_ x: Int, _ filters: Int, _ rows: Int, _ cols: Int, same: Bool = true, stride: Int = 1) -> Int {
            let name = numbered("conv2d", &convCount)
            var y = same ? b.convSame(name, x, out: c(filters), kernel: (rows, cols), stride: stride)
                         : b.conv(name, x, out: c(filters), kernel: (rows, cols), stride: stride)
            y = b.batchNorm(numbered("batch_normalization", &bnCount), y, epsilon: 1e-3, scale: false)
            return b.relu(numbered("activation", &activationCount), y)
        }
        func averagePoolSame(_ x: Int) -> Int {
            let s = b.shape(x)
            let padding = Padding2D.same(inputHeight: s[1], inputWidth: s[2], kernel: (3, 3), stride: (1, 1))
            return b.avgPool(numbered("average_pooling2d", &poolCount), x,
                             Pool2DConfig(kernel: 3, stride: 1, padding: padding, countIncludesPadding: false))
        }
        var maxCount = 0
        func maxPool(_ x: Int) -> Int { b.maxPool(numbered("max_pooling2d", &maxCount), x, Pool2DConfig(kernel: 3, stride: 2)) }

        var x = conv2dBN(input, 32, 3, 3, same: false, stride: 2)
        x = conv2dBN(x, 32, 3, 3, same: false)
        x = conv2dBN(x, 64, 3, 3)
        x = maxPool(x)
        x = conv2dBN(x, 80, 1, 1, same: false)
        x = conv2dBN(x, 192, 3, 3, same: false)
        x = maxPool(x)
        for (index, poolFeatures) in [32, 64, 64].enumerated() {
            let b1 = conv2dBN(x, 64, 1, 1)
            let b5 = conv2dBN(conv2dBN(x, 48, 1, 1), 64, 5, 5)
            let b3 = conv2dBN(conv2dBN(conv2dBN(x, 64, 1, 1), 96, 3, 3), 96, 3, 3)
            let bp = conv2dBN(averagePoolSame(x), poolFeatures, 1, 1)
            x = b.concat("mixed\(index)", [b1, b5, b3, bp])
        }
        do {
            let b3 = conv2dBN(x, 384, 3, 3, same: false, stride: 2)
            let bd = conv2dBN(conv2dBN(conv2dBN(x, 64, 1, 1), 96, 3, 3), 96, 3, 3, same: false, stride: 2)
            x = b.concat("mixed3", [b3, bd, maxPool(x)])
        }
        for (index, c7) in [128, 160, 160, 192].enumerated() {
            let b1 = conv2dBN(x, 192, 1, 1)
            let b7 = conv2dBN(conv2dBN(conv2dBN(x, c7, 1, 1), c7, 1, 7), 192, 7, 1)
            var bd = conv2dBN(x, c7, 1, 1)
            bd = conv2dBN(bd, c7, 7, 1)
            bd = conv2dBN(bd, c7, 1, 7)
            bd = conv2dBN(bd, c7, 7, 1)
            bd = conv2dBN(bd, 192, 1, 7)
            let bp = conv2dBN(averagePoolSame(x), 192, 1, 1)
            x = b.concat("mixed\(4 + index)", [b1, b7, bd, bp])
        }
        do {
            let b3 = conv2dBN(conv2dBN(x, 192, 1, 1), 320, 3, 3, same: false, stride: 2)
            var b7 = conv2dBN(x, 192, 1, 1)
            b7 = conv2dBN(b7, 192, 1, 7)
            b7 = conv2dBN(b7, 192, 7, 1)
            b7 = conv2dBN(b7, 192, 3, 3, same: false, stride: 2)
            x = b.concat("mixed8", [b3, b7, maxPool(x)])
        }
        for index in 0..<2 {
            let b1 = conv2dBN(x, 320, 1, 1)
            let b3 = conv2dBN(x, 384, 1, 1)
            let b3x = b.concat("mixed9_\(index)", [conv2dBN(b3, 384, 1, 3), conv2dBN(b3, 384, 3, 1)])
            let bd = conv2dBN(conv2dBN(x, 448, 1, 1), 384, 3, 3)
            let bdx = b.concat(numbered("concatenate", &concatCount), [conv2dBN(bd, 384, 1, 3), conv2dBN(bd, 384, 3, 1)])
            let bp = conv2dBN(averagePoolSame(x), 192, 1, 1)
            x = b.concat("mixed\(9 + index)", [b1, b3x, bdx, bp])
        }
        x = b.globalPool("avg_pool", x)
        return b.linear("predictions", x, out: config.numClasses)
    }
}
