import Foundation
import SheafCodebook
import SheafQuantizer
import SheafRandom
import SheafStore

/// How to build a synthetic store: clustered items, a trained codebook, and users' histories in
/// buckets by length, with float32 baselines for the users that will be measured.
public struct SyntheticStoreConfiguration: Sendable, Codable {
    public struct Bucket: Sendable, Codable {
        /// Behaviours per user.
        public var length: Int
        /// Users stored with this length.
        public var users: Int
        /// How many of them also get float32 baselines and are measured.
        public var measuredUsers: Int
        public init(length: Int, users: Int, measuredUsers: Int) {
            self.length = length
            self.users = users
            self.measuredUsers = measuredUsers
        }
    }
    public var dimension: Int
    public var items: Int
    public var clusters: Int = 1000
    public var levels: Int = 4
    public var codesPerLevel: Int = 256
    public var magnitudeBits: Int = 8
    /// Rows the codebook is trained on (the first ones; rows are i.i.d., so that is a random sample).
    public var trainingRows: Int = 50_000
    public var trainingIterations: Int = 10
    public var buckets: [Bucket]
    public var seed: UInt64 = 1
    public var threads: Int = 2

    public init(dimension: Int, items: Int, buckets: [Bucket]) {
        self.dimension = dimension
        self.items = items
        self.buckets = buckets
    }

    public var magnitudeEncoding: MagnitudeEncoding {
        switch magnitudeBits {
        case 8: .uint8
        case 16: .float16
        case 32: .float32
        default: .none
        }
    }
}

/// What building took: the ingest figures of the report.
public struct SyntheticBuildTimings: Sendable, Codable {
    public var trainSeconds: Double = 0
    public var trainingRows: Int = 0
    /// Time in `ResidualEncoder.encode` only.
    public var encodeSeconds: Double = 0
    /// Time putting the encoded items (LMDB writes and commits).
    public var itemPutSeconds: Double = 0
    public var items: Int = 0
    /// Time in `appendBehaviors` and commits, for all behaviours.
    public var appendSeconds: Double = 0
    public var behaviours: Int = 0
    /// The float32 baseline: putting the measured users' histories as float32 blobs.
    public var rawHistoryPutSeconds: Double = 0
    public var rawHistoryBehaviours: Int = 0
    /// The float32 baseline: putting the referenced items' rows.
    public var rawItemPutSeconds: Double = 0
    public var rawItems: Int = 0
    public var bytesPerItem: Int = 0
}

/// A synthetic store on disk, built by `SyntheticStore.build`, with its measured users per length.
public final class SyntheticStore: @unchecked Sendable {
    public let configuration: SyntheticStoreConfiguration
    public let store: Store
    public let baselines: BaselineTables
    public let vectors: ClusteredVectors
    public private(set) var timings = SyntheticBuildTimings()
    /// Measured users (with baselines), by bucket length.
    public private(set) var measuredUsers: [Int: [UInt64]] = [:]
    /// Items that have float32 baseline rows (sorted).
    public private(set) var rawItemIDs: [UInt64] = []

    /// The id of bucket `b`'s `j`-th user.
    public static func user(bucket b: Int, index j: Int) -> UInt64 { UInt64(b) << 32 | UInt64(j) }

    /// Builds the store in `directory` (which must not hold one). `progress` gets one line per step.
    public init(directory: String, configuration c: SyntheticStoreConfiguration, progress: (String) -> Void = { _ in }) throws {
        configuration = c
        vectors = ClusteredVectors(dimension: c.dimension, clusters: c.clusters, seed: c.seed)
        store = try Store(path: directory, dimension: c.dimension, options: .benchmark)
        baselines = try BaselineTables(store: store)
        try train(progress)
        try loadItems(progress)
        try loadHistories(progress)
    }

