/// Item titles, in table `titles` keyed by item id.
///
/// Layout: u8 format version (1) · UTF-8 text. Titles are for people reading histories and
/// neighbour lists (`sheaf history`); nothing in decoding depends on them.
enum TitleRecord {
    static let formatVersion: UInt8 = 1
    /// Longest title stored, in UTF-8 bytes (longer ones are refused).
    static let maxBytes = 4096

    static func encode(_ title: String) -> [UInt8] { [formatVersion] + Array(title.utf8) }

    static func decode(_ bytes: UnsafeRawBufferPointer) throws(RecordFormatError) -> String {
        guard bytes.count >= 1 else { throw RecordFormatError(reason: "truncated: 0 bytes") }
        guard bytes[0] == formatVersion else { throw RecordFormatError(reason: "unknown format version \(bytes[0])") }
        let text = UnsafeRawBufferPointer(rebasing: bytes[1...])
        guard let s = String(validating: text, as: UTF8.self) else { throw RecordFormatError(reason: "title is not valid UTF-8") }
        return s
    }
}
