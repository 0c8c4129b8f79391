import Foundation
import ModelZoo
import TensorCore

/// One image of an evaluation: where it is, what it is, what the model said.
public struct EvaluatedSample: Codable, Hashable, Sendable {
    public var file: String
    public var label: Int
    public var prediction: Int
    public var correct: Bool
}

/// A classifier's predictions on a labelled image set, with accuracy and timing.
public struct EvaluationResult: Codable, Sendable {
    public var engine: String
    /// The adversarial set evaluated (e.g. "fgsm"), when the caller names it.
    public var attack: String?
    public var architecture: Architecture
    public var flavor: Flavor
    /// Share of samples classified as their label.
    public var accuracy: Double
    /// Share no longer classified as their label (for a folder of adversarials: the attack
    /// success rate); 1 − accuracy.
    public var successRate: Double
    /// Median per-image inference latency over the batches (batch time / batch size).
    public var inferenceMsPerImage: Double
    public var inferenceSecondsTotal: Double
    public var threads: Int
    public var batchSize: Int
    public var samples: [EvaluatedSample]

    enum CodingKeys: String, CodingKey {
        case engine, attack, architecture, flavor, accuracy, threads, samples
        case successRate = "success_rate", inferenceMsPerImage = "inference_ms_per_image"
        case inferenceSecondsTotal = "inference_seconds_total", batchSize = "batch_size"
    }

    /// Why the result does not hold together, if it does not: a sample's `correct` that is not
    /// `prediction == label`, or an accuracy or success rate that is not its samples' — what a
    /// damaged or hand-edited file shows, whose numbers would otherwise enter a report.
    public var inconsistency: String? {
        if let sample = samples.first(where: { $0.correct != ($0.prediction == $0.label) }) {
            return "'\(sample.file)' is marked \(sample.correct ? "correct" : "wrong") with prediction \(sample.prediction) and label \(sample.label)"
        }
        let share = Double(samples.filter(\.correct).count) / Double(Swift.max(samples.count, 1))
        guard !samples.isEmpty, abs(accuracy - share) < 1e-9, abs(successRate - (1 - share)) < 1e-9 else {
            return "its accuracy \(accuracy) and success rate \(successRate) are not those of its \(samples.count) samples"
        }
        return nil
    }
}

/// Runs a classifier over labelled images.
public enum Evaluator {
    /// One labelled image: `path` to read, `name` to report.
    public struct Item: Sendable {
        public var path: String
        public var name: String
        public var label: Int
        public init(path: String, name: String, label: Int) {
            self.path = path; self.name = name; self.label = label
        }
    }

    /// Classifies every item in batches; only the classifier call is timed (decoding and
    /// resizing are not). Images at the model's input size are used as they are; others get
    /// the paper's resize and centre crop (`policy`). Images are decoded a window at a time on
    /// every thread, never while the classifier runs, so that its timing has the cores to itself.
    /// - Parameter progress: called with the number of images done.
    public static func run(_ classifier: some ImageClassifier, items: [Item], batchSize: Int = 1, policy: ResizePolicy = .auto,
                           progress: ((Int) -> Void)? = nil) throws -> EvaluationResult {
        precondition(batchSize >= 1, "batch size must be at least 1")
        var samples: [EvaluatedSample] = []
        var perImage: [Double] = []
        var total = 0.0
        // Decoding windows hold whole batches, so that batches are the same as without them.
        let window = batchSize * Swift.max(1, (4 * Threading.threads + batchSize - 1) / batchSize)
        for windowStart in stride(from: 0, to: items.count, by: window) {
            let windowItems = Array(items[windowStart..<Swift.min(windowStart + window, items.count)])
            let decoded = try ImageInput.images(windowItems.map(\.path), config: classifier.config, policy: policy)
            for start in stride(from: 0, to: windowItems.count, by: batchSize) {
                let range = start..<Swift.min(start + batchSize, windowItems.count)
                let images = Tensor.concatenateBatch(decoded[range].map { $0.tensor() })
                let clock = ContinuousClock.now
                let logits = try classifier.classify(images)
                let seconds = Evaluator.seconds(since: clock)
                total += seconds
                perImage.append(seconds / Double(range.count))
                for (item, prediction) in zip(windowItems[range], Model.argmax(logits)) {
                    samples.append(EvaluatedSample(file: item.name, label: item.label, prediction: prediction, correct: prediction == item.label))
                }
                progress?(samples.count)
            }
        }
        let correct = Double(samples.filter(\.correct).count)
        let count = Double(Swift.max(samples.count, 1))
        return EvaluationResult(engine: classifier.engineName, attack: nil, architecture: classifier.config.architecture, flavor: classifier.config.flavor,
                                accuracy: correct / count, successRate: 1 - correct / count,
                                inferenceMsPerImage: median(perImage) * 1000, inferenceSecondsTotal: total,
                                threads: Threading.threads, batchSize: batchSize, samples: samples)
    }

    /// Wall time since `start`, in seconds.
    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    }

    static func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }
}

extension StudyCell {
    /// The cell an evaluation of a named adversarial set gives (success = no longer the label).
    public init?(_ result: EvaluationResult) {
        guard let attack = result.attack else { return nil }
        self.init(model: "\(result.architecture.rawValue)/\(result.flavor.rawValue)", attack: attack, engine: result.engine,
                  success: result.samples.map { !$0.correct }, inferenceMs: result.inferenceMsPerImage, generationSeconds: 0)
    }
}
