import Foundation
import SheafCodebook
import SheafRandom
import Synchronization
import Testing

@testable import SheafStore

@Suite struct OpeningTests {
    @Test func createReopenAndDimensionCheck() throws {
        let dir = TempDirectory()
        do {
            let store = try Store(path: dir.path, dimension: 8)
            #expect(store.dimension == 8)
            #expect(!store.isReadOnly)
        }
        do {
            let reopened = try Store(path: dir.path)
            #expect(reopened.dimension == 8)
        }
        #expect(throws: StoreError.dimensionMismatch(stored: 8, requested: 16)) {
            try Store(path: dir.path, dimension: 16)
        }
    }

    /// LMDB allows one environment per file per process: a second open of a store that is open is
    /// refused before LMDB touches the file (under another path too), and the first one goes on working.
    @Test func aStoreOpenInThisProcessIsNotOpenedTwice() throws {
        let dir = TempDirectory()
        let link = TempDirectory("link")
        do {
            let store = try Store(path: dir.path, dimension: 4)
            try store.write { try $0.appendBehaviors([Behavior(item: 1, timestamp: 1)], user: 5) }
            #expect(throws: StoreError.alreadyOpen(path: dir.path)) { try Store(path: dir.path) }
            var readOnly = StoreOptions()
            readOnly.readOnly = true
            #expect(throws: StoreError.alreadyOpen(path: dir.path)) { try Store(path: dir.path, options: readOnly) }
            try FileManager.default.createSymbolicLink(atPath: link.path, withDestinationPath: dir.path)
            #expect(throws: StoreError.alreadyOpen(path: link.path)) { try Store(path: link.path) }
            // The first store still reads and writes (a second environment closing would have broken its locks).
            try store.write { try $0.appendBehaviors([Behavior(item: 2, timestamp: 2)], user: 5) }
            #expect(try store.read { try $0.history(user: 5)?.itemIDs } == [1, 2])
        }
        // Closed, it opens again.
        #expect(try Store(path: dir.path).read { try $0.history(user: 5)?.count } == 2)
    }

    /// Two threads creating the same new store: one creates it, the other is refused as already open.
    @Test func twoThreadsCreatingOneStore() throws {
        for _ in 0..<20 {
            let dir = TempDirectory()
            let path = dir.path
            let outcomes = Mutex<[Result<Store, StoreError>]>([])
            DispatchQueue.concurrentPerform(iterations: 2) { _ in
                let r: Result<Store, StoreError>
                do { r = .success(try Store(path: path, dimension: 4)) } catch let e as StoreError { r = .failure(e) } catch {
                    r = .failure(.invalidArgument("\(error)"))
                }
                outcomes.withLock { $0.append(r) }  // the created store stays open until the check
            }
            let all = outcomes.withLock { $0 }
            #expect(all.filter { if case .success = $0 { true } else { false } }.count == 1)
            #expect(all.contains { if case .failure(.alreadyOpen(dir.path)) = $0 { true } else { false } }, "\(all)")
        }
    }

    @Test func missingStores() throws {
        let dir = TempDirectory()
        var ro = StoreOptions()
        ro.readOnly = true
        #expect(throws: StoreError.storeMissing(path: dir.path)) { try Store(path: dir.path, dimension: 8, options: ro) }
        var noCreate = StoreOptions()
        noCreate.createIfMissing = false
        #expect(throws: StoreError.storeMissing(path: dir.path)) {
            try Store(path: dir.path, dimension: 8, options: noCreate)
        }
        #expect(throws: StoreError.invalidArgument("creating a store needs a dimension")) { try Store(path: dir.path) }
        #expect(!FileManager.default.fileExists(atPath: dir.path))
    }

    @Test func foreignLMDBEnvironmentIsNotAStore() throws {
        let dir = TempDirectory()
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        do {
            let env = try LMDBEnvironment(
                path: dir.path,
                configuration: .init(
                    mapSize: 1 << 20, maxMapSize: 1 << 20, maxReaders: 8, maxDatabases: 2, readOnly: false,
                    noSync: true))
            _ = try env.openTableHandles(["other"], create: true)
        }
        #expect(throws: StoreError.notAStore(path: dir.path)) { try Store(path: dir.path, dimension: 4) }
    }

    @Test func schemaVersionMismatch() throws {
        let dir = TempDirectory()
        do {
            let store = try Store(path: dir.path, dimension: 4)
            try store.write { (txn) throws in
                var meta = try txn.metadata()
                meta.schemaVersion = 99
                try txn.putMetadata(meta)
            }
        }
        #expect(throws: StoreError.schemaVersionMismatch(found: 99, supported: StoreMetadata.schemaVersion)) { try Store(path: dir.path) }
    }

    @Test func readOnlyModeReadsAndRefusesWrites() throws {
        let dir = TempDirectory()
        let cb = try makeCodebook(dimension: 4)
        do {
            let store = try Store(path: dir.path, dimension: 4)
            try store.write { try $0.putCodebook(cb) }
        }
        var ro = StoreOptions()
        ro.readOnly = true
        let store = try Store(path: dir.path, options: ro)
        #expect(store.isReadOnly)
        #expect(try store.read { try $0.codebookIDs() } == [1])
        #expect(throws: StoreError.readOnly) { try store.write { try $0.putProfile(Profile(modelVersion: 1, bytes: []), user: 1) } }
        #expect(try store.read { try $0.profile(user: 1) } == nil)
    }

    @Test func metadataRoundTrip() throws {
        let dir = TempDirectory()
        var o = StoreOptions()
        o.sideFeatureWidth = 3
        o.historySegmentCapacity = 17
        do { _ = try Store(path: dir.path, dimension: 12, options: o) }
        let store = try Store(path: dir.path)
        let meta = try store.read { try $0.metadata() }
        #expect(meta.dimension == 12)
        #expect(meta.sideFeatureWidth == 3)
        #expect(meta.historySegmentCapacity == 17)
        #expect(meta.activeCodebook == 0)
        #expect(meta.schemaVersion == StoreMetadata.schemaVersion)
        #expect(abs(meta.createdAt - Int64(Date().timeIntervalSince1970)) < 600)
    }

    @Test func manySequentialReadsReuseTransactions() throws {
        let dir = TempDirectory()
        let store = try Store(path: dir.path, dimension: 4)
        try store.write { try $0.putProfile(Profile(modelVersion: 3, bytes: [1, 2]), user: 9) }
        var seen = 0
        for _ in 0..<2000 {
            if try store.read({ try $0.profile(user: 9) })?.modelVersion == 3 { seen += 1 }
        }
        #expect(seen == 2000)
    }

    @Test func usingATransactionAfterItsClosureTraps() async {
        await #expect(processExitsWith: .failure) {
            let dir = TempDirectory()
            let store = try Store(path: dir.path, dimension: 4)
            let escaped = try store.read { $0 }
            _ = try escaped.profile(user: 1)
        }
    }
}

