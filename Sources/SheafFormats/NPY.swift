import Foundation

/// Errors reading or writing data files. Every case names the file.
public enum FormatError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file cannot be opened or read.
    case unreadable(path: String, reason: String)
    /// The file is not in the expected format; the reason says where and why.
    case malformed(path: String, reason: String)
    /// The file holds a dtype this reader does not take.
    case unsupportedDType(path: String, dtype: String, expected: String)
    /// The file ends before its header says it should.
    case truncated(path: String, expectedBytes: Int, actualBytes: Int)
    /// A text line cannot be parsed; `line` is 1-based and counts every physical line.
    case badLine(path: String, line: Int, reason: String)
    /// A data row is inconsistent with the file's header; `row` is 0-based.
    case badRow(path: String, row: Int, reason: String)
    /// A named tensor the caller needs is not in the file.
    case missingTensor(path: String, name: String)
    /// A named tensor has another shape than the caller needs.
    case tensorShapeMismatch(path: String, name: String, expected: [Int], actual: [Int])

    public var description: String {
        switch self {
        case .unreadable(let p, let r): "\(p): cannot read: \(r)"
        case .malformed(let p, let r): "\(p): \(r)"
        case .unsupportedDType(let p, let d, let e): "\(p): dtype \(d) is not supported (expected \(e))"
        case .truncated(let p, let e, let a): "\(p): truncated: the header promises \(e) data bytes, the file has \(a)"
        case .badLine(let p, let l, let r): "\(p):\(l): \(r)"
        case .badRow(let p, let i, let r): "\(p): row \(i): \(r)"
        case .missingTensor(let p, let n): "\(p): no tensor named \(n)"
        case .tensorShapeMismatch(let p, let n, let e, let a): "\(p): tensor \(n) has shape \(a), expected \(e)"
        }
    }
}

/// A NumPy `.npy` array (format versions 1–3), read whole into memory.
///
/// Reads little-endian `<f4`, `<f2`, `<i8`, `<u8`, `<i4`, `<u4` in C order; writes `<f4` and `<i8`.
public struct NPYArray: Sendable {
    /// The dtype descriptor, e.g. "<f4".
    public let dtype: String
    /// The shape, e.g. [N, D].
    public let shape: [Int]
    /// The raw little-endian element bytes, C order.
    public let data: [UInt8]

    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }

    /// Reads an `.npy` file.
    /// - Throws: `FormatError` naming the file: unreadable, malformed header, Fortran order, unsupported dtype, truncated data.
    public init(contentsOf path: String) throws {
        guard let bytes = FileManager.default.contents(atPath: path) else {
            throw FormatError.unreadable(path: path, reason: FileManager.default.fileExists(atPath: path) ? "permission denied or not a file" : "no such file")
        }
        try self.init(bytes: [UInt8](bytes), path: path)
    }

    /// Parses `.npy` bytes; `path` is only used in error messages.
    public init(bytes: [UInt8], path: String) throws {
        let header = try NPYHeader(bytes: bytes, path: path)
        let dtype = header.dtype
        let shape = header.shape
        guard let size = Self.itemSize[dtype] else {
            throw FormatError.unsupportedDType(path: path, dtype: dtype, expected: Self.itemSize.keys.sorted().joined(separator: ", "))
        }
        let dataStart = header.dataStart
        let expected = try NPYHeader.byteCount(shape, itemSize: size, path: path)
        let actual = bytes.count - dataStart
        guard actual >= expected else { throw FormatError.truncated(path: path, expectedBytes: expected, actualBytes: actual) }
        guard actual == expected else {
            throw FormatError.malformed(path: path, reason: "\(actual - expected) bytes after the array data")
        }
        self.dtype = dtype
        self.shape = shape
        self.data = Array(bytes[dataStart...])
    }

    private static let itemSize = ["<f4": 4, "<f2": 2, "<i8": 8, "<u8": 8, "<i4": 4, "<u4": 4, "|u1": 1]

    /// The array as float32 (from `<f4` or `<f2`).
    /// - Throws: `FormatError.unsupportedDType` for other dtypes.
    public func floats(path: String = "") throws -> [Float] {
        switch dtype {
        case "<f4": return data.withUnsafeBytes { $0.littleEndianFloats(.float32, count: count) }
        case "<f2": return data.withUnsafeBytes { $0.littleEndianFloats(.float16, count: count) }
        default:
            throw FormatError.unsupportedDType(path: path, dtype: dtype, expected: "<f4 or <f2")
        }
    }

    /// The array as 64-bit ids (from `<i8`, `<u8`, `<i4`, `<u4`); negative values are refused.
    /// - Throws: `FormatError.unsupportedDType`, or `.malformed` for a negative id.
    public func ids(path: String = "") throws -> [UInt64] {
        try data.withUnsafeBytes { raw in
            switch dtype {
            case "<u8": return (0..<count).map { UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)) }
            case "<u4": return (0..<count).map { UInt64(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
            case "<i8", "<i4":
                let wide = dtype == "<i8"
                return try (0..<count).map { i -> UInt64 in
                    let v = wide
                        ? Int64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: Int64.self))
                        : Int64(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: Int32.self)))
                    guard v >= 0 else { throw FormatError.malformed(path: path, reason: "id at index \(i) is negative (\(v))") }
                    return UInt64(v)
                }
            default:
                throw FormatError.unsupportedDType(path: path, dtype: dtype, expected: "<i8, <u8, <i4 or <u4")
            }
        }
    }

    /// Writes `values` as a `<f4` array of `shape` (C order, format version 1).
    public static func write(floats values: [Float], shape: [Int], to path: String) throws {
        precondition(shape.reduce(1, *) == values.count, "shape does not match the value count")
        var body = [UInt8]()
        body.reserveCapacity(values.count * 4)
        for v in values { body.appendLittleEndian(v) }
        try write(dtype: "<f4", shape: shape, body: body, to: path)
    }

    /// Writes `values` as an `<i8` vector (ids must be below 2^63).
    public static func write(ids values: [UInt64], to path: String) throws {
        var body = [UInt8]()
        for v in values { body.appendLittleEndian(Int64(v)) }
        try write(dtype: "<i8", shape: [values.count], body: body, to: path)
    }

    /// The bytes of a version-1 `.npy` header for a C-order array of `dtype` and `shape`, padded so
    /// that the data, written right after it, starts on a 64-byte boundary. For writers that stream
    /// the data themselves.
    public static func header(dtype: String, shape: [Int]) -> [UInt8] {
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(dtype)', 'fortran_order': False, 'shape': \(shapeText), }"
        // Pad so that the data starts on a 64-byte boundary, ending the header with a newline.
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var out: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0]
        let n = header.utf8.count
        out += [UInt8(n & 0xFF), UInt8(n >> 8)]
        out += Array(header.utf8)
        return out
    }

    private static func write(dtype: String, shape: [Int], body: [UInt8], to path: String) throws {
        let out = header(dtype: dtype, shape: shape) + body
        guard FileManager.default.createFile(atPath: path, contents: Data(out)) else {
            throw FormatError.unreadable(path: path, reason: "cannot write the file")
        }
    }
}
