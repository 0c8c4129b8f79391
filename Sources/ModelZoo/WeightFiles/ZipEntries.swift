import Foundation
import ZIPFoundation

extension Archive {
    /// Opens the zip archive at `path` for reading; a file that is not one is corrupt.
    static func weightFile(_ path: String) throws -> Archive {
        do { return try Archive(url: URL(fileURLWithPath: path), accessMode: .read) } catch {
            throw WeightFileError.corrupt(file: path, reason: "not a readable zip archive (\(error))")
        }
    }

    /// The contents of `entry`, its CRC-32 checked against the archive's record.
    /// - Parameter file: the weight file to name in errors.
    func checkedContents(of entry: Entry, file: String) throws -> Data {
        var data = Data(capacity: Int(entry.uncompressedSize))
        try checked(entry, file: file) { try extract(entry, bufferSize: 1 << 20, skipCRC32: false) { data.append($0) } }
        return data
    }

    /// Extracts `entry` to the file at `url`, its CRC-32 checked against the archive's record.
    /// - Parameter file: the weight file to name in errors.
    func checkedExtract(_ entry: Entry, to url: URL, file: String) throws {
        try checked(entry, file: file) { try extract(entry, to: url, bufferSize: 1 << 20, skipCRC32: false) }
    }

    /// Runs an extraction and compares the checksum it computed with the entry's: ZIPFoundation
    /// computes it but leaves the comparison to the caller, so a flipped byte in a stored
    /// entry would otherwise load as data.
    private func checked(_ entry: Entry, file: String, _ extraction: () throws -> CRC32) throws {
        // torch.save stores its entries and Keras deflates weights by a few percent; an entry
        // that claims to expand far more (a zip bomb) is refused before memory is spent on it.
        guard entry.uncompressedSize <= 1 << 20 || entry.uncompressedSize / 64 <= UInt64(entry.compressedSize) else {
            throw WeightFileError.corrupt(file: file, reason: "\(entry.path) would expand from \(entry.compressedSize) to "
                + "\(entry.uncompressedSize) bytes, more than any weight file does")
        }
        let checksum: CRC32
        do { checksum = try extraction() } catch {
            throw WeightFileError.corrupt(file: file, reason: "cannot extract \(entry.path): \(error)")
        }
        guard checksum == entry.checksum else {
            throw WeightFileError.corrupt(file: file, reason: "\(entry.path) fails its CRC-32 check (damaged archive)")
        }
    }
}
