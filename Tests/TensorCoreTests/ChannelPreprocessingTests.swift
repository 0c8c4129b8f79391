import CShims
import XCTest
@testable import TensorCore

final class ChannelPreprocessingTests: XCTestCase {
    /// The folded preprocessing + layout change gives the executor's bits (permutation, then
    /// affine with two roundings) in NHWC order, on the vector path (three channels), the
    /// portable one, and four channels; with pixel tails, several images, and an image large
    /// enough that the threads' shares meet inside it.
    func testFoldedLayoutChangeEqualsExecutorThenTranspose() {
        var generator = SeededGenerator(seed: 11)
        for shape in [[2, 3, 9, 13], [3, 3, 45, 61], [1, 3, 1, 5], [2, 4, 5, 7]] {
            let channels = shape[1], plane = shape[2] * shape[3]
            // Values whose product and sum round differently from one fused multiply-add.
            let images = Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in Float.random(in: 0...1, using: &generator) })
            let order = (0..<channels).reversed().map { $0 }
            let scale = (0..<channels).map { _ in Float.random(in: 50...300, using: &generator) }
            let shift = (0..<channels).map { _ in Float.random(in: -130 ... -90, using: &generator) }
            var graph = Graph()
            let permuted = graph.add("permute", .permuteChannels(order), inputs: [0])
            _ = graph.add("affine", .affine(scale: scale, shift: shift), inputs: [permuted])
            let folded = ChannelPreprocessing(graph)
            XCTAssertEqual(folded, ChannelPreprocessing(source: order.map(Int32.init), scale: scale, shift: shift))
            let reference = Executor().forward(graph, parameters: Parameters(), input: images).scalars
            var expected = [Float](repeating: 0, count: reference.count)
            for b in 0..<shape[0] { for c in 0..<channels { for p in 0..<plane {
                expected[(b * plane + p) * channels + c] = reference[(b * channels + c) * plane + p]
            } } }
            for generic in [Int32(1), 0] {
                rc_force_generic(generic)
                let folded = ChannelsLastKernels.toChannelsLast(images, preprocessing: folded).data.scalars
                XCTAssertEqual(folded.map(\.bitPattern), expected.map(\.bitPattern), "\(shape), portable \(generic)")
            }
            let plain = ChannelsLastKernels.toChannelsLast(images).data.scalars
            var transposed = [Float](repeating: 0, count: plain.count)
            for b in 0..<shape[0] { for c in 0..<channels { for p in 0..<plane {
                transposed[(b * plane + p) * channels + c] = images.scalars[(b * channels + c) * plane + p]
            } } }
            XCTAssertEqual(plain, transposed, "\(shape), no preprocessing")
        }
    }

    /// Only a permutation + affine (or an affine alone) folds.
    func testOnlyPermutationAndAffineFold() {
        var affineOnly = Graph()
        _ = affineOnly.add("a", .affine(scale: [1, 2, 3], shift: [4, 5, 6]), inputs: [0])
        XCTAssertEqual(ChannelPreprocessing(affineOnly), ChannelPreprocessing(source: [0, 1, 2], scale: [1, 2, 3], shift: [4, 5, 6]))
        var twoAffines = Graph()
        let a = twoAffines.add("a", .affine(scale: [1, 2, 3], shift: [0, 0, 0]), inputs: [0])
        _ = twoAffines.add("b", .affine(scale: [1, 2, 3], shift: [1, 1, 1]), inputs: [a])
        XCTAssertNil(ChannelPreprocessing(twoAffines))
        var permutationOnly = Graph()
        _ = permutationOnly.add("p", .permuteChannels([2, 1, 0]), inputs: [0])
        XCTAssertNil(ChannelPreprocessing(permutationOnly))
    }
}
