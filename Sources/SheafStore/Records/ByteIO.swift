import CSheafDecode
/// Appends little-endian fields to a byte array.
struct ByteWriter {
    var bytes: [UInt8]

    init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    mutating func f32(_ v: Float) { u32(v.bitPattern) }
    mutating func f64(_ v: Double) { u64(v.bitPattern) }
    mutating func raw(_ b: UnsafeRawBufferPointer) { bytes.append(contentsOf: b) }
    mutating func raw(_ b: [UInt8]) { bytes.append(contentsOf: b) }
    /// A length-prefixed (u16) UTF-8 string.
    mutating func string(_ s: String) {
        let utf8 = Array(s.utf8.prefix(Int(UInt16.max)))
        u16(UInt16(utf8.count))
        raw(utf8)
    }
    /// Appends `floats` as little-endian float32.
    mutating func floats(_ floats: [Float]) {
        #if _endian(little)
        floats.withUnsafeBytes { bytes.append(contentsOf: $0) }
        #else
        for f in floats { f32(f) }
        #endif
    }
}

/// Why a record could not be parsed; the store turns it into `StoreError.corruptRecord` with the table and key.
struct RecordFormatError: Error, Equatable {
    let reason: String
}

/// Reads little-endian fields from bytes, throwing instead of reading past the end.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    private(set) var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }

    private mutating func take(_ n: Int, _ what: String) throws(RecordFormatError) -> UnsafeRawBufferPointer {
        guard n >= 0, n <= remaining else {
            throw RecordFormatError(reason: "truncated: \(what) needs \(n) bytes at offset \(offset), \(remaining) left")
        }
        defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)])
    }

    mutating func u8(_ what: String) throws(RecordFormatError) -> UInt8 { try take(1, what)[0] }
    mutating func u16(_ what: String) throws(RecordFormatError) -> UInt16 {
        UInt16(littleEndian: try take(2, what).loadUnaligned(as: UInt16.self))
    }
    mutating func u32(_ what: String) throws(RecordFormatError) -> UInt32 {
        UInt32(littleEndian: try take(4, what).loadUnaligned(as: UInt32.self))
    }
    mutating func u64(_ what: String) throws(RecordFormatError) -> UInt64 {
        UInt64(littleEndian: try take(8, what).loadUnaligned(as: UInt64.self))
    }
    mutating func i64(_ what: String) throws(RecordFormatError) -> Int64 { Int64(bitPattern: try u64(what)) }
    mutating func f32(_ what: String) throws(RecordFormatError) -> Float { Float(bitPattern: try u32(what)) }
    mutating func f64(_ what: String) throws(RecordFormatError) -> Double { Double(bitPattern: try u64(what)) }
    mutating func raw(_ n: Int, _ what: String) throws(RecordFormatError) -> UnsafeRawBufferPointer { try take(n, what) }
    mutating func string(_ what: String) throws(RecordFormatError) -> String {
        let n = Int(try u16(what))
        return String(decoding: try take(n, what), as: UTF8.self)
    }
    mutating func floats(_ n: Int, _ what: String) throws(RecordFormatError) -> [Float] {
        let src = try take(n * 4, what)
        return [Float](unsafeUninitializedCapacity: n) { buf, count in
            #if _endian(little)
            UnsafeMutableRawBufferPointer(buf).copyMemory(from: src)
            #else
            for i in 0..<n { buf[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))) }
            #endif
            count = n
        }
    }
    /// Throws unless every byte was consumed.
    func expectEnd(_ what: String) throws(RecordFormatError) {
        guard remaining == 0 else { throw RecordFormatError(reason: "\(remaining) unexpected trailing bytes after \(what)") }
    }
}

// MARK: - CRC-32C

/// CRC-32C (Castagnoli), the checksum of codebook and profile records.
enum CRC32C {
    /// The checksum of `bytes`, continuing from `crc` (pass the previous result to chain buffers).
    /// SSE4.2 `crc32` when the CPU has it (the C kernel checks at run time), a table otherwise.
    static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress else { return crc }
        return sheaf_crc32c(crc, base, bytes.count)
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 { bytes.withUnsafeBytes { checksum($0) } }
}

// MARK: - Keys

/// Keys are big-endian so that LMDB's default byte order sorts them numerically
/// (and `MDB_APPEND` works for ascending ids). Item, user and codebook ids are 8-byte keys;
/// history segments are 12-byte keys: user id then segment number.
enum Keys {
    @inline(__always)
    static func id<R>(_ id: UInt64, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var be = id.bigEndian
        return try withUnsafeBytes(of: &be) { try body($0) }
    }

    @inline(__always)
    static func segment<R>(user: UInt64, segment: UInt32, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var key: (UInt64, UInt32) = (user.bigEndian, segment.bigEndian)
        return try withUnsafeBytes(of: &key) { try body(UnsafeRawBufferPointer(rebasing: $0[0..<12])) }
    }

    /// Reads an 8-byte id key.
    static func decodeID(_ key: UnsafeRawBufferPointer) -> UInt64? {
        guard key.count == 8 else { return nil }
        return UInt64(bigEndian: key.loadUnaligned(as: UInt64.self))
    }

    /// Reads a 12-byte history segment key.
    static func decodeSegment(_ key: UnsafeRawBufferPointer) -> (user: UInt64, segment: UInt32)? {
        guard key.count == 12 else { return nil }
        return (
            UInt64(bigEndian: key.loadUnaligned(as: UInt64.self)),
            UInt32(bigEndian: key.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        )
    }
}