@Suite struct CodebookTableTests {
    @Test(arguments: MagnitudeEncoding.allCases)
    func codebookRoundTripAcrossReopen(_ encoding: MagnitudeEncoding) throws {
        let dir = TempDirectory()
        let cb = try makeCodebook(id: 7, dimension: 5, levels: 2, codes: 8, magnitudes: encoding, seed: 3)
        do {
            let store = try Store(path: dir.path, dimension: 5)
            try store.write { try $0.putCodebook(cb) }
        }
        let store = try Store(path: dir.path)
        let loaded = try #require(try store.read { try $0.codebook(7) })
        #expect(loaded.hasSameContent(as: cb))
        #expect(loaded.id == 7)
        #expect(loaded.trainingStats == ["seed": 3])
        #expect(try store.read { try $0.activeCodebook()?.id } == 7)
        #expect(try store.read { try $0.codebook(8) } == nil)
    }

    @Test func codebooksAreImmutable() throws {
        let dir = TempDirectory()
        let a = try makeCodebook(id: 1, dimension: 4, seed: 1)
        do {
            let store = try Store(path: dir.path, dimension: 4)
            let b = try makeCodebook(id: 1, dimension: 4, seed: 2)
            try store.write { try $0.putCodebook(a) }
            try store.write { try $0.putCodebook(a) }  // identical: no-op
            #expect(throws: StoreError.codebookExists(1)) { try store.write { try $0.putCodebook(b) } }
        }
        let fresh = try Store(path: dir.path)
        #expect(try fresh.read { try $0.codebook(1) }?.hasSameContent(as: a) == true)
    }

