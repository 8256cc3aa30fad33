import CLMDB
import SheafCodebook

/// A consistent read-only view of the store. Valid only inside the `Store.read` (or `write`)
/// closure that received it: do not keep it, or any buffer it lends, after the closure returns.
public class ReadTransaction {
    let txn: OpaquePointer
    /// The store this transaction reads.
    public let store: Store
    private var live = true
    private var _decompressor: ZstdDecompressor?
    /// Codebooks decoded in this transaction that may not be committed yet (write transactions only).
    var localCodebooks: [UInt16: Codebook] = [:]

    init(txn: OpaquePointer, store: Store) {
        self.txn = txn
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

    // MARK: Raw access, for the table extensions

    @inline(__always)
    func get(_ dbi: MDB_dbi, id: UInt64) throws(LMDBError) -> UnsafeRawBufferPointer? {
        checkLive()
        var be = id.bigEndian
        return try withUnsafeBytes(of: &be) { (key) throws(LMDBError) in try rawGet(txn, dbi, key) }
    }

    /// The store header as of this transaction.
    public func metadata() throws -> StoreMetadata {
        guard let bytes = try get(store.tables.meta, id: Store.metaKey) else {
            throw StoreError.corruptRecord(table: "meta", key: "0", reason: "the header record is missing")
        }
        do { return try StoreMetadata.decode(bytes) } catch {
            throw StoreError.corruptRecord(table: "meta", key: "0", reason: error.reason)
        }
    }
}

/// A read-write transaction: everything a `ReadTransaction` does, plus writes.
/// Valid only inside the `Store.write` closure that received it.
public final class WriteTransaction: ReadTransaction {
    /// Set when LMDB reported a full map, so the store grows it and re-runs the closure
    /// even if the caller caught or wrapped the error.
    var hitMapFull = false

    override var isWrite: Bool { true }

    @inline(__always)
    func put(_ dbi: MDB_dbi, id: UInt64, _ value: UnsafeRawBufferPointer, flags: UInt32 = 0) throws(LMDBError) {
        checkLive()
        var be = id.bigEndian
        try withUnsafeBytes(of: &be) { (key) throws(LMDBError) in
            try rawPut(txn, dbi, key, value, flags: flags, mapFull: &hitMapFull)
        }
    }

    @inline(__always)
    func put(_ dbi: MDB_dbi, key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, flags: UInt32 = 0) throws(LMDBError) {
        checkLive()
        try rawPut(txn, dbi, key, value, flags: flags, mapFull: &hitMapFull)
    }

    func delete(_ dbi: MDB_dbi, id: UInt64) throws(LMDBError) -> Bool {
        checkLive()
        var be = id.bigEndian
        return try withUnsafeBytes(of: &be) { (key) throws(LMDBError) in
            try rawDelete(txn, dbi, key, mapFull: &hitMapFull)
        }
    }

    func delete(_ dbi: MDB_dbi, key: UnsafeRawBufferPointer) throws(LMDBError) -> Bool {
        checkLive()
        return try rawDelete(txn, dbi, key, mapFull: &hitMapFull)
    }

    func putMetadata(_ meta: StoreMetadata) throws {
        try meta.encode().withUnsafeBytes { try put(store.tables.meta, id: Store.metaKey, $0) }
    }
}
