import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A file of N float rows of one dimension, read in chunks (never loaded whole).
///
/// Owns a file descriptor and reads with `pread`, so concurrent reads from several threads are safe.
public final class EmbeddingFile: @unchecked Sendable {
    /// The on-disk format, decided by the file extension.
    public enum Kind: String, Sendable { case npy, fvecs, safetensors }

    /// The file's path.
    public let path: String
    /// The file's format.
    public let kind: Kind
    /// Number of rows N.
    public let count: Int
    /// Floats per row D.
    public let dimension: Int
    /// The stored element type: "float32" or "float16".
    public let dtype: String

    private let fd: Int32
    /// Byte offset of row 0 (for .fvecs, of its dimension prefix).
    private let dataOffset: Int
    /// Bytes per stored row (for .fvecs, including the 4-byte prefix).
    private let rowBytes: Int
    /// For truncation errors: where the promised data region starts and how many bytes it promises.
    private let promisedBase: Int
    private let promisedBytes: Int

    /// The layout found by parsing a header.
    private struct Layout {
        var count: Int, dimension: Int, dtype: String, dataOffset: Int, rowBytes: Int, promisedBase: Int, promisedBytes: Int
    }

    /// Opens `path`; the kind comes from the extension (.npy, .fvecs, .safetensors). `tensor` names the safetensors tensor (required when the file holds more than one 2-D float tensor; otherwise the only one is taken); it is ignored for other kinds.
    /// - Throws: `FormatError` naming the file: unknown extension, unreadable, malformed header, unsupported dtype, truncated.
    public init(path: String, tensor: String? = nil) throws {
        guard let kind = Kind(rawValue: (path as NSString).pathExtension.lowercased()) else {
            throw FormatError.malformed(path: path, reason: "unknown embedding format: use .npy, .fvecs or .safetensors")
        }
        let fd = try POSIXFile.openForReading(path)
        let layout: Layout
        do {
            let size = try POSIXFile.size(fd, path: path)
            switch kind {
            case .npy: layout = try Self.npyLayout(fd: fd, size: size, path: path)
            case .fvecs: layout = try Self.fvecsLayout(fd: fd, size: size, path: path)
            case .safetensors: layout = try Self.safetensorsLayout(fd: fd, size: size, path: path, tensor: tensor)
            }
        } catch {
            close(fd)
            throw error
        }
        self.path = path
        self.kind = kind
        self.fd = fd
        self.count = layout.count
        self.dimension = layout.dimension
        self.dtype = layout.dtype
        self.dataOffset = layout.dataOffset
        self.rowBytes = layout.rowBytes
        self.promisedBase = layout.promisedBase
        self.promisedBytes = layout.promisedBytes
    }

    deinit { close(fd) }

