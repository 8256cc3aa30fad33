import SheafStore

/// The "no codebook" baseline kept in the same LMDB environment as the Sheaf tables, so that both
/// are read the same way: `raw_items` holds each item's float32 row (one get per behaviour), and
/// `raw_histories` a user's whole history as consecutive float32 rows (one get per history).
public struct BaselineTables: Sendable {
    public let store: Store
    let rawItems: AuxiliaryTable
    let rawHistories: AuxiliaryTable
    let rawBehaviourRows: AuxiliaryTable

    public init(store: Store) throws {
        self.store = store
        rawItems = try store.auxiliaryTable("raw_items")
        rawHistories = try store.auxiliaryTable("raw_histories")
        rawBehaviourRows = try store.auxiliaryTable("raw_behaviour_rows")
    }

    /// LMDB names of the two tables (for readers in other languages).
    public static let rawItemsTable = "aux.raw_items"
    public static let rawHistoriesTable = "aux.raw_histories"

    /// Puts float32 rows under ascending `ids` (rows.count == ids.count × D), in one transaction.
    /// Ids must ascend and be larger than any stored (MDB_APPEND).
    public func putItems(ids: [UInt64], rows: UnsafeBufferPointer<Float>) throws {
        let d = store.dimension
        precondition(rows.count == ids.count * d)
        try store.write { txn in
            let raw = UnsafeRawBufferPointer(rows)
            for (r, id) in ids.enumerated() {
                try txn.putAuxiliaryValue(rawItems, id: id, UnsafeRawBufferPointer(rebasing: raw[(r * d * 4)..<((r + 1) * d * 4)]), append: true)
            }
        }
    }

    /// Puts `user`'s whole history as float32 rows, in the caller's transaction.
    public func putHistory(_ txn: WriteTransaction, user: UInt64, rows: UnsafeBufferPointer<Float>) throws {
        try txn.putAuxiliaryValue(rawHistories, id: user, UnsafeRawBufferPointer(rows))
    }

    /// Puts rows `first...` of `user`'s history as one float32 row per behaviour, keyed
    /// user << 32 | position (the append baseline: a store of embeddings per behaviour).
    public func putHistoryRows(_ txn: WriteTransaction, user: UInt64, first: Int, rows: UnsafeBufferPointer<Float>) throws {
        let rowBytes = store.dimension * 4
        let raw = UnsafeRawBufferPointer(rows)
        for r in 0..<(rows.count / store.dimension) {
            try txn.putAuxiliaryValue(
                rawBehaviourRows, id: user << 32 | UInt64(first + r), UnsafeRawBufferPointer(rebasing: raw[(r * rowBytes)..<((r + 1) * rowBytes)]))
        }
    }

    /// Reads `ids`' raw rows into `output` (one get per id; ids.count × D floats), in the caller's
    /// transaction. Returns false when an id has no row.
    @discardableResult
    public func readItems(_ txn: ReadTransaction, ids: some Collection<UInt64>, into output: UnsafeMutablePointer<Float>) throws -> Bool {
        let rowBytes = store.dimension * 4
        let out = UnsafeMutableRawPointer(output)
        var complete = true
        for (i, id) in ids.enumerated() {
            try txn.withAuxiliaryValue(rawItems, id: id) { row in
                guard let row, row.count == rowBytes else {
                    complete = false
                    return
                }
                (out + i * rowBytes).copyMemory(from: row.baseAddress!, byteCount: rowBytes)
            }
        }
        return complete
    }

    /// Copies `user`'s raw history into `output`; returns its row count (0 when absent).
    public func readHistory(_ txn: ReadTransaction, user: UInt64, into output: UnsafeMutablePointer<Float>, capacity: Int) throws -> Int {
        try txn.withAuxiliaryValue(rawHistories, id: user) { raw in
            guard let raw else { return 0 }
            precondition(raw.count <= capacity * 4, "raw history larger than the buffer")
            UnsafeMutableRawPointer(output).copyMemory(from: raw.baseAddress!, byteCount: raw.count)
            return raw.count / (store.dimension * 4)
        }
    }

    /// Bytes of `user`'s raw history (0 when absent).
    public func historyBytes(_ txn: ReadTransaction, user: UInt64) throws -> Int {
        try txn.withAuxiliaryValue(rawHistories, id: user) { $0?.count ?? 0 }
    }
}
