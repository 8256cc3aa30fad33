/// The store's decoders of untrusted bytes, for the fuzz targets (`Sources/SheafFuzzTargets`): each
/// takes any bytes and either decodes them or throws, never traps. Package-only; nothing here is API.
package enum RecordDecoders {
    /// The record decoders, by table: the name `records` fuzzing picks with an input's first byte.
    package static let tables = ["meta", "codebooks", "items", "histories", "profiles", "titles", "trailer"]

    /// Decodes `bytes` as a history segment (header, zstd frame, columns); whether it was accepted.
    package static func historySegment(_ bytes: UnsafeRawBufferPointer) -> Bool {
        (try? HistorySegment.decode(bytes, using: ZstdDecompressor())) != nil
    }

    /// Decodes `bytes` as a record of `tables[table]` (its body, without the store's trailer; `trailer`
    /// checks the bytes as a whole stored value under an 8-byte key of zeros); whether it was accepted.
    package static func record(table: Int, _ bytes: UnsafeRawBufferPointer) -> Bool {
        switch tables[table % tables.count] {
        case "meta": return (try? StoreMetadata.decode(bytes)) != nil
        case "codebooks": return (try? CodebookRecord.decode(bytes)) != nil
        case "items":
            guard let (_, payload) = try? ItemRecord.parse(bytes) else { return false }
            return payload.count >= 0
        case "histories": return historySegment(bytes)
        case "profiles": return (try? Profile.decode(bytes)) != nil
        case "titles": return (try? TitleRecord.decode(bytes)) != nil
        default:
            let key = [UInt8](repeating: 0, count: 8)
            return key.withUnsafeBytes { RecordChecksum.body(of: bytes, key: $0) } != nil
        }
    }
}
