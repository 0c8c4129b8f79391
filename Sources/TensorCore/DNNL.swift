import CDNNL
import Synchronization

/// A failure reported by oneDNN, with the call that failed.
public struct DNNLError: Error, CustomStringConvertible {
    public let call: String
    public let status: Int
    public var description: String { "oneDNN \(call) failed with status \(status)" }
}

@inline(__always)
func check(_ status: dnnl_status_t, _ call: @autoclosure () -> String) throws {
    if status != dnnl_success { throw DNNLError(call: call(), status: Int(status.rawValue)) }
}

/// A dims argument for oneDNN (its C arrays arrive in Swift as pointers to dnnl_dim_t).
func dnnlDims(_ values: [Int]) -> [dnnl_dim_t] {
    values.map { dnnl_dim_t($0) } + [dnnl_dim_t](repeating: 0, count: Int(DNNL_MAX_NDIMS) - values.count)
}

func memoryDescriptor(_ shape: [Int], _ tag: dnnl_format_tag_t) throws -> dnnl_memory_desc_t {
    var descriptor = dnnl_memory_desc_t()
    let dims = dnnlDims(shape)
    try check(dnnl_memory_desc_init_by_tag(&descriptor, Int32(shape.count), dims, dnnl_f32, tag),
              "memory_desc_init_by_tag \(shape)")
    return descriptor
}

/// A reorder primitive from layout `from` to layout `to`; the caller owns it
/// (`dnnl_primitive_destroy`). `what` names the data in errors.
func makeReorder(from: dnnl_memory_desc_t, to: dnnl_memory_desc_t, what: String,
                 engine: dnnl_engine_t = DNNLRuntime.shared.engine) throws -> dnnl_primitive_t {
    var (from, to) = (from, to)
    var pd: dnnl_primitive_desc_t?
    try check(dnnl_reorder_primitive_desc_create(&pd, &from, engine, &to, engine, nil), "reorder_primitive_desc_create(\(what))")
    defer { dnnl_primitive_desc_destroy(pd) }
    var reorder: dnnl_primitive_t?
    try check(dnnl_primitive_create(&reorder, pd), "primitive_create(reorder \(what))")
    return reorder!
}

/// The process-wide oneDNN CPU engine. oneDNN objects are created once per geometry and
/// cached: creating a primitive costs far more than running a small one.
final class DNNLRuntime: @unchecked Sendable {
    static let shared = DNNLRuntime()
    let engine: dnnl_engine_t

    private init() {
        var engine: dnnl_engine_t?
        let status = dnnl_engine_create(&engine, dnnl_cpu, 0)
        precondition(status == dnnl_success && engine != nil, "oneDNN could not create a CPU engine (status \(status.rawValue))")
        self.engine = engine!
    }

    func makeStream() throws -> dnnl_stream_t {
        var stream: dnnl_stream_t?
        try check(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue), "stream_create")
        return stream!
    }
}

/// One argument of a planned primitive: the layout the caller holds (plain NCHW/OIHW)
/// and the layout the primitive wants, with the reorder between them when they differ.
final class DNNLArgument {
    let slot: Int32
    var userDescriptor: dnnl_memory_desc_t
    var internalDescriptor: dnnl_memory_desc_t
    let reorder: dnnl_primitive_t?
    let internalBytes: Int
    let isOutput: Bool

    init(slot: Int32, user: dnnl_memory_desc_t, chosen: dnnl_memory_desc_t, isOutput: Bool, engine: dnnl_engine_t) throws {
        var user = user
        var chosen = chosen
        self.slot = slot
        self.userDescriptor = user
        self.internalDescriptor = chosen
        self.isOutput = isOutput
        internalBytes = dnnl_memory_desc_get_size(&chosen)
        if dnnl_memory_desc_equal(&user, &chosen) != 0 {
            reorder = nil
            return
        }
        reorder = isOutput ? try makeReorder(from: chosen, to: user, what: "output \(slot)", engine: engine)
                           : try makeReorder(from: user, to: chosen, what: "argument \(slot)", engine: engine)
    }

    deinit { if let reorder { dnnl_primitive_destroy(reorder) } }
}

/// A primitive with its arguments' layouts, ready to run on caller-owned plain buffers.
final class DNNLPlan: @unchecked Sendable {
    let primitive: dnnl_primitive_t
    let arguments: [DNNLArgument]

