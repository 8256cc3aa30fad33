import Foundation
import Glibc
import SheafCodebook
import SheafFormats
import Testing
@testable import SheafStore

/// Where each live key and value of a store lies in its `data.mdb`, by table.
private struct LiveBytes {
    var table: String
    var key: Range<Int>
    var value: Range<Int>
}

private func liveRecords(_ store: Store) throws -> [LiveBytes] {
    let base = try mapAddress(of: store.path)
    var out: [LiveBytes] = []
    func collect<K>(_ table: Table<K>, _ txn: ReadTransaction) throws {
        try txn.withCursor(table) { cursor in
            var entry = try cursor.first()
            while let e = entry {
                let k = e.keyBytes.baseAddress! - base
                let v = e.value.baseAddress! - base
                out.append(LiveBytes(table: table.name, key: k..<(k + e.keyBytes.count), value: v..<(v + e.value.count)))
                entry = try cursor.next()
            }
        }
    }
    try store.read { txn in
        let t = store.tables
        try collect(t.meta, txn)
        try collect(t.codebooks, txn)
        try collect(t.items, txn)
        try collect(t.histories, txn)
        try collect(t.profiles, txn)
        try collect(t.titles, txn)
    }
    return out
}

/// Where this process mapped the `data.mdb` of the store at `path` (from /proc/self/maps): a pointer a
/// read transaction hands out, minus this, is the byte's offset in the file.
private func mapAddress(of path: String) throws -> UnsafeRawPointer {
    let file = URL(fileURLWithPath: path + "/data.mdb").resolvingSymlinksInPath().path
    // Read to EOF with read(2): /proc files report size 0, and under ThreadSanitizer the map is long.
    let fd = open("/proc/self/maps", O_RDONLY)
    guard fd >= 0 else { throw StoreError.invalidArgument("cannot read /proc/self/maps") }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        bytes += chunk[0..<n]
    }
    let maps = String(decoding: bytes, as: UTF8.self)
    for line in maps.split(separator: "\n") where line.hasSuffix(" " + file) {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count >= 6, fields[2] == "00000000", let start = UInt(fields[0].split(separator: "-")[0], radix: 16) else { continue }
        return try #require(UnsafeRawPointer(bitPattern: start))
    }
    let mentions = maps.split(separator: "\n").filter { $0.contains(path) }
    throw StoreError.invalidArgument("\(file) is not mapped at offset 0 (maps lines naming the store: \(mentions))")
}

/// XORs `mask` into the byte at `offset` of a file (through the page cache, which LMDB's read-only
/// shared map sees at once).
private func flip(_ fd: Int32, offset: Int, mask: UInt8) {
    var b: UInt8 = 0
    precondition(pread(fd, &b, 1, off_t(offset)) == 1)
    b ^= mask
    precondition(pwrite(fd, &b, 1, off_t(offset)) == 1)
}

private let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("Fixtures/schema2-store").path

/// A copy of the schema-2 fixture store in a fresh directory.
private func copyOfSchema2Store() throws -> TempDirectory {
    let dir = TempDirectory("schema2")
    try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
    try FileManager.default.copyItem(atPath: fixture + "/data.mdb", toPath: dir.path + "/data.mdb")
    return dir
}