    private func train(_ progress: (String) -> Void) throws {
        let c = configuration
        let n = min(c.items, c.trainingRows)
        let sample = vectors.rows(0..<n, threads: c.threads)
        let q = QuantizerConfiguration.benchmarkStore(
            levels: c.levels, codesPerLevel: c.codesPerLevel, magnitudeEncoding: c.magnitudeEncoding,
            iterations: c.trainingIterations, threads: c.threads, seed: c.seed)
        let t0 = monotonicNanoseconds()
        let codebook = try CodebookTrainer(configuration: q).train(rows: sample, dimension: c.dimension)
        timings.trainSeconds = Double(monotonicNanoseconds() - t0) / 1e9
        timings.trainingRows = n
        timings.bytesPerItem = codebook.bytesPerItem
        try store.write { try $0.putCodebook(codebook) }
        progress("codebook: cosine L\(c.levels) K\(c.codesPerLevel) \(c.magnitudeBits)-bit = \(codebook.bytesPerItem) B/item, trained on \(n) rows in \(String(format: "%.1f", timings.trainSeconds)) s")
    }

    private func loadItems(_ progress: (String) -> Void) throws {
        let c = configuration
        let codebook = try store.read { try $0.activeCodebook()! }
        let encoder = ResidualEncoder(codebook: codebook, beamWidth: 1, threads: c.threads)
        let chunk = max(1, min(16_384, (64 << 20) / (c.dimension * 4)))
        let buffer = AlignedFloats(count: chunk * c.dimension)
        var start = 0
        var lastReport = monotonicNanoseconds()
        while start < c.items {
            let n = min(chunk, c.items - start)
            vectors.fill(rows: start..<(start + n), into: buffer.pointer, threads: c.threads)
            var codes = [UInt32](repeating: 0, count: n * c.levels)
            var mags = [Float](repeating: 0, count: n * c.levels)
            let t0 = monotonicNanoseconds()
            try codes.withUnsafeMutableBufferPointer { cp in
                try mags.withUnsafeMutableBufferPointer { mp in
                    try encoder.encode(
                        UnsafeBufferPointer(start: buffer.pointer, count: n * c.dimension), count: n,
                        codes: cp.baseAddress!, magnitudes: mp.baseAddress!)
                }
            }
            let t1 = monotonicNanoseconds()
            let ids = (start..<(start + n)).map(UInt64.init)
            try store.write { try $0.putItems(ids: ids, codes: codes, magnitudes: mags) }
            let t2 = monotonicNanoseconds()
            timings.encodeSeconds += Double(t1 - t0) / 1e9
            timings.itemPutSeconds += Double(t2 - t1) / 1e9
            start += n
            if t2 - lastReport > 5_000_000_000 || start == c.items {
                lastReport = t2
                progress("items: \(start)/\(c.items) encoded and stored (\(Int(Double(start) / (timings.encodeSeconds + timings.itemPutSeconds))) items/s)")
            }
        }
        timings.items = c.items
    }

    /// The behaviours of bucket `b`'s `j`-th user: most items from the user's few interest clusters,
    /// the rest uniform; timestamps ascending with second-to-hour gaps and rare long breaks.
    func behaviours(bucket b: Int, index j: Int, length: Int, byCluster: [[UInt32]]) -> [Behavior] {
        var rng = SplitMix64(seed: configuration.seed &+ Self.user(bucket: b, index: j) &* 0x2545_F491_4F6C_DD1D)
        let interests = (0..<8).map { _ in Int(rng.next() % UInt64(byCluster.count)) }.filter { !byCluster[$0].isEmpty }
        var t: Int64 = 1_600_000_000 + Int64(rng.next() % 10_000_000)
        var out: [Behavior] = []
        out.reserveCapacity(length)
        let items = UInt64(configuration.items)
        for _ in 0..<length {
            t += rng.next() % 20 == 0 ? Int64(rng.next() % 1_000_000) : Int64(1 + rng.next() % 3600)
            let item: UInt64
            if !interests.isEmpty, rng.next() % 10 < 8 {
                let list = byCluster[interests[Int(rng.next() % UInt64(interests.count))]]
                item = UInt64(list[Int(rng.next() % UInt64(list.count))])
            } else {
                item = rng.next() % items
            }
            out.append(Behavior(item: item, timestamp: t, action: UInt16(rng.next() % 4), label: 1))
        }
        return out
    }

