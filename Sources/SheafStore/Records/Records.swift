import SheafCodebook

// MARK: - Meta

/// The store header, kept in table `meta` under key 0.
///
/// Layout (little-endian): u8 format version (1) · u16 schema version · u32 dimension ·
/// u16 active codebook id (0 = none) · u16 side-feature width · u16 history segment capacity ·
/// i64 creation time (Unix seconds).
public struct StoreMetadata: Sendable, Equatable {
    static let formatVersion: UInt8 = 1
    /// The schema this build writes and reads. 2 added the `titles` table.
    public static let schemaVersion = 2

    /// The schema version the store was written with.
    public var schemaVersion: Int
    /// Embedding dimension D of every item.
    public var dimension: Int
    /// The codebook new item codes and history segments use (0 = none yet).
    public var activeCodebook: UInt16
    /// Side-feature values per behaviour.
    public var sideFeatureWidth: Int
    /// Behaviours per history segment.
    public var historySegmentCapacity: Int
    /// When the store was created, in Unix seconds.
    public var createdAt: Int64

    func encode() -> [UInt8] {
        var w = ByteWriter(capacity: 24)
        w.u8(Self.formatVersion)
        w.u16(UInt16(schemaVersion))
        w.u32(UInt32(dimension))
        w.u16(activeCodebook)
        w.u16(UInt16(sideFeatureWidth))
        w.u16(UInt16(historySegmentCapacity))
        w.i64(createdAt)
        return w.bytes
    }

    static func decode(_ bytes: UnsafeRawBufferPointer) throws(RecordFormatError) -> StoreMetadata {
        var r = ByteReader(bytes)
        let version = try r.u8("format version")
        guard version == formatVersion else { throw RecordFormatError(reason: "unknown format version \(version)") }
        let m = StoreMetadata(
            schemaVersion: Int(try r.u16("schema version")), dimension: Int(try r.u32("dimension")),
            activeCodebook: try r.u16("active codebook"), sideFeatureWidth: Int(try r.u16("side-feature width")),
            historySegmentCapacity: Int(try r.u16("segment capacity")), createdAt: try r.i64("creation time"))
        try r.expectEnd("meta record")
        guard m.dimension > 0, m.historySegmentCapacity > 0 else {
            throw RecordFormatError(reason: "dimension and segment capacity must be positive")
        }
        return m
    }
}

// MARK: - Codebooks

/// Codebook records, in table `codebooks` keyed by codebook id.
///
/// Layout (little-endian): u8 format version (1) · u16 id · u32 dimension · u8 levels ·
/// u32 codes per level · u8 metric · u8 magnitude bits · levels × (f32 lower, f32 upper) when
/// magnitudes are 8-bit · i64 creation time · u16 stat count · stat count × (string name, f64 value) ·
/// levels × K × D f32 centroids · u32 CRC-32C of every preceding byte.
enum CodebookRecord {
    static let formatVersion: UInt8 = 1

    static func encode(_ c: Codebook, createdAt: Int64) -> [UInt8] {
        var w = ByteWriter(capacity: 64 + c.centroids.count * 4)
        w.u8(formatVersion)
        w.u16(c.id)
        w.u32(UInt32(c.dimension))
        w.u8(UInt8(c.levels))
        w.u32(UInt32(c.codesPerLevel))
        w.u8(c.metric.rawValue)
        w.u8(c.magnitudeEncoding.rawValue)
        for r in c.magnitudeRanges {
            w.f32(r.lower)
            w.f32(r.upper)
        }
        w.i64(createdAt)
        let stats = c.trainingStats.sorted { $0.key < $1.key }
        w.u16(UInt16(stats.count))
        for (k, v) in stats {
            w.string(k)
            w.f64(v)
        }
        w.floats(c.centroids)
        w.u32(CRC32C.checksum(w.bytes))
        return w.bytes
    }

