/// A restricted unpickler: enough of Python's pickle protocols 0–5 to read PyTorch state
/// dicts, and nothing that can run code.
///
/// `GLOBAL`/`STACK_GLOBAL` are checked against an allowlist (ordered dicts, tensor and
/// storage rebuild functions, storage types, and a few inert metadata classes); anything
/// else — `os.system`, `builtins.eval`, any other class — stops loading with
/// `WeightFileError.forbiddenGlobal`. `REDUCE` only "calls" the allowlisted functions, which
/// are interpreted here, never executed.
struct Unpickler {
    /// A persistent reference to tensor storage, as PyTorch writes it.
    struct StorageReference: Hashable {
        let key: String
        let type: String
        let count: Int
    }

    /// A tensor view of a storage (`torch._utils._rebuild_tensor_v2`).
    struct TensorReference {
        let storage: StorageReference
        let offset: Int
        let shape: [Int]
        let strides: [Int]
    }

    indirect enum Value {
        case none
        case bool(Bool)
        case int(Int)
        case float(Double)
        case string(String)
        case bytes([UInt8])
        case tuple([Value])
        case list([Value])
        case dict([(Value, Value)])
        case global(String)
        case storage(StorageReference)
        case tensor(TensorReference)

        var string: String? { if case let .string(s) = self { return s }; return nil }
        var int: Int? {
            switch self {
            case let .int(i): return i
            case let .bool(b): return b ? 1 : 0
            default: return nil
            }
        }
        var elements: [Value]? {
            switch self {
            case let .tuple(items), let .list(items): return items
            default: return nil
            }
        }
    }

    static let allowedGlobals: Set<String> = [
        "collections.OrderedDict", "builtins.dict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_parameter", "torch.FloatStorage", "torch.DoubleStorage", "torch.HalfStorage",
        "torch.BFloat16Storage", "torch.LongStorage", "torch.IntStorage", "torch.ShortStorage", "torch.CharStorage",
        "torch.ByteStorage", "torch.BoolStorage", "torch.storage.UntypedStorage", "torch.float32", "torch.float64",
        "torch.float16", "torch.bfloat16", "torch.int64", "torch.int32", "torch.uint8", "torch.int8", "torch.bool",
        "torch.device", "torch.Size", "_codecs.encode",
    ]

    /// Classes of the metadata training scripts save beside the weights — their command-line
    /// arguments (torchvision's reference scripts), NumPy numbers, sets — allowed as inert
    /// values: a call of one yields nothing and the state given to it is dropped, so no object
    /// is ever built.
    static let metadataGlobals: Set<String> = [
        "argparse.Namespace", "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.dtype",
        "builtins.set", "builtins.frozenset",
    ]

    /// What kind of whole-model file a global's class betrays — a model pickled whole
    /// (`torch.save(model)`) or TorchScript (`torch.jit.save`) — or nil. Such classes are
    /// refused like any other, with a message that says how to save a state dict instead.
    static func wholeModel(naming global: String) -> String? {
        if global.hasPrefix("__torch__.") { return "a TorchScript archive (torch.jit.save)" }
        let modelModules = ["torch.nn.", "torchvision.models.", "timm.models.", "__main__."]
        return modelModules.contains(where: global.hasPrefix) ? "a whole pickled model (torch.save(model))" : nil
    }

    let bytes: [UInt8]
    let file: String
    var position: Int
    private var stack: [Value] = []
    private var marks: [Int] = []
    private var memo: [Int: Value] = [:]

    init(bytes: [UInt8], file: String, position: Int = 0) {
        self.bytes = bytes
        self.file = file
        self.position = position
    }

    private func corrupt(_ reason: String) -> WeightFileError {
        WeightFileError.corrupt(file: file, reason: "pickle: \(reason) at byte \(position)")
    }

    private mutating func read(_ count: Int) throws -> ArraySlice<UInt8> {
        guard count >= 0, position + count <= bytes.count else { throw corrupt("unexpected end of data") }
        defer { position += count }
        return bytes[position..<(position + count)]
    }

