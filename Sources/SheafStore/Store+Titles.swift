// MARK: - Reading titles

extension ReadTransaction {
    /// The title of item `id`, or `nil` when none was stored.
    /// - Throws: `StoreError.corruptRecord` for a damaged record.
    public func title(item id: UInt64) throws -> String? {
        try record(store.tables.titles, id, TitleRecord.decode)
    }

    /// Number of items with a title.
    public func titleCount() throws -> Int {
        try entryCount(store.tables.titles)
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
            try put(store.tables.titles, id, TitleRecord.encode(title), options: append ? .append : [])
        }
    }
}
