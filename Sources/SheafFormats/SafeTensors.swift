import Foundation

/// A safetensors file (the format of Hugging Face model weights), read whole into memory.
///
/// Layout: an 8-byte little-endian header length N, N bytes of JSON, then the data. The JSON maps
/// each tensor name to `{"dtype", "shape", "data_offsets": [begin, end]}` (offsets into the data,
/// which the tensors must cover exactly, without gaps or overlaps) and may hold a `__metadata__`
/// object of strings. Values are little-endian, row-major.
///
/// Reads every dtype's layout; converts F32, F16, BF16 and F64 to Float. Writes F32.
public struct SafeTensors: Sendable {
    /// Element types of the format, with their sizes.
    public enum DType: String, Sendable, CaseIterable {
        case F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL

        public var byteSize: Int {
            switch self {
            case .F64, .I64, .U64: 8
            case .F32, .I32, .U32: 4
            case .F16, .BF16, .I16, .U16: 2
            case .I8, .U8, .BOOL: 1
            }
        }
    }

    /// One tensor's entry in the header.
    public struct Entry: Sendable, Equatable {
        public let name: String
        public let dtype: DType
        public let shape: [Int]
        /// Byte range within the data section.
        public let byteRange: Range<Int>
    }

    /// The file this was read from (for error messages).
    public let path: String
    /// Entries in data order.
    public let entries: [Entry]
    /// The `__metadata__` strings.
    public let metadata: [String: String]
    private let byName: [String: Int]
    private let data: [UInt8]

    /// The largest header this reader accepts (the reference implementation's limit).
    public static let maximumHeaderSize = 100_000_000

    /// Reads and validates `path`. Throws `FormatError` (`.unreadable`, `.truncated`, `.malformed`,
    /// `.unsupportedDType`) naming the file and the problem.
    public static func read(path: String) throws -> SafeTensors {
        let fd = try POSIXFile.openForReading(path)
        defer { close(fd) }
        let size = try POSIXFile.size(fd, path: path)
        guard size >= 8 else { throw FormatError.truncated(path: path, expectedBytes: 8, actualBytes: size) }
        let lengthBytes = try POSIXFile.readBytes(fd, count: 8, offset: 0, path: path)
        let n64 = lengthBytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard n64 <= UInt64(maximumHeaderSize) else {
            throw FormatError.malformed(path: path, reason: "header length \(n64) exceeds \(maximumHeaderSize) bytes")
        }
        let n = Int(n64)
        guard 8 + n <= size else { throw FormatError.truncated(path: path, expectedBytes: 8 + n, actualBytes: size) }
        let headerBytes = try POSIXFile.readBytes(fd, count: n, offset: 8, path: path)
        let parsed = try parseHeader(headerBytes, path: path)
        let dataSize = size - 8 - n
        // The tensors must cover the data section exactly, in some order.
        var expectedStart = 0
        for e in parsed.entries.sorted(by: { ($0.byteRange.lowerBound, $0.byteRange.upperBound) < ($1.byteRange.lowerBound, $1.byteRange.upperBound) }) {
            guard e.byteRange.lowerBound == expectedStart else {
                throw FormatError.malformed(
                    path: path, reason: "tensor \(e.name) starts at data byte \(e.byteRange.lowerBound), expected \(expectedStart) (a gap or an overlap)")
            }
            expectedStart = e.byteRange.upperBound
        }
        if expectedStart > dataSize {
            throw FormatError.truncated(path: path, expectedBytes: 8 + n + expectedStart, actualBytes: size)
        }
        guard expectedStart == dataSize else {
            throw FormatError.malformed(path: path, reason: "\(dataSize - expectedStart) data bytes after the last tensor")
        }
        let data = try POSIXFile.readBytes(fd, count: dataSize, offset: 8 + n, path: path)
        guard data.count == dataSize else { throw FormatError.truncated(path: path, expectedBytes: size, actualBytes: 8 + n + data.count) }
        var byName: [String: Int] = [:]
        let ordered = parsed.entries.sorted { $0.byteRange.lowerBound < $1.byteRange.lowerBound }
        for (i, e) in ordered.enumerated() { byName[e.name] = i }
        return SafeTensors(path: path, entries: ordered, metadata: parsed.metadata, byName: byName, data: data)
    }

