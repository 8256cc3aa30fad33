import SheafCodebook

// MARK: - Reading items

extension ReadTransaction {
    /// The codes of item `id`, unpacked, or `nil` when the item has none.
    /// - Throws: `StoreError.corruptRecord` for a damaged record, `.unknownCodebook` when its codebook is not stored.
    public func item(_ id: UInt64) throws -> ItemCode? {
        guard let bytes = try bytes(store.tables.items, id) else { return nil }
        let (codebook, payload) = try parseItem(id, bytes)
        var codes = [UInt32](repeating: 0, count: codebook.levels)
        var mags = [Float](repeating: 0, count: codebook.levels)
        codebook.unpack(payload, count: 1, codes: &codes, magnitudes: &mags)
        return ItemCode(codebookID: codebook.id, codes: codes, magnitudes: mags)
    }

    /// Whether item `id` has a code (one lookup; the record is not parsed).
    public func containsItem(_ id: UInt64) throws -> Bool { try bytes(store.tables.items, id) != nil }

    /// Calls `body` with item `id`'s codebook and packed code, without copying.
    /// The bytes point into the map: valid only until the end of the transaction.
    /// - Returns: `nil` when the item has no code.
    public func withPackedItem<R>(_ id: UInt64, _ body: (Codebook, UnsafeRawBufferPointer) throws -> R) throws -> R? {
        guard let bytes = try bytes(store.tables.items, id) else { return nil }
        let (codebook, payload) = try parseItem(id, bytes)
        return try body(codebook, payload)
    }

    /// Parses and checks an item record against its codebook's layout.
    @inline(__always)
    func parseItem(_ id: UInt64, _ bytes: UnsafeRawBufferPointer) throws -> (Codebook, UnsafeRawBufferPointer) {
        let header: (codebook: UInt16, payload: UnsafeRawBufferPointer)
        do { header = try ItemRecord.parse(bytes) } catch {
            throw StoreError.corruptRecord(table: "items", key: "\(id)", reason: error.reason)
        }
        guard let codebook = try codebook(header.codebook) else {
            throw StoreError.unknownCodebook(header.codebook)
        }
        guard header.payload.count == codebook.bytesPerItem else {
            throw StoreError.corruptRecord(
                table: "items", key: "\(id)",
                reason: "payload is \(header.payload.count) bytes, codebook \(codebook.id) packs \(codebook.bytesPerItem)")
        }
        return (codebook, header.payload)
    }

    /// Number of items with codes.
    public func itemCount() throws -> Int {
        try entryCount(store.tables.items)
    }

    /// Copies the packed codes of `ids` into a caller's contiguous buffer.
    ///
    /// - Parameters:
    ///   - ids: the items to read.
    ///   - codebook: the codebook every found item must be coded with.
    ///   - output: ids.count × `bytesPerItem` bytes; rows of missing items are zeroed.
    /// - Returns: the indices (into `ids`) of items without a code.
    /// - Throws: `StoreError.codebookMismatch` when a found item uses another codebook; `.bufferTooSmall`.
    public func readPackedCodes(
        _ ids: some Collection<UInt64>, codebook: UInt16, into output: UnsafeMutableRawBufferPointer
    ) throws -> [Int] {
        let cb = try requireCodebook(codebook)
        let size = cb.bytesPerItem
        guard output.count >= ids.count * size else {
            throw StoreError.bufferTooSmall(needed: ids.count * size, available: output.count)
        }
        var missing: [Int] = []
        for (row, id) in ids.enumerated() {
            let dst = UnsafeMutableRawBufferPointer(rebasing: output[(row * size)..<((row + 1) * size)])
            guard let bytes = try bytes(store.tables.items, id) else {
                dst.initializeMemory(as: UInt8.self, repeating: 0)
                missing.append(row)
                continue
            }
            let (found, payload) = try parseItem(id, bytes)
            guard found.id == codebook else {
                throw StoreError.codebookMismatch(item: id, expected: codebook, found: found.id)
            }
            dst.copyMemory(from: payload)
        }
        return missing
    }

}

// MARK: - Writing items