    /// Builds the primitive of `pd` (which it then owns and destroys) and resolves each
    /// argument's layout from the descriptor's choice.
    init(pd: dnnl_primitive_desc_t, arguments: [(slot: Int32, user: dnnl_memory_desc_t, isOutput: Bool)]) throws {
        defer { dnnl_primitive_desc_destroy(pd) }
        let engine = DNNLRuntime.shared.engine
        self.arguments = try arguments.map { argument in
            guard let chosen = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, argument.slot) else {
                throw DNNLError(call: "primitive_desc_query_md", status: -1)
            }
            return try DNNLArgument(slot: argument.slot, user: argument.user, chosen: chosen.pointee,
                                    isOutput: argument.isOutput, engine: engine)
        }
        var primitive: dnnl_primitive_t?
        try check(dnnl_primitive_create(&primitive, pd), "primitive_create")
        self.primitive = primitive!
    }

    deinit { dnnl_primitive_destroy(primitive) }

    /// Runs the primitive on plain buffers given in the order of `arguments`.
    /// Inputs are reordered into scratch buffers if needed, outputs reordered back.
    /// Inputs listed in `constants` (argument index → content identity, e.g. weights)
    /// are reordered once and the result reused while their contents are unchanged.
    func execute(_ pointers: [UnsafeMutableRawPointer], constants: [Int: ContentIdentity] = [:]) throws {
        precondition(pointers.count == arguments.count, "oneDNN plan expects \(arguments.count) buffers")
        Threading.applyToOpenMP()
        let engine = DNNLRuntime.shared.engine
        let stream = try DNNLRuntime.shared.makeStream()
        defer { dnnl_stream_destroy(stream) }
        var memories: [dnnl_memory_t] = []
        var scratch: [(pointer: UnsafeMutableRawPointer, bytes: Int)] = []
        defer {
            for memory in memories { dnnl_memory_destroy(memory) }
            for buffer in scratch { BufferPool.shared.give(buffer.pointer, bytes: buffer.bytes) }
        }
        var execArguments: [dnnl_exec_arg_t] = []
        var pendingOutputs: [(reorder: dnnl_primitive_t, from: dnnl_memory_t, to: dnnl_memory_t)] = []
        for (index, (argument, pointer)) in zip(arguments, pointers).enumerated() {
            var userMemory: dnnl_memory_t?
            try check(dnnl_memory_create(&userMemory, &argument.userDescriptor, engine, pointer), "memory_create")
            memories.append(userMemory!)
            guard let reorder = argument.reorder else {
                execArguments.append(dnnl_exec_arg_t(arg: argument.slot, memory: userMemory))
                continue
            }
            if let identity = constants[index] {
                let key = ReorderedConstantCache.Key(argument: ObjectIdentifier(argument), contents: identity)
                let buffer = try ReorderedConstantCache.shared.buffer(for: key, bytes: argument.internalBytes) { buffer in
                    var internalMemory: dnnl_memory_t?
                    try check(dnnl_memory_create(&internalMemory, &argument.internalDescriptor, engine, buffer), "memory_create")
                    defer { dnnl_memory_destroy(internalMemory) }
                    try runReorder(reorder, from: userMemory!, to: internalMemory!, stream: stream)
                    try check(dnnl_stream_wait(stream), "stream_wait")
                }
                var internalMemory: dnnl_memory_t?
                try check(dnnl_memory_create(&internalMemory, &argument.internalDescriptor, engine, buffer), "memory_create")
                memories.append(internalMemory!)
                execArguments.append(dnnl_exec_arg_t(arg: argument.slot, memory: internalMemory))
                continue
            }
            let bytes = Swift.max(argument.internalBytes, 64)
            let buffer = BufferPool.shared.take(bytes: bytes)
            scratch.append((buffer, bytes))
            var internalMemory: dnnl_memory_t?
            try check(dnnl_memory_create(&internalMemory, &argument.internalDescriptor, engine, buffer), "memory_create")
            memories.append(internalMemory!)
            execArguments.append(dnnl_exec_arg_t(arg: argument.slot, memory: internalMemory))
            if argument.isOutput {
                pendingOutputs.append((reorder, internalMemory!, userMemory!))
            } else {
                try runReorder(reorder, from: userMemory!, to: internalMemory!, stream: stream)
            }
        }
        try check(dnnl_primitive_execute(primitive, stream, Int32(execArguments.count), execArguments), "primitive_execute")
        for output in pendingOutputs {
            try runReorder(output.reorder, from: output.from, to: output.to, stream: stream)
        }
        try check(dnnl_stream_wait(stream), "stream_wait")
    }

    private func runReorder(_ reorder: dnnl_primitive_t, from: dnnl_memory_t, to: dnnl_memory_t, stream: dnnl_stream_t) throws {
        let args = [dnnl_exec_arg_t(arg: DNNL_ARG_FROM, memory: from), dnnl_exec_arg_t(arg: DNNL_ARG_TO, memory: to)]
        try check(dnnl_primitive_execute(reorder, stream, 2, args), "primitive_execute(reorder)")
    }
}