    @Test func codebookBadInputLeavesStoreUnchanged() throws {
        let dir = TempDirectory()
        let store = try Store(path: dir.path, dimension: 4)
        try store.write { try $0.putCodebook(try makeCodebook(id: 1, dimension: 4)) }
        #expect(throws: StoreError.dimensionMismatch(stored: 4, requested: 6)) {
            try store.write { try $0.putCodebook(try makeCodebook(id: 2, dimension: 6)) }
        }
        #expect(throws: StoreError.unknownCodebook(9)) { try store.write { try $0.setActiveCodebook(9) } }
        #expect(try store.read { try $0.codebookIDs() } == [1])
        #expect(try store.read { try $0.metadata().activeCodebook } == 1)
        #expect(try store.write { try $0.nextCodebookID() } == 2)
    }

    @Test func corruptCodebookRecordIsNamed() throws {
        let dir = TempDirectory()
        let cb = try makeCodebook(id: 3, dimension: 4)
        var bytes = CodebookRecord.encode(cb, createdAt: 0)
        bytes[40] ^= 0xFF
        do {
            let store = try Store(path: dir.path, dimension: 4)
            try plantRaw(store, table: \.codebooks, id: 3, bytes: bytes)
        }
        let store = try Store(path: dir.path)
        #expect {
            _ = try store.read { try $0.codebook(3) }
        } throws: { error in
            guard case StoreError.corruptRecord(let table, let key, let reason) = error else { return false }
            return table == "codebooks" && key == "3" && reason.hasPrefix("checksum mismatch")
        }
        // Truncated: the checksum no longer matches either.
        try plantRaw(store, table: \.codebooks, id: 4, bytes: Array(CodebookRecord.encode(try cb.withID(4), createdAt: 0).dropLast(9)))
        #expect {
            _ = try store.read { try $0.codebook(4) }
        } throws: { error in
            guard case StoreError.corruptRecord("codebooks", "4", _) = error else { return false }
            return true
        }
    }
}

