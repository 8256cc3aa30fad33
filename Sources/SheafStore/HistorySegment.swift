/// # History segment format, version 1
///
/// One segment holds `count` (≥ 1) consecutive behaviours of one user, column by column, optionally
/// with each behaviour's packed item code copied inline from the items table. All integers are
/// little-endian; nothing is aligned.
///
/// ## Header (32 bytes, uncompressed; readable without decompression)
///
/// | offset | size | field                                                                   |
/// |-------:|-----:|-------------------------------------------------------------------------|
/// |      0 |  u8  | format version, = 1                                                     |
/// |      1 |  u8  | flags: bit 0 = has inline codes; bits 1…7 must be 0                     |
/// |      2 |  u16 | codebook id of the inline codes (0 iff no inline codes)                 |
/// |      4 |  u16 | code size in bytes (0 iff no inline codes)                              |
/// |      6 |  u16 | side-feature width (float32 values per behaviour)                       |
/// |      8 |  u32 | behaviour count, ≥ 1                                                    |
/// |     12 |  i64 | first timestamp (two's complement)                                      |
/// |     20 |  i64 | last timestamp (≥ first; = first when count = 1)                        |
/// |     28 |  u32 | uncompressed payload size in bytes                                      |
/// |     32 |  …   | one zstd frame (content size and checksum set) of the payload, to the end |
///
/// Flag bit 0, a non-zero codebook id and a non-zero code size always go together.
///
/// ## Payload (decompressed), column after column, no padding
///
/// 1. Timestamps: the first as a zigzag varint of its value, then `count - 1` unsigned varints, each
///    the (non-negative) difference from the previous timestamp. Timestamps are non-decreasing.
/// 2. Item ids: `count` zigzag varints, each the signed difference from the previous id (the first from
///    0), computed with wrapping arithmetic on UInt64 (`Int64(bitPattern: id &- previous)`), so any id
///    round-trips.
/// 3. Actions: `count` unsigned varints (each ≤ 65535).
/// 4. Labels: `count` float32 (IEEE 754 bit pattern, little-endian).
/// 5. Side features: `count × width` float32 little-endian, row-major (behaviour by behaviour).
/// 6. Only when flag bit 0 is set:
///    a. a presence bitmap of `ceil(count / 8)` bytes, LSB-first (behaviour `i` is bit `i % 8` of byte
///       `i / 8`); unused high bits of the last byte are 0;
///    b. `count × codeSize` bytes: behaviour `i`'s code at `i × codeSize`, all zero bytes when absent.
///
/// The payload ends exactly after the last column.
///
/// A varint is LEB128: 7 bits per byte, least significant group first, high bit set on every byte but
/// the last; at most 10 bytes (the 10th is 0 or 1). Zigzag maps a signed `v` to `(v << 1) ^ (v >> 63)`.
///
/// Decoding validates everything (including that padding bits and absent codes are zero, and that the
/// payload's first/last timestamps match the header) and throws `SegmentFormatError`, never traps, on
/// arbitrary bytes: a short header, a missing or cut zstd frame, or a column running past the payload is
/// `.truncated`; a bad version byte is `.unsupportedVersion`; a frame whose size differs from the
/// header's payload size is `.invalid`; any other zstd failure (corruption, checksum) is `.compression`.
/// The header's payload size is checked against the count before anything is allocated, and the frame's
/// declared content size against the header before decompressing.

/// Why a segment could not be read.
enum SegmentFormatError: Error, Equatable, CustomStringConvertible {
    /// The bytes end before the header, the zstd frame or a payload column does.
    case truncated(String)
    /// The format version byte is not one this code reads.
    case unsupportedVersion(UInt8)
    /// The bytes are complete but inconsistent (bad field, overflow, size or timestamp mismatch…).
    case invalid(String)
    /// zstd rejected the frame (corrupt data, checksum failure).
    case compression(String)

    var description: String {
        switch self {
        case .truncated(let s): "truncated history segment: \(s)"
        case .unsupportedVersion(let v): "unsupported history segment version \(v)"
        case .invalid(let s): "invalid history segment: \(s)"
        case .compression(let s): "history segment compression error: \(s)"
        }
    }
}

