import CShims

/// A network's float preprocessing in the one form the inference engines fold into their
/// first step: output channel c is x·scale[c] + shift[c] of input channel source[c] — a
/// channel permutation, then the executor's affine op with its two roundings (never one
/// fused multiply-add), so the folded step gives the executor's bits.
public struct ChannelPreprocessing: Sendable, Equatable {
    public var source: [Int32]
    public var scale: [Float], shift: [Float]

    /// - Precondition: the three arrays have one entry per channel.
    public init(source: [Int32], scale: [Float], shift: [Float]) {
        precondition(source.count == scale.count && scale.count == shift.count,
                     "preprocessing: \(source.count) sources, \(scale.count) scales, \(shift.count) shifts")
        self.source = source
        self.scale = scale
        self.shift = shift
    }

    /// The preprocessing of a float prefix made of an optional channel permutation and one
    /// affine op — what ModelZoo's preprocessing appends — or nil for anything else.
    public init?(_ prefix: Graph) {
        let operations = prefix.nodes.dropFirst().map(\.operation)
        guard let last = operations.last, case let .affine(scale, shift) = last else { return nil }
        let source: [Int32]
        switch operations.count {
        case 1: source = (0..<Int32(scale.count)).map { $0 }
        case 2:
            guard case let .permuteChannels(order) = operations[0], order.count == scale.count else { return nil }
            source = order.map(Int32.init)
        default: return nil
        }
        self.init(source: source, scale: scale, shift: shift)
    }
}

extension ChannelPreprocessing {
    /// Pixels per work block of `forEachPixelRange`: the vector kernels' largest step.
    static let pixelBlock = 64

    /// Calls `body(image, pixels, preprocessing)` over every pixel of `batch` images of
    /// `plane` pixels each, in blocks of 64 pixels split evenly between the threads (a range
    /// never spans two images); `preprocessing` is `self`'s C form, or nil for none.
    package static func forEachPixelRange(batch: Int, plane: Int, _ preprocessing: ChannelPreprocessing?,
                                          _ body: (Int, Range<Int>, UnsafePointer<rc_preprocessing>?) -> Void) {
        let blocks = (plane + pixelBlock - 1) / pixelBlock
        func run(_ folded: UnsafePointer<rc_preprocessing>?) {
            let p = UncheckedSendable(folded)
            Threading.parallelFor(batch * blocks, minimumChunk: 64) { range in
                for image in (range.lowerBound / blocks)...((range.upperBound - 1) / blocks) {
                    let first = Swift.max(range.lowerBound - image * blocks, 0) * pixelBlock
                    let last = Swift.min(Swift.min(range.upperBound - image * blocks, blocks) * pixelBlock, plane)
                    body(image, first..<last, p.value)
                }
            }
        }
        guard let preprocessing else { return run(nil) }
        preprocessing.source.withUnsafeBufferPointer { order in
            preprocessing.scale.withUnsafeBufferPointer { a in preprocessing.shift.withUnsafeBufferPointer { b in
                var folded = rc_preprocessing(source: order.baseAddress, scale: a.baseAddress, shift: b.baseAddress)
                withUnsafePointer(to: &folded) { run($0) }
            } }
        }
    }
}
