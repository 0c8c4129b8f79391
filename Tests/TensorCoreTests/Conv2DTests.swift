import XCTest
@testable import TensorCore

final class Conv2DTests: XCTestCase {
    struct Case {
        var input: [Int]
        var weight: [Int]
        var config: Conv2DConfig
        var bias: Bool
    }

    /// Odd sizes, strides 1–2, asymmetric padding, groups, depthwise and dilation.
    static let cases: [Case] = [
        Case(input: [2, 3, 9, 7], weight: [4, 3, 3, 3], config: Conv2DConfig(stride: 1, padding: .symmetric(1)), bias: true),
        Case(input: [1, 4, 11, 10], weight: [6, 4, 3, 3], config: Conv2DConfig(stride: 2, padding: Padding2D(top: 0, bottom: 1, left: 0, right: 1)), bias: false),
        Case(input: [2, 6, 8, 9], weight: [6, 2, 3, 3], config: Conv2DConfig(stride: 1, padding: .symmetric(1), groups: 3), bias: true),
        Case(input: [1, 8, 13, 13], weight: [8, 1, 3, 3], config: Conv2DConfig(stride: 2, padding: .symmetric(1), groups: 8), bias: false),
        Case(input: [1, 3, 12, 11], weight: [5, 3, 3, 3], config: Conv2DConfig(stride: 1, padding: .symmetric(2), dilation: 2), bias: true),
        Case(input: [3, 5, 6, 6], weight: [7, 5, 1, 1], config: Conv2DConfig(), bias: true),
        Case(input: [1, 3, 15, 15], weight: [4, 3, 7, 7], config: Conv2DConfig(stride: 2, padding: .symmetric(3)), bias: false),
        Case(input: [1, 2, 9, 9], weight: [3, 2, 1, 3], config: Conv2DConfig(strideH: 1, strideW: 2, padding: Padding2D(top: 0, bottom: 0, left: 1, right: 1), dilationH: 1, dilationW: 1, groups: 1), bias: true),
    ]

    func testForwardMatchesDefinitionOnBothBackends() {
        for (number, c) in Self.cases.enumerated() {
            let x = random(c.input, seed: UInt64(number))
            let w = random(c.weight, seed: UInt64(100 + number))
            let b = c.bias ? random([c.weight[0]], seed: UInt64(200 + number)) : nil
            let expected = naiveConv2D(x, w, b, c.config)
            for backend in KernelBackend.allCases {
                let y = Conv2D.forward(x, weight: w, bias: b, config: c.config, backend: backend)
                assertClose(y, expected, absolute: 1e-4, relative: 1e-4, "case \(number) \(backend)")
            }
        }
    }

    func testBackwardMatchesFiniteDifferences() {
        for (number, c) in Self.cases.enumerated() {
            let x = random(c.input, seed: UInt64(number))
            let w = random(c.weight, seed: UInt64(100 + number))
            let b = c.bias ? random([c.weight[0]], seed: UInt64(200 + number)) : nil
            let outputShape = c.config.outputShape(input: c.input, weight: c.weight)
            let r = random(outputShape, seed: UInt64(300 + number))
            for backend in KernelBackend.allCases {
                let dx = Conv2D.backwardData(r, weight: w, inputShape: c.input, config: c.config, backend: backend)
                let (dw, db) = Conv2D.backwardWeights(r, input: x, weightShape: c.weight, config: c.config, backend: backend)
                assertGradientMatches(dx, { projection(naiveConv2D($0, w, b, c.config), r) }, at: x, "case \(number) \(backend) dx")
                assertGradientMatches(dw, { projection(naiveConv2D(x, $0, b, c.config), r) }, at: w, "case \(number) \(backend) dw")
                if let b {
                    assertGradientMatches(db, { projection(naiveConv2D(x, w, $0, c.config), r) }, at: b, "case \(number) \(backend) db")
                }
            }
        }
    }