    private mutating func byte() throws -> UInt8 { try read(1).first! }

    private mutating func littleEndian(_ count: Int) throws -> UInt64 {
        try read(count).reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }

    private mutating func line() throws -> String {
        guard let end = bytes[position...].firstIndex(of: 0x0A) else { throw corrupt("unterminated text line") }
        defer { position = end + 1 }
        return String(decoding: bytes[position..<end], as: UTF8.self)
    }

    private mutating func pop() throws -> Value {
        guard let value = stack.popLast() else { throw corrupt("stack underflow") }
        return value
    }

    private mutating func popMark() throws -> [Value] {
        guard let mark = marks.popLast(), mark <= stack.count else { throw corrupt("missing MARK") }
        defer { stack.removeSubrange(mark...) }
        return Array(stack[mark...])
    }

    /// Reads one pickle (up to its STOP opcode) and returns its value.
    /// - Parameter persistent: resolves a persistent id (storage references).
    mutating func load(persistent: (Value) throws -> Value) throws -> Value {
        stack = []
        marks = []
        memo = [:]
        while true {
            let opcode = try byte()
            switch opcode {
            case 0x80: _ = try byte() // PROTO
            case 0x95: _ = try read(8) // FRAME
            case 0x2E: return try pop() // STOP
            case 0x28: marks.append(stack.count) // MARK
            case 0x4E: stack.append(.none) // NONE
            case 0x88: stack.append(.bool(true)) // NEWTRUE
            case 0x89: stack.append(.bool(false)) // NEWFALSE
            case 0x4B: stack.append(.int(Int(try byte()))) // BININT1
            case 0x4D: stack.append(.int(Int(try littleEndian(2)))) // BININT2
            case 0x4A: stack.append(.int(Int(Int32(bitPattern: UInt32(try littleEndian(4)))))) // BININT
            case 0x8A: // LONG1
                let count = Int(try byte())
                let data = Array(try read(count))
                // Wider integers occur only as magic numbers; keep their bytes for comparison.
                if count > 8 { stack.append(.bytes(data)); continue }
                var value: UInt64 = 0
                for (index, b) in data.enumerated() { value |= UInt64(b) << (8 * UInt64(index)) }
                if count > 0 && count < 8 && data.last! & 0x80 != 0 { value |= ~UInt64(0) << (8 * UInt64(count)) }
                stack.append(.int(Int(Int64(bitPattern: value))))
            case 0x49: // INT (text)
                let text = try line()
                if text == "00" || text == "01" { stack.append(.bool(text == "01")) } else {
                    guard let value = Int(text) else { throw corrupt("bad INT '\(text)'") }
                    stack.append(.int(value))
                }
            case 0x4C: // LONG (text)
                let text = try line().trimmingSuffix("L")
                guard let value = Int(text) else { throw corrupt("bad LONG '\(text)'") }
                stack.append(.int(value))
            case 0x47: stack.append(.float(Double(bitPattern: try read(8).reduce(0) { $0 << 8 | UInt64($1) }))) // BINFLOAT (big endian)
            case 0x58: // BINUNICODE
                let count = Int(try littleEndian(4))
                stack.append(.string(String(decoding: try read(count), as: UTF8.self)))
            case 0x8C: // SHORT_BINUNICODE
                let count = Int(try byte())
                stack.append(.string(String(decoding: try read(count), as: UTF8.self)))
            case 0x8D: // BINUNICODE8
                let count = Int(try littleEndian(8))
                stack.append(.string(String(decoding: try read(count), as: UTF8.self)))
            case 0x55: // SHORT_BINSTRING
                let count = Int(try byte())
                stack.append(.string(String(decoding: try read(count), as: UTF8.self)))
            case 0x54: // BINSTRING
                let count = Int(try littleEndian(4))
                stack.append(.string(String(decoding: try read(count), as: UTF8.self)))
            case 0x43: stack.append(.bytes(Array(try read(Int(try byte()))))) // SHORT_BINBYTES
            case 0x42: stack.append(.bytes(Array(try read(Int(try littleEndian(4)))))) // BINBYTES
            case 0x29: stack.append(.tuple([])) // EMPTY_TUPLE
            case 0x85: stack.append(.tuple([try pop()])) // TUPLE1
            case 0x86: // TUPLE2
                let b = try pop(), a = try pop()
                stack.append(.tuple([a, b]))
            case 0x87: // TUPLE3
                let c = try pop(), b = try pop(), a = try pop()
                stack.append(.tuple([a, b, c]))
            case 0x74: stack.append(.tuple(try popMark())) // TUPLE
            case 0x5D: stack.append(.list([])) // EMPTY_LIST
            case 0x6C: stack.append(.list(try popMark())) // LIST
            case 0x61: // APPEND
                let item = try pop()
                guard case var .list(items) = try pop() else { throw corrupt("APPEND to a non-list") }
                items.append(item)
                stack.append(.list(items))
            case 0x65, 0x90: // APPENDS, ADDITEMS (sets are kept as lists: metadata, never a weight)
                let items = try popMark()
                guard case var .list(existing) = try pop() else { throw corrupt(opcode == 0x65 ? "APPENDS to a non-list" : "ADDITEMS to a non-set") }
                existing += items
                stack.append(.list(existing))
            case 0x8F: stack.append(.list([])) // EMPTY_SET
            case 0x91: stack.append(.list(try popMark())) // FROZENSET
            case 0x7D: stack.append(.dict([])) // EMPTY_DICT
            case 0x64: // DICT
                let items = try popMark()
                guard items.count % 2 == 0 else { throw corrupt("odd DICT items") }
                stack.append(.dict(stride(from: 0, to: items.count, by: 2).map { (items[$0], items[$0 + 1]) }))
            case 0x73: // SETITEM
                let value = try pop(), key = try pop()
                guard case var .dict(pairs) = try pop() else { throw corrupt("SETITEM on a non-dict") }
                pairs.append((key, value))
                stack.append(.dict(pairs))
            case 0x75: // SETITEMS
                let items = try popMark()
                guard items.count % 2 == 0, case var .dict(pairs) = try pop() else { throw corrupt("SETITEMS on a non-dict") }
                for index in stride(from: 0, to: items.count, by: 2) { pairs.append((items[index], items[index + 1])) }
                stack.append(.dict(pairs))
            case 0x71: memo[Int(try byte())] = stack.last // BINPUT
            case 0x72: memo[Int(try littleEndian(4))] = stack.last // LONG_BINPUT
            case 0x94: memo[memo.count] = stack.last // MEMOIZE
            case 0x70: // PUT (text)
                guard let index = Int(try line()) else { throw corrupt("bad PUT") }
                memo[index] = stack.last
            case 0x68, 0x6A, 0x67: // BINGET, LONG_BINGET, GET
                let index = opcode == 0x68 ? Int(try byte()) : opcode == 0x6A ? Int(try littleEndian(4)) : (Int(try line()) ?? -1)
                guard let value = memo[index] else { throw corrupt("memo \(index) not set") }
                stack.append(value)
            case 0x30: _ = try pop() // POP
            case 0x31: _ = try popMark() // POP_MARK
            case 0x32: guard let top = stack.last else { throw corrupt("DUP on empty stack") }; stack.append(top)
            case 0x63: // GLOBAL
                let module = try line(), name = try line()
                stack.append(try global("\(module).\(name)"))
            case 0x93: // STACK_GLOBAL
                let name = try pop(), module = try pop()
                guard let m = module.string, let n = name.string else { throw corrupt("STACK_GLOBAL needs strings") }
                stack.append(try global("\(m).\(n)"))
            case 0x51: stack.append(try persistent(try pop())) // BINPERSID
            case 0x52: // REDUCE
                let arguments = try pop(), callable = try pop()
                stack.append(try reduce(callable, arguments))
            case 0x81: // NEWOBJ
                let arguments = try pop(), cls = try pop()
                stack.append(try reduce(cls, arguments))
            case 0x62: // BUILD: state on an OrderedDict (`_metadata`), a tensor or metadata; dropped
                _ = try pop()
            default:
                throw corrupt(String(format: "unsupported opcode 0x%02x", opcode))
            }
        }
    }

