import Foundation
import SheafCodebook

// MARK: - Reading codebooks

extension ReadTransaction {
    /// The codebook stored under `id`, or `nil`. Decoded once per store and then served from memory.
    /// - Throws: `StoreError.corruptRecord` when the record fails its checksum or does not parse.
    public func codebook(_ id: UInt16) throws -> Codebook? {
        if let c = store.codebookCache.withLock({ $0[id] }) { return c }
        if let c = localCodebooks[id] { return c }
        guard let c = try record(store.tables.codebooks, UInt64(id), { (b) throws(RecordFormatError) in try CodebookRecord.decode(b).0 })
        else { return nil }
        guard c.id == id else {
            throw StoreError.corruptRecord(table: "codebooks", key: "\(id)", reason: "record names codebook \(c.id)")
        }
        // Not in `localCodebooks`, so this transaction did not put it: the record was committed before
        // the transaction began, and codebooks are immutable once stored, so it is safe to share even
        // when read inside a write transaction (which then costs one decode per store, not per append).
        store.codebookCache.withLock { $0[id] = c }
        return c
    }

    /// The codebook new codes should use, or `nil` when none has been made active.
    public func activeCodebook() throws -> Codebook? {
        let id = try metadata().activeCodebook
        guard id != 0 else { return nil }
        guard let c = try codebook(id) else {
            throw StoreError.corruptRecord(table: "meta", key: "0", reason: "active codebook \(id) is not stored")
        }
        return c
    }

    /// The ids of every stored codebook, ascending.
    public func codebookIDs() throws -> [UInt16] {
        try withCursor(store.tables.codebooks) { cursor in
            var ids: [UInt16] = []
            var entry = try cursor.first()
            while let e = entry {
                if let id = e.key, id <= UInt64(UInt16.max) { ids.append(UInt16(id)) }
                entry = try cursor.next()
            }
            return ids
        }
    }

    /// A codebook that must exist (for decoding): throws `StoreError.unknownCodebook` otherwise.
    func requireCodebook(_ id: UInt16) throws -> Codebook {
        guard let c = try codebook(id) else { throw StoreError.unknownCodebook(id) }
        return c
    }
}

// MARK: - Writing codebooks

extension WriteTransaction {
    /// Stores `codebook` under its id, and by default makes it the active codebook.
    ///
    /// Codebooks are immutable: storing the same content again is a no-op, but a different codebook
    /// under an id already in use is refused, so stored codes are never reinterpreted.
    /// - Throws: `StoreError.dimensionMismatch` when D differs from the store's;
    ///   `StoreError.codebookExists` when the id holds another codebook.
    public func putCodebook(_ codebook: Codebook, activate: Bool = true) throws {
        guard codebook.dimension == store.dimension else {
            throw StoreError.dimensionMismatch(stored: store.dimension, requested: codebook.dimension)
        }
        if let existing = try self.codebook(codebook.id) {
            guard existing.hasSameContent(as: codebook) else { throw StoreError.codebookExists(codebook.id) }
        } else {
            let bytes = CodebookRecord.encode(codebook, createdAt: Int64(Date().timeIntervalSince1970))
            try put(store.tables.codebooks, UInt64(codebook.id), bytes)
            localCodebooks[codebook.id] = codebook
        }
        if activate { try setActiveCodebook(codebook.id) }
    }

    /// Makes a stored codebook the one new items and history segments are coded with.
    /// - Throws: `StoreError.unknownCodebook` when `id` is not stored.
    public func setActiveCodebook(_ id: UInt16) throws {
        guard try codebook(id) != nil else { throw StoreError.unknownCodebook(id) }
        var meta = try metadata()
        meta.activeCodebook = id
        try putMetadata(meta)
    }

    /// The smallest id above every stored codebook's, for a new codebook.
    /// - Throws: `StoreError.invalidArgument` when all 65,535 ids are used.
    public func nextCodebookID() throws -> UInt16 {
        let last = try codebookIDs().last ?? 0
        guard last < UInt16.max else { throw StoreError.invalidArgument("no codebook id left") }
        return last + 1
    }
}
