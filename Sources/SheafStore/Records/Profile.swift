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

    /// Bytes of the record: the payload plus the 13-byte header and checksum of `encode()` (the store adds
    /// its 4-byte trailer, `RecordChecksum`, to every record).
    public var storedSize: Int { bytes.count + 13 }

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