/// One history segment: up to a few hundred consecutive behaviours of one user, optionally with each
/// behaviour's inline item code. See the top of this file for the byte layout.
struct HistorySegment: Equatable {
    /// The fixed header fields, readable without decompressing (`readHeader`).
    struct Header: Equatable {
        /// Number of behaviours (≥ 1).
        var count: Int
        /// Timestamp of the first behaviour.
        var firstTimestamp: Int64
        /// Timestamp of the last behaviour.
        var lastTimestamp: Int64
        /// Codebook of the inline codes; 0 when there are none.
        var codebookID: UInt16
        /// Bytes per inline code; 0 when there are none.
        var codeSize: Int
        /// Side-feature values per behaviour.
        var sideFeatureWidth: Int
        /// Size of the decompressed payload in bytes.
        var payloadSize: Int
        /// Size of the header in bytes: the zstd frame starts here.
        var headerSize: Int

        /// Whether the segment carries inline codes.
        var hasInlineCodes: Bool { codeSize > 0 }
    }

    /// The format version written and read by this code.
    static let formatVersion: UInt8 = 1
    /// Size of the version-1 header.
    static let headerSize = 32
    /// Flag bit: the payload ends with the inline-code columns.
    static let hasCodesFlag: UInt8 = 1

    /// The behaviours (its `sideFeatureWidth` is the segment's).
    var history: History
    /// Codebook id of the inline codes; 0 = no inline codes.
    var codebookID: UInt16
    /// Bytes per inline code; 0 = no inline codes.
    var codeSize: Int
    /// Inline codes, `count × codeSize` bytes; behaviour `i`'s code is at `i × codeSize`.
    /// Absent codes are stored (and decoded) as zero bytes.
    var codes: [UInt8]
    /// Per behaviour, whether it has an inline code (`count` values; empty when `codeSize == 0`).
    var codePresent: [Bool]

    init(history: History, codebookID: UInt16 = 0, codeSize: Int = 0, codes: [UInt8] = [], codePresent: [Bool] = []) {
        self.history = history
        self.codebookID = codebookID
        self.codeSize = codeSize
        self.codes = codes
        self.codePresent = codePresent
    }

    /// Number of behaviours.
    var count: Int { history.count }

    /// Behaviour `index`'s inline code, or nil when it has none (or the segment carries no codes).
    func code(at index: Int) -> ArraySlice<UInt8>? {
        guard codeSize > 0, codePresent[index] else { return nil }
        return codes[(index * codeSize)..<((index + 1) * codeSize)]
    }

    // MARK: - Sizes

    /// Smallest payload possible for these dimensions (every varint one byte).
    private static func minPayloadSize(count n: Int, width w: Int, codeSize cs: Int) -> Int {
        n * (1 + 1 + 1 + 4 + 4 * w) + (cs > 0 ? (n + 7) / 8 + n * cs : 0)
    }

    /// Largest payload possible for these dimensions (timestamps and ids 10 bytes, actions 3).
    private static func maxPayloadSize(count n: Int, width w: Int, codeSize cs: Int) -> Int {
        n * (10 + 10 + 3 + 4 + 4 * w) + (cs > 0 ? (n + 7) / 8 + n * cs : 0)
    }

    // MARK: - Header