    private static func parseHeader(_ bytes: [UInt8], path: String) throws -> (entries: [Entry], metadata: [String: String]) {
        guard bytes.first == UInt8(ascii: "{") else { throw FormatError.malformed(path: path, reason: "the header is not a JSON object") }
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: Data(bytes)) } catch {
            throw FormatError.malformed(path: path, reason: "the header is not valid JSON")
        }
        guard let header = object as? [String: Any] else { throw FormatError.malformed(path: path, reason: "the header is not a JSON object") }
        var entries: [Entry] = []
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else { throw FormatError.malformed(path: path, reason: "__metadata__ is not an object") }
                for (k, v) in m {
                    guard let s = v as? String else { throw FormatError.malformed(path: path, reason: "__metadata__ value \(k) is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard let fields = value as? [String: Any], let dtypeName = fields["dtype"] as? String,
                let shapeValues = fields["shape"] as? [Any], let offsetValues = fields["data_offsets"] as? [Any], offsetValues.count == 2
            else { throw FormatError.malformed(path: path, reason: "tensor \(name): needs dtype, shape and two data_offsets") }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw FormatError.unsupportedDType(path: path, dtype: dtypeName, expected: DType.allCases.map(\.rawValue).joined(separator: ", "))
            }
            let shape = try shapeValues.map { v -> Int in
                guard let i = integer(v), i >= 0 else { throw FormatError.malformed(path: path, reason: "tensor \(name): bad shape \(shapeValues)") }
                return i
            }
            guard let begin = integer(offsetValues[0]), let end = integer(offsetValues[1]), begin >= 0, end >= begin else {
                throw FormatError.malformed(path: path, reason: "tensor \(name): bad data_offsets \(offsetValues)")
            }
            let (count, overflow) = shape.reduce((1, false)) { acc, e in
                let (p, o) = acc.0.multipliedReportingOverflow(by: e)
                return (p, acc.1 || o)
            }
            guard !overflow, count.multipliedReportingOverflow(by: dtype.byteSize).overflow == false,
                count * dtype.byteSize == end - begin
            else {
                throw FormatError.malformed(
                    path: path, reason: "tensor \(name): shape \(shape) of \(dtype.rawValue) needs \(count &* dtype.byteSize) bytes, data_offsets span \(end - begin)")
            }
            entries.append(Entry(name: name, dtype: dtype, shape: shape, byteRange: begin..<end))
        }
        return (entries, metadata)
    }

    /// A JSON integer (an exact Int; fractions and strings are refused).
    private static func integer(_ v: Any) -> Int? { v as? Int }

    /// The entry named `name`, if present.
    public func entry(_ name: String) -> Entry? { byName[name].map { entries[$0] } }

    /// Tensor `name` converted to Float (from F32, F16, BF16 or F64).
    ///
    /// - Parameter shape: when given, the tensor must have exactly this shape.
    /// - Throws: `.missingTensor`, `.tensorShapeMismatch`, `.unsupportedDType` (another dtype).
    public func floats(_ name: String, shape expected: [Int]? = nil) throws -> (shape: [Int], values: [Float]) {
        guard let e = entry(name) else { throw FormatError.missingTensor(path: path, name: name) }
        if let expected, expected != e.shape {
            throw FormatError.tensorShapeMismatch(path: path, name: name, expected: expected, actual: e.shape)
        }
        let count = e.byteRange.count / e.dtype.byteSize
        let type: LittleEndianFloat
        switch e.dtype {
        case .F32: type = .float32
        case .F16: type = .float16
        case .BF16: type = .bfloat16
        case .F64: type = .float64
        default:
            throw FormatError.unsupportedDType(path: path, dtype: "\(e.dtype.rawValue) (tensor \(name))", expected: "F32, F16, BF16 or F64")
        }
        let values = data.withUnsafeBytes { UnsafeRawBufferPointer(rebasing: $0[e.byteRange]).littleEndianFloats(type, count: count) }
        return (e.shape, values)
    }

    /// Writes float32 tensors (in the given order) and `metadata` to `path`, replacing it atomically
    /// (a temporary file in the same directory, then a rename). Names must be unique and not
    /// `__metadata__`.
    public static func write(
        _ tensors: [(name: String, shape: [Int], values: [Float])], metadata: [String: String] = [:], to path: String
    ) throws {
        var header: [String: Any] = [:]
        var offset = 0
        for t in tensors {
            precondition(t.name != "__metadata__" && header[t.name] == nil, "safetensors: duplicate or reserved tensor name \(t.name)")
            precondition(t.shape.reduce(1, *) == t.values.count, "safetensors: shape \(t.shape) does not match \(t.values.count) values")
            header[t.name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + 4 * t.values.count]]
            offset += 4 * t.values.count
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = Array(try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
        // Pad with spaces so that the data starts 8-byte aligned, as the reference writer does.
        while (8 + json.count) % 8 != 0 { json.append(UInt8(ascii: " ")) }
        var out: [UInt8] = []
        out.reserveCapacity(8 + json.count + offset)
        out.appendLittleEndian(UInt64(json.count))
        out += json
        for t in tensors {
            for v in t.values { out.appendLittleEndian(v) }
        }
        let temporary = path + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(out)) else {
            throw FormatError.unreadable(path: path, reason: "cannot write \(temporary)")
        }
        guard rename(temporary, path) == 0 else {
            let reason = POSIXFile.errnoReason(errno)
            unlink(temporary)
            throw FormatError.unreadable(path: path, reason: "cannot replace the file: \(reason)")
        }
    }
}