@Suite struct ItemTableTests {
    @Test(arguments: MagnitudeEncoding.allCases)
    func itemRoundTripAndDecode(_ encoding: MagnitudeEncoding) throws {
        let dir = TempDirectory()
        let store = try Store(path: dir.path, dimension: 13)
        let cb = try makeCodebook(dimension: 13, levels: 3, codes: 64, magnitudes: encoding, seed: 5)
        try store.write { try $0.putCodebook(cb) }
        let n = 50
        let ids = (0..<n).map { UInt64($0 * 3 + 1) }
        let (codes, mags) = makeCodes(cb, count: n, seed: 11)
        try store.write { try $0.putItems(ids: ids, codes: codes, magnitudes: mags) }

        try store.read { (txn) throws in
            #expect(try txn.itemCount() == n)
            for (row, id) in ids.enumerated() {
                let item = try #require(try txn.item(id))
                #expect(item.codebookID == 1)
                #expect(item.codes == Array(codes[(row * 3)..<(row * 3 + 3)]))
                let expected: [Float] = (0..<3).map { l in
                    encoding == .none ? 1 : cb.quantizedMagnitude(mags[row * 3 + l], level: l)
                }
                #expect(item.magnitudes == expected)
            }
            #expect(try txn.item(2) == nil)  // unknown id: nil, not an error

            let decoded = try txn.decodeItems(ids)
            let reference = try ids.flatMap { referenceEmbedding(try #require(try txn.item($0)), cb) }
            #expect(close(decoded, reference))

            var packed = [UInt8](repeating: 0xAA, count: 3 * cb.bytesPerItem)
            let missing = try packed.withUnsafeMutableBytes { try txn.readPackedCodes([ids[0], 2, ids[1]], codebook: 1, into: $0) }
            #expect(missing == [1])
            #expect(packed[cb.bytesPerItem..<(2 * cb.bytesPerItem)].allSatisfy { $0 == 0 })
        }
    }

    @Test func missingItemsAreReportedNotSilentlyZero() throws {
        let dir = TempDirectory()
        let store = try Store(path: dir.path, dimension: 8)
        let cb = try makeCodebook(dimension: 8)
        try store.write { (txn) throws in
            try txn.putCodebook(cb)
            let (c, m) = makeCodes(cb, count: 2, seed: 1)
            try txn.putItems(ids: [10, 20], codes: c, magnitudes: m)
        }
        #expect(throws: StoreError.missingItems([15, 99])) { try store.read { try $0.decodeItems([10, 15, 20, 99]) } }
        try store.read { (txn) throws in
            var out = [Float](repeating: .nan, count: 4 * 8)
            let report = try out.withUnsafeMutableBufferPointer {
                try txn.decodeItems([10, 15, 20, 99], into: $0, options: DecodeOptions(missingItems: .zeroFill))
            }
            #expect(report.missingRows == [1, 3])
            #expect(report.missingItems == [15, 99])
            #expect(out[8..<16].allSatisfy { $0 == 0 })
            #expect(out[24..<32].allSatisfy { $0 == 0 })
            let found = try txn.decodeItems([10, 20])
            #expect(Array(out[0..<8]) == Array(found[0..<8]))
            #expect(Array(out[16..<24]) == Array(found[8..<16]))
            #expect(throws: StoreError.bufferTooSmall(needed: 32, available: 8)) {
                var small = [Float](repeating: 0, count: 8)
                try small.withUnsafeMutableBufferPointer { _ = try txn.decodeItems([10, 15, 20, 99], into: $0) }
            }
        }
    }

    @Test func badItemInputIsRefusedAndStoreUnchanged() throws {
        let dir = TempDirectory()
        let store = try Store(path: dir.path, dimension: 8)
        #expect(throws: StoreError.noActiveCodebook) { try store.write { try $0.putItems(ids: [1], codes: [0, 0, 0], magnitudes: [1, 1, 1]) } }
        let cb = try makeCodebook(dimension: 8, codes: 16)
        try store.write { try $0.putCodebook(cb) }
        let (c0, m0) = makeCodes(cb, count: 1, seed: 4)
        try store.write { try $0.putItems(ids: [5], codes: c0, magnitudes: m0) }
        let before = try store.read { try $0.item(5) }

        // Item 7 (row 1) has a code ≥ K; item 5 would have been overwritten by row 0.
        #expect(throws: StoreError.invalidItemCodes(item: 7, reason: .codeOutOfRange(row: 1, level: 2, code: 16, codesPerLevel: 16))) {
            try store.write { try $0.putItems(ids: [5, 7], codes: [1, 1, 1, 2, 2, 16], magnitudes: [1, 1, 1, 1, 1, 1]) }
        }
        #expect(throws: StoreError.invalidItemCodes(item: 8, reason: .nonFiniteMagnitude(row: 0, level: 1))) {
            try store.write { try $0.putItems(ids: [8], codes: [1, 1, 1], magnitudes: [1, .nan, 1]) }
        }
        #expect(throws: StoreError.invalidItemCodes(item: 8, reason: .nonFiniteMagnitude(row: 0, level: 0))) {
            try store.write { try $0.putItems(ids: [8], codes: [1, 1, 1], magnitudes: [.infinity, 1, 1]) }
        }
        #expect(throws: StoreError.invalidArgument("codes has 2 values, expected 1 × 3")) {
            try store.write { try $0.putItems(ids: [8], codes: [1, 1], magnitudes: [1, 1, 1]) }
        }
        #expect(throws: StoreError.invalidArgument("magnitudes has 2 values, expected 3")) {
            try store.write { try $0.putItems(ids: [8], codes: [1, 1, 1], magnitudes: [1, 1]) }
        }
        #expect(throws: StoreError.unknownCodebook(4)) {
            try store.write { try $0.putItems(ids: [8], codes: [1, 1, 1], magnitudes: [1, 1, 1], codebook: 4) }
        }
        try store.read { (txn) throws in
            #expect(try txn.itemCount() == 1)
            #expect(try txn.item(5) == before)
            #expect(try txn.item(7) == nil)
            #expect(try txn.item(8) == nil)
        }
    }

    @Test func appendAndOverwritePaths() throws {
        let dir = TempDirectory()
        let store = try Store(path: dir.path, dimension: 4)
        let cb = try makeCodebook(dimension: 4, codes: 256, magnitudes: .float16)
        try store.write { try $0.putCodebook(cb) }
        // Ascending above the last key: MDB_APPEND.
        let ids1: [UInt64] = [100, 200, 300]
        let (c1, m1) = makeCodes(cb, count: 3, seed: 1)
        try store.write { (txn) throws in
            #expect(try txn.idsAscendAboveLastKey(ids1, table: store.tables.items))
            try txn.putItems(ids: ids1, codes: c1, magnitudes: m1)
        }
        // Unsorted and overlapping: plain puts that overwrite.
        let ids2: [UInt64] = [250, 100, 50]
        let (c2, m2) = makeCodes(cb, count: 3, seed: 2)
        try store.write { (txn) throws in
            #expect(!(try txn.idsAscendAboveLastKey(ids2, table: store.tables.items)))
            #expect(!(try txn.idsAscendAboveLastKey([400, 350], table: store.tables.items)))
            #expect(!(try txn.idsAscendAboveLastKey([300, 301], table: store.tables.items)))
            try txn.putItems(ids: ids2, codes: c2, magnitudes: m2)
        }
        try store.read { (txn) throws in
            #expect(try txn.itemCount() == 5)
            #expect(try txn.item(100)?.codes == Array(c2[3..<6]))
            #expect(try txn.item(300)?.codes == Array(c1[6..<9]))
        }
        #expect(try store.write { try $0.deleteItem(100) })
        #expect(try store.read { try $0.item(100) } == nil)
    }

    @Test func corruptItemRecordsAreNamed() throws {
        let dir = TempDirectory()
        let store = try Store(path: dir.path, dimension: 4)
        let cb = try makeCodebook(dimension: 4, codes: 4096)  // 8-byte payload
        try store.write { try $0.putCodebook(cb) }
        try plantRaw(store, table: \.items, id: 5, bytes: [9, 1, 0] + [UInt8](repeating: 0, count: 8))
        try plantRaw(store, table: \.items, id: 6, bytes: [1, 1, 0] + [UInt8](repeating: 0, count: 5))
        try plantRaw(store, table: \.items, id: 7, bytes: [1])
        try plantRaw(store, table: \.items, id: 8, bytes: [1, 77, 0] + [UInt8](repeating: 0, count: 8))
        #expect(throws: StoreError.corruptRecord(table: "items", key: "5", reason: "unknown format version 9")) {
            try store.read { try $0.item(5) }
        }
        #expect(throws: StoreError.corruptRecord(table: "items", key: "6", reason: "payload is 5 bytes, codebook 1 packs 8")) {
            try store.read { try $0.item(6) }
        }
        #expect(throws: StoreError.corruptRecord(table: "items", key: "7", reason: "truncated: 1 bytes")) {
            try store.read { try $0.decodeItems([7]) }
        }
        #expect(throws: StoreError.unknownCodebook(77)) { try store.read { try $0.decodeItems([8]) } }
    }

    @Test func requiredCodebookMismatch() throws {
        let dir = TempDirectory()
        let store = try Store(path: dir.path, dimension: 4)
        let a = try makeCodebook(id: 1, dimension: 4)
        let b = try makeCodebook(id: 2, dimension: 4, seed: 9)
        try store.write { (txn) throws in
            try txn.putCodebook(a)
            try txn.putItems(ids: [1], codes: [1, 2, 3], magnitudes: [1, 1, 1])
            try txn.putCodebook(b)
            try txn.putItems(ids: [2], codes: [1, 2, 3], magnitudes: [1, 1, 1])
        }
        // Without a requirement, each item decodes with its own codebook.
        let both = try store.read { try $0.decodeItems([1, 2]) }
        #expect(!close(Array(both[0..<4]), Array(both[4..<8])))
        #expect(throws: StoreError.codebookMismatch(item: 1, expected: 2, found: 1)) {
            try store.read { try $0.decodeItems([1, 2], options: DecodeOptions(requiredCodebook: 2)) }
        }
        var buf = [UInt8](repeating: 0, count: 16)
        #expect(throws: StoreError.codebookMismatch(item: 1, expected: 2, found: 1)) {
            _ = try store.read { txn in try buf.withUnsafeMutableBytes { try txn.readPackedCodes([2, 1], codebook: 2, into: $0) } }
        }
    }
}

