import SheafCodebook

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

    /// An empty record of `codebook` with room for `payloadSize` bytes of packed code: fill the payload
    /// with `setPayload(_:of:)` and store the record as is (one buffer serves a whole batch).
    static func template(codebook: UInt16, payloadSize: Int) -> [UInt8] {
        var w = ByteWriter(capacity: headerSize + payloadSize)
        w.u8(formatVersion)
        w.u16(codebook)
        w.zeros(payloadSize)
        return w.bytes
    }

    /// Replaces the packed code of a record made by `template`.
    @inline(__always)
    static func setPayload(_ payload: UnsafeRawBufferPointer, of record: UnsafeMutableRawBufferPointer) {
        UnsafeMutableRawBufferPointer(rebasing: record[headerSize...]).copyMemory(from: payload)
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
