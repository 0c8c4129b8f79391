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

    /// Readers of every node, in node order.
    func readerLists() -> [[Int]] {
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

    /// Keras's ZeroPadding2D in front of a convolution (its only reader) can become that
    /// convolution's own padding: convolutions pad with a real zero (the zero point, for
    /// int8), so the result is the same without the copy.
    /// - Returns: convolution node → padding to add; the pad nodes that become pass-throughs.
    public func foldablePadding(after start: Int) -> (extra: [Int: Padding2D], passthrough: Set<Int>) {
        let readers = readerLists()
        var extra: [Int: Padding2D] = [:], passthrough = Set<Int>()
        for (index, node) in nodes.enumerated() where index > start {
            guard case let .zeroPad(padding) = node.operation, index != output, readers[index].count == 1,
                  case .fusedConv2d = nodes[readers[index][0]].operation else { continue }
            extra[readers[index][0]] = padding
            passthrough.insert(index)
        }
        return (extra, passthrough)
    }
}

extension Conv2DConfig {
    /// The configuration with `extra` padding added on each side.
    public func padded(by extra: Padding2D?) -> Conv2DConfig {
        guard let extra else { return self }
        var config = self
        config.padding = Padding2D(top: padding.top + extra.top, bottom: padding.bottom + extra.bottom,
                                   left: padding.left + extra.left, right: padding.right + extra.right)
        return config
    }
}