    /// Reads and validates the header without decompressing anything.
    static func readHeader(_ bytes: UnsafeRawBufferPointer) throws(SegmentFormatError) -> Header {
        guard bytes.count >= 1 else { throw .truncated("empty segment") }
        let version = bytes[0]
        guard version == formatVersion else { throw .unsupportedVersion(version) }
        guard bytes.count >= headerSize else { throw .truncated("header has \(bytes.count) of \(headerSize) bytes") }
        let flags = bytes[1]
        let codebookID = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
        let codeSize = Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt16.self)))
        let width = Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 6, as: UInt16.self)))
        let count = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
        let first = Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: 12, as: Int64.self))
        let last = Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: 20, as: Int64.self))
        let payloadSize = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 28, as: UInt32.self)))

        guard flags & ~hasCodesFlag == 0 else { throw .invalid("unknown flags \(flags)") }
        if flags & hasCodesFlag != 0 {
            guard codebookID != 0, codeSize != 0 else {
                throw .invalid("inline codes flagged but codebook id \(codebookID), code size \(codeSize)")
            }
        } else {
            guard codebookID == 0, codeSize == 0 else {
                throw .invalid("no inline codes flagged but codebook id \(codebookID), code size \(codeSize)")
            }
        }
        guard count >= 1 else { throw .invalid("behaviour count is 0") }
        guard first <= last else { throw .invalid("first timestamp \(first) after last \(last)") }
        guard count > 1 || first == last else { throw .invalid("one behaviour but two different timestamps") }
        let minSize = minPayloadSize(count: count, width: width, codeSize: codeSize)
        let maxSize = maxPayloadSize(count: count, width: width, codeSize: codeSize)
        guard payloadSize >= minSize, payloadSize <= maxSize else {
            throw .invalid("payload size \(payloadSize) impossible for \(count) behaviours (\(minSize)…\(maxSize))")
        }
        return Header(
            count: count, firstTimestamp: first, lastTimestamp: last, codebookID: codebookID, codeSize: codeSize,
            sideFeatureWidth: width, payloadSize: payloadSize, headerSize: headerSize)
    }

    // MARK: - Encoding

    /// Encodes the segment (header + zstd frame of the payload).
    ///
    /// Preconditions: at least one behaviour, timestamps non-decreasing, the history's columns
    /// consistent, `codes.count == count × codeSize`, `codePresent.count == count` when `codeSize > 0`
    /// (both empty otherwise), codebook id 0 exactly when code size is 0, widths/sizes fit in u16.
    func encode(using compressor: ZstdCompressor) throws -> [UInt8] {
        var out: [UInt8] = []
        var scratch: [UInt8] = []
        try encode(using: compressor, appendingTo: &out, scratch: &scratch)
        return out
    }

    /// Encodes the segment, appending it to `out`; `scratch` is working memory that callers encoding many
    /// segments can reuse to avoid an allocation per segment (its contents are unspecified afterwards).
    func encode(using compressor: ZstdCompressor, appendingTo out: inout [UInt8], scratch: inout [UInt8]) throws(ZstdError) {
        let h = history
        let n = h.count
        let w = h.sideFeatureWidth
        let cs = codeSize
        precondition(n >= 1, "a segment holds at least one behaviour")
        precondition(n <= Int(UInt32.max), "too many behaviours for one segment")
        precondition(
            h.timestamps.count == n && h.actions.count == n && h.labels.count == n && h.sideFeatures.count == n * w,
            "history columns have inconsistent lengths")
        precondition(w <= Int(UInt16.max), "side-feature width must fit in u16")
        precondition(cs >= 0 && cs <= Int(UInt16.max), "code size must fit in u16")
        precondition((cs == 0) == (codebookID == 0), "codebook id must be 0 exactly when there are no codes")
        precondition(codes.count == n * cs, "codes must hold count × codeSize bytes")
        precondition(codePresent.count == (cs > 0 ? n : 0), "codePresent must hold one flag per behaviour")

        let maxSize = Self.maxPayloadSize(count: n, width: w, codeSize: cs)
        if scratch.count < maxSize {
            scratch.append(contentsOf: repeatElement(0, count: maxSize - scratch.count))
        }
        let payloadSize = scratch.withUnsafeMutableBytes { buf in
            let p = buf.baseAddress!
            var pos = 0
            // Timestamps.
            h.timestamps.withUnsafeBufferPointer { ts in
                putVarint(p, &pos, zigzag(ts[0]))
                var prev = ts[0]
                for i in 1..<n {
                    let t = ts[i]
                    precondition(t >= prev, "timestamps must be non-decreasing")
                    putVarint(p, &pos, UInt64(bitPattern: t &- prev))
                    prev = t
                }
            }
            // Item ids.
            h.itemIDs.withUnsafeBufferPointer { ids in
                var prev: UInt64 = 0
                for i in 0..<n {
                    let id = ids[i]
                    putVarint(p, &pos, zigzag(Int64(bitPattern: id &- prev)))
                    prev = id
                }
            }
            // Actions.
            h.actions.withUnsafeBufferPointer { acts in
                for i in 0..<n { putVarint(p, &pos, UInt64(acts[i])) }
            }
            // Labels and side features.
            putFloats(p, &pos, h.labels)
            if w > 0 { putFloats(p, &pos, h.sideFeatures) }
            // Inline codes.
            if cs > 0 {
                let bitmapSize = (n + 7) / 8
                (p + pos).initializeMemory(as: UInt8.self, repeating: 0, count: bitmapSize)
                codePresent.withUnsafeBufferPointer { present in
                    codes.withUnsafeBytes { src in
                        for i in 0..<n where present[i] {
                            p.storeBytes(
                                of: p.load(fromByteOffset: pos + i / 8, as: UInt8.self) | UInt8(1 << (i % 8)),
                                toByteOffset: pos + i / 8, as: UInt8.self)
                        }
                        pos += bitmapSize
                        for i in 0..<n {
                            let dst = p + pos + i * cs
                            if present[i] {
                                dst.copyMemory(from: src.baseAddress! + i * cs, byteCount: cs)
                            } else {
                                dst.initializeMemory(as: UInt8.self, repeating: 0, count: cs)
                            }
                        }
                        pos += n * cs
                    }
                }
            }
            return pos
        }

        let start = out.count
        out.reserveCapacity(start + Self.headerSize + ZstdCompressor.compressBound(payloadSize))
        out.append(Self.formatVersion)
        out.append(cs > 0 ? Self.hasCodesFlag : 0)
        appendLE(codebookID, to: &out)
        appendLE(UInt16(cs), to: &out)
        appendLE(UInt16(w), to: &out)
        appendLE(UInt32(n), to: &out)
        appendLE(h.timestamps[0], to: &out)
        appendLE(h.timestamps[n - 1], to: &out)
        appendLE(UInt32(payloadSize), to: &out)
        assert(out.count - start == Self.headerSize)
        let compressed: Result<Void, ZstdError> = scratch.withUnsafeBytes { buf in
            Result { () throws(ZstdError) in
                try compressor.compress(UnsafeRawBufferPointer(rebasing: buf[0..<payloadSize]), appendingTo: &out)
            }
        }
        if case .failure(let error) = compressed {
            out.removeLast(out.count - start)
            throw error
        }
    }

    // MARK: - Decoding

    /// Decodes a whole segment, validating every field. Throws `SegmentFormatError`, never traps.
    static func decode(_ bytes: UnsafeRawBufferPointer, using decompressor: ZstdDecompressor) throws(SegmentFormatError) -> HistorySegment {
        var scratch: [UInt8] = []
        return try decode(bytes, using: decompressor, scratch: &scratch)
    }

    /// Decodes a whole segment; `scratch` receives the decompressed payload and can be reused across
    /// calls to avoid an allocation per segment.
    static func decode(
        _ bytes: UnsafeRawBufferPointer, using decompressor: ZstdDecompressor, scratch: inout [UInt8]
    ) throws(SegmentFormatError) -> HistorySegment {
        let header = try readHeader(bytes)
        guard bytes.count > header.headerSize else { throw .truncated("missing zstd frame") }
        let frame = UnsafeRawBufferPointer(rebasing: bytes[header.headerSize...])
        do {
            try decompressor.decompress(frame, expectedSize: header.payloadSize, into: &scratch)
        } catch {
            if error.isSizeMismatch {
                throw .invalid("payload size mismatch: header says \(header.payloadSize) bytes; \(error.message)")
            } else if error.isTruncatedInput {
                throw .truncated("zstd frame: \(error.message)")
            } else {
                throw .compression(error.message)
            }
        }
        let result: Result<HistorySegment, SegmentFormatError> = scratch.withUnsafeBytes { payload in
            decodePayload(payload, header: header)
        }
        return try result.get()
    }

    /// Decodes the columns of a decompressed payload of `header.payloadSize` bytes.
    private static func decodePayload(
        _ payload: UnsafeRawBufferPointer, header: Header
    ) -> Result<HistorySegment, SegmentFormatError> {
        let n = header.count
        let w = header.sideFeatureWidth
        let cs = header.codeSize
        var r = PayloadReader(payload)

        // Timestamps.
        let timestamps = [Int64](unsafeUninitializedCapacity: n) { buf, initialized in
            var prev = unzigzag(r.varint("timestamp"))
            buf[0] = prev
            for i in 1..<n {
                let t = prev &+ Int64(bitPattern: r.varint("timestamp delta"))
                if t < prev { r.fail(.invalid("timestamp delta at \(i) overflows Int64")) }
                buf[i] = t
                prev = t
            }
            initialized = n
        }
        if let f = r.failure { return .failure(f) }
        guard timestamps[0] == header.firstTimestamp, timestamps[n - 1] == header.lastTimestamp else {
            return .failure(.invalid(
                "timestamps \(timestamps[0])…\(timestamps[n - 1]) do not match header "
                    + "\(header.firstTimestamp)…\(header.lastTimestamp)"))
        }

        // Item ids.
        let itemIDs = [UInt64](unsafeUninitializedCapacity: n) { buf, initialized in
            var prev: UInt64 = 0
            for i in 0..<n {
                prev = prev &+ UInt64(bitPattern: unzigzag(r.varint("item id delta")))
                buf[i] = prev
            }
            initialized = n
        }
        if let f = r.failure { return .failure(f) }

        // Actions.
        let actions = [UInt16](unsafeUninitializedCapacity: n) { buf, initialized in
            for i in 0..<n {
                let a = r.varint("action")
                if a > UInt64(UInt16.max) { r.fail(.invalid("action \(a) at \(i) does not fit in 16 bits")) }
                buf[i] = UInt16(truncatingIfNeeded: a)
            }
            initialized = n
        }
        if let f = r.failure { return .failure(f) }

        // Labels and side features.
        guard let labelsAt = r.take(4 * n) else { return .failure(.truncated("payload ends inside labels")) }
        let labels = readFloats(payload, at: labelsAt, count: n)
        var sideFeatures: [Float] = []
        if w > 0 {
            guard let at = r.take(4 * n * w) else { return .failure(.truncated("payload ends inside side features")) }
            sideFeatures = readFloats(payload, at: at, count: n * w)
        }

        // Inline codes.
        var codes: [UInt8] = []
        var codePresent: [Bool] = []
        if cs > 0 {
            let bitmapSize = (n + 7) / 8
            guard let bitmapAt = r.take(bitmapSize) else {
                return .failure(.truncated("payload ends inside the code presence bitmap"))
            }
            guard let codesAt = r.take(n * cs) else { return .failure(.truncated("payload ends inside inline codes")) }
            if n % 8 != 0, payload[bitmapAt + bitmapSize - 1] >> (n % 8) != 0 {
                return .failure(.invalid("padding bits of the code presence bitmap are set"))
            }
            codePresent = [Bool](unsafeUninitializedCapacity: n) { buf, initialized in
                for i in 0..<n { buf[i] = (payload[bitmapAt + i / 8] >> (i % 8)) & 1 != 0 }
                initialized = n
            }
            codes = Array(UnsafeRawBufferPointer(rebasing: payload[codesAt..<(codesAt + n * cs)]))
            for i in 0..<n where !codePresent[i] {
                if payload[(codesAt + i * cs)..<(codesAt + (i + 1) * cs)].contains(where: { $0 != 0 }) {
                    return .failure(.invalid("absent inline code \(i) is not zero"))
                }
            }
        }

        guard r.pos == payload.count else {
            return .failure(.invalid("\(payload.count - r.pos) unexpected bytes after the last column"))
        }

        var history = History(sideFeatureWidth: w)
        history.itemIDs = itemIDs
        history.timestamps = timestamps
        history.actions = actions
        history.labels = labels
        history.sideFeatures = sideFeatures
        return .success(HistorySegment(
            history: history, codebookID: header.codebookID, codeSize: cs, codes: codes, codePresent: codePresent))
    }
}