    static func decode(_ bytes: UnsafeRawBufferPointer) throws(RecordFormatError) -> (Codebook, createdAt: Int64) {
        guard bytes.count >= 5 else { throw RecordFormatError(reason: "truncated: \(bytes.count) bytes") }
        let body = UnsafeRawBufferPointer(rebasing: bytes[0..<(bytes.count - 4)])
        let version = bytes[0]
        guard version == formatVersion else { throw RecordFormatError(reason: "unknown format version \(version)") }
        let stored = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: bytes.count - 4, as: UInt32.self))
        let actual = CRC32C.checksum(body)
        guard stored == actual else {
            throw RecordFormatError(reason: "checksum mismatch (stored \(stored), computed \(actual))")
        }
        var r = ByteReader(body)
        _ = try r.u8("format version")
        let id = try r.u16("id")
        let dimension = Int(try r.u32("dimension"))
        let levels = Int(try r.u8("levels"))
        let k = Int(try r.u32("codes per level"))
        guard let metric = Metric(rawValue: try r.u8("metric")) else { throw RecordFormatError(reason: "unknown metric") }
        guard let mags = MagnitudeEncoding(rawValue: try r.u8("magnitude bits")) else {
            throw RecordFormatError(reason: "unknown magnitude encoding")
        }
        var ranges: [MagnitudeRange] = []
        if mags == .uint8 {
            for _ in 0..<levels { ranges.append(MagnitudeRange(lower: try r.f32("range"), upper: try r.f32("range"))) }
        }
        let createdAt = try r.i64("creation time")
        var stats: [String: Double] = [:]
        for _ in 0..<Int(try r.u16("stat count")) {
            let name = try r.string("stat name")
            stats[name] = try r.f64("stat value")
        }
        let (count, overflow) = levels.multipliedReportingOverflow(by: k * dimension)
        guard !overflow, count * 4 == r.remaining else {
            throw RecordFormatError(reason: "centroid bytes \(r.remaining) do not match \(levels)×\(k)×\(dimension) floats")
        }
        let centroids = try r.floats(count, "centroids")
        do {
            let c = try Codebook(
                id: id, dimension: dimension, levels: levels, codesPerLevel: k, metric: metric,
                magnitudeEncoding: mags, magnitudeRanges: ranges, centroids: centroids, trainingStats: stats)
            return (c, createdAt)
        } catch {
            throw RecordFormatError(reason: "invalid codebook: \(error)")
        }
    }
}

// MARK: - Items

/// Item records, in table `items` keyed by item id.
///
/// Layout: u8 format version (1) · u16 LE codebook id · the codebook's packed code
/// (`Codebook.bytesPerItem` bytes: L codes at log2(K) bits, then L magnitudes, LSB-first).
/// The record carries no checksum of its own (it is 3 bytes of overhead on ~8); its length is
/// checked against the codebook's layout on every read.
enum ItemRecord {
    static let formatVersion: UInt8 = 1
    static let headerSize = 3

    /// Parses the header; returns the codebook id and the packed payload (borrowed from `bytes`).
    @inline(__always)
    static func parse(_ bytes: UnsafeRawBufferPointer) throws(RecordFormatError) -> (codebook: UInt16, payload: UnsafeRawBufferPointer) {
        guard bytes.count >= headerSize else { throw RecordFormatError(reason: "truncated: \(bytes.count) bytes") }
        guard bytes[0] == formatVersion else { throw RecordFormatError(reason: "unknown format version \(bytes[0])") }
        let cb = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 1, as: UInt16.self))
        return (cb, UnsafeRawBufferPointer(rebasing: bytes[headerSize...]))
    }
}

/// One item's codes, unpacked.
public struct ItemCode: Sendable, Equatable {
    /// The codebook the codes belong to.
    public var codebookID: UInt16
    /// L codes.
    public var codes: [UInt32]
    /// L magnitudes, as decoded (after quantization).
    public var magnitudes: [Float]
}

// MARK: - Profiles

/// A user's profile: an opaque blob produced by the compression model, tagged with its model version.
public struct Profile: Sendable, Equatable {
    /// The version of the model that produced `bytes`.
    public var modelVersion: UInt32
    /// The profile payload (format defined by the model).
    public var bytes: [UInt8]

    public init(modelVersion: UInt32, bytes: [UInt8]) {
        self.modelVersion = modelVersion
        self.bytes = bytes
    }

    static let formatVersion: UInt8 = 1

    /// Layout: u8 format version (1) · u32 model version · u32 payload length · payload · u32 CRC-32C of all preceding bytes.
    func encode() -> [UInt8] {
        var w = ByteWriter(capacity: 13 + bytes.count)
        w.u8(Self.formatVersion)
        w.u32(modelVersion)
        w.u32(UInt32(bytes.count))
        w.raw(bytes)
        w.u32(CRC32C.checksum(w.bytes))
        return w.bytes
    }

    static func decode(_ raw: UnsafeRawBufferPointer) throws(RecordFormatError) -> Profile {
        var r = ByteReader(raw)
        let version = try r.u8("format version")
        guard version == formatVersion else { throw RecordFormatError(reason: "unknown format version \(version)") }
        let model = try r.u32("model version")
        let n = Int(try r.u32("payload length"))
        let payload = Array(try r.raw(n, "payload"))
        let stored = try r.u32("checksum")
        try r.expectEnd("profile")
        let actual = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<(raw.count - 4)]))
        guard stored == actual else { throw RecordFormatError(reason: "checksum mismatch") }
        return Profile(modelVersion: model, bytes: payload)
    }
}
