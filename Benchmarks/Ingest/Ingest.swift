// Ingest: items encoded and behaviours appended per second, beside float32 rows put into the same
// kind of LMDB store (_SheafBench.BaselineTables). Synthetic clustered rows (_SheafBench.ClusteredVectors)
// at D = 384; codebook cosine L4 K256 with 8-bit magnitudes, trained in setup on 10,000 rows.
//
// Names, for --filter (a regular expression that must match the whole name):
//   items encode 2 threads                  ResidualEncoder (greedy), 2 threads
//   items encode 1 thread                   the same on 1 thread
//   items encode and put                    encode + putItems in one write transaction
//   items float32 put                       the baseline: float32 rows put (MDB_APPEND), one write txn
//   behaviours append 100 per new user      appendBehaviors, 10 new users × 100 behaviours, one write txn
//   behaviours append 10 per existing user  appendBehaviors, 100 growing histories × 10 behaviours, one txn
//   behaviours float32 put 100 per user     the baseline: 10 users' 100 float32 rows each as one blob per user
//
// Every iteration handles 1,000 items or behaviours (the scaling factor), so throughput reads as
// items or behaviours per second and wall clock as time per item or behaviour. Stores are fresh,
// per benchmark, in a temporary directory deleted at teardown; like SyntheticStore's, they commit
// without fsync (durable = false), Sheaf and float32 alike.
import Benchmark
import Foundation
import _SheafBench
import SheafCodebook
import SheafQuantizer
import SheafRandom
import SheafStore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

let dimension = 384
/// Items or behaviours per iteration: the scaling factor.
let batch = 1_000
/// Rows the codebook is trained on (rows 0..<trainingRows); encoded rows come after them.
let trainingRows = 10_000
let temporaryStores = ProcessDirectories(prefix: "sheaf-benchmarks-ingest-")

func trainCodebook(_ vectors: ClusteredVectors) throws -> Codebook {
    try CodebookTrainer(configuration: .benchmarkStore(iterations: 8)).train(rows: vectors.rows(0..<trainingRows), dimension: dimension)
}

/// A fresh store in a temporary directory named after this process (so that a later run deletes it
/// should this one die before its teardown) and a counter (a standalone run makes several).
final class TemporaryStore: @unchecked Sendable {
    nonisolated(unsafe) private static var made = 0
    let directory: String
    let store: Store
    let baselines: BaselineTables

    init() throws {
        temporaryStores.removeStale()
        Self.made += 1
        directory = temporaryStores.path(owner: getpid(), suffix: "\(Self.made)")
        try? FileManager.default.removeItem(atPath: directory)
        store = try Store(path: directory, dimension: dimension, options: .benchmark)
        baselines = try BaselineTables(store: store)
    }

    /// Deletes this process's stores (at teardown, where the setup state is not reachable). The
    /// store stays open (the setup state keeps it) until the process exits; its files are unlinked.
    static func removeOwn() { temporaryStores.remove(owner: getpid()) }
}

/// Rows to encode (a few batches, cycled), the encoder, and output buffers.
final class Encoding: @unchecked Sendable {
    static let batches = 8
    let encoder: ResidualEncoder
    let rows: AlignedFloats
    var codes: [UInt32]
    var magnitudes: [Float]
    var next = 0
    /// Set for "encode and put".
    var target: TemporaryStore?
    var nextID: UInt64 = 0

    init(threads: Int, store: Bool) throws {
        let vectors = ClusteredVectors(dimension: dimension)
        encoder = ResidualEncoder(codebook: try trainCodebook(vectors), beamWidth: 1, threads: threads)
        rows = AlignedFloats(count: Self.batches * batch * dimension)
        vectors.fill(rows: trainingRows..<(trainingRows + Self.batches * batch), into: rows.pointer)
        codes = [UInt32](repeating: 0, count: batch * encoder.codebook.levels)
        magnitudes = [Float](repeating: 0, count: batch * encoder.codebook.levels)
        if store {
            let t = try TemporaryStore()
            try t.store.write { try $0.putCodebook(encoder.codebook) }
            target = t
        }
    }

    /// Encodes the next batch of rows into `codes` and `magnitudes`.
    func encodeNext() throws {
        let input = UnsafeBufferPointer(start: rows.pointer + next * batch * dimension, count: batch * dimension)
        next = (next + 1) % Self.batches
        try codes.withUnsafeMutableBufferPointer { c in
            try magnitudes.withUnsafeMutableBufferPointer { m in
                try encoder.encode(input, count: batch, codes: c.baseAddress!, magnitudes: m.baseAddress!)
            }
        }
    }
}

/// Float32 rows to put under new ascending ids.
final class RowPuts: @unchecked Sendable {
    let target: TemporaryStore
    let rows: AlignedFloats
    var nextID: UInt64 = 0

    init() throws {
        target = try TemporaryStore()
        rows = AlignedFloats(count: batch * dimension)
        ClusteredVectors(dimension: dimension).fill(rows: trainingRows..<(trainingRows + batch), into: rows.pointer)
    }
}