private func fileBytes(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

@Suite struct ChecksumTests {
    /// A small store holding a record of every table: a codebook, items, titles, two users' histories
    /// (several segments), a profile.
    private func smallStore(_ dir: TempDirectory) throws -> Store {
        var options = StoreOptions()
        options.historySegmentCapacity = 4
        let store = try Store(path: dir.path, dimension: 4, options: options)
        let cb = try makeCodebook(dimension: 4, levels: 2, codes: 4)
        let (codes, mags) = makeCodes(cb, count: 3, seed: 5)
        try store.write { txn in
            try txn.putCodebook(cb)
            try txn.putItems(ids: [1, 2, 3], codes: codes, magnitudes: mags)
            try txn.putTitles(ids: [1, 2], titles: ["a", "Zoë"])
            try txn.appendBehaviors((0..<6).map { Behavior(item: UInt64($0 % 3 + 1), timestamp: Int64(100 + $0), label: 1) }, user: 7)
            try txn.appendBehaviors([Behavior(item: 2, timestamp: 50)], user: 9)
            try txn.putProfile(Profile(modelVersion: 3, bytes: [1, 2, 3, 4, 5]), user: 7)
        }
        return store
    }

    @Test func everySingleBitFlipInALiveKeyOrValueIsDetected() throws {
        let dir = TempDirectory("bitflips")
        let store = try smallStore(dir)
        #expect(try store.read { try $0.verify() }.isClean)
        let records = try liveRecords(store)
        #expect(Set(records.map(\.table)) == ["meta", "codebooks", "items", "histories", "profiles", "titles"])
        let fd = open(dir.path + "/data.mdb", O_RDWR)
        try #require(fd >= 0)
        defer { close(fd) }
        var tried = 0
        var missed: [String] = []
        for r in records {
            for (part, range) in [("key", r.key), ("value", r.value)] {
                for offset in range {
                    for bit in 0..<8 {
                        flip(fd, offset: offset, mask: 1 << bit)
                        let report = try store.read { try $0.verify(problemLimit: 4) }
                        flip(fd, offset: offset, mask: 1 << bit)
                        tried += 1
                        if report.isClean || !report.problems.contains(where: { $0.table == r.table }) {
                            missed.append("\(r.table) \(part) byte \(offset - range.lowerBound) bit \(bit)")
                        }
                    }
                }
            }
        }
        #expect(tried > 4000)  // 4,760 bits in all
        #expect(missed.isEmpty, "undetected flips: \(missed.prefix(10))")
        #expect(try store.read { try $0.verify() }.isClean)
    }

    @Test func readsRefuseARecordWhoseKeyOrValueChanged() throws {
        let dir = TempDirectory("reads")
        let store = try smallStore(dir)
        let records = try liveRecords(store)
        let items = records.filter { $0.table == "items" }  // ids 1, 2, 3 in key order
        try #require(items.count == 3)
        let item2 = items[1]
        let fd = open(dir.path + "/data.mdb", O_RDWR)
        try #require(fd >= 0)
        defer { close(fd) }
        // A flipped bit in item 2's packed code: the read fails, naming the record, instead of decoding wrong.
        flip(fd, offset: item2.value.lowerBound + 4, mask: 0x10)
        #expect(throws: StoreError.corruptRecord(table: "items", key: "2", reason: "checksum mismatch: the key or the value is damaged")) {
            try store.read { try $0.item(2) }
        }
        flip(fd, offset: item2.value.lowerBound + 4, mask: 0x10)
        #expect(try store.read { try $0.item(2) } != nil)
        // A flipped bit in the key of user 9's only segment (9/0 becomes 9/1): the history read hits the moved
        // record and fails instead of returning nothing.
        let segment = try #require(records.last { $0.table == "histories" })
        flip(fd, offset: segment.key.upperBound - 1, mask: 0x01)
        #expect(throws: StoreError.corruptRecord(table: "histories", key: "9/1", reason: "checksum mismatch: the key or the value is damaged")) {
            try store.read { try $0.history(user: 9) }
        }
        flip(fd, offset: segment.key.upperBound - 1, mask: 0x01)
        #expect(try store.read { try $0.history(user: 9) }?.count == 1)
    }

    @Test func aSchema2StoreIsRefusedUntilMigratedAndUnchanged() throws {
        let dir = try copyOfSchema2Store()
        let before = try fileBytes(dir.path + "/data.mdb")
        #expect(throws: StoreError.needsMigration(path: dir.path, found: 2, current: 3)) { try Store(path: dir.path) }
        var readOnly = StoreOptions()
        readOnly.readOnly = true
        #expect(throws: StoreError.needsMigration(path: dir.path, found: 2, current: 3)) { try Store(path: dir.path, options: readOnly) }
        #expect(try fileBytes(dir.path + "/data.mdb") == before)
    }

    @Test func migratingASchema2StoreKeepsEveryItemHistoryAndTitle() throws {
        let dir = try copyOfSchema2Store()
        var progressed: Set<String> = []
        let report = try Store.migrate(path: dir.path) { table, done, total in
            if done == total { progressed.insert(table) }
        }
        #expect(report.fromSchema == 2 && report.toSchema == 3 && report.migrated)
        #expect(report.records == ["meta": 1, "codebooks": 1, "items": 40, "histories": 9, "profiles": 0, "titles": 40])
        #expect(progressed == ["codebooks", "items", "histories", "titles"])
        #expect(report.verification?.isClean == true)

        do {
        let store = try Store(path: dir.path)
        // Items decode to what the schema-2 build exported, bit for bit.
        let expected = try NPYArray(contentsOf: fixture + "/expected-items.npy").floats()
        let decoded = try store.read { try $0.decodeItems((1...40).map(UInt64.init)) }
        #expect(decoded == expected)
        // Histories and titles read as the schema-2 build printed them.
        let lines = try String(contentsOfFile: fixture + "/expected-histories.tsv", encoding: .utf8).split(separator: "\n").dropFirst()
        var rows: [String] = []
        try store.read { txn in
            for user: UInt64 in [3, 5, 9] {
                let h = try #require(try txn.history(user: user))
                for i in 0..<h.count {
                    let title = try txn.title(item: h.itemIDs[i]) ?? ""
                    rows.append("\(user)\t\(h.timestamps[i])\t\(h.itemIDs[i])\t\(Int(h.labels[i]))\t\(h.actions[i])\t\(title)")
                }
            }
        }
        #expect(rows == lines.map(String.init))
        }
        // A second run (the store closed: one environment per file per process) has nothing to do.
        let again = try Store.migrate(path: dir.path)
        #expect(!again.migrated && again.records.isEmpty)
    }

    @Test func migrationRefusesADamagedOldStoreAndChangesNothing() throws {
        let dir = try copyOfSchema2Store()
        // Find item 7's record in the old store and break its version byte.
        var options = StoreOptions()
        options.readOnly = true
        let offset: Int = try {
            let old = try Store(path: dir.path, dimension: nil, options: options, migrating: true)
            let base = try mapAddress(of: dir.path)
            return try old.read { txn in
                try txn.withCursor(old.tables.items) { cursor in
                    let e = try #require(try cursor.seek(atLeast: 7))
                    return e.value.baseAddress! - base
                }
            }
        }()
        let fd = open(dir.path + "/data.mdb", O_RDWR)
        try #require(fd >= 0)
        flip(fd, offset: offset, mask: 0x80)
        close(fd)
        let before = try fileBytes(dir.path + "/data.mdb")
        let error = #expect(throws: StoreError.self) { try Store.migrate(path: dir.path) }
        guard case .migrationRefused(let path, let reason) = error else {
            Issue.record("expected migrationRefused, got \(String(describing: error))")
            return
        }
        #expect(path == dir.path)
        #expect(reason.contains("1 damaged record(s): items[7]: unknown format version 129"))
        #expect(try fileBytes(dir.path + "/data.mdb") == before)
        #expect(throws: StoreError.needsMigration(path: dir.path, found: 2, current: 3)) { try Store(path: dir.path) }
    }
}

@Suite struct AuxiliaryTableTests {
    /// Baseline tables hold exactly the bytes given (no trailer): tools/lmdb_baseline.py reads them as
    /// plain float32 rows with the Python binding.
    @Test func auxiliaryValuesAreStoredAsGiven() throws {
        let dir = TempDirectory("aux")
        let store = try Store(path: dir.path, dimension: 4)
        let table = try store.auxiliaryTable("rows")
        let row: [Float] = [1, 2, 3, 4]
        try store.write { txn in try row.withUnsafeBytes { try txn.putAuxiliaryValue(table, id: 9, $0) } }
        let stored = try store.read { txn in try txn.withAuxiliaryValue(table, id: 9) { $0.map(Array.init) } }
        #expect(stored == row.withUnsafeBytes(Array.init))
        #expect(try store.read { try $0.verify() }.isClean)
    }
}
