import Foundation

/// Graph analyses shared by the inference programs that run a fused graph outside the
/// `Executor` (the channels-last fp32 program and the int8 program).
extension Graph {
    /// The last node of the preprocessing chain at the graph's start (per-channel affine
    /// normalisation, channel permutation), each read only by the next; 0 when there is none.
    public func preprocessingEnd() -> Int {
        var end = 0
        let readers = readerCounts()
        for index in 1..<nodes.count {
            let node = nodes[index]
            guard node.inputs == [end], readers[end] == 1 else { break }
            switch node.operation {
            case .affine, .permuteChannels: end = index
            default: return end
            }
        }
        return end
    }

    /// Readers of every node, in node order (the graph's output is not counted as one).
    public func readerLists() -> [[Int]] {
        var readers = [[Int]](repeating: [], count: nodes.count)
        for (index, node) in nodes.enumerated() { for input in node.inputs { readers[input].append(index) } }
        return readers
    }

    /// add node → the ReLU that is its only reader (ResNet's residual add + ReLU runs as one
    /// pass, as in TFLite and PyTorch's add_relu).
    public func addReluPairs() -> [Int: Int] {
        let readers = readerLists()
        var pairs: [Int: Int] = [:]
        for (index, node) in nodes.enumerated() {
            guard case .add = node.operation, index != output, readers[index].count == 1 else { continue }
            if case .relu = nodes[readers[index][0]].operation { pairs[index] = readers[index][0] }
        }
        return pairs
    }

    /// Keras's ZeroPadding2D nodes that the node reading them can absorb as its own padding,
    /// so that the padded copy is never made:
    /// - in front of a convolution (its only reader): convolutions pad with a real zero (the
    ///   zero point, for int8), so the result is the same;
    /// - in front of a max pool (its only reader) when the padded map is a ReLU's or ReLU6's
    ///   output (Keras's ResNet50 stem): its values are ≥ 0, so the padded zeros never exceed
    ///   a window's largest real value, and a pool that skips padded cells gives the same
    ///   maxima.
    /// - Returns: reader node → padding to add; the pad nodes that become pass-throughs.
    public func foldablePadding(after start: Int) -> (extra: [Int: Padding2D], passthrough: Set<Int>) {
        let readers = readerLists()
        var extra: [Int: Padding2D] = [:], passthrough = Set<Int>()
        for (index, node) in nodes.enumerated() where index > start {
            guard case let .zeroPad(padding) = node.operation, index != output, readers[index].count == 1 else { continue }
            let reader = readers[index][0]
            switch nodes[reader].operation {
            case .fusedConv2d: break
            case let .maxPool(config) where node.inputs[0] > start && producesNonNegative(node.inputs[0])
                                            && config.padded(by: padding).everyWindowHoldsInput: break
            default: continue
            }
            extra[reader] = padding
            passthrough.insert(index)
        }
        return (extra, passthrough)
    }

    /// Whether the node's values are ≥ 0 by construction: a ReLU or ReLU6, on its own or
    /// fused into a convolution.
    func producesNonNegative(_ index: Int) -> Bool {
        switch nodes[index].operation {
        case .relu, .relu6, .fusedConv2d(_, _, _, .relu), .fusedConv2d(_, _, _, .relu6): return true
        default: return false
        }
    }
}

extension Padding2D {
    /// The two paddings added side by side.
    static func + (lhs: Padding2D, rhs: Padding2D) -> Padding2D {
        Padding2D(top: lhs.top + rhs.top, bottom: lhs.bottom + rhs.bottom, left: lhs.left + rhs.left, right: lhs.right + rhs.right)
    }
}

extension Conv2DConfig {
    /// The configuration with `extra` padding added on each side.
    public func padded(by extra: Padding2D?) -> Conv2DConfig {
        guard let extra else { return self }
        var config = self
        config.padding = padding + extra
        return config
    }
}

extension Pool2DConfig {
    /// The configuration with `extra` padding added on each side.
    public func padded(by extra: Padding2D?) -> Pool2DConfig {
        guard let extra else { return self }
        var config = self
        config.padding = padding + extra
        return config
    }

    /// Whether every window covers at least one input cell: each side's padding is smaller
    /// than the kernel, and no ceil-mode window hangs past the end.
    var everyWindowHoldsInput: Bool {
        !ceilMode && [padding.top, padding.bottom].allSatisfy { $0 < kernelH } && [padding.left, padding.right].allSatisfy { $0 < kernelW }
    }
}