extension Store {
    /// Checks and packs the codes of a batch of items for `codebook`: the first half of
    /// `WriteTransaction.putItems` (code range, finite magnitudes, magnitude quantization, bit packing),
    /// which needs no transaction.
    ///
    /// - Parameters: as `putItems`.
    /// - Returns: count × `codebook.bytesPerItem` bytes, for `putPackedItems`.
    /// - Throws: `StoreError.invalidArgument` (shape), `.invalidItemCodes` naming the first bad item.
    public static func packItems(ids: [UInt64], codes: [UInt32], magnitudes: [Float], codebook cb: Codebook) throws -> [UInt8] {
        let n = ids.count
        let L = cb.levels
        guard codes.count == n * L else {
            throw StoreError.invalidArgument("codes has \(codes.count) values, expected \(n) × \(L)")
        }
        // Euclidean codebooks store no magnitudes: accept none, or the encoder's count × L ones (ignored).
        let wantMags = cb.magnitudeEncoding == .none && magnitudes.isEmpty ? 0 : n * L
        guard magnitudes.count == wantMags else {
            throw StoreError.invalidArgument("magnitudes has \(magnitudes.count) values, expected \(wantMags)")
        }
        // Validate first, naming the item, so that a refused batch writes nothing.
        try codes.withUnsafeBufferPointer { c in
            try magnitudes.withUnsafeBufferPointer { m in
                do { try cb.validate(codes: c, magnitudes: m, count: n) } catch let e as CodebookError {
                    let row: Int
                    switch e {
                    case .codeOutOfRange(let r, _, _, _), .nonFiniteMagnitude(let r, _): row = r
                    default: row = 0
                    }
                    throw StoreError.invalidItemCodes(item: ids[row], reason: e)
                }
            }
        }
        var packed = [UInt8](repeating: 0, count: n * cb.bytesPerItem)
        try codes.withUnsafeBufferPointer { c in
            try magnitudes.withUnsafeBufferPointer { m in
                try packed.withUnsafeMutableBytes { try cb.pack(codes: c, magnitudes: m, count: n, into: $0) }
            }
        }
        return packed
    }
}

extension WriteTransaction {
    /// Stores the codes of a batch of items, replacing any earlier codes of the same ids.
    ///
    /// The whole batch is checked before anything is written. When `ids` ascend and all lie above the
    /// largest stored id, records are appended with `MDB_APPEND` (no B-tree search).
    ///
    /// - Parameters:
    ///   - ids: count item ids.
    ///   - codes: count × L codes, each < K.
    ///   - magnitudes: count × L projection magnitudes α (euclidean codebooks: empty, or count × L values that are ignored).
    ///   - codebook: the codebook the codes belong to; `nil` means the active codebook.
    /// - Throws: `StoreError.noActiveCodebook`, `.unknownCodebook`, `.invalidArgument` (shape),
    ///   `.invalidItemCodes` naming the first bad item. Nothing is written when it throws.
    public func putItems(ids: [UInt64], codes: [UInt32], magnitudes: [Float], codebook: UInt16? = nil) throws {
        let cb: Codebook
        if let codebook {
            cb = try requireCodebook(codebook)
        } else {
            guard let active = try activeCodebook() else { throw StoreError.noActiveCodebook }
            cb = active
        }
        let packed = try Store.packItems(ids: ids, codes: codes, magnitudes: magnitudes, codebook: cb)
        try putPackedItems(ids: ids, packed: packed, codebook: cb)
    }

    /// Stores codes packed by `Store.packItems` (count × `bytesPerItem` bytes of `codebook`), replacing
    /// earlier codes of the same ids: the second half of `putItems`, for loaders that time or
    /// parallelise packing apart from the transaction.
    /// - Throws: `StoreError.unknownCodebook` when `codebook` is not stored (or differs from the stored
    ///   one), `.invalidArgument` when the sizes do not match. Nothing is written when it throws.
    public func putPackedItems(ids: [UInt64], packed: [UInt8], codebook cb: Codebook) throws {
        let size = cb.bytesPerItem
        guard let stored = try codebook(cb.id), stored.hasSameContent(as: cb) else { throw StoreError.unknownCodebook(cb.id) }
        guard packed.count == ids.count * size else {
            throw StoreError.invalidArgument("packed codes are \(packed.count) bytes, expected \(ids.count) × \(size)")
        }
        let options: WriteOptions = try idsAscendAboveLastKey(ids, table: store.tables.items) ? .append : []
        var record = ItemRecord.template(codebook: cb.id, payloadSize: size)
        try packed.withUnsafeBytes { src in
            try record.withUnsafeMutableBytes { rec in
                for (row, id) in ids.enumerated() {
                    ItemRecord.setPayload(UnsafeRawBufferPointer(rebasing: src[(row * size)..<((row + 1) * size)]), of: rec)
                    try put(store.tables.items, id, UnsafeRawBufferPointer(rec), options: options)
                }
            }
        }
    }

    /// Deletes the code of item `id`; returns whether it had one.
    @discardableResult
    public func deleteItem(_ id: UInt64) throws -> Bool {
        try delete(store.tables.items, id)
    }
}