    /// What only quantized checkpoints (torch.quantization) refer to: named as such rather
    /// than as a forbidden global, which would read like a malicious file.
    static let quantizedGlobals: Set<String> = [
        "torch._utils._rebuild_qtensor", "torch.QInt8Storage", "torch.QUInt8Storage", "torch.QInt32Storage",
        "torch.QUInt4x2Storage", "torch.QUInt2x4Storage", "torch.qint8", "torch.quint8", "torch.qint32",
        "torch.per_tensor_affine", "torch.per_channel_affine", "torch.per_channel_affine_float_qparams",
    ]

    private func global(_ spelled: String) throws -> Value {
        // Protocol 2 spells builtins by their Python 2 module, as Python's own unpickler maps back.
        let name = spelled.hasPrefix("__builtin__.") ? "builtins." + spelled.dropFirst("__builtin__.".count) : spelled
        if Self.quantizedGlobals.contains(name) {
            throw WeightFileError.unsupportedFormat(
                file: file, reason: "a quantized PyTorch checkpoint (its pickle holds int8 tensors: '\(name)'); robustctl reads "
                    + "float checkpoints — pass the float weights and quantize with `robustctl convert --quantize int8`")
        }
        if let kind = Self.wholeModel(naming: name) {
            throw WeightFileError.unsupportedFormat(
                file: file, reason: "\(kind) (its pickle names the class '\(name)', which only running code could rebuild); "
                    + "robustctl reads state dicts and never runs code from a weight file — save `model.state_dict()` instead")
        }
        guard Self.allowedGlobals.contains(name) || Self.metadataGlobals.contains(name) else {
            throw WeightFileError.forbiddenGlobal(file: file, global: name)
        }
        return .global(name)
    }