/// A store with a codebook and coded items, and behaviours to append.
final class Appends: @unchecked Sendable {
    static let items = 20_000
    let target: TemporaryStore
    let vectors: ClusteredVectors
    var rng = SplitMix64(seed: 5)
    var iteration = 0
    /// Behaviour lists appended (under new user ids) every iteration, and their float32 rows.
    var prepared: [[Behavior]] = []
    var preparedRows: AlignedFloats?

    /// `codes`: whether the store gets a codebook and item codes (the float32 baseline needs neither).
    init(codes: Bool) throws {
        vectors = ClusteredVectors(dimension: dimension)
        target = try TemporaryStore()
        guard codes else { return }
        let codebook = try trainCodebook(vectors)
        try target.store.write { try $0.putCodebook(codebook) }
        let encoder = ResidualEncoder(codebook: codebook, beamWidth: 1, threads: 2)
        let (c, m) = try encoder.encode(vectors.rows(0..<Self.items), count: Self.items)
        try target.store.write { try $0.putItems(ids: (0..<Self.items).map(UInt64.init), codes: c, magnitudes: m) }
    }

    /// `count` behaviours on random items, timestamps ascending from `start`.
    func behaviours(_ count: Int, from start: Int64) -> [Behavior] {
        var t = start
        return (0..<count).map { _ in
            t += 1 + Int64(rng.next() % 60)
            return Behavior(item: rng.next() % UInt64(Self.items), timestamp: t, action: UInt16(rng.next() % 4), label: 1)
        }
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput],
        warmupIterations: 2,
        scalingFactor: .kilo,
        maxDuration: .seconds(1),
        // Puts grow the store by ~1.5 MB an iteration: bounded to keep the temporary store small.
        maxIterations: 300)

    for threads in [2, 1] {
        Benchmark("items encode \(threads) thread\(threads == 1 ? "" : "s")") { _, s in
            try s.encodeNext()
        } setup: {
            try Encoding(threads: threads, store: false)
        }
    }

    Benchmark("items encode and put") { _, s in
        try s.encodeNext()
        let ids = (s.nextID..<(s.nextID + UInt64(batch))).map { $0 }
        s.nextID += UInt64(batch)
        try s.target!.store.write { try $0.putItems(ids: ids, codes: s.codes, magnitudes: s.magnitudes) }
    } setup: {
        try Encoding(threads: 2, store: true)
    } teardown: {
        TemporaryStore.removeOwn()
    }

    Benchmark("items float32 put") { _, s in
        let ids = (s.nextID..<(s.nextID + UInt64(batch))).map { $0 }
        s.nextID += UInt64(batch)
        try s.target.baselines.putItems(ids: ids, rows: UnsafeBufferPointer(start: s.rows.pointer, count: batch * dimension))
    } setup: {
        try RowPuts()
    } teardown: {
        TemporaryStore.removeOwn()
    }

    // 10 new users × 100 behaviours a transaction; the same 10 histories under new user ids each time.
    Benchmark("behaviours append 100 per new user") { (_, s: Appends) in
        let first = UInt64(s.iteration * 10)
        s.iteration += 1
        try s.target.store.write { txn in
            for (k, h) in s.prepared.enumerated() { try txn.appendBehaviors(h, user: first + UInt64(k)) }
        }
    } setup: {
        let s = try Appends(codes: true)
        s.prepared = (0..<10).map { _ in s.behaviours(100, from: 1_600_000_000) }
        return s
    } teardown: {
        TemporaryStore.removeOwn()
    }

    // 100 users' histories growing by 10 behaviours a transaction (rewrites each open tail segment).
    Benchmark("behaviours append 10 per existing user") { benchmark, s in
        let start = 1_600_000_000 + Int64(s.iteration) * 1_000
        s.iteration += 1
        let batches = (0..<100).map { _ in s.behaviours(10, from: start) }
        benchmark.startMeasurement()
        try s.target.store.write { txn in
            for (u, h) in batches.enumerated() { try txn.appendBehaviors(h, user: UInt64(u)) }
        }
    } setup: {
        try Appends(codes: true)
    } teardown: {
        TemporaryStore.removeOwn()
    }

    // The baseline for appends: the same 10 × 100 behaviours as float32 rows, one blob per user.
    Benchmark("behaviours float32 put 100 per user") { (_, s: Appends) in
        let first = UInt64(s.iteration * 10)
        s.iteration += 1
        try s.target.store.write { txn in
            for k in 0..<10 {
                try s.target.baselines.putHistory(
                    txn, user: first + UInt64(k),
                    rows: UnsafeBufferPointer(start: s.preparedRows!.pointer + k * 100 * dimension, count: 100 * dimension))
            }
        }
    } setup: {
        let s = try Appends(codes: false)
        s.prepared = (0..<10).map { _ in s.behaviours(100, from: 1_600_000_000) }
        let rows = AlignedFloats(count: 10 * 100 * dimension)
        for (k, h) in s.prepared.enumerated() {
            for (r, b) in h.enumerated() {
                s.vectors.fill(rows: Int(b.item)..<(Int(b.item) + 1), into: rows.pointer + (k * 100 + r) * dimension, threads: 1)
            }
        }
        s.preparedRows = rows
        return s
    } teardown: {
        TemporaryStore.removeOwn()
    }
}