    /// Reads rows `rows` as float32 (float16 widened) into `destination` (rows.count × dimension floats).
    /// - Precondition: `rows` lies within `0..<count`.
    /// - Throws: `.truncated` if the file shrank since it was opened, `.badRow` for a .fvecs row with a wrong dimension prefix, `.unreadable` on I/O errors.
    public func read(rows: Range<Int>, into destination: UnsafeMutablePointer<Float>) throws {
        precondition(rows.lowerBound >= 0 && rows.upperBound <= count, "rows \(rows) out of 0..<\(count)")
        guard !rows.isEmpty, dimension > 0 else { return }
        switch (kind, dtype) {
        case (.fvecs, _):
            let chunkRows = max(1, (1 << 22) / rowBytes)
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunkRows * rowBytes, alignment: 16)
            defer { buffer.deallocate() }
            var row = rows.lowerBound
            while row < rows.upperBound {
                let n = min(chunkRows, rows.upperBound - row)
                try readExactly(into: buffer, count: n * rowBytes, offset: dataOffset + row * rowBytes)
                for r in 0..<n {
                    let base = buffer + r * rowBytes
                    let prefix = Int32(littleEndian: base.loadUnaligned(as: Int32.self))
                    guard Int(prefix) == dimension else {
                        throw FormatError.badRow(path: path, row: row + r, reason: "dimension prefix \(prefix), expected \(dimension)")
                    }
                    let out = destination + (row - rows.lowerBound + r) * dimension
                    UnsafeMutableRawPointer(out).copyMemory(from: base + 4, byteCount: dimension * 4)
                    Self.fixEndianness(out, dimension)
                }
                row += n
            }
        case (_, "float16"):
            let chunkRows = max(1, (1 << 22) / rowBytes)
            let buffer = UnsafeMutablePointer<UInt16>.allocate(capacity: chunkRows * dimension)
            defer { buffer.deallocate() }
            var row = rows.lowerBound
            while row < rows.upperBound {
                let n = min(chunkRows, rows.upperBound - row)
                try readExactly(into: buffer, count: n * rowBytes, offset: dataOffset + row * rowBytes)
                let out = destination + (row - rows.lowerBound) * dimension
                for i in 0..<(n * dimension) { out[i] = Float(Float16(bitPattern: UInt16(littleEndian: buffer[i]))) }
                row += n
            }
        default:  // float32 rows are stored exactly as they are wanted
            try readExactly(into: destination, count: rows.count * rowBytes, offset: dataOffset + rows.lowerBound * rowBytes)
            Self.fixEndianness(destination, rows.count * dimension)
        }
    }

    /// Convenience: returns rows `rows` as an array of rows.count × dimension floats.
    public func read(rows: Range<Int>) throws -> [Float] {
        try [Float](unsafeUninitializedCapacity: rows.count * dimension) { buffer, initialized in
            if let base = buffer.baseAddress { try read(rows: rows, into: base) }
            initialized = rows.count * dimension
        }
    }

    /// Writes `values` (rows of `dimension` floats) as a .fvecs file: each row an int32 LE dimension then its float32 LE values.
    public static func writeFvecs(_ values: [Float], dimension: Int, to path: String) throws {
        precondition(dimension > 0 && values.count % dimension == 0, "values do not fill whole rows of the dimension")
        var out = [UInt8]()
        out.reserveCapacity(values.count / dimension * (4 + 4 * dimension))
        for row in 0..<(values.count / dimension) {
            out.appendLittleEndian(Int32(dimension))
            for v in values[(row * dimension)..<((row + 1) * dimension)] { out.appendLittleEndian(v) }
        }
        try write(out, to: path)
    }

    /// Writes tensors, in order, as a .safetensors file (F32, or F16 when `float16`), header padded to 8 bytes.
    public static func writeSafetensors(_ tensors: [(name: String, values: [Float], shape: [Int], float16: Bool)], to path: String) throws {
        var entries: [String] = []
        var body = [UInt8]()
        for t in tensors {
            precondition(t.shape.reduce(1, *) == t.values.count, "shape does not match the value count")
            let begin = body.count
            for v in t.values {
                if t.float16 { body.appendLittleEndian(Float16(v).bitPattern) } else { body.appendLittleEndian(v) }
            }
            let name = t.name.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            let shape = t.shape.map(String.init).joined(separator: ",")
            entries.append("\"\(name)\":{\"dtype\":\"\(t.float16 ? "F16" : "F32")\",\"shape\":[\(shape)],\"data_offsets\":[\(begin),\(body.count)]}")
        }
        var header = "{" + entries.joined(separator: ",") + "}"
        header += String(repeating: " ", count: (8 - header.utf8.count % 8) % 8)
        var out = [UInt8]()
        out.appendLittleEndian(UInt64(header.utf8.count))
        out += Array(header.utf8)
        out += body
        try write(out, to: path)
    }

    // MARK: - Private

    private static func write(_ bytes: [UInt8], to path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
            throw FormatError.unreadable(path: path, reason: "cannot write the file")
        }
    }

    /// Reads exactly `count` bytes at `offset`, or throws `.truncated` naming the data the header promised.
    private func readExactly(into buffer: UnsafeMutableRawPointer, count: Int, offset: Int) throws {
        let n = try POSIXFile.readFully(fd, into: buffer, count: count, offset: offset, path: path)
        guard n == count else {
            let size = (try? POSIXFile.size(fd, path: path)) ?? (offset + n)
            throw FormatError.truncated(path: path, expectedBytes: promisedBytes, actualBytes: max(0, size - promisedBase))
        }
    }

    /// Converts little-endian floats in place on big-endian hosts (a no-op elsewhere).
    private static func fixEndianness(_ values: UnsafeMutablePointer<Float>, _ n: Int) {
        #if _endian(big)
            let words = UnsafeMutableRawPointer(values).assumingMemoryBound(to: UInt32.self)
            for i in 0..<n { words[i] = UInt32(littleEndian: words[i]) }
        #endif
    }

    /// `a * b * c`, or `.malformed` on overflow.
    private static func npyLayout(fd: Int32, size: Int, path: String) throws -> Layout {
        let prefix = try POSIXFile.readBytes(fd, count: min(size, 12), offset: 0, path: path)
        let needed = min(size, NPYHeader.requiredBytes(prefix: prefix))
        let header = try NPYHeader(bytes: try POSIXFile.readBytes(fd, count: needed, offset: 0, path: path), path: path)
        let itemSize: Int
        switch header.dtype {
        case "<f4": itemSize = 4
        case "<f2": itemSize = 2
        default: throw FormatError.unsupportedDType(path: path, dtype: header.dtype, expected: "<f4 or <f2")
        }
        guard header.shape.count == 2 else {
            throw FormatError.malformed(path: path, reason: "expected a 2-D array (N, D), got shape \(NPYHeader.shapeText(header.shape))")
        }
        let (n, d) = (header.shape[0], header.shape[1])
        let expected = try NPYHeader.byteCount([n, d], itemSize: itemSize, path: path)
        let actual = size - header.dataStart
        guard actual >= expected else { throw FormatError.truncated(path: path, expectedBytes: expected, actualBytes: actual) }
        guard actual == expected else {
            throw FormatError.malformed(path: path, reason: "\(actual - expected) bytes after the array data")
        }
        return Layout(
            count: n, dimension: d, dtype: itemSize == 4 ? "float32" : "float16", dataOffset: header.dataStart,
            rowBytes: d * itemSize, promisedBase: header.dataStart, promisedBytes: expected)
    }

    private static func fvecsLayout(fd: Int32, size: Int, path: String) throws -> Layout {
        guard size > 0 else { throw FormatError.malformed(path: path, reason: "empty .fvecs file") }
        guard size >= 4 else { throw FormatError.truncated(path: path, expectedBytes: 4, actualBytes: size) }
        let prefix = try POSIXFile.readBytes(fd, count: 4, offset: 0, path: path)
        let d = Int(Int32(littleEndian: prefix.withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }))
        guard d > 0 else { throw FormatError.badRow(path: path, row: 0, reason: "dimension prefix \(d) is not positive") }
        let rowBytes = 4 + 4 * d
        guard size % rowBytes == 0 else {
            throw FormatError.truncated(path: path, expectedBytes: (size / rowBytes + 1) * rowBytes, actualBytes: size)
        }
        return Layout(
            count: size / rowBytes, dimension: d, dtype: "float32", dataOffset: 0, rowBytes: rowBytes,
            promisedBase: 0, promisedBytes: size)
    }

    private static func safetensorsLayout(fd: Int32, size: Int, path: String, tensor: String?) throws -> Layout {
        guard size >= 8 else { throw FormatError.malformed(path: path, reason: "not a .safetensors file (shorter than 8 bytes)") }
        let lengthBytes = try POSIXFile.readBytes(fd, count: 8, offset: 0, path: path)
        let headerLength = UInt64(littleEndian: lengthBytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        guard headerLength <= UInt64(size - 8), headerLength <= 1 << 30 else {
            throw FormatError.malformed(path: path, reason: "header length \(headerLength) runs past the end of the file (\(size) bytes)")
        }
        let dataStart = 8 + Int(headerLength)
        let json = try POSIXFile.readBytes(fd, count: Int(headerLength), offset: 8, path: path)
        guard let object = try? JSONSerialization.jsonObject(with: Data(json)), let dict = object as? [String: Any] else {
            throw FormatError.malformed(path: path, reason: "the header is not a JSON object")
        }
        var tensors: [String: (dtype: String, shape: [Int], offsets: [Int])] = [:]
        for (name, value) in dict where name != "__metadata__" {
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                let shape = intArray(entry["shape"]), let offsets = intArray(entry["data_offsets"]), offsets.count == 2,
                shape.allSatisfy({ $0 >= 0 })
            else { throw FormatError.malformed(path: path, reason: "tensor '\(name)' has a malformed header entry") }
            tensors[name] = (dtype, shape, offsets)
        }
        let names = tensors.keys.sorted()
        let name: String
        if let tensor {
            guard tensors[tensor] != nil else {
                throw FormatError.malformed(path: path, reason: "no tensor named '\(tensor)' (has: \(names.joined(separator: ", ")))")
            }
            name = tensor
        } else {
            let candidates = names.filter { tensors[$0]!.shape.count == 2 }
            guard candidates.count <= 1 else {
                throw FormatError.malformed(path: path, reason: "holds several tensors (\(candidates.joined(separator: ", "))): name one with --tensor")
            }
            guard let only = candidates.first else {
                throw FormatError.malformed(path: path, reason: "holds no 2-D tensor (has: \(names.joined(separator: ", ")))")
            }
            name = only
        }
        let t = tensors[name]!
        guard t.shape.count == 2 else {
            throw FormatError.malformed(path: path, reason: "tensor '\(name)': expected a 2-D array (N, D), got shape \(NPYHeader.shapeText(t.shape))")
        }
        let itemSize: Int
        switch t.dtype {
        case "F32": itemSize = 4
        case "F16": itemSize = 2
        default: throw FormatError.unsupportedDType(path: path, dtype: t.dtype, expected: "F32 or F16")
        }
        let (n, d) = (t.shape[0], t.shape[1])
        let needed = try NPYHeader.byteCount([n, d], itemSize: itemSize, path: path)
        let (begin, end) = (t.offsets[0], t.offsets[1])
        guard begin >= 0, end >= begin, end - begin == needed else {
            throw FormatError.malformed(
                path: path,
                reason: "tensor '\(name)': data_offsets [\(begin), \(end)] do not hold the \(needed) bytes of shape \(NPYHeader.shapeText(t.shape)) \(t.dtype)")
        }
        guard end <= size - dataStart else {
            throw FormatError.truncated(path: path, expectedBytes: end, actualBytes: size - dataStart)
        }
        return Layout(
            count: n, dimension: d, dtype: itemSize == 4 ? "float32" : "float16", dataOffset: dataStart + begin,
            rowBytes: d * itemSize, promisedBase: dataStart, promisedBytes: end)
    }

    /// A JSON array of integers (NSNumber or Int elements), or nil.
    private static func intArray(_ value: Any?) -> [Int]? {
        guard let array = value as? [Any] else { return nil }
        var out: [Int] = []
        for element in array {
            if let i = element as? Int {
                out.append(i)
            } else if let n = element as? NSNumber, Double(n.int64Value) == n.doubleValue {
                out.append(n.intValue)
            } else {
                return nil
            }
        }
        return out
    }
}