    /// Interprets a call of an allowlisted global.
    private func reduce(_ callable: Value, _ arguments: Value) throws -> Value {
        guard case let .global(name) = callable, let args = arguments.elements else { throw corrupt("REDUCE of a non-global") }
        if Self.metadataGlobals.contains(name) { return .none }
        switch name {
        case "collections.OrderedDict", "builtins.dict":
            return .dict([])
        case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor":
            guard args.count >= 4, case let .storage(storage) = args[0], let offset = args[1].int,
                  let shape = args[2].elements?.compactMap(\.int), let strides = args[3].elements?.compactMap(\.int) else {
                throw corrupt("malformed tensor record")
            }
            return .tensor(TensorReference(storage: storage, offset: offset, shape: shape, strides: strides))
        case "torch._utils._rebuild_parameter":
            guard let data = args.first else { throw corrupt("malformed parameter record") }
            return data
        case "torch.Size":
            return args.first ?? .tuple([])
        case "torch.device":
            return args.first ?? .none
        case "_codecs.encode":
            // How protocol-2 pickles spell a bytes object: encode(latin-1 text, 'latin1').
            guard let text = args.first?.string else { throw corrupt("malformed bytes record") }
            return .bytes(text.unicodeScalars.map { UInt8(truncatingIfNeeded: $0.value) })
        default:
            // Types (storages, dtypes) are values, not functions: calling one is not allowed.
            throw WeightFileError.forbiddenGlobal(file: file, global: name + "(...)")
        }
    }
}

private extension String {
    func trimmingSuffix(_ suffix: String) -> String { hasSuffix(suffix) ? String(dropLast(suffix.count)) : self }
}