    /// Calls oneDNN directly (the public API would fall back to the reference silently).
    func testOneDNNBuildsEveryGeometry() throws {
        for (number, c) in Self.cases.enumerated() {
            let x = random(c.input, seed: UInt64(number))
            let w = random(c.weight, seed: UInt64(100 + number))
            let b = c.bias ? random([c.weight[0]], seed: UInt64(200 + number)) : nil
            let outputShape = c.config.outputShape(input: c.input, weight: c.weight)
            let r = random(outputShape, seed: UInt64(300 + number))
            let y = try OneDNNConvolution.forward(x, weight: w, bias: b, config: c.config, outputShape: outputShape)
            assertClose(y, ReferenceConvolution.forward(x, weight: w, bias: b, config: c.config, outputShape: outputShape), "case \(number) forward")
            let dx = try OneDNNConvolution.backwardData(r, weight: w, inputShape: c.input, config: c.config)
            assertClose(dx, ReferenceConvolution.backwardData(r, weight: w, inputShape: c.input, config: c.config), "case \(number) dx")
            let fast = try OneDNNConvolution.backwardWeights(r, input: x, weightShape: c.weight, config: c.config)
            let reference = ReferenceConvolution.backwardWeights(r, input: x, weightShape: c.weight, config: c.config)
            assertClose(fast.weight, reference.weight, "case \(number) dw")
            assertClose(fast.bias, reference.bias, "case \(number) db")
        }
    }

    func testBackendsAgreeOnBackwardPasses() {
        for (number, c) in Self.cases.enumerated() {
            let x = random(c.input, seed: UInt64(number))
            let w = random(c.weight, seed: UInt64(100 + number))
            let r = random(c.config.outputShape(input: c.input, weight: c.weight), seed: UInt64(300 + number))
            let dxFast = Conv2D.backwardData(r, weight: w, inputShape: c.input, config: c.config, backend: .onednn)
            let dxReference = Conv2D.backwardData(r, weight: w, inputShape: c.input, config: c.config, backend: .reference)
            assertClose(dxFast, dxReference, "case \(number) dx")
            let fast = Conv2D.backwardWeights(r, input: x, weightShape: c.weight, config: c.config, backend: .onednn)
            let reference = Conv2D.backwardWeights(r, input: x, weightShape: c.weight, config: c.config, backend: .reference)
            assertClose(fast.weight, reference.weight, "case \(number) dw")
            assertClose(fast.bias, reference.bias, "case \(number) db")
        }
    }

    /// oneDNN keeps weights in its own layout between calls; an in-place update of the
    /// weights (as an optimiser step does) must invalidate that copy.
    func testReorderedWeightsFollowInPlaceUpdates() {
        let config = Conv2DConfig(stride: 1, padding: .symmetric(1))
        let x = random([1, 32, 10, 10], seed: 1)
        var w = random([32, 32, 3, 3], seed: 2)
        let before = Conv2D.forward(x, weight: w, bias: nil, config: config)
        assertClose(before, naiveConv2D(x, w, nil, config), absolute: 1e-4)
        w.withUnsafeMutableBufferPointer { weights in for i in weights.indices { weights[i] *= -0.5 } }
        assertClose(Conv2D.forward(x, weight: w, bias: nil, config: config), naiveConv2D(x, w, nil, config), absolute: 1e-4)
        let r = random([1, 32, 10, 10], seed: 3)
        assertClose(Conv2D.backwardData(r, weight: w, inputShape: x.shape, config: config),
                    ReferenceConvolution.backwardData(r, weight: w, inputShape: x.shape, config: config), absolute: 1e-4)
    }

    func testTensorFlowSamePadding() {
        // TF 'same' at stride 2 on an even size pads 0 before and 1 after (Keras MobileNetV2 stem).
        let padding = Padding2D.same(inputHeight: 224, inputWidth: 224, kernel: (3, 3), stride: (2, 2))
        XCTAssertEqual(padding, Padding2D(top: 0, bottom: 1, left: 0, right: 1))
        let odd = Padding2D.same(inputHeight: 7, inputWidth: 7, kernel: (3, 3), stride: (1, 1))
        XCTAssertEqual(odd, .symmetric(1))
    }
}
