import Foundation

/// A graph whose operations do not fit together: the node at fault and why.
public struct GraphShapeError: Error, CustomStringConvertible, Equatable {
    public let node: String
    public let reason: String
    public var description: String { "node '\(node)': \(reason)" }
}

extension Graph {
    /// The element count of `shape`, or nil when a dimension is negative or the product
    /// overflows (shapes read from files).
    public static func elementCount(_ shape: [Int]) -> Int? {
        var count = 1
        for dimension in shape {
            guard dimension >= 0 else { return nil }
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            if overflow { return nil }
            count = product
        }
        return count
    }

    /// Every node's output shape for an input of `inputShape`, checking that each operation's
    /// geometry is valid (strides, dilations, groups, kernels at least 1, no negative padding),
    /// that its inputs have the rank and sizes it needs and that its parameters have the shapes
    /// its inputs call for. `parameterShape(node, name)` gives a parameter's shape (nil: missing).
    ///
    /// For graphs read from files: the kernels assume all of this (with preconditions), so a
    /// file that passed its checksum but was written inconsistently is refused here instead.
    /// Complexity O(nodes + parameters' ranks).
    public func checkedShapes(input inputShape: [Int], parameterShape: (Int, String) -> [Int]?) throws -> [[Int]] {
        var shapes: [[Int]] = []
        for (index, node) in nodes.enumerated() {
            func fail(_ reason: String) -> GraphShapeError { GraphShapeError(node: node.name, reason: reason) }
            func parameter(_ name: String) throws -> [Int] {
                guard let shape = parameterShape(index, name) else { throw fail("parameter '\(name)' is missing") }
                return shape
            }
            guard node.inputs.allSatisfy({ (0..<index).contains($0) }) else { throw fail("reads a later node") }
            let inputs = node.inputs.map { shapes[$0] }
            let arity: ClosedRange<Int> = switch node.operation {
            case .input: 0...0
            case .add: 2...Int.max
            case .concat: 1...Int.max
            default: 1...1
            }
            guard arity.contains(inputs.count) else { throw fail("has \(inputs.count) inputs") }
            let x = inputs.first ?? inputShape
            func needRank(_ rank: Int) throws {
                guard x.count == rank else { throw fail("expects a rank-\(rank) input, got \(x)") }
            }
            func needChannels(_ name: String, _ count: Int) throws {
                guard x.count >= 2, count == x[1] else { throw fail("\(name) has \(count) entries for input \(x)") }
            }
            let shape: [Int]
            switch node.operation {
            case .input:
                guard index == 0 else { throw fail("a second input node") }
                shape = inputShape
            case let .conv2d(config, weight, bias):
                shape = try convolutionShape(x, config, weight: try parameter(weight), bias: try bias.map(parameter), fail: fail)
            case let .fusedConv2d(config, weight, bias, _):
                shape = try convolutionShape(x, config, weight: try parameter(weight), bias: try parameter(bias), fail: fail)
            case let .batchNorm(scale, shift, mean, variance, _, _):
                for name in [scale, shift, mean, variance].compactMap({ $0 }) {
                    let p = try parameter(name)
                    guard x.count >= 2, p == [x[1]] else { throw fail("'\(name)' has shape \(p) for input \(x)") }
                }
                shape = x
            case let .clamp(lower, upper):
                guard lower <= upper else { throw fail("clamp bounds \(lower) > \(upper)") }
                shape = x
            case .relu, .relu6, .dropout, .softmax, .logSoftmax:
                shape = x
            case .add:
                guard inputs.allSatisfy({ $0 == x }) else { throw fail("adds shapes \(inputs)") }
                shape = x
            case .concat:
                guard inputs.allSatisfy({ $0.count == 4 && $0[0] == x[0] && $0[2...] == x[2...] }), x.count == 4 else {
                    throw fail("concatenates shapes \(inputs)")
                }
                shape = [x[0], inputs.map { $0[1] }.reduce(0, +), x[2], x[3]]
            case let .maxPool(config), let .avgPool(config):
                try needRank(4)
                let p = config.padding
                guard [config.kernelH, config.kernelW, config.strideH, config.strideW].allSatisfy(Self.geometryRange.contains),
                      Self.validPadding(p),
                      x[2] + p.top + p.bottom >= config.kernelH, x[3] + p.left + p.right >= config.kernelW else {
                    throw fail("pooling \(config) does not fit input \(x)")
                }
                shape = config.outputShape(input: x)
                guard shape[2] >= 1, shape[3] >= 1 else { throw fail("pooling \(config) leaves no output for input \(x)") }
            case .globalAvgPool:
                try needRank(4)
                shape = [x[0], x[1], 1, 1]
            case .flatten:
                guard x.count >= 2 else { throw fail("flattens a rank-\(x.count) input") }
                shape = [x[0], Self.elementCount(Array(x.dropFirst()))!]
            case let .linear(weight, bias):
                try needRank(2)
                let w = try parameter(weight)
                // [out, in], or [out, in, 1, 1] as the int8 converter stores it.
                guard w.count == 2 || (w.count == 4 && w[2] == 1 && w[3] == 1), w[1] == x[1], Self.geometryRange.contains(w[0]) else { throw fail("weight \(w) for input \(x)") }
                if let bias, case let b = try parameter(bias), b != [w[0]] { throw fail("bias shape \(b) for weight \(w)") }
                shape = [x[0], w[0]]
            case let .affine(scale, shift):
                try needChannels("scale", scale.count)
                try needChannels("shift", shift.count)
                shape = x
            case let .permuteChannels(order):
                try needChannels("channel order", order.count)
                guard Set(order) == Set(0..<x[1]) else { throw fail("channel order \(order) is not a permutation") }
                shape = x
            case let .zeroPad(p):
                try needRank(4)
                guard Self.validPadding(p) else {
                    throw fail("invalid padding \(p)")
                }
                shape = [x[0], x[1], x[2] + p.top + p.bottom, x[3] + p.left + p.right]
            }
            guard shape.allSatisfy({ $0 >= 1 }), let count = Self.elementCount(shape), count < 1 << 34 else {
                throw fail("output shape \(shape) is empty or too large")
            }
            shapes.append(shape)
        }
        return shapes
    }