@Suite struct ProfileTableTests {
    @Test func profileRoundTripAndCorruption() throws {
        let dir = TempDirectory()
        let store = try Store(path: dir.path, dimension: 4)
        var rng = SplitMix64(seed: 8)
        let blob = (0..<300).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        try store.write { try $0.putProfile(Profile(modelVersion: 42, bytes: blob), user: 1234) }
        #expect(try store.read { try $0.profile(user: 1234) } == Profile(modelVersion: 42, bytes: blob))
        #expect(try store.read { try $0.profile(user: 1) } == nil)

        var bad = Profile(modelVersion: 1, bytes: [1, 2, 3]).encode()
        bad[10] ^= 1  // a payload byte (version 1 + model 4 + length 4 = 9 header bytes)
        try plantRaw(store, table: \.profiles, id: 5, bytes: bad)
        #expect(throws: StoreError.corruptRecord(table: "profiles", key: "5", reason: "checksum mismatch")) {
            try store.read { try $0.profile(user: 5) }
        }
        #expect(try store.write { try $0.deleteProfile(user: 1234) })
        #expect(try store.read { try $0.profile(user: 1234) } == nil)
    }
}

@Suite struct MapSizeTests {
    @Test func mapGrowsTransparently() throws {
        let dir = TempDirectory()
        var o = StoreOptions()
        o.mapSize = 256 << 10
        o.durable = false
        let store = try Store(path: dir.path, dimension: 4, options: o)
        let cb = try makeCodebook(dimension: 4, codes: 4096)
        try store.write { try $0.putCodebook(cb) }
        let n = 60_000  // ~ 60k × (8 key + 11 value + node overhead) ≫ 256 KiB
        let (c, m) = makeCodes(cb, count: n, seed: 3)
        try store.write { try $0.putItems(ids: (0..<n).map(UInt64.init), codes: c, magnitudes: m) }
        #expect(store.mapGrowthCount > 0)
        #expect(store.mapSize > 256 << 10)
        #expect(try store.read { try $0.itemCount() } == n)
        #expect(try store.read { try $0.item(UInt64(n - 1))?.codes } == Array(c[((n - 1) * 3)...]))
    }

