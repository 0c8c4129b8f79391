import Synchronization

/// Aligned, owned float32 storage shared between tensors until one of them writes.
@usableFromInline
final class TensorStorage: @unchecked Sendable {
    @usableFromInline let base: UnsafeMutablePointer<Float>
    @usableFromInline let count: Int
    /// Unique for the life of the process (addresses are reused; ids are not).
    let id = TensorStorage.nextID.add(1, ordering: .relaxed).newValue
    /// Bumped on every mutable access, so caches keyed by (id, version) never go stale.
    @usableFromInline var version: UInt64 = 0

    private static let nextID = Atomic<UInt64>(0)

    /// Takes `count` floats, 64-byte aligned (one AVX-512 vector, what oneDNN prefers),
    /// from the buffer pool. The contents are uninitialised.
    @usableFromInline init(uninitializedCount count: Int) {
        self.count = count
        base = BufferPool.shared.take(bytes: Swift.max(count, 1) * MemoryLayout<Float>.stride)
            .bindMemory(to: Float.self, capacity: Swift.max(count, 1))
    }

    @usableFromInline convenience init(repeating value: Float, count: Int) {
        self.init(uninitializedCount: count)
        base.initialize(repeating: value, count: count)
    }

    @usableFromInline func copy() -> TensorStorage {
        let storage = TensorStorage(uninitializedCount: count)
        storage.base.update(from: base, count: count)
        return storage
    }

    deinit { BufferPool.shared.give(UnsafeMutableRawPointer(base), bytes: Swift.max(count, 1) * MemoryLayout<Float>.stride) }
}

/// A dense float32 array of any rank with value semantics.
///
/// Storage is copy-on-write: copies are O(1) and share memory until one of them is
/// mutated. Images use the NCHW convention (batch, channels, height, width).
/// Shape mismatches are programmer errors: they trap with a message naming both shapes.
public struct Tensor: Sendable {
    /// The extent of each dimension, outermost first.
    public internal(set) var shape: [Int]
    @usableFromInline var storage: TensorStorage

    /// The number of elements, the product of `shape`.
    @inlinable public var count: Int { storage.count }
    /// The number of dimensions.
    @inlinable public var rank: Int { shape.count }

    /// A tensor whose elements are uninitialised; callers must write every element.
    @usableFromInline init(uninitializedShape shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        self.shape = shape
        self.storage = TensorStorage(uninitializedCount: shape.reduce(1, *))
    }

    /// A tensor of the given shape filled with `value`.
    public init(shape: [Int], repeating value: Float = 0) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        self.shape = shape
        self.storage = TensorStorage(repeating: value, count: shape.reduce(1, *))
    }

    /// A tensor of the given shape holding `scalars` in row-major order.
    /// - Precondition: `scalars.count` equals the product of `shape`.
    public init(shape: [Int], scalars: [Float]) {
        let count = shape.reduce(1, *)
        precondition(scalars.count == count,
                     "\(scalars.count) scalars do not fill shape \(shape) (\(count) elements)")
        self.init(uninitializedShape: shape)
        scalars.withUnsafeBufferPointer { storage.base.update(from: $0.baseAddress!, count: count) }
    }

    /// A tensor filled by calling `body` with an uninitialised buffer of `shape`'s element count.
    /// `body` must write every element.
    @inlinable
    public static func build(shape: [Int], _ body: (UnsafeMutableBufferPointer<Float>) throws -> Void) rethrows -> Tensor {
        let tensor = Tensor(uninitializedShape: shape)
        try body(UnsafeMutableBufferPointer(start: tensor.storage.base, count: tensor.count))
        return tensor
    }

    /// The elements in row-major order.
    public var scalars: [Float] { Array(UnsafeBufferPointer(start: storage.base, count: count)) }

    /// The single element of a tensor with one element.
    public var scalar: Float {
        precondition(count == 1, "scalar of a tensor of shape \(shape)")
        return storage.base[0]
    }

    /// Read-only access to the elements, in row-major order.
    @inlinable
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.base, count: count))
    }

    /// Mutable access to the elements; copies the storage first if it is shared.
    @inlinable
    public mutating func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        storage.version &+= 1
        return try body(UnsafeMutableBufferPointer(start: storage.base, count: count))
    }

    /// Identifies these exact contents: equal identities mean equal elements.
    var contentIdentity: ContentIdentity { ContentIdentity(storage: storage.id, version: storage.version) }

    /// The same elements viewed with another shape of equal element count. O(1).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var result = self
        let newCount = newShape.reduce(1, *)
        precondition(newCount == count, "cannot reshape \(shape) (\(count) elements) to \(newShape) (\(newCount) elements)")
        result.shape = newShape
        return result
    }

    /// The row-major offset of a multi-index.
    @inlinable func offset(_ indices: [Int]) -> Int {
        precondition(indices.count == shape.count, "index \(indices) has rank \(indices.count), tensor has shape \(shape)")
        var offset = 0
        for (index, extent) in zip(indices, shape) {
            precondition(index >= 0 && index < extent, "index \(indices) out of range for shape \(shape)")
            offset = offset * extent + index
        }
        return offset
    }

    /// The element at a multi-index.
    public subscript(_ indices: Int...) -> Float {
        get { storage.base[offset(indices)] }
        set {
            let position = offset(indices)
            withUnsafeMutableBufferPointer { $0[position] = newValue }
        }
    }

    /// The `index`-th slice along the first dimension (e.g. one image of a batch). Copies.
    public func slice(_ index: Int) -> Tensor {
        precondition(rank >= 1 && index >= 0 && index < shape[0], "slice \(index) of shape \(shape)")
        let inner = Array(shape.dropFirst())
        let innerCount = inner.reduce(1, *)
        return Tensor.build(shape: [1] + inner) { out in
            out.baseAddress!.update(from: storage.base + index * innerCount, count: innerCount)
        }
    }

    /// Stacks equally shaped tensors whose first dimension is the batch into one batch.
    public static func concatenateBatch(_ tensors: [Tensor]) -> Tensor {
        precondition(!tensors.isEmpty, "concatenating no tensors")
        let inner = Array(tensors[0].shape.dropFirst())
        for tensor in tensors {
            precondition(Array(tensor.shape.dropFirst()) == inner,
                         "cannot batch shapes \(tensors[0].shape) and \(tensor.shape)")
        }
        let batch = tensors.reduce(0) { $0 + $1.shape[0] }
        return Tensor.build(shape: [batch] + inner) { out in
            var position = 0
            for tensor in tensors {
                (out.baseAddress! + position).update(from: tensor.storage.base, count: tensor.count)
                position += tensor.count
            }
        }
    }
}

extension Tensor: Equatable {
    public static func == (lhs: Tensor, rhs: Tensor) -> Bool {
        lhs.shape == rhs.shape && lhs.withUnsafeBufferPointer { a in rhs.withUnsafeBufferPointer { b in
            a.elementsEqual(b)
        } }
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let shown = scalars.prefix(8).map { String($0) }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(shown)\(count > 8 ? ", ..." : "")])"
    }
}

/// The identity of a tensor's contents, for caches of derived data (e.g. reordered weights).
struct ContentIdentity: Hashable, Sendable {
    let storage: UInt64
    let version: UInt64
}

/// Checks that two shapes are equal; traps naming both otherwise.
@inlinable
func requireSameShape(_ a: [Int], _ b: [Int], _ operation: StaticString) {
    precondition(a == b, "\(operation): shape \(a) does not match shape \(b)")
}
