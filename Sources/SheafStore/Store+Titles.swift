import CLMDB

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

// MARK: - Reading titles

extension ReadTransaction {
    /// The title of item `id`, or `nil` when none was stored.
    /// - Throws: `StoreError.corruptRecord` for a damaged record.
    public func title(item id: UInt64) throws -> String? {
        guard let bytes = try get(store.tables.titles, id: id) else { return nil }
        do { return try TitleRecord.decode(bytes) } catch {
            throw StoreError.corruptRecord(table: "titles", key: "\(id)", reason: error.reason)
        }
    }

    /// Number of items with a title.
    public func titleCount() throws -> Int {
        checkLive()
        return try rawEntryCount(txn, store.tables.titles)
    }
}

// MARK: - Writing titles

extension WriteTransaction {
    /// Stores (or replaces) the titles of `ids`.
    /// - Throws: `StoreError.invalidArgument` when the counts differ or a title exceeds 4,096 UTF-8 bytes;
    ///   nothing is written then.
    public func putTitles(ids: [UInt64], titles: [String]) throws {
        guard ids.count == titles.count else {
            throw StoreError.invalidArgument("\(ids.count) ids but \(titles.count) titles")
        }
        if let i = titles.firstIndex(where: { $0.utf8.count > TitleRecord.maxBytes }) {
            throw StoreError.invalidArgument("the title of item \(ids[i]) is longer than \(TitleRecord.maxBytes) bytes")
        }
        let append = try idsAscendAboveLastKey(ids, table: store.tables.titles)
        for (id, title) in zip(ids, titles) {
            let bytes = TitleRecord.encode(title)
            try bytes.withUnsafeBytes { try put(store.tables.titles, id: id, $0, flags: append ? UInt32(MDB_APPEND) : 0) }
        }
    }
}
