import CPNG
import CShims
import Foundation

/// A failure to read or write an image, naming the file.
public enum ImageError: Error, CustomStringConvertible, Equatable {
    case unreadable(file: String, reason: String)
    case corrupt(file: String, reason: String)
    case unsupportedFormat(file: String)
    case writeFailed(file: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(file, reason): "cannot read image \(file): \(reason)"
        case let .corrupt(file, reason): "corrupt image \(file): \(reason)"
        case let .unsupportedFormat(file): "unsupported image format: \(file) (expected PNG or JPEG)"
        case let .writeFailed(file, reason): "cannot write image \(file): \(reason)"
        }
    }
}

/// PNG and JPEG decoding to 8-bit RGB, and lossless 8-bit RGB PNG encoding.
public enum ImageCodec {
    /// Decodes a PNG or JPEG file, recognised by its signature rather than its extension.
    public static func read(_ path: String) throws -> RGBImage {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ImageError.unreadable(file: path, reason: FileFailure.readReason(path, error))
        }
        return try decode(data, name: path)
    }

    /// Decodes PNG or JPEG bytes; `name` appears in errors.
    public static func decode(_ data: Data, name: String = "<memory>") throws -> RGBImage {
        let bytes = [UInt8](data)
        if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return try decode(bytes, name: name, with: rc_png_decode_rgb) }
        if bytes.starts(with: [0xFF, 0xD8]) { return try decode(bytes, name: name, with: rc_jpeg_decode_rgb) }
        throw ImageError.unsupportedFormat(file: name)
    }

    private typealias Decoder = (UnsafePointer<UInt8>?, Int, UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>?,
                                 UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<CChar>?, Int) -> Int32

    private static func decode(_ bytes: [UInt8], name: String, with decoder: Decoder) throws -> RGBImage {
        var output: UnsafeMutablePointer<UInt8>?
        var width: Int32 = 0, height: Int32 = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = bytes.withUnsafeBufferPointer { buffer in
            decoder(buffer.baseAddress, buffer.count, &output, &width, &height, &message, message.count)
        }
        guard status == 0, let output else {
            let reason = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw ImageError.corrupt(file: name, reason: reason.isEmpty ? "decoder failed" : reason)
        }
        defer { rc_free(output) }
        let count = Int(width) * Int(height) * 3
        return RGBImage(width: Int(width), height: Int(height), pixels: Array(UnsafeBufferPointer(start: output, count: count)))
    }

    /// Encodes an image as an 8-bit RGB PNG (lossless).
    public static func encodePNG(_ image: RGBImage) throws -> Data {
        var descriptor = png_image()
        descriptor.version = UInt32(PNG_IMAGE_VERSION)
        descriptor.width = UInt32(image.width)
        descriptor.height = UInt32(image.height)
        descriptor.format = UInt32(PNG_FORMAT_RGB)
        var size = 0
        let stride = Int32(image.width * 3)
        let sized = image.pixels.withUnsafeBufferPointer { pixels in
            png_image_write_to_memory(&descriptor, nil, &size, 0, pixels.baseAddress, stride, nil)
        }
        guard sized != 0, size > 0 else { throw ImageError.writeFailed(file: "<memory>", reason: pngMessage(descriptor)) }
        var data = Data(count: size)
        let written = data.withUnsafeMutableBytes { buffer in
            image.pixels.withUnsafeBufferPointer { pixels in
                png_image_write_to_memory(&descriptor, buffer.baseAddress, &size, 0, pixels.baseAddress, stride, nil)
            }
        }
        png_image_free(&descriptor)
        guard written != 0 else { throw ImageError.writeFailed(file: "<memory>", reason: pngMessage(descriptor)) }
        return data.prefix(size)
    }

    /// Writes an 8-bit RGB PNG atomically: a reader never sees a half-written file.
    public static func writePNG(_ image: RGBImage, to path: String) throws {
        let data = try encodePNG(image)
        do {
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw ImageError.writeFailed(file: path, reason: FileFailure.writeReason(path, error))
        }
    }

    private static func pngMessage(_ descriptor: png_image) -> String {
        withUnsafeBytes(of: descriptor.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}
