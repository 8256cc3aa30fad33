import SheafCodebook

/// A consistent read-only view of the store. Valid only inside the `Store.read` (or `write`)
/// closure that received it: do not keep it, or any buffer it lends, after the closure returns.
public class ReadTransaction {
    let lmdb: LMDBTransaction
    /// The store this transaction reads.
    public let store: Store
    private var live = true
    private var _decompressor: ZstdDecompressor?
    /// The decompressed payload of the segment being decoded: one buffer per transaction, reused by
    /// every segment it reads.
    var segmentScratch: [UInt8] = []
    /// Codebooks decoded in this transaction that may not be committed yet (write transactions only).
    var localCodebooks: [UInt16: Codebook] = [:]

    init(_ lmdb: LMDBTransaction, store: Store) {
        self.lmdb = lmdb
        self.store = store
    }

    /// Marks the transaction dead and hands back pooled resources.
    func end() {
        live = false
        if let d = _decompressor {
            store.returnDecompressor(d)
            _decompressor = nil
        }
    }

    /// Traps when the transaction is used after its closure returned.
    @inline(__always) func checkLive() {
        precondition(live, "a Sheaf transaction was used outside the closure that received it")
    }

    /// A zstd decompressor owned by this transaction for its lifetime.
    var decompressor: ZstdDecompressor {
        if let d = _decompressor { return d }
        let d = store.takeDecompressor()
        _decompressor = d
        return d
    }

    /// Whether this is a write transaction (whose uncommitted codebooks must not enter the shared cache).
    var isWrite: Bool { false }

    // MARK: Table access, for the table extensions

    /// The record body stored under `key` (its value without the checksum trailer), or `nil`.
    /// The bytes point into the map: valid only until the end of the transaction.
    /// - Throws: `StoreError.corruptRecord` when the checksum does not match the key and value.
    @inline(__always)
    func bytes<K>(_ table: Table<K>, _ key: K) throws -> UnsafeRawBufferPointer? {
        checkLive()
        guard let value = try lmdb.get(table, key) else { return nil }
        guard store.recordsHaveChecksums else { return value }
        guard let body = key.withKeyBytes({ RecordChecksum.body(of: value, key: $0) }) else {
            throw StoreError.corruptRecord(table: table.name, key: key.description, reason: RecordChecksum.failure(valueBytes: value.count))
        }
        return body
    }

    /// The body of the entry a cursor landed on (its value without the checksum trailer).
    /// - Throws: `StoreError.corruptRecord` naming the table and key when the checksum does not match.
    @inline(__always)
    func body<K>(_ entry: TableEntry<K>, in table: Table<K>) throws -> UnsafeRawBufferPointer {
        guard let body = checkedBody(entry) else {
            throw StoreError.corruptRecord(
                table: table.name, key: entry.keyDescription, reason: RecordChecksum.failure(valueBytes: entry.value.count))
        }
        return body
    }

    /// The record under `key` parsed by `decode`, or `nil` when there is none.
    /// - Throws: `StoreError.corruptRecord` naming the table and key when `decode` refuses the bytes.
    func record<K, R>(
        _ table: Table<K>, _ key: K, _ decode: (UnsafeRawBufferPointer) throws(RecordFormatError) -> R
    ) throws -> R? {
        guard let bytes = try bytes(table, key) else { return nil }
        do { return try decode(bytes) } catch {
            throw StoreError.corruptRecord(table: table.name, key: key.description, reason: error.reason)
        }
    }

    /// The body of `entry` when its checksum holds, else `nil`. (A store being migrated from a schema
    /// before 3 has no trailers: its values are their bodies.)
    @inline(__always)
    func checkedBody<K>(_ entry: TableEntry<K>) -> UnsafeRawBufferPointer? {
        store.recordsHaveChecksums ? entry.body : entry.value
    }

    /// Opens a cursor on `table` for the duration of `body`.
    func withCursor<K, R>(_ table: Table<K>, _ body: (Cursor<K>) throws -> R) throws -> R {
        checkLive()
        return try lmdb.withCursor(table, body)
    }

    /// Number of records in `table`.
    func entryCount<K>(_ table: Table<K>) throws -> Int {
        checkLive()
        return try lmdb.entryCount(table)
    }

    /// The store header as of this transaction.
    public func metadata() throws -> StoreMetadata {
        guard let meta = try record(store.tables.meta, metaKey, StoreMetadata.decode) else {
            throw StoreError.corruptRecord(table: "meta", key: "0", reason: "the header record is missing")
        }
        return meta
    }
}

/// A read-write transaction: everything a `ReadTransaction` does, plus writes.
/// Valid only inside the `Store.write` closure that received it.
public final class WriteTransaction: ReadTransaction {
    /// Set when LMDB reported a full map, so the store grows it and re-runs the closure
    /// even if the caller caught or wrapped the error.
    var hitMapFull = false

    override var isWrite: Bool { true }

    /// Stores `value` under `key`, followed by its checksum trailer (`RecordChecksum`).
    @inline(__always)
    func put<K>(_ table: Table<K>, _ key: K, _ value: UnsafeRawBufferPointer, options: WriteOptions = []) throws(LMDBError) {
        checkLive()
        try lmdb.putRecord(table, key, value, options: options, mapFull: &hitMapFull)
    }

    /// Stores `value` under `key`.
    func put<K>(_ table: Table<K>, _ key: K, _ value: [UInt8], options: WriteOptions = []) throws {
        try value.withUnsafeBytes { try put(table, key, $0, options: options) }
    }

    /// Deletes `key`; returns whether it existed.
    func delete<K>(_ table: Table<K>, _ key: K) throws(LMDBError) -> Bool {
        checkLive()
        return try lmdb.delete(table, key, mapFull: &hitMapFull)
    }

    func putMetadata(_ meta: StoreMetadata) throws {
        try put(store.tables.meta, metaKey, meta.encode())
    }

    /// Whether `ids` strictly ascend and the first is above every key already in `table`, so that
    /// they can be written with `WriteOptions.append`.
    func idsAscendAboveLastKey(_ ids: [UInt64], table: Table<UInt64>) throws -> Bool {
        guard let first = ids.first else { return false }
        for i in 1..<max(1, ids.count) where ids[i] <= ids[i - 1] { return false }
        guard let last = try withCursor(table, { try $0.last()?.key }) else { return true }
        return first > last
    }
}
