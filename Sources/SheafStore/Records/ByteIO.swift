// The one byte codec of every record (meta, codebooks, items, history segments, profiles, titles):
// little-endian fixed-width fields, LEB128 varints, float32 columns. Nothing is aligned.

/// Appends little-endian fields to a byte array.
struct ByteWriter {
    var bytes: [UInt8]

    init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Runs `body` with a writer that appends to `out` (moved in and back out, not copied).
    static func appending<R, E: Error>(to out: inout [UInt8], _ body: (inout ByteWriter) throws(E) -> R) throws(E) -> R {
        var w = ByteWriter(capacity: 0)
        swap(&w.bytes, &out)
        defer { swap(&w.bytes, &out) }
        return try body(&w)
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
    /// `n` zero bytes.
    mutating func zeros(_ n: Int) { bytes.append(contentsOf: repeatElement(0, count: n)) }
    /// An unsigned LEB128 varint: 7 bits per byte, least significant group first, high bit set on
    /// every byte but the last (1 to 10 bytes).
    @inline(__always)
    mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v &>>= 7
        }
        bytes.append(UInt8(truncatingIfNeeded: v))
    }
    /// A signed value as a zigzag varint (`(v << 1) ^ (v >> 63)`: small magnitudes stay short).
    @inline(__always)
    mutating func zigzagVarint(_ v: Int64) { varint(zigzag(v)) }
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
    /// Whether the bytes ended early or are complete but wrong.
    enum Kind: Equatable {
        /// The bytes end before a field does.
        case truncated
        /// The bytes are complete but inconsistent (bad version, field, size or checksum).
        case invalid
    }

    let kind: Kind
    let reason: String

    init(reason: String, kind: Kind = .invalid) {
        self.kind = kind
        self.reason = reason
    }
}

@inline(__always)
func zigzag(_ v: Int64) -> UInt64 { UInt64(bitPattern: (v << 1) ^ (v >> 63)) }

@inline(__always)
func unzigzag(_ u: UInt64) -> Int64 { Int64(bitPattern: (u >> 1) ^ (0 &- (u & 1))) }

/// Reads little-endian fields from bytes, throwing instead of reading past the end.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    private(set) var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }

    private mutating func take(_ n: Int, _ what: String) throws(RecordFormatError) -> UnsafeRawBufferPointer {
        guard n >= 0, n <= remaining else {
            throw RecordFormatError(
                reason: "truncated: \(what) needs \(n) bytes at offset \(offset), \(remaining) left", kind: .truncated)
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
    /// The next `n` bytes, borrowed from the reader's buffer.
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
    /// Reads one unsigned LEB128 varint (at most 10 bytes, fitting 64 bits).
    ///
    /// Fast paths: a one-byte varint is returned at once; otherwise, with 8 bytes left, one unaligned
    /// load covers any varint of up to 8 bytes (56 bits): its length is found from the first byte with
    /// a clear high bit, and its 7-bit groups are packed together with three mask-and-shift steps.
    /// Longer varints and the buffer's last bytes go through the byte-wise `varintSlow`, which also
    /// reports errors.
    @inline(__always)
    mutating func varint(_ what: StaticString) throws(RecordFormatError) -> UInt64 {
        if offset < bytes.count {
            // safe: offset < bytes.count.
            let b = bytes[offset]
            if b < 0x80 {
                offset &+= 1
                return UInt64(b)
            }
        }
        if bytes.count &- offset >= 8 {
            // safe: offset + 8 ≤ bytes.count; loadUnaligned has no alignment requirement.
            let w = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            let stops = ~w & 0x8080_8080_8080_8080
            if stops != 0 {
                offset &+= (stops.trailingZeroBitCount &>> 3) &+ 1
                // Keep the varint's bytes (through the lowest stop bit), then their low 7 bits.
                var x = w & (stops ^ (stops &- 1)) & 0x7F7F_7F7F_7F7F_7F7F
                x = (x & 0x007F_007F_007F_007F) | ((x & 0x7F00_7F00_7F00_7F00) &>> 1)
                x = (x & 0x0000_3FFF_0000_3FFF) | ((x & 0x3FFF_0000_3FFF_0000) &>> 2)
                x = (x & 0x0000_0000_0FFF_FFFF) | ((x & 0x0FFF_FFFF_0000_0000) &>> 4)
                return x
            }
        }
        return try varintSlow(what)
    }

    @inline(never)
    private mutating func varintSlow(_ what: StaticString) throws(RecordFormatError) -> UInt64 {
        var result: UInt64 = 0
        for k in 0..<10 {
            guard offset < bytes.count else {
                throw RecordFormatError(reason: "ends inside a \(what) varint", kind: .truncated)
            }
            let b = bytes[offset]
            offset += 1
            if k == 9, b > 1 { break }
            result |= UInt64(b & 0x7f) << UInt64(7 * k)
            if b < 0x80 { return result }
        }
        throw RecordFormatError(reason: "\(what) varint overflows 64 bits")
    }

    /// A zigzag varint as a signed value.
    @inline(__always)
    mutating func zigzagVarint(_ what: StaticString) throws(RecordFormatError) -> Int64 { unzigzag(try varint(what)) }

    /// Throws unless every byte was consumed.
    func expectEnd(_ what: String) throws(RecordFormatError) {
        guard remaining == 0 else { throw RecordFormatError(reason: "\(remaining) unexpected trailing bytes after \(what)") }
    }
}