// MARK: - Byte helpers

@inline(__always)
private func zigzag(_ v: Int64) -> UInt64 { UInt64(bitPattern: (v << 1) ^ (v >> 63)) }

@inline(__always)
private func unzigzag(_ u: UInt64) -> Int64 { Int64(bitPattern: (u >> 1) ^ (0 &- (u & 1))) }

/// Writes `v` as a varint at `p + pos`, advancing `pos`. The caller guarantees 10 bytes of room.
@inline(__always)
private func putVarint(_ p: UnsafeMutableRawPointer, _ pos: inout Int, _ v: UInt64) {
    var v = v
    while v >= 0x80 {
        p.storeBytes(of: UInt8(truncatingIfNeeded: v) | 0x80, toByteOffset: pos, as: UInt8.self)
        pos += 1
        v >>= 7
    }
    p.storeBytes(of: UInt8(truncatingIfNeeded: v), toByteOffset: pos, as: UInt8.self)
    pos += 1
}

/// Writes `values` as little-endian float32 at `p + pos`, advancing `pos`.
@inline(__always)
private func putFloats(_ p: UnsafeMutableRawPointer, _ pos: inout Int, _ values: [Float]) {
    values.withUnsafeBufferPointer { v in
        for i in 0..<v.count {
            p.storeBytes(of: v[i].bitPattern.littleEndian, toByteOffset: pos + 4 * i, as: UInt32.self)
        }
    }
    pos += 4 * values.count
}

