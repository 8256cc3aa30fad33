import Foundation

/// The parsed header of a `.npy` file: dtype, shape and where the element bytes start.
struct NPYHeader: Sendable {
    /// The dtype descriptor, e.g. "<f4".
    var dtype: String
    /// The shape, e.g. [N, D].
    var shape: [Int]
    /// Byte offset of the first element.
    var dataStart: Int

    /// Bytes a prefix of the file must hold for `init(bytes:path:)` to parse the header, given at least its first 12 bytes (or the whole file when shorter).
    static func requiredBytes(prefix bytes: [UInt8]) -> Int {
        guard bytes.count >= 10 else { return bytes.count }
        switch bytes[6] {
        case 1: return 10 + (Int(bytes[8]) | Int(bytes[9]) << 8)
        case 2, 3:
            guard bytes.count >= 12 else { return bytes.count }
            return 12 + (Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24)
        default: return bytes.count
        }
    }

    /// Parses the header at the start of `bytes` (the whole file or just a prefix holding the header); `path` is only used in errors.
    /// - Throws: `FormatError.malformed` for a bad magic, version, header dict, shape, or Fortran order.
    init(bytes: [UInt8], path: String) throws {
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else {
            throw FormatError.malformed(path: path, reason: "not a .npy file (bad magic)")
        }
        let major = bytes[6]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw FormatError.malformed(path: path, reason: "truncated header") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        default:
            throw FormatError.malformed(path: path, reason: "unsupported .npy format version \(major)")
        }
        guard bytes.count >= headerStart + headerLength else {
            throw FormatError.malformed(path: path, reason: "truncated header")
        }
        let header = String(decoding: bytes[headerStart..<(headerStart + headerLength)], as: UTF8.self)
        guard let descr = Self.field(header, "descr"), let order = Self.field(header, "fortran_order"),
            let shapeText = Self.field(header, "shape")
        else {
            throw FormatError.malformed(path: path, reason: "header lacks descr, fortran_order or shape: \(header)")
        }
        guard order == "False" else {
            throw FormatError.malformed(path: path, reason: "Fortran-order arrays are not supported; save with C order")
        }
        let dims = shapeText.trimmingCharacters(in: CharacterSet(charactersIn: "()")).split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        var shape: [Int] = []
        for d in dims {
            guard let v = Int(d), v >= 0 else { throw FormatError.malformed(path: path, reason: "bad shape \(shapeText)") }
            shape.append(v)
        }
        self.dtype = descr.trimmingCharacters(in: CharacterSet(charactersIn: "'\""))
        self.shape = shape
        self.dataStart = headerStart + headerLength
    }

    /// The bytes of an array of `shape` with `itemSize`-byte elements.
    /// - Throws: `FormatError.malformed` ("shape [N, D] is too large") when that overflows `Int`: a
    ///   damaged or hostile header must not trap.
    static func byteCount(_ shape: [Int], itemSize: Int, path: String) throws -> Int {
        var p = itemSize
        for f in shape {
            let (r, overflow) = p.multipliedReportingOverflow(by: f)
            guard !overflow else { throw FormatError.malformed(path: path, reason: "shape \(shape) is too large") }
            p = r
        }
        return p
    }

    /// A shape as numpy prints it: "(5,)", "(2, 3)".
    static func shapeText(_ shape: [Int]) -> String {
        shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    }

    /// The value of `key` in the header dict (a quoted string, a bare word, or a parenthesised tuple).
    private static func field(_ header: String, _ key: String) -> String? {
        guard let k = header.range(of: "'\(key)'") ?? header.range(of: "\"\(key)\"") else { return nil }
        var rest = header[k.upperBound...].drop { $0 == " " || $0 == ":" }
        if rest.first == "(" {
            guard let close = rest.firstIndex(of: ")") else { return nil }
            return String(rest[...close])
        }
        if rest.first == "'" || rest.first == "\"" {
            let q = rest.first!
            rest = rest.dropFirst()
            guard let end = rest.firstIndex(of: q) else { return nil }
            return String(rest[..<end])
        }
        let end = rest.firstIndex { $0 == "," || $0 == "}" } ?? rest.endIndex
        return rest[..<end].trimmingCharacters(in: .whitespaces)
    }
}
