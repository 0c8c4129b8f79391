import Foundation
import TensorCore
import ZIPFoundation

/// ImageNet validation as the official download ships it: a flat folder of
/// `ILSVRC2012_val_00000001.JPEG` … plus the devkit's ground truth.
///
/// Ground truth accepted (one line per image, in file-number order unless the file names the
/// image): the devkit's `ILSVRC2012_validation_ground_truth.txt` (ILSVRC2012 IDs 1…1000,
/// which need `synsets`: the devkit's `data/meta.mat`, or a text list in ID order such as
/// `map_clsloc.txt`), a WordNet id per line, or Kaggle's `LOC_val_solution.csv`
/// (`ImageId,PredictionString`). Labels are the standard class indices (sorted WordNet ids),
/// as torchvision and Keras use.
public struct FlatImageNetFolder: LabeledImageSource {
    public let directory: String
    /// File names, sorted.
    public let files: [String]
    public let labels: [Int]
    public var count: Int { files.count }
    public var classNames: [String] { ImageNet.classes.map(\.wnid) }

    public struct DevkitError: Error, CustomStringConvertible, Equatable {
        public let file: String
        public let reason: String
        public var description: String { "\(file): \(reason)" }
    }

    public init(directory: String, groundTruth: String, synsets: String? = nil) throws {
        let manager = FileManager.default
        guard let names = try? manager.contentsOfDirectory(atPath: directory) else { throw DevkitError(file: directory, reason: "not a readable folder") }
        let images = names.filter { ["jpeg", "jpg", "png"].contains(($0 as NSString).pathExtension.lowercased()) }.sorted()
        guard !images.isEmpty else { throw DevkitError(file: directory, reason: "no JPEG or PNG images") }
        let wnids = try Self.groundTruth(groundTruth, synsets: synsets)
        var labels: [Int] = []
        for (position, name) in images.enumerated() {
            let stem = (name as NSString).deletingPathExtension
            // ILSVRC2012_val_00000042 → line 42; other names go by sorted position.
            let key = wnids.byName[stem] ?? {
                let number = Int(stem.split(separator: "_").last ?? "") ?? position + 1
                return number >= 1 && number <= wnids.byLine.count ? wnids.byLine[number - 1] : nil
            }()
            guard let wnid = key else { throw DevkitError(file: groundTruth, reason: "has no label for \(name)") }
            guard let label = ImageNet.indexByWnid[wnid] else { throw DevkitError(file: groundTruth, reason: "'\(wnid)' (for \(name)) is not an ImageNet-1k class") }
            labels.append(label)
        }
        self.directory = directory
        self.files = images
        self.labels = labels
    }

    public func sample(_ index: Int) throws -> (image: RGBImage, label: Int) {
        (try ImageCodec.read((directory as NSString).appendingPathComponent(files[index])), labels[index])
    }

    public func sourceName(_ index: Int) -> String { files[index] }

    /// WordNet ids by line and, for files that name their images, by image name.
    static func groundTruth(_ path: String, synsets: String?) throws -> (byLine: [String], byName: [String: String]) {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw DevkitError(file: path, reason: "cannot read the ground truth") }
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard let first = lines.first else { throw DevkitError(file: path, reason: "is empty") }
        if first.lowercased().hasPrefix("imageid,") {
            var byName: [String: String] = [:]
            for (offset, line) in lines.dropFirst().enumerated() {
                let fields = line.split(separator: ",", maxSplits: 1)
                guard fields.count == 2, let wnid = fields[1].split(separator: " ").first, isWnid(wnid) else {
                    throw DevkitError(file: path, reason: "line \(offset + 2): expected 'ImageId,<wnid> …'")
                }
                byName[String(fields[0])] = String(wnid)
            }
            return ([], byName)
        }
        if lines.allSatisfy({ isWnid(Substring($0)) }) { return (lines, [:]) }
        guard lines.allSatisfy({ Int($0) != nil }) else {
            throw DevkitError(file: path, reason: "expected one ILSVRC2012 ID or one WordNet id per line, or Kaggle's ImageId,PredictionString CSV")
        }
        guard let synsets else {
            throw DevkitError(file: path, reason: "holds ILSVRC2012 IDs; give the devkit's data/meta.mat (or a synset list in ID order) to map them to classes")
        }
        let table = try idToWnid(synsets)
        return (try lines.enumerated().map { offset, line in
            guard let wnid = table[Int(line)!] else { throw DevkitError(file: path, reason: "line \(offset + 1): ID \(line) is not in \(synsets)") }
            return wnid
        }, [:])
    }

    static func isWnid(_ text: Substring) -> Bool {
        text.count == 9 && text.first == "n" && text.dropFirst().allSatisfy(\.isNumber)
    }

    /// ILSVRC2012 ID → WordNet id, from meta.mat or a text list.
    public static func idToWnid(_ path: String) throws -> [Int: String] {
        if path.lowercased().hasSuffix(".mat") {
            let synsets = try MATFile.read(path)["synsets"]
            guard case let .structure(elements)? = synsets else { throw DevkitError(file: path, reason: "has no 'synsets' struct array (not the devkit's meta.mat)") }
            var table: [Int: String] = [:]
            for element in elements {
                guard case let .numbers(id)? = element["ILSVRC2012_ID"], let value = id.first,
                      case let .text(wnid)? = element["WNID"] else {
                    throw DevkitError(file: path, reason: "a synset lacks ILSVRC2012_ID or WNID")
                }
                table[Int(value)] = wnid
            }
            return table
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw DevkitError(file: path, reason: "cannot read the synset list") }
        var table: [Int: String] = [:]
        for (offset, line) in text.split(whereSeparator: \.isNewline).enumerated() {
            let fields = line.split(separator: " ")
            guard let wnid = fields.first, isWnid(wnid) else { throw DevkitError(file: path, reason: "line \(offset + 1): expected a WordNet id first") }
            table[fields.count > 1 ? Int(fields[1]) ?? offset + 1 : offset + 1] = String(wnid)
        }
        return table
    }
}

