/// A named table outside Sheaf's data model, keyed by 64-bit ids, holding raw bytes.
/// Package-internal: the measurement tools keep baselines (raw float32 rows) in the same
/// environment with it, so that both sides are read the same way. Its values are stored as given,
/// without Sheaf's checksum trailer: a baseline is what a plain LMDB feature store would hold (and
/// `tools/lmdb_baseline.py` reads them with the Python binding).
package struct AuxiliaryTable: Sendable {
    let table: Table<UInt64>
    package var name: String { table.name }
}

extension Store {
    /// Opens (creating when writable) the auxiliary table `name` ("aux." is prefixed).
    package func auxiliaryTable(_ name: String) throws -> AuxiliaryTable {
        guard let handle = try env.openTableHandles(["aux." + name], create: !isReadOnly)?.first else {
            throw StoreError.invalidArgument("no auxiliary table \(name)")
        }
        return AuxiliaryTable(table: Table(name: name, handle: handle))
    }
}

extension ReadTransaction {
    /// Calls `body` with the bytes under `id`, or `nil`. The bytes point into the map: valid only
    /// until the end of the transaction.
    package func withAuxiliaryValue<R>(_ table: AuxiliaryTable, id: UInt64, _ body: (UnsafeRawBufferPointer?) throws -> R) throws -> R {
        checkLive()
        return try body(try lmdb.get(table.table, id))
    }
}

extension WriteTransaction {
    /// Stores raw bytes under `id`; `append` when ids ascend above every stored one (faster).
    package func putAuxiliaryValue(_ table: AuxiliaryTable, id: UInt64, _ bytes: UnsafeRawBufferPointer, append: Bool = false) throws {
        checkLive()
        try lmdb.put(table.table, id, bytes, options: append ? .append : [], mapFull: &hitMapFull)
    }
}

extension ReadTransaction {
    /// Bytes stored for `user`'s history (the sum of its segment values).
    public func historyStoredBytes(user: UInt64) throws -> Int { try historySize(user: user).bytes }
}
