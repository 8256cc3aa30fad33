internal import CLMDB

// MARK: - Keys

/// The byte layout of a table's keys, as heed's key codecs state it. LMDB compares keys as bytes
/// (memcmp), so a layout that sorts as its values do (big-endian integers) makes cursor order numeric.
protocol TableKey: CustomStringConvertible {
    /// Calls `body` with the key's bytes.
    func withKeyBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R
    /// The key stored as `bytes`, or `nil` when they are not a valid key of this layout (a damaged key).
    init?(keyBytes bytes: UnsafeRawBufferPointer)
}

/// A key's bytes as "0x…" (two hex digits a byte), for keys that are not of their table's layout.
func hexKey(_ bytes: some Sequence<UInt8>) -> String {
    "0x" + bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}

// MARK: - Tables

/// A named LMDB database (a table) whose keys have the layout `Key` and whose values are bytes.
///
/// A cheap copyable handle, valid for the life of the environment that opened it (like heed's
/// `Database<K, V>`; the value codecs live in `Records/`, which parse the bytes a table hands out).
struct Table<Key: TableKey>: Sendable {
    /// The table's name in the environment, used in error messages.
    let name: String
    /// LMDB's handle (`MDB_dbi`).
    let handle: UInt32

    init(name: String, handle: UInt32) {
        self.name = name
        self.handle = handle
    }

}

/// How a put writes.
struct WriteOptions: OptionSet, Sendable {
    let rawValue: UInt32

    /// The key is above every key in the table (`MDB_APPEND`): LMDB appends without a B-tree search.
    /// A key that is not above the last one fails with `LMDBError.keyExist`.
    static let append = WriteOptions(rawValue: UInt32(MDB_APPEND))
}

// MARK: - Transactions

/// One LMDB transaction, read-only or read-write, as the environment lends it to a closure.
///
/// A non-owning view: `LMDBEnvironment` begins, commits, resets and aborts the handle. Valid only
/// inside the `withReadTransaction`/`withWriteTransaction` closure that received it.
struct LMDBTransaction {
    let handle: OpaquePointer

    /// The value under `key`, or `nil` when there is none.
    /// The bytes point into the map: valid only until the end of the transaction.
    @inline(__always)
    func get<K>(_ table: Table<K>, _ key: K) throws(LMDBError) -> UnsafeRawBufferPointer? {
        try key.withKeyBytes { (k) throws(LMDBError) in
            var kv = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
            var v = MDB_val()
            let rc = mdb_get(handle, table.handle, &kv, &v)
            if rc == MDB_NOTFOUND { return nil }
            try check(rc)
            return UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size)
        }
    }

    /// Stores `value` under `key`, replacing any value there. Write transactions only.
    /// - Parameter mapFull: set when LMDB reports a full map, the flag `LMDBEnvironment.withWriteTransaction`
    ///   hands its body, so that the map grows even if the caller wraps the error.
    /// - Throws: `LMDBError.mapFull` when the map has no room (the environment grows it and runs the
    ///   transaction again), `.keyExist` for an `.append` key not above the last one.
    @inline(__always)
    func put<K>(
        _ table: Table<K>, _ key: K, _ value: UnsafeRawBufferPointer, options: WriteOptions = [], mapFull: inout Bool
    ) throws(LMDBError) {
        try key.withKeyBytes { (k) throws(LMDBError) in
            var kv = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
            var v = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
            let rc = mdb_put(handle, table.handle, &kv, &v, options.rawValue)
            if rc == MDB_MAP_FULL { mapFull = true }
            try check(rc)
        }
    }

    /// Stores a value of `size` bytes under `key`, written in place by `fill` (`MDB_RESERVE`: LMDB
    /// allocates the space in the map and `fill` writes it, so the value is never assembled elsewhere).
    /// `fill` gets the key's bytes and the reserved space. Write transactions only; `mapFull` as for `put`.
    @inline(__always)
    func put<K>(
        _ table: Table<K>, _ key: K, reserving size: Int, options: WriteOptions = [], mapFull: inout Bool,
        _ fill: (UnsafeRawBufferPointer, UnsafeMutableRawBufferPointer) -> Void
    ) throws(LMDBError) {
        try key.withKeyBytes { (k) throws(LMDBError) in
            var kv = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
            var v = MDB_val(mv_size: size, mv_data: nil)
            let rc = mdb_put(handle, table.handle, &kv, &v, options.rawValue | UInt32(MDB_RESERVE))
            if rc == MDB_MAP_FULL { mapFull = true }
            try check(rc)
            fill(k, UnsafeMutableRawBufferPointer(start: v.mv_data, count: size))
        }
    }

    /// Stores `body` under `key` as a Sheaf record: the body, then its checksum trailer
    /// (`RecordChecksum`), written in place in the reserved space. Write transactions only.
    @inline(__always)
    func putRecord<K>(
        _ table: Table<K>, _ key: K, _ body: UnsafeRawBufferPointer, options: WriteOptions = [], mapFull: inout Bool
    ) throws(LMDBError) {
        try put(table, key, reserving: body.count + RecordChecksum.size, options: options, mapFull: &mapFull) { k, space in
            RecordChecksum.write(key: k, body: body, into: space)
        }
    }

    /// Deletes `key`; returns whether it existed. Write transactions only; `mapFull` as for `put`.
    func delete<K>(_ table: Table<K>, _ key: K, mapFull: inout Bool) throws(LMDBError) -> Bool {
        try key.withKeyBytes { (k) throws(LMDBError) in
            var kv = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
            let rc = mdb_del(handle, table.handle, &kv, nil)
            if rc == MDB_NOTFOUND { return false }
            if rc == MDB_MAP_FULL { mapFull = true }
            try check(rc)
            return true
        }
    }

    /// Number of entries in `table`.
    func entryCount<K>(_ table: Table<K>) throws(LMDBError) -> Int {
        var stat = MDB_stat()
        try check(mdb_stat(handle, table.handle, &stat))
        return stat.ms_entries
    }

    /// Opens a cursor on `table`, runs `body`, and closes the cursor before returning.
    func withCursor<K, R>(_ table: Table<K>, _ body: (Cursor<K>) throws -> R) throws -> R {
        var c: OpaquePointer?
        try check(mdb_cursor_open(handle, table.handle, &c))
        defer { mdb_cursor_close(c) }
        return try body(Cursor(handle: c!))
    }
}

