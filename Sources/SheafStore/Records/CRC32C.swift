import CSheafDecode

/// CRC-32C (Castagnoli): every record's trailer (`RecordChecksum`) and the inner checksum of codebook
/// and profile records.
enum CRC32C {
    /// The checksum of `bytes`, continuing from `crc` (pass the previous result to chain buffers).
    /// SSE4.2 `crc32` when the CPU has it (the C kernel checks at run time), a table otherwise.
    static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress else { return crc }
        return sheaf_crc32c(crc, base, bytes.count)
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 { bytes.withUnsafeBytes { checksum($0) } }
}