    @Test func mapFullAtTheCeilingLeavesStoreUnchanged() throws {
        let dir = TempDirectory()
        var o = StoreOptions()
        o.mapSize = 256 << 10
        o.maxMapSize = 512 << 10
        o.durable = false
        let store = try Store(path: dir.path, dimension: 4, options: o)
        let cb = try makeCodebook(dimension: 4, codes: 4096)
        try store.write { (txn) throws in
            try txn.putCodebook(cb)
            try txn.putItems(ids: [1, 2], codes: [1, 2, 3, 4, 5, 6], magnitudes: [1, 1, 1, 1, 1, 1])
        }
        let n = 100_000
        let (c, m) = makeCodes(cb, count: n, seed: 3)
        #expect(throws: StoreError.mapFull(limit: 512 << 10)) {
            try store.write { try $0.putItems(ids: (10..<(10 + n)).map(UInt64.init), codes: c, magnitudes: m) }
        }
        #expect(try store.read { try $0.itemCount() } == 2)
        // Still writable afterwards.
        try store.write { try $0.putItems(ids: [3], codes: [7, 8, 9], magnitudes: [1, 1, 1]) }
        #expect(try store.read { try $0.itemCount() } == 3)
    }
}

/// Whether this process can mount a small tmpfs (root on Linux), for the disk-full test.
let canMountTmpfs: Bool = {
    guard getuid() == 0 else { return false }
    let probe = TempDirectory("mount-probe")
    try? FileManager.default.createDirectory(atPath: probe.path, withIntermediateDirectories: true)
    guard run("/bin/mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", probe.path]) == 0 else { return false }
    _ = run("/bin/umount", [probe.path])
    return true
}()