/// Reads `count` little-endian float32 starting at byte `offset` (already bounds-checked).
@inline(__always)
private func readFloats(_ bytes: UnsafeRawBufferPointer, at offset: Int, count: Int) -> [Float] {
    [Float](unsafeUninitializedCapacity: count) { buf, initialized in
        for i in 0..<count {
            buf[i] = Float(
                bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 4 * i, as: UInt32.self)))
        }
        initialized = count
    }
}

@inline(__always)
private func appendLE<T: FixedWidthInteger>(_ v: T, to out: inout [UInt8]) {
    for k in 0..<(T.bitWidth / 8) { out.append(UInt8(truncatingIfNeeded: v >> (8 * k))) }
}

/// A bounds-checked cursor over a decompressed payload. Instead of throwing (which would not cross the
/// array-initializing closures), the first error is recorded in `failure`, the cursor jumps to the end,
/// and every later read yields 0; callers check `failure` after each column.
private struct PayloadReader {
    let bytes: UnsafeRawBufferPointer
    var pos = 0
    var failure: SegmentFormatError?

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    mutating func fail(_ error: SegmentFormatError) {
        if failure == nil { failure = error }
        pos = bytes.count
    }

    /// Reads one varint (at most 10 bytes, fitting 64 bits).
    ///
    /// Fast paths: a one-byte varint is returned at once; otherwise, with 8 bytes left, one unaligned load covers any varint of up to 8 bytes (56 bits);
    /// its length is found from the first byte with a clear high bit, and its 7-bit groups are packed
    /// together with three mask-and-shift steps. Longer varints and the payload's last bytes go
    /// through the byte-wise `varintSlow`, which also reports errors.
    @inline(__always)
    mutating func varint(_ what: StaticString) -> UInt64 {
        if pos < bytes.count {
            // safe: pos < bytes.count.
            let b = bytes[pos]
            if b < 0x80 {
                pos &+= 1
                return UInt64(b)
            }
        }
        if bytes.count &- pos >= 8 {
            // safe: pos + 8 ≤ bytes.count; loadUnaligned has no alignment requirement.
            let w = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: pos, as: UInt64.self))
            let stops = ~w & 0x8080_8080_8080_8080
            if stops != 0 {
                pos &+= (stops.trailingZeroBitCount &>> 3) &+ 1
                // Keep the varint's bytes (through the lowest stop bit), then their low 7 bits.
                var x = w & (stops ^ (stops &- 1)) & 0x7F7F_7F7F_7F7F_7F7F
                x = (x & 0x007F_007F_007F_007F) | ((x & 0x7F00_7F00_7F00_7F00) &>> 1)
                x = (x & 0x0000_3FFF_0000_3FFF) | ((x & 0x3FFF_0000_3FFF_0000) &>> 2)
                x = (x & 0x0000_0000_0FFF_FFFF) | ((x & 0x0FFF_FFFF_0000_0000) &>> 4)
                return x
            }
        }
        return varintSlow(what)
    }

    @inline(never)
    private mutating func varintSlow(_ what: StaticString) -> UInt64 {
        if failure != nil { return 0 }
        var result: UInt64 = 0
        for k in 0..<10 {
            guard pos < bytes.count else {
                fail(.truncated("payload ends inside a \(what) varint"))
                return 0
            }
            let b = bytes[pos]
            pos += 1
            if k == 9, b > 1 {
                fail(.invalid("\(what) varint overflows 64 bits"))
                return 0
            }
            result |= UInt64(b & 0x7f) << UInt64(7 * k)
            if b < 0x80 { return result }
        }
        fail(.invalid("\(what) varint overflows 64 bits"))  // unreachable: the 10th byte ends it
        return 0
    }

    /// Skips `n` bytes and returns their offset, or nil (recording nothing) when fewer remain.
    mutating func take(_ n: Int) -> Int? {
        guard n <= bytes.count - pos else { return nil }
        defer { pos += n }
        return pos
    }
}
