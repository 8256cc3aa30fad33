import Foundation

/// What `Store.migrate` did.
public struct MigrationReport: Sendable, Equatable {
    /// The schema the store was in.
    public var fromSchema: Int
    /// The schema it is in now (`StoreMetadata.schemaVersion`).
    public var toSchema: Int
    /// Records rewritten per table (empty when the store was already current).
    public var records: [String: Int]
    /// The verification of the migrated store (every trailer checked).
    public var verification: VerificationReport?
    /// Whether anything was rewritten.
    public var migrated: Bool { fromSchema != toSchema }
}

extension Store {
    /// Upgrades the store at `path` to the current schema, in place and in one write transaction: the
    /// upgrade commits whole or not at all (a crash or a full disk leaves the old store as it was).
    ///
    /// Schemas 1 and 2 differ from 3 only in that their records have no checksum trailer (and 1 has no
    /// `titles` table, which is created empty), so migrating appends to every record the CRC-32C of its
    /// key and value (`RecordChecksum`) and sets the header's schema to 3. Before that, the old store is
    /// verified as it is (version bytes, inner checksums of codebooks and profiles, zstd checksums of
    /// history segments, item layouts): damage found there is refused with `migrationRefused`, because a
    /// fresh checksum would hide it. Afterwards the migrated store is verified again.
    ///
    /// Stop the store's readers and writers first: a reader of the old schema reading on would take the
    /// trailers for part of each value. The map needs room for a second copy of the rewritten pages
    /// until the commit (it grows on demand, up to `options.maxMapSize`).
    ///
    /// - Parameter progress: called with a table's name, records rewritten in it so far and its total.
    /// - Returns: what was done; `migrated == false` when the store was already current.
    /// - Throws: `StoreError.storeMissing`, `.notAStore`, `.schemaVersionMismatch` (a newer store),
    ///   `.migrationRefused`, `.mapFull`, `.diskFull`, or an `LMDBError`.
    public static func migrate(
        path: String, options: StoreOptions = StoreOptions(), progress: ((String, Int, Int) -> Void)? = nil
    ) throws -> MigrationReport {
        guard FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent("data.mdb")) else {
            throw StoreError.storeMissing(path: path)
        }
        var writable = options
        writable.readOnly = false
        writable.createIfMissing = false
        let current = StoreMetadata.schemaVersion
        var report = MigrationReport(fromSchema: current, toSchema: current, records: [:])
        do {
            let old = try Store(path: path, dimension: nil, options: writable, migrating: true)
            guard !old.recordsHaveChecksums else { return report }
            report.fromSchema = old.schemaVersion

            let before = try old.read { try $0.verify(problemLimit: 10) }
            guard before.isClean else {
                throw StoreError.migrationRefused(
                    path: path,
                    reason: "the schema-\(old.schemaVersion) store has \(before.problemCount) damaged record(s): "
                        + before.problems.map(\.description).joined(separator: "; ")
                        + ". Restore it from a copy, or export what is readable with the build that wrote it.")
            }
            report.records = try old.rewriteWithChecksums(progress: progress)
        }
        // Reopened as an ordinary store: the header now says schema 3 and every trailer must hold.
        let migrated = try Store(path: path, options: writable)
        report.verification = try migrated.read { try $0.verify() }
        return report
    }

    /// Appends a checksum trailer to every record of every table and writes the new header, in one
    /// write transaction. Only for a store opened with `migrating` whose records have no trailers.
    private func rewriteWithChecksums(progress: ((String, Int, Int) -> Void)?) throws -> [String: Int] {
        let tables: [(String, UInt32)] = [
            (self.tables.codebooks.name, self.tables.codebooks.handle), (self.tables.items.name, self.tables.items.handle),
            (self.tables.histories.name, self.tables.histories.handle), (self.tables.profiles.name, self.tables.profiles.handle),
            (self.tables.titles.name, self.tables.titles.handle),
        ]
        return try storeErrors(maxMapSize: options.maxMapSize) {
            try env.withWriteTransaction { txn, mapFull in
                var counts: [String: Int] = [:]
                for (name, handle) in tables {
                    let table = Table<RawKey>(name: name, handle: handle)
                    let total = try txn.entryCount(table)
                    var done = 0
                    var after: RawKey? = nil
                    // Copy a batch of records out of the map, then rewrite them: puts may move pages, so no
                    // pointer into the map is held across them.
                    while true {
                        var batch: [(RawKey, [UInt8])] = []
                        try txn.withCursor(table) { cursor in
                            var entry = try after.map { try cursor.seek(atLeast: $0) } ?? cursor.first()
                            if let a = after, let e = entry, e.key == a { entry = try cursor.next() }
                            while let e = entry, batch.count < 4096 {
                                batch.append((RawKey(bytes: Array(e.keyBytes)), Array(e.value)))
                                entry = try cursor.next()
                            }
                        }
                        guard let last = batch.last else { break }
                        for (key, value) in batch {
                            try value.withUnsafeBytes { try txn.putRecord(table, key, $0, mapFull: &mapFull) }
                        }
                        done += batch.count
                        progress?(name, done, total)
                        after = last.0
                    }
                    counts[name] = done
                }
                // The header last, now saying schema 3.
                guard let raw = try txn.get(self.tables.meta, metaKey) else {
                    throw StoreError.corruptRecord(table: "meta", key: "0", reason: "the header record is missing")
                }
                var meta: StoreMetadata
                do { meta = try StoreMetadata.decode(raw) } catch let error as RecordFormatError {
                    throw StoreError.corruptRecord(table: "meta", key: "0", reason: error.reason)
                }
                meta.schemaVersion = StoreMetadata.schemaVersion
                try meta.encode().withUnsafeBytes { try txn.putRecord(self.tables.meta, metaKey, $0, mapFull: &mapFull) }
                counts["meta"] = 1
                return counts
            }
        }
    }
}

/// A key of any layout, as raw bytes (for rewriting every table the same way).
struct RawKey: TableKey, Equatable {
    var bytes: [UInt8]

    func withKeyBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        // Array.withUnsafeBytes rethrows untyped errors; carry the typed one out in a Result.
        let result: Result<R, E> = bytes.withUnsafeBytes { b in Result { () throws(E) -> R in try body(b) } }
        return try result.get()
    }

    init(bytes: [UInt8]) { self.bytes = bytes }
    init?(keyBytes bytes: UnsafeRawBufferPointer) { self.bytes = Array(bytes) }

    var description: String { hexKey(bytes) }
}
