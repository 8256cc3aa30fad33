import CLMDB

// MARK: - Raw LMDB calls

/// Looks `key` up in `dbi`. The returned bytes point into the map: valid only until the end of the transaction.
@inline(__always)
func rawGet(_ txn: OpaquePointer, _ dbi: MDB_dbi, _ key: UnsafeRawBufferPointer) throws(LMDBError) -> UnsafeRawBufferPointer? {
    var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
    var v = MDB_val()
    let rc = mdb_get(txn, dbi, &k, &v)
    if rc == MDB_NOTFOUND { return nil }
    try check(rc)
    return UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size)
}

/// Stores `value` under `key`; records a full map in `mapFull` before throwing.
@inline(__always)
func rawPut(
    _ txn: OpaquePointer, _ dbi: MDB_dbi, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer,
    flags: UInt32, mapFull: inout Bool
) throws(LMDBError) {
    var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
    var v = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
    let rc = mdb_put(txn, dbi, &k, &v, flags)
    if rc == MDB_MAP_FULL { mapFull = true }
    try check(rc)
}

/// Deletes `key`; returns whether it existed.
@inline(__always)
func rawDelete(_ txn: OpaquePointer, _ dbi: MDB_dbi, _ key: UnsafeRawBufferPointer, mapFull: inout Bool) throws(LMDBError) -> Bool {
    var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
    let rc = mdb_del(txn, dbi, &k, nil)
    if rc == MDB_NOTFOUND { return false }
    if rc == MDB_MAP_FULL { mapFull = true }
    try check(rc)
    return true
}

/// Number of entries in `dbi`.
func rawEntryCount(_ txn: OpaquePointer, _ dbi: MDB_dbi) throws(LMDBError) -> Int {
    var stat = MDB_stat()
    try check(mdb_stat(txn, dbi, &stat))
    return stat.ms_entries
}

// MARK: - Cursor

/// A cursor over one table, valid only inside the `withCursor` closure that made it.
struct Cursor {
    let handle: OpaquePointer

    /// Positions the cursor with `op` (and `key` for the `SET` operations).
    /// The returned bytes point into the map: valid only until the end of the transaction.
    func get(_ op: MDB_cursor_op, key: UnsafeRawBufferPointer? = nil) throws(LMDBError)
        -> (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)?
    {
        var k = MDB_val(mv_size: key?.count ?? 0, mv_data: UnsafeMutableRawPointer(mutating: key?.baseAddress))
        var v = MDB_val()
        let rc = mdb_cursor_get(handle, &k, &v, op)
        if rc == MDB_NOTFOUND { return nil }
        try check(rc)
        return (UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size), UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
    }
}

/// Opens a cursor on `dbi`, runs `body`, and closes the cursor before returning.
func withCursor<R>(_ txn: OpaquePointer, _ dbi: MDB_dbi, _ body: (Cursor) throws -> R) throws -> R {
    var c: OpaquePointer?
    try check(mdb_cursor_open(txn, dbi, &c))
    defer { mdb_cursor_close(c) }
    return try body(Cursor(handle: c!))
}