// MARK: - Cursors

/// One entry a cursor is positioned on.
/// Both buffers point into the map: valid only until the end of the transaction.
struct TableEntry<Key: TableKey> {
    /// The key's bytes as stored.
    let keyBytes: UnsafeRawBufferPointer
    /// The value's bytes.
    let value: UnsafeRawBufferPointer
    /// The key, or `nil` when its bytes are not a valid `Key` (a damaged record).
    var key: Key? { Key(keyBytes: keyBytes) }
    /// The value without its checksum trailer, or `nil` when the trailer does not match the key and
    /// value (`RecordChecksum`).
    var body: UnsafeRawBufferPointer? { RecordChecksum.body(of: value, key: keyBytes) }
    /// The key as errors name it ("42", "user/segment"), or its bytes in hex when they are not a valid key.
    var keyDescription: String {
        key?.description ?? hexKey(keyBytes)
    }
}

/// A cursor over one table, in key order. Valid only inside the `withCursor` closure that made it.
/// Every move returns the entry it lands on, or `nil` past either end.
struct Cursor<Key: TableKey> {
    let handle: OpaquePointer

    /// The first entry.
    func first() throws(LMDBError) -> TableEntry<Key>? { try move(MDB_FIRST) }
    /// The last entry.
    func last() throws(LMDBError) -> TableEntry<Key>? { try move(MDB_LAST) }
    /// The entry after the current one.
    func next() throws(LMDBError) -> TableEntry<Key>? { try move(MDB_NEXT) }
    /// The entry before the current one.
    func previous() throws(LMDBError) -> TableEntry<Key>? { try move(MDB_PREV) }

    /// The first entry whose key is at least `key` (`MDB_SET_RANGE`).
    func seek(atLeast key: Key) throws(LMDBError) -> TableEntry<Key>? {
        try key.withKeyBytes { (k) throws(LMDBError) in try move(MDB_SET_RANGE, key: k) }
    }

    @inline(__always)
    private func move(_ op: MDB_cursor_op, key: UnsafeRawBufferPointer? = nil) throws(LMDBError) -> TableEntry<Key>? {
        var k = MDB_val(mv_size: key?.count ?? 0, mv_data: UnsafeMutableRawPointer(mutating: key?.baseAddress))
        var v = MDB_val()
        let rc = mdb_cursor_get(handle, &k, &v, op)
        if rc == MDB_NOTFOUND { return nil }
        try check(rc)
        return TableEntry(
            keyBytes: UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size),
            value: UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
    }
}