/// Caches plans by key; building a plan happens at most once per key and process.
final class DNNLPlanCache<Key: Hashable & Sendable, Plan: Sendable>: Sendable {
    private let plans = Mutex<[Key: Plan]>([:])

    func plan(for key: Key, build: () throws -> Plan) throws -> Plan {
        if let plan = plans.withLock({ $0[key] }) { return plan }
        let plan = try build()
        return plans.withLock { cache in
            if let existing = cache[key] { return existing }
            cache[key] = plan
            return plan
        }
    }
}

/// Weights in a primitive's preferred layout, kept while the source tensor is unchanged.
///
/// Networks call the same convolution with the same weights thousands of times; without
/// this cache every call would reorder them (100 MB per ResNet50 forward). Entries are
/// keyed by the plan argument and the weights' content identity, and the least recently
/// used are dropped beyond `limitBytes`.
final class ReorderedConstantCache: @unchecked Sendable {
    static let shared = ReorderedConstantCache()

    struct Key: Hashable, Sendable {
        let argument: ObjectIdentifier
        let contents: ContentIdentity
    }

    private struct Entry {
        let address: UInt
        let bytes: Int
        var lastUse: UInt64
    }

    private struct State {
        var entries: [Key: Entry] = [:]
        /// The cached version of each (argument, storage): a newer version of the same
        /// weights (training updates them every step) replaces the older, which can never
        /// be asked for again.
        var latest: [Slot: ContentIdentity] = [:]
        var bytes = 0
        var clock: UInt64 = 0
    }

    private struct Slot: Hashable {
        let argument: ObjectIdentifier
        let storage: UInt64
    }

    private let state = Mutex(State())
    let limitBytes = 1 << 30

    /// The cached buffer for `key`, filling a new one with `fill` on a miss.
    func buffer(for key: Key, bytes: Int, fill: (UnsafeMutableRawPointer) throws -> Void) throws -> UnsafeMutableRawPointer {
        let hit: UInt? = state.withLock { state in
            state.clock += 1
            guard var entry = state.entries[key] else { return nil }
            entry.lastUse = state.clock
            state.entries[key] = entry
            return entry.address
        }
        if let hit { return UnsafeMutableRawPointer(bitPattern: hit)! }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: Swift.max(bytes, 64), alignment: 64)
        do { try fill(buffer) } catch {
            buffer.deallocate()
            throw error
        }
        let evicted: [UInt] = state.withLock { state in
            state.clock += 1
            var evicted: [UInt] = []
            let slot = Slot(argument: key.argument, storage: key.contents.storage)
            if let stale = state.latest[slot], stale != key.contents,
               let entry = state.entries.removeValue(forKey: Key(argument: key.argument, contents: stale)) {
                state.bytes -= entry.bytes
                evicted.append(entry.address)
            }
            state.latest[slot] = key.contents
            state.entries[key] = Entry(address: UInt(bitPattern: buffer), bytes: bytes, lastUse: state.clock)
            state.bytes += bytes
            if state.bytes > limitBytes {
                // Evict least recently used entries down to 3/4 of the limit in one pass, so
                // that a full cache costs one sort per many inserts, not a scan per insert.
                for (oldKey, entry) in state.entries.sorted(by: { $0.value.lastUse < $1.value.lastUse }) {
                    guard state.bytes > limitBytes / 4 * 3, oldKey != key else { continue }
                    state.entries[oldKey] = nil
                    state.latest[Slot(argument: oldKey.argument, storage: oldKey.contents.storage)] = nil
                    state.bytes -= entry.bytes
                    evicted.append(entry.address)
                }
            }
            return evicted
        }
        // Another thread may still be reading an evicted buffer only if it looked it up
        // before eviction and the cache is thrashing; the limit is sized far above one
        // network's weights so that this does not happen in practice.
        evicted.forEach { UnsafeMutableRawPointer(bitPattern: $0)!.deallocate() }
        return buffer
    }
}
