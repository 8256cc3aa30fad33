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
/// The header's payload size is checked against the count before anything is allocated (the count is at
/// most 65,535, the width 256 and the code size 1,024 bytes, so no header asks for more than ~137 MB),
/// and the frame's declared content size against the header before decompressing.

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
        // safe: the header's 32 bytes are present, so none of these reads throws.
        var r = ByteReader(UnsafeRawBufferPointer(rebasing: bytes[0..<headerSize]))
        let fields: (flags: UInt8, codebookID: UInt16, codeSize: Int, width: Int, count: Int, first: Int64, last: Int64,
            payloadSize: Int)
        do {
            _ = try r.u8("version")
            fields = (
                try r.u8("flags"), try r.u16("codebook id"), Int(try r.u16("code size")), Int(try r.u16("width")),
                Int(try r.u32("count")), try r.i64("first timestamp"), try r.i64("last timestamp"),
                Int(try r.u32("payload size")))
        } catch {
            throw .truncated(error.reason)
        }
        let (flags, codebookID, codeSize, width, count, first, last, payloadSize) = fields
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
        // What a store can write (segment capacity ≤ 65,535, side features ≤ 256, packed codes ≤ 96 bytes):
        // a damaged header must not make a reader allocate gigabytes for a payload it then rejects.
        guard count <= Int(UInt16.max) else { throw .invalid("behaviour count \(count) exceeds any segment's capacity (65,535)") }
        guard width <= 256 else { throw .invalid("side-feature width \(width) exceeds 256") }
        guard codeSize <= 1024 else { throw .invalid("code size \(codeSize) exceeds 1,024 bytes") }
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

        // The payload, column by column, into `scratch` (its capacity is reused).
        scratch.removeAll(keepingCapacity: true)
        scratch.reserveCapacity(Self.maxPayloadSize(count: n, width: w, codeSize: cs))
        ByteWriter.appending(to: &scratch) { p in
            // Timestamps: the first, then non-negative deltas.
            h.timestamps.withUnsafeBufferPointer { ts in
                p.zigzagVarint(ts[0])
                var prev = ts[0]
                for i in 1..<n {
                    let t = ts[i]
                    precondition(t >= prev, "timestamps must be non-decreasing")
                    p.varint(UInt64(bitPattern: t &- prev))
                    prev = t
                }
            }
            // Item ids: wrapping differences from the previous id.
            h.itemIDs.withUnsafeBufferPointer { ids in
                var prev: UInt64 = 0
                for i in 0..<n {
                    p.zigzagVarint(Int64(bitPattern: ids[i] &- prev))
                    prev = ids[i]
                }
            }
            // Actions.
            h.actions.withUnsafeBufferPointer { acts in
                for i in 0..<n { p.varint(UInt64(acts[i])) }
            }
            // Labels and side features.
            p.floats(h.labels)
            if w > 0 { p.floats(h.sideFeatures) }
            // Inline codes: the presence bitmap, then every code (zero bytes when absent).
            if cs > 0 {
                var bitmap = [UInt8](repeating: 0, count: (n + 7) / 8)
                for i in 0..<n where codePresent[i] { bitmap[i / 8] |= UInt8(1 << (i % 8)) }
                p.raw(bitmap)
                codes.withUnsafeBytes { src in
                    // Runs of present codes are copied at once; absent ones are zero bytes.
                    var i = 0
                    while i < n {
                        var j = i
                        while j < n, codePresent[j] == codePresent[i] { j += 1 }
                        if codePresent[i] {
                            p.raw(UnsafeRawBufferPointer(rebasing: src[(i * cs)..<(j * cs)]))
                        } else {
                            p.zeros((j - i) * cs)
                        }
                        i = j
                    }
                }
            }
        }
        let payloadSize = scratch.count

        let start = out.count
        out.reserveCapacity(start + Self.headerSize + ZstdCompressor.compressBound(payloadSize))
        ByteWriter.appending(to: &out) { header in
            header.u8(Self.formatVersion)
            header.u8(cs > 0 ? Self.hasCodesFlag : 0)
            header.u16(codebookID)
            header.u16(UInt16(cs))
            header.u16(UInt16(w))
            header.u32(UInt32(n))
            header.i64(h.timestamps[0])
            header.i64(h.timestamps[n - 1])
            header.u32(UInt32(payloadSize))
        }
        assert(out.count - start == Self.headerSize)
        let compressed: Result<Void, ZstdError> = scratch.withUnsafeBytes { buf in
            Result { () throws(ZstdError) in try compressor.compress(buf, appendingTo: &out) }
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
        let result: Result<HistorySegment, RecordFormatError> = scratch.withUnsafeBytes { payload in
            Result { () throws(RecordFormatError) in try decodePayload(payload, header: header) }
        }
        switch result {
        case .success(let segment): return segment
        case .failure(let e): throw e.kind == .truncated ? .truncated("payload: \(e.reason)") : .invalid(e.reason)
        }
    }

    /// Decodes the columns of a decompressed payload of `header.payloadSize` bytes.
    private static func decodePayload(_ payload: UnsafeRawBufferPointer, header: Header) throws(RecordFormatError) -> HistorySegment {
        let n = header.count
        let w = header.sideFeatureWidth
        let cs = header.codeSize
        var r = ByteReader(payload)

        // Timestamps.
        let timestamps = try [Int64](unsafeUninitializedCapacity: n) { (buf, initialized) throws(RecordFormatError) in
            var prev = try r.zigzagVarint("timestamp")
            buf[0] = prev
            for i in 1..<n {
                let t = prev &+ Int64(bitPattern: try r.varint("timestamp delta"))
                guard t >= prev else { throw RecordFormatError(reason: "timestamp delta at \(i) overflows Int64") }
                buf[i] = t
                prev = t
            }
            initialized = n
        }
        guard timestamps[0] == header.firstTimestamp, timestamps[n - 1] == header.lastTimestamp else {
            throw RecordFormatError(reason:
                "timestamps \(timestamps[0])…\(timestamps[n - 1]) do not match header "
                    + "\(header.firstTimestamp)…\(header.lastTimestamp)")
        }

        // Item ids.
        let itemIDs = try [UInt64](unsafeUninitializedCapacity: n) { (buf, initialized) throws(RecordFormatError) in
            var prev: UInt64 = 0
            for i in 0..<n {
                prev = prev &+ UInt64(bitPattern: try r.zigzagVarint("item id delta"))
                buf[i] = prev
            }
            initialized = n
        }

        // Actions.
        let actions = try [UInt16](unsafeUninitializedCapacity: n) { (buf, initialized) throws(RecordFormatError) in
            for i in 0..<n {
                let a = try r.varint("action")
                guard a <= UInt64(UInt16.max) else { throw RecordFormatError(reason: "action \(a) at \(i) does not fit in 16 bits") }
                buf[i] = UInt16(truncatingIfNeeded: a)
            }
            initialized = n
        }

        // Labels and side features.
        let labels = try r.floats(n, "labels")
        let sideFeatures = w > 0 ? try r.floats(n * w, "side features") : []

        // Inline codes.
        var codes: [UInt8] = []
        var codePresent: [Bool] = []
        if cs > 0 {
            let bitmap = try r.raw((n + 7) / 8, "the code presence bitmap")
            let inline = try r.raw(n * cs, "inline codes")
            if n % 8 != 0, bitmap[bitmap.count - 1] >> (n % 8) != 0 {
                throw RecordFormatError(reason: "padding bits of the code presence bitmap are set")
            }
            codePresent = [Bool](unsafeUninitializedCapacity: n) { buf, initialized in
                for i in 0..<n { buf[i] = (bitmap[i / 8] >> (i % 8)) & 1 != 0 }
                initialized = n
            }
            codes = Array(inline)
            for i in 0..<n where !codePresent[i] {
                if inline[(i * cs)..<((i + 1) * cs)].contains(where: { $0 != 0 }) {
                    throw RecordFormatError(reason: "absent inline code \(i) is not zero")
                }
            }
        }
        try r.expectEnd("the last column")

        var history = History(sideFeatureWidth: w)
        history.itemIDs = itemIDs
        history.timestamps = timestamps
        history.actions = actions
        history.labels = labels
        history.sideFeatures = sideFeatures
        return HistorySegment(
            history: history, codebookID: header.codebookID, codeSize: cs, codes: codes, codePresent: codePresent)
    }
}