    /// Sizes, strides, dilations, groups and paddings a graph may use (far beyond any real
    /// network; keeps the shape arithmetic from overflowing).
    static let geometryRange = 1...(1 << 20)

    static func validPadding(_ p: Padding2D) -> Bool {
        [p.top, p.bottom, p.left, p.right].allSatisfy { (0...geometryRange.upperBound).contains($0) }
    }

    private func convolutionShape(_ x: [Int], _ config: Conv2DConfig, weight w: [Int], bias: [Int]?,
                                  fail: (String) -> GraphShapeError) throws -> [Int] {
        let p = config.padding
        guard x.count == 4 else { throw fail("expects an NCHW input, got \(x)") }
        guard [config.strideH, config.strideW, config.dilationH, config.dilationW, config.groups].allSatisfy(Self.geometryRange.contains),
              Self.validPadding(p) else {
            throw fail("invalid convolution geometry \(config)")
        }
        guard w.count == 4, w.allSatisfy(Self.geometryRange.contains), x[1] == w[1] * config.groups, w[0] % config.groups == 0 else {
            throw fail("weight \(w) does not fit input \(x) with \(config.groups) groups")
        }
        if let bias, bias != [w[0]] { throw fail("bias shape \(bias) for weight \(w)") }
        let height = outputExtent(x[2], kernel: w[2], stride: config.strideH, dilation: config.dilationH, before: p.top, after: p.bottom)
        let width = outputExtent(x[3], kernel: w[3], stride: config.strideW, dilation: config.dilationW, before: p.left, after: p.right)
        guard height >= 1, width >= 1 else { throw fail("input \(x) is too small for weight \(w) with \(config)") }
        return [x[0], w[0], height, width]
    }
}