/// The subset of MATLAB's level-5 MAT format the ImageNet devkit uses: numeric and char
/// arrays, cell arrays and struct arrays, zlib-compressed or not. Read-only, data only.
public enum MATFile {
    public indirect enum Value: Equatable, Sendable {
        case numbers([Double])
        case text(String)
        case cells([Value])
        /// Struct array: one field dictionary per element.
        case structure([[String: Value]])
    }

    public struct FormatError: Error, CustomStringConvertible, Equatable {
        public let file: String
        public let reason: String
        public var description: String { "\(file): \(reason)" }
    }

    /// The file's top-level variables by name.
    public static func read(_ path: String) throws -> [String: Value] {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path)) else { throw FormatError(file: path, reason: "cannot read the file") }
        let bytes = [UInt8](data)
        guard bytes.count >= 128, bytes[126] == UInt8(ascii: "I"), bytes[127] == UInt8(ascii: "M") else {
            throw FormatError(file: path, reason: "not a little-endian level-5 MAT file (v7.3 HDF5-based files are not supported)")
        }
        var variables: [String: Value] = [:]
        let parser = Parser(bytes: bytes, file: path)
        var offset = 128
        while offset + 8 <= bytes.count {
            let (type, size, start) = try parser.tag(at: offset)
            guard start + size <= bytes.count else { throw FormatError(file: path, reason: "truncated at byte \(offset)") }
            var element = Array(bytes[start..<start + size])
            var elementType = type
            if type == 15 {
                element = try inflate(element, file: path)
                let inner = Parser(bytes: element, file: path)
                let (innerType, innerSize, innerStart) = try inner.tag(at: 0)
                guard innerStart + innerSize <= element.count else { throw FormatError(file: path, reason: "compressed element is truncated") }
                elementType = innerType
                element = Array(element[innerStart..<innerStart + innerSize])
            }
            if elementType == 14 {
                let inner = Parser(bytes: element, file: path)
                let (name, value) = try inner.matrix(0..<element.count)
                variables[name] = value
            }
            offset = start + (type == 15 ? size : (size + 7) / 8 * 8)
        }
        return variables
    }

    static func inflate(_ compressed: [UInt8], file: String) throws -> [UInt8] {
        // A zlib stream: 2-byte header, raw deflate, Adler-32.
        guard compressed.count > 6 else { throw FormatError(file: file, reason: "compressed element is too short") }
        let raw = Data(compressed[2...])
        var output = Data()
        do {
            _ = try Data.decompress(size: Int64(raw.count), bufferSize: 1 << 16, skipCRC32: true, provider: { position, size in
                raw.subdata(in: Swift.min(Int(position), raw.count)..<Swift.min(Int(position) + size, raw.count))
            }, consumer: { output.append($0) })
        } catch {
            throw FormatError(file: file, reason: "cannot decompress an element (\(error))")
        }
        return [UInt8](output)
    }

    struct Parser {
        let bytes: [UInt8]
        let file: String

        func u32(_ offset: Int) -> UInt32 {
            UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24
        }

        /// (type, byte count, data start) of the element at `offset`, small format included.
        func tag(at offset: Int) throws -> (Int, Int, Int) {
            guard offset + 8 <= bytes.count else { throw FormatError(file: file, reason: "truncated element tag at byte \(offset)") }
            let first = u32(offset)
            if first >> 16 != 0 { return (Int(first & 0xFFFF), Int(first >> 16), offset + 4) }
            return (Int(first), Int(u32(offset + 4)), offset + 8)
        }

        /// Reads sub-elements in order; returns (type, payload) pairs.
        func elements(_ range: Range<Int>) throws -> [(Int, ArraySlice<UInt8>)] {
            var result: [(Int, ArraySlice<UInt8>)] = []
            var offset = range.lowerBound
            while offset + 8 <= range.upperBound {
                let (type, size, start) = try tag(at: offset)
                guard start + size <= range.upperBound else { throw FormatError(file: file, reason: "element at byte \(offset) overruns its array") }
                result.append((type, bytes[start..<start + size]))
                offset = start == offset + 4 ? offset + 8 : start + (size + 7) / 8 * 8
            }
            return result
        }

        func numbers(_ type: Int, _ payload: ArraySlice<UInt8>) throws -> [Double] {
            let data = Array(payload)
            func integers<T: FixedWidthInteger>(_: T.Type) -> [T] {
                stride(from: 0, to: data.count - MemoryLayout<T>.size + 1, by: MemoryLayout<T>.size).map { start in
                    var value: T = 0
                    for k in 0..<MemoryLayout<T>.size { value |= T(truncatingIfNeeded: data[start + k]) << (8 * k) }
                    return value
                }
            }
            func read<T: FixedWidthInteger>(_ type: T.Type) -> [Double] { integers(type).map { Double($0) } }
            switch type {
            case 1: return read(Int8.self)
            case 2: return read(UInt8.self)
            case 3: return read(Int16.self)
            case 4: return read(UInt16.self)
            case 5: return read(Int32.self)
            case 6: return read(UInt32.self)
            case 12: return read(Int64.self)
            case 13: return read(UInt64.self)
            case 7: return integers(UInt32.self).map { Double(Float(bitPattern: $0)) }
            case 9: return integers(UInt64.self).map { Double(bitPattern: $0) }
            default: throw FormatError(file: file, reason: "unsupported numeric data type \(type)")
            }
        }

        /// A miMATRIX payload: (name, value).
        func matrix(_ span: Range<Int>) throws -> (String, Value) {
            let parts = try elements(span)
            guard parts.count >= 3 else {
                if parts.isEmpty { return ("", .numbers([])) }  // an empty array
                throw FormatError(file: file, reason: "array with \(parts.count) sub-elements")
            }
            let flags = try numbers(parts[0].0, parts[0].1)
            let arrayClass = Int(flags.first ?? 0) & 0xFF
            let dimensions = try numbers(parts[1].0, parts[1].1).map { Int($0) }
            let count = dimensions.reduce(1, *)
            let name = String(decoding: parts[2].1, as: UTF8.self)
            switch arrayClass {
            case 1:  // cell
                return (name, .cells(try parts.dropFirst(3).map { try self.matrix(bounds(of: $0.1)).1 }))
            case 2:  // struct
                guard parts.count >= 5 else { throw FormatError(file: file, reason: "struct '\(name)' lacks field names") }
                let length = Int(try numbers(parts[3].0, parts[3].1).first ?? 0)
                guard length > 0 else { throw FormatError(file: file, reason: "struct '\(name)' has field name length 0") }
                let raw = Array(parts[4].1)
                let fields = stride(from: 0, to: raw.count, by: length).map { start in
                    String(decoding: raw[start..<Swift.min(start + length, raw.count)].prefix { $0 != 0 }, as: UTF8.self)
                }
                let values = try parts.dropFirst(5).map { try self.matrix(bounds(of: $0.1)).1 }
                guard values.count == count * fields.count else {
                    throw FormatError(file: file, reason: "struct '\(name)' has \(values.count) values for \(count) elements × \(fields.count) fields")
                }
                return (name, .structure((0..<count).map { element in
                    Dictionary(uniqueKeysWithValues: fields.enumerated().map { ($0.element, values[element * fields.count + $0.offset]) })
                }))
            case 4:  // char
                guard parts.count >= 4 else { return (name, .text("")) }
                let (type, payload) = parts[3]
                if type == 16 || type == 2 || type == 1 { return (name, .text(String(decoding: payload, as: UTF8.self))) }
                let units = try numbers(type, payload).map { UInt16($0) }
                return (name, .text(String(decoding: units, as: UTF16.self)))
            case 6...15:  // numeric (real part)
                guard parts.count >= 4 else { return (name, .numbers([])) }
                return (name, .numbers(try numbers(parts[3].0, parts[3].1)))
            default:
                throw FormatError(file: file, reason: "unsupported array class \(arrayClass) in '\(name)'")
            }
        }

        func bounds(of slice: ArraySlice<UInt8>) -> Range<Int> { slice.startIndex..<slice.endIndex }
    }
}