    private func loadHistories(_ progress: (String) -> Void) throws {
        let c = configuration
        var byCluster = [[UInt32]](repeating: [], count: c.clusters)
        for i in 0..<c.items { byCluster[vectors.cluster(ofRow: i)].append(UInt32(i)) }
        var referenced = Set<UInt64>()
        var measured: [(UInt64, [Behavior])] = []
        var lastReport = monotonicNanoseconds()
        let totalUsers = c.buckets.reduce(0) { $0 + $1.users }
        var doneUsers = 0
        for (b, bucket) in c.buckets.enumerated() {
            let perTransaction = max(1, 100_000 / max(1, bucket.length))
            var j = 0
            while j < bucket.users {
                let end = min(bucket.users, j + perTransaction)
                let batch = (j..<end).map { behaviours(bucket: b, index: $0, length: bucket.length, byCluster: byCluster) }
                let t0 = monotonicNanoseconds()
                try store.write { txn in
                    for (k, h) in batch.enumerated() { try txn.appendBehaviors(h, user: Self.user(bucket: b, index: j + k)) }
                }
                timings.appendSeconds += Double(monotonicNanoseconds() - t0) / 1e9
                timings.behaviours += batch.count * bucket.length
                for (k, h) in batch.enumerated() where j + k < bucket.measuredUsers {
                    measured.append((Self.user(bucket: b, index: j + k), h))
                    for x in h { referenced.insert(x.item) }
                    measuredUsers[bucket.length, default: []].append(Self.user(bucket: b, index: j + k))
                }
                doneUsers += batch.count
                j = end
                let now = monotonicNanoseconds()
                if now - lastReport > 5_000_000_000 || doneUsers == totalUsers {
                    lastReport = now
                    progress("histories: \(doneUsers)/\(totalUsers) users, \(timings.behaviours) behaviours (\(Int(Double(timings.behaviours) / timings.appendSeconds))/s)")
                }
            }
        }

        // Baselines: float32 rows of every item the measured users reference, then their histories.
        rawItemIDs = referenced.sorted()
        let D = c.dimension
        let chunk = max(1, (32 << 20) / (D * 4))
        let rows = AlignedFloats(count: chunk * D)
        var k = 0
        while k < rawItemIDs.count {
            let ids = Array(rawItemIDs[k..<min(rawItemIDs.count, k + chunk)])
            for (r, id) in ids.enumerated() { vectors.fill(rows: Int(id)..<(Int(id) + 1), into: rows.pointer + r * D, threads: 1) }
            let t0 = monotonicNanoseconds()
            try baselines.putItems(ids: ids, rows: UnsafeBufferPointer(start: rows.pointer, count: ids.count * D))
            timings.rawItemPutSeconds += Double(monotonicNanoseconds() - t0) / 1e9
            k += ids.count
        }
        timings.rawItems = rawItemIDs.count
        for (user, h) in measured {
            let blob = AlignedFloats(count: h.count * D)
            // Rows in the stored (time) order; behaviours are generated in that order already.
            for (r, x) in h.enumerated() { vectors.fill(rows: Int(x.item)..<(Int(x.item) + 1), into: blob.pointer + r * D, threads: 1) }
            let t0 = monotonicNanoseconds()
            try store.write { txn in try baselines.putHistory(txn, user: user, rows: UnsafeBufferPointer(blob.buffer)) }
            timings.rawHistoryPutSeconds += Double(monotonicNanoseconds() - t0) / 1e9
            timings.rawHistoryBehaviours += h.count
        }
        progress("baselines: \(rawItemIDs.count) float32 item rows, \(measured.count) float32 histories")
    }
}