@discardableResult
func run(_ tool: String, _ args: [String]) -> Int32 {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: tool)
    p.arguments = args
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    do { try p.run() } catch { return -1 }
    p.waitUntilExit()
    return p.terminationStatus
}

@Suite struct DiskFullTests {
    @Test(.enabled(if: canMountTmpfs, "needs root to mount a 1 MiB tmpfs"))
    func diskFullIsTypedAndRollsBack() throws {
        let dir = TempDirectory("diskfull")
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        #expect(run("/bin/mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dir.path]) == 0)
        defer { run("/bin/umount", [dir.path]) }
        let path = dir.path + "/store"
        let store = try Store(path: path, dimension: 4)
        let cb = try makeCodebook(dimension: 4, codes: 4096)
        try store.write { try $0.putCodebook(cb) }
        var committed = 0
        var failure: (any Error)?
        for chunk in 0..<100 {
            let ids = (0..<5_000).map { UInt64(chunk * 5_000 + $0) }
            let (c, m) = makeCodes(cb, count: ids.count, seed: UInt64(chunk))
            do {
                try store.write { try $0.putItems(ids: ids, codes: c, magnitudes: m) }
                committed += ids.count
            } catch {
                failure = error
                break
            }
        }
        #expect(failure as? StoreError == .diskFull, "\(String(describing: failure))")
        #expect(committed > 0)
        #expect(try store.read { try $0.itemCount() } == committed)
        #expect(try store.read { try $0.item(UInt64(committed - 1)) } != nil)
    }
}

@Suite struct CrossProcessTests {
    /// Another process grows the map past this process's size; this process then gets
    /// `MDB_MAP_RESIZED` from LMDB, adopts the new size, and reads and writes on.
    @Test func mapGrownByAnotherProcessIsAdopted() async throws {
        let dir = TempDirectory("xproc")
        var o = StoreOptions()
        o.mapSize = 256 << 10
        o.durable = false
        let store = try Store(path: dir.path, dimension: 4, options: o)
        try store.write { try $0.putCodebook(try makeCodebook(dimension: 4, codes: 4096)) }
        let path = dir.path
        await #expect(processExitsWith: .success) { [path = path as String] in
            var o = StoreOptions()
            o.mapSize = 256 << 10
            o.durable = false
            let other = try Store(path: path, options: o)
            let cb = try #require(try other.read { try $0.activeCodebook() })
            let (c, m) = makeCodes(cb, count: 50_000, seed: 1)
            try other.write { try $0.putItems(ids: (0..<50_000).map(UInt64.init), codes: c, magnitudes: m) }
            guard other.mapSize > 256 << 10 else { exit(3) }
        }
        #expect(try store.read { try $0.itemCount() } == 50_000)
        #expect(store.mapSize > 256 << 10)
        try store.write { try $0.putItems(ids: [100_000], codes: [1, 2, 3], magnitudes: [1, 1, 1]) }
        #expect(try store.read { try $0.itemCount() } == 50_001)
        #expect(store.mapGrowthCount == 0)  // the larger map was adopted, not grown here
    }
}
