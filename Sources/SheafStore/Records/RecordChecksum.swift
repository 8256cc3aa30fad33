/// The checksum every stored record ends with (schema 3).
///
/// A value as stored is `body ‖ u32 LE CRC-32C(key ‖ body)`: the record codec's bytes (`Records/`),
/// then a checksum of the key *and* the body. LMDB keeps no checksums of its own, so this is what
/// tells a damaged record from a good one: CRC-32C detects every single-bit error (and every burst of
/// up to 32 bits) in key or value, so a flipped bit in a key (which would move the record to another
/// user, segment or item) is caught as surely as one in the value. The codebook and profile codecs
/// keep their own inner CRC-32C of the body from schema 2, so migrating a store only appends trailers.
///
/// Every read through `ReadTransaction` checks the trailer (`StoreError.corruptRecord`, reason
/// `checksum mismatch`); every write through `WriteTransaction.put` computes it. At about 8 bytes per
/// cycle (SSE4.2 `crc32`) it costs a few nanoseconds per item record and well under 1% of a segment's
/// decode.
enum RecordChecksum {
    /// Bytes of the trailer.
    static let size = 4

    /// CRC-32C of the key's bytes followed by the body's.
    @inline(__always)
    static func compute(key: UnsafeRawBufferPointer, body: UnsafeRawBufferPointer) -> UInt32 {
        CRC32C.checksum(body, continuing: CRC32C.checksum(key))
    }

    /// The body of a stored value whose trailer matches `key`, or `nil` when the value is shorter than
    /// a trailer or its checksum does not match (the key or the value is damaged).
    @inline(__always)
    static func body(of value: UnsafeRawBufferPointer, key: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        guard value.count >= size else { return nil }
        let body = UnsafeRawBufferPointer(rebasing: value[..<(value.count - size)])
        let stored = UInt32(littleEndian: value.loadUnaligned(fromByteOffset: value.count - size, as: UInt32.self))
        return stored == compute(key: key, body: body) ? body : nil
    }

    /// Writes `body` followed by its trailer into `destination` (exactly `body.count + size` bytes).
    @inline(__always)
    static func write(key: UnsafeRawBufferPointer, body: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) {
        precondition(destination.count == body.count + size)
        if let base = body.baseAddress, body.count > 0 { destination.baseAddress!.copyMemory(from: base, byteCount: body.count) }
        let crc = compute(key: key, body: body).littleEndian
        withUnsafeBytes(of: crc) { destination.baseAddress!.advanced(by: body.count).copyMemory(from: $0.baseAddress!, byteCount: size) }
    }

    /// Why a record failed its check, for `StoreError.corruptRecord` and `verify`.
    static func failure(valueBytes: Int) -> String {
        valueBytes < size
            ? "checksum missing: the value is \(valueBytes) bytes, shorter than its \(size)-byte checksum"
            : "checksum mismatch: the key or the value is damaged"
    }
}
