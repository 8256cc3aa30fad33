import SheafCodebook

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
