import Foundation
import ModelZoo
import TensorCore

/// The study's sample selection: images every model classifies correctly, drawn at random
/// with a seed.
public enum Selection {
    public struct Result: Codable, Sendable {
        /// Positions in the input list, in input order.
        public var indices: [Int]
        /// Top-1 accuracy of each model on the whole list, by "architecture/flavor".
        public var accuracy: [String: Double]
        /// How many images every model got right.
        public var eligible: Int
        public var seed: UInt64
    }

    /// - Parameters:
    ///   - count: how many to draw from the eligible images (all of them if fewer).
    ///   - progress: called with (model index, images done).
    public static func select(_ classifiers: [any ImageClassifier], items: [Evaluator.Item], count: Int, seed: UInt64,
                              batchSize: Int = 32, policy: ResizePolicy = .auto,
                              progress: ((Int, Int) -> Void)? = nil) throws -> Result {
        try select(classifiers, items: classifiers.map { _ in items }, count: count, seed: seed, batchSize: batchSize, policy: policy, progress: progress)
    }

    /// The same with each classifier's own copy of the samples (e.g. prepared at its input
    /// size); the lists must be the same samples in the same order.
    public static func select(_ classifiers: [any ImageClassifier], items perClassifier: [[Evaluator.Item]], count: Int, seed: UInt64,
                              batchSize: Int = 32, policy: ResizePolicy = .auto,
                              progress: ((Int, Int) -> Void)? = nil) throws -> Result {
        precondition(perClassifier.count == classifiers.count && Set(perClassifier.map(\.count)).count <= 1, "one item list per classifier, all of one length")
        let items = perClassifier.first ?? []
        var correct = [Bool](repeating: true, count: items.count)
        var accuracy: [String: Double] = [:]
        for (modelIndex, classifier) in classifiers.enumerated() {
            let result = try Evaluator.run(classifier, items: perClassifier[modelIndex], batchSize: batchSize, policy: policy) { progress?(modelIndex, $0) }
            for (i, sample) in result.samples.enumerated() where !sample.correct { correct[i] = false }
            accuracy[classifier.config.tag] = result.accuracy
        }
        var eligible = correct.indices.filter { correct[$0] }
        var generator = SeededGenerator(seed: seed)
        for i in stride(from: eligible.count - 1, to: 0, by: -1) { eligible.swapAt(i, Int(generator.next() % UInt64(i + 1))) }
        let chosen = Array(eligible.prefix(count)).sorted()
        return Result(indices: chosen, accuracy: accuracy, eligible: eligible.count, seed: seed)
    }
}
