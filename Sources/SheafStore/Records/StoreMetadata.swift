/// The store header, kept in table `meta` under key 0.
///
/// Layout (little-endian): u8 format version (1) · u16 schema version · u32 dimension ·
/// u16 active codebook id (0 = none) · u16 side-feature width · u16 history segment capacity ·
/// i64 creation time (Unix seconds).
public struct StoreMetadata: Sendable, Equatable {
    static let formatVersion: UInt8 = 1
    /// The schema this build writes and reads. 2 added the `titles` table; 3 ends every record with a
    /// CRC-32C of its key and value (`RecordChecksum`). Older stores are upgraded by `Store.migrate`.
    public static let schemaVersion = 3

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
