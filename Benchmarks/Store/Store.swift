// Store: reads from an LMDB-backed Sheaf store, beside float32 baselines kept in the same LMDB
// environment (_SheafBench.BaselineTables), on one synthetic store (_SheafBench.SyntheticStore):
// 50,000 clustered items at D = 384 (codebook cosine L4 K256, 8-bit magnitudes) and users with
// histories of 100, 1,000 and 10,000 behaviours.
//
// Names, for --filter (a regular expression that must match the whole name):
//   items sheaf record 1000 per txn    random item-record gets (packed code, copied out), 1000 per read txn
//   items sheaf decode 1000 per txn    the same gets, decoded to float32 (decodeItems)
//   items float32 row 1000 per txn     the baseline: random float32 row gets + copy
//   ... 1 per txn                      the same with one read transaction per get
//     (throughput is gets per second: each iteration makes 1,000 gets, the scaling factor)
//   history 1000 sheaf decode          read txn + history segments + decode into a reused buffer
//   history 1000 sheaf decode c16      the same with float16 centroids (DecodeOptions.centroidPrecision)
//   history 1000 sheaf segments        read txn + history segments only (no decode)
//   history 1000 float32 rows          read txn + history item ids + one float32 row get per behaviour
//   history 1000 float32 blob          read txn + one get of the whole history as float32 rows
//     (one history per iteration, a different measured user each time; wall clock = latency)
//   history 1000 projected H64         read txn + history segments + projected decode to x · W + b
//                                      (tables C_l · W built once, in setup), n × 64 written
//   history 1000 decode+sgemm H64      read txn + decode to n × D + sgemm (and bias) to n × 64
//   history 1000 float32 rows+sgemm H64  one float32 row get per behaviour + sgemm
//   history 1000 float32 blob+sgemm H64  one get of the float32 history + sgemm
//     (the same at H = 128 and 256; histories of 1,000 behaviours only)
//
// package-benchmark runs every benchmark in a process of its own, so the store is built once per
// `swift package benchmark` run, by the first Store benchmark to run, in a temporary directory named
// after that run's BenchmarkTool process; later benchmarks of the run open it. It is deleted when
// that process exits (a small detached `sh` waits for it), and any left by runs that died is deleted
// by the next run. Set SHEAF_BENCH_STORE=DIR to build the store there once and keep it across runs.
import Benchmark
import Foundation
import _SheafBench
import SheafCodebook
import SheafRandom
import SheafStore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - The shared synthetic store

let storeConfiguration: SyntheticStoreConfiguration = {
    var c = SyntheticStoreConfiguration(
        dimension: 384, items: 50_000,
        buckets: [
            .init(length: 100, users: 300, measuredUsers: 50),
            .init(length: 1_000, users: 60, measuredUsers: 20),
            .init(length: 10_000, users: 6, measuredUsers: 6),
        ])
    c.trainingRows = 20_000
    c.trainingIterations = 8
    return c
}()

/// Bump when the store built here changes, so a kept SHEAF_BENCH_STORE is rebuilt.
let fixtureVersion = 1

/// Everything the Store benchmarks read.
final class StoreFixture: @unchecked Sendable {
    let store: Store
    let baselines: BaselineTables
    /// Users with float32 baselines, by history length.
    let measuredUsers: [Int: [UInt64]]
    /// Items with float32 rows (all referenced by measured users), sorted.
    let rawItemIDs: [UInt64]

    init(store: Store, baselines: BaselineTables, measuredUsers: [Int: [UInt64]], rawItemIDs: [UInt64]) {
        self.store = store
        self.baselines = baselines
        self.measuredUsers = measuredUsers
        self.rawItemIDs = rawItemIDs
    }

    var dimension: Int { store.dimension }
}

/// Written into the store's directory once it is complete: what `SyntheticStore` knew after building.
struct FixtureManifest: Codable {
    var version: Int
    var dimension: Int
    var items: Int
    var measuredUsers: [Int: [UInt64]]
    var rawItemIDs: [UInt64]
}

enum SharedStore {
    static let prefix = "sheaf-benchmarks-store-"
    static let manifestName = "sheaf-benchmarks.json"
    private static let lock = NSLock()
    nonisolated(unsafe) private static var cached: StoreFixture?
    /// The directory to delete when this process exits (when it owns the store: a standalone run).
    nonisolated(unsafe) static var removeAtExit: String?

    static let directories = ProcessDirectories(prefix: prefix)
    /// As SyntheticStore builds it.
    static let storeOptions = StoreOptions.benchmark

    /// The store, built or opened on first use in this process.
    static func fixture() throws -> StoreFixture {
        lock.lock()
        defer { lock.unlock() }
        if let cached { return cached }
        let f = try openOrBuild()
        cached = f
        return f
    }

    /// Under `swift package benchmark` the benchmark executable is started once per benchmark by
    /// BenchmarkTool, with --input-fd/--output-fd; run by hand it runs all its benchmarks itself.
    static var startedByBenchmarkTool: Bool { CommandLine.arguments.contains("--input-fd") }

    private static func openOrBuild() throws -> StoreFixture {
        let fm = FileManager.default
        let directory: String
        var keep = false
        if let d = ProcessInfo.processInfo.environment["SHEAF_BENCH_STORE"], !d.isEmpty {
            directory = d
            keep = true
        } else {
            directories.removeStale()
            // One store per run: BenchmarkTool is the parent of every benchmark process of a run.
            directory = directories.path(owner: startedByBenchmarkTool ? getppid() : getpid())
        }
        let manifestPath = directory + "/" + manifestName
        if let data = fm.contents(atPath: manifestPath),
            let manifest = try? JSONDecoder().decode(FixtureManifest.self, from: data),
            manifest.version == fixtureVersion, manifest.dimension == storeConfiguration.dimension,
            manifest.items == storeConfiguration.items
        {
            let store = try Store(path: directory, dimension: storeConfiguration.dimension, options: storeOptions)
            return StoreFixture(
                store: store, baselines: try BaselineTables(store: store), measuredUsers: manifest.measuredUsers,
                rawItemIDs: manifest.rawItemIDs)
        }

        // Missing or incomplete (a build that died half way): build it afresh.
        try? fm.removeItem(atPath: directory)
        if !keep {
            if startedByBenchmarkTool {
                removeWhenProcessExits(directory: directory, pid: getppid())
            } else {
                removeAtExit = directory
                atexit { if let d = SharedStore.removeAtExit { try? FileManager.default.removeItem(atPath: d) } }
            }
        }
        let started = monotonicNanoseconds()
        log("building the synthetic store in \(directory)")
        let s = try SyntheticStore(directory: directory, configuration: storeConfiguration) { log($0) }
        let manifest = FixtureManifest(
            version: fixtureVersion, dimension: storeConfiguration.dimension, items: storeConfiguration.items,
            measuredUsers: s.measuredUsers, rawItemIDs: s.rawItemIDs)
        try JSONEncoder().encode(manifest).write(to: URL(fileURLWithPath: manifestPath))
        log("built in \(String(format: "%.1f", Double(monotonicNanoseconds() - started) / 1e9)) s")
        return StoreFixture(store: s.store, baselines: s.baselines, measuredUsers: s.measuredUsers, rawItemIDs: s.rawItemIDs)
    }

    /// Starts a detached `sh` that deletes `directory` once process `pid` has exited. Its standard
    /// streams go to /dev/null and it inherits no other descriptor (so BenchmarkTool's pipes to this
    /// process see end-of-file when this process exits); it ignores SIGINT and SIGHUP so that an
    /// interrupted run is still cleaned up.
    static func removeWhenProcessExits(directory: String, pid: pid_t) {
        let script = "trap '' INT HUP; while kill -0 \(pid) 2>/dev/null; do sleep 1; done; rm -rf -- \"$1\""
        let arguments = ["/bin/sh", "-c", script, "sheaf-benchmarks-cleanup", directory]
        let environment = ["PATH=/usr/bin:/bin"]  // and no LD_PRELOAD of the benchmark interposers
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        // Every other descriptor is marked close-on-exec (this process keeps them; `sh` does not get them).
        let open = (try? FileManager.default.contentsOfDirectory(atPath: "/dev/fd").compactMap { Int32($0) })
            ?? Array(3..<1024)
        for fd in open where fd > 2 {
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var child: pid_t = 0
        let status = posix_spawn(&child, "/bin/sh", &actions, nil, argv, envp)
        if status != 0 { log("could not start the clean-up process (\(status)); \(directory) stays behind") }
    }
}

func log(_ line: String) {
    FileHandle.standardError.write(Data("Store: \(line)\n".utf8))
}

enum StoreBenchmarkError: Error, CustomStringConvertible {
    case check(String)
    var description: String {
        switch self {
        case let .check(s): s
        }
    }
}

// MARK: - Item gets

/// Random item ids (all with float32 rows), walked 1,000 at a time, and an output buffer.
final class ItemGets: @unchecked Sendable {
    static let batch = 1_000
    let fixture: StoreFixture
    let order: [UInt64]
    var next = 0
    let output: AlignedFloats
    var packed = [UInt8](repeating: 0, count: 256)

    init(_ fixture: StoreFixture) throws {
        self.fixture = fixture
        var rng = SplitMix64(seed: 13)
        let ids = fixture.rawItemIDs
        guard !ids.isEmpty else { throw StoreBenchmarkError.check("the store has no float32 item rows") }
        order = (0..<(100 * Self.batch)).map { _ in ids[Int(rng.next() % UInt64(ids.count))] }
        output = AlignedFloats(count: Self.batch * fixture.dimension)
    }

    /// The next 1,000 ids.
    func nextBatch() -> ArraySlice<UInt64> {
        let s = order[next..<(next + Self.batch)]
        next = (next + Self.batch) % order.count
        return s
    }

    /// Copies one item's packed record out of the map (the bytes a reader would keep).
    @inline(__always)
    func getRecord(_ txn: ReadTransaction, _ id: UInt64) throws {
        let found: Void? = try txn.withPackedItem(id) { _, bytes in
            packed.withUnsafeMutableBytes { $0.copyMemory(from: bytes) }
        }
        guard found != nil else { throw StoreBenchmarkError.check("item \(id) has no code") }
    }
}

// MARK: - Histories

/// The measured users of one length, walked round-robin, and reused output buffers.
final class HistoryReads: @unchecked Sendable {
    let fixture: StoreFixture
    let length: Int
    let users: [UInt64]
    var next = 0
    var decoded: [Float] = []
    let raw: AlignedFloats

    init(_ fixture: StoreFixture, length: Int) throws {
        self.fixture = fixture
        self.length = length
        var rng = SplitMix64(seed: 11)
        let measured = fixture.measuredUsers[length] ?? []
        guard !measured.isEmpty else { throw StoreBenchmarkError.check("no measured users with \(length) behaviours") }
        // A random visiting order (each user several times), the same in every process.
        users = (0..<max(64, measured.count)).map { _ in measured[Int(rng.next() % UInt64(measured.count))] }
        let D = fixture.dimension
        decoded.reserveCapacity(length * D)
        raw = AlignedFloats(count: length * D)
        try check()
    }

    func nextUser() -> UInt64 {
        let u = users[next]
        next = (next + 1) % users.count
        return u
    }

    /// The paths read the same rows: Sheaf's decoded history against the float32 blob of one user.
    func check() throws {
        let D = fixture.dimension
        let user = users[0]
        try fixture.store.read { txn in
            _ = try txn.decodeHistory(user: user, into: &decoded)
            let n = try fixture.baselines.readHistory(txn, user: user, into: raw.pointer, capacity: raw.count)
            guard n == length, decoded.count == n * D else {
                throw StoreBenchmarkError.check("user \(user): \(decoded.count / D) decoded rows, \(n) float32 rows, expected \(length)")
            }
            let cosines = decoded.withUnsafeBufferPointer { rowCosineSum($0.baseAddress!, raw.pointer, rows: n, dimension: D) }
            guard cosines / Double(n) > 0.5 else {
                throw StoreBenchmarkError.check("user \(user): decoded rows do not match the float32 rows (mean cosine \(cosines / Double(n)))")
            }
        }
        decoded.removeAll(keepingCapacity: true)
    }
}

// MARK: - Histories into a model's first layer

/// `HistoryReads` plus a random projection D → H (normal, std 1/√D, with a bias) whose tables are
/// built in setup, and its n × H output.
final class ProjectedReads: @unchecked Sendable {
    let reads: HistoryReads
    let projection: LinearProjection
    var projected: [Float] = []
    let output: AlignedFloats

    init(_ fixture: StoreFixture, length: Int, width: Int) throws {
        reads = try HistoryReads(fixture, length: length)
        let D = fixture.dimension
        var rng = SplitMix64(seed: 17)
        let scale = 1 / Double(D).squareRoot()
        projection = try LinearProjection(
            weight: (0..<(D * width)).map { _ in Float(rng.normal() * scale) }, inputDimension: D, outputDimension: width,
            bias: (0..<width).map { _ in Float(rng.normal() * 0.1) })
        output = AlignedFloats(count: length * width)
        projected.reserveCapacity(length * width)
        // Build the tables now, and check the two paths agree on one user.
        let user = reads.users[0]
        try fixture.store.read { txn in
            _ = try txn.decodeHistory(user: user, through: projection, into: &projected)
            _ = try txn.decodeHistory(user: user, into: &reads.decoded)
        }
        reads.decoded.withUnsafeBufferPointer { projection.apply(to: $0.baseAddress!, count: length, into: output.pointer) }
        var worst: Float = 0, largest: Float = 0
        for i in 0..<(length * width) {
            worst = max(worst, abs(projected[i] - output.pointer[i]))
            largest = max(largest, abs(output.pointer[i]))
        }
        guard worst <= 1e-4 * largest else {
            throw StoreBenchmarkError.check("projected decode differs from decode + sgemm by \(worst) (largest value \(largest))")
        }
    }
}

// MARK: - Benchmarks

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput],
        warmupIterations: 5,
        maxDuration: .seconds(1),
        maxIterations: 100_000)

    // Item gets: every iteration makes 1,000 random gets (the scaling factor), either in one read
    // transaction or in one transaction each.
    let gets = Benchmark.Configuration(scalingFactor: .kilo)
    for perTransaction in [1_000, 1] {
        let suffix = "\(perTransaction) per txn"

        Benchmark("items sheaf record \(suffix)", configuration: gets) { _, s in
            let ids = s.nextBatch()
            if perTransaction == 1 {
                for id in ids { try s.fixture.store.read { txn in try s.getRecord(txn, id) } }
            } else {
                try s.fixture.store.read { txn in for id in ids { try s.getRecord(txn, id) } }
            }
        } setup: {
            try ItemGets(try SharedStore.fixture())
        }

        Benchmark("items sheaf decode \(suffix)", configuration: gets) { _, s in
            let ids = s.nextBatch()
            if perTransaction == 1 {
                let D = s.fixture.dimension
                for (i, id) in ids.enumerated() {
                    let row = UnsafeMutableBufferPointer(start: s.output.pointer + i * D, count: D)
                    try s.fixture.store.read { txn in _ = try txn.decodeItems(CollectionOfOne(id), into: row) }
                }
            } else {
                try s.fixture.store.read { txn in _ = try txn.decodeItems(ids, into: s.output.buffer) }
            }
        } setup: {
            try ItemGets(try SharedStore.fixture())
        }

        Benchmark("items float32 row \(suffix)", configuration: gets) { _, s in
            let ids = s.nextBatch()
            if perTransaction == 1 {
                let D = s.fixture.dimension
                for (i, id) in ids.enumerated() {
                    try s.fixture.store.read { txn in
                        guard try s.fixture.baselines.readItems(txn, ids: CollectionOfOne(id), into: s.output.pointer + i * D) else {
                            throw StoreBenchmarkError.check("item \(id) has no float32 row")
                        }
                    }
                }
            } else {
                try s.fixture.store.read { txn in
                    guard try s.fixture.baselines.readItems(txn, ids: ids, into: s.output.pointer) else {
                        throw StoreBenchmarkError.check("an item has no float32 row")
                    }
                }
            }
        } setup: {
            try ItemGets(try SharedStore.fixture())
        }
    }

    // Histories: one whole history per iteration.
    let halfPrecision = DecodeOptions(centroidPrecision: .float16)
    for length in storeConfiguration.buckets.map(\.length) {
        Benchmark("history \(length) sheaf decode") { _, s in
            let user = s.nextUser()
            try s.fixture.store.read { txn in
                guard try txn.decodeHistory(user: user, into: &s.decoded) != nil else {
                    throw StoreBenchmarkError.check("user \(user) has no history")
                }
            }
        } setup: {
            try HistoryReads(try SharedStore.fixture(), length: length)
        }

        Benchmark("history \(length) sheaf decode c16") { _, s in
            let user = s.nextUser()
            try s.fixture.store.read { txn in
                guard try txn.decodeHistory(user: user, into: &s.decoded, options: halfPrecision) != nil else {
                    throw StoreBenchmarkError.check("user \(user) has no history")
                }
            }
        } setup: {
            try HistoryReads(try SharedStore.fixture(), length: length)
        }

        Benchmark("history \(length) sheaf segments") { _, s in
            let user = s.nextUser()
            try s.fixture.store.read { txn in
                guard let h = try txn.history(user: user) else { throw StoreBenchmarkError.check("user \(user) has no history") }
                Benchmark.blackHole(h)
            }
        } setup: {
            try HistoryReads(try SharedStore.fixture(), length: length)
        }

        Benchmark("history \(length) float32 rows") { _, s in
            let user = s.nextUser()
            try s.fixture.store.read { txn in
                guard let h = try txn.history(user: user) else { throw StoreBenchmarkError.check("user \(user) has no history") }
                guard try s.fixture.baselines.readItems(txn, ids: h.itemIDs, into: s.raw.pointer) else {
                    throw StoreBenchmarkError.check("an item of user \(user) has no float32 row")
                }
            }
        } setup: {
            try HistoryReads(try SharedStore.fixture(), length: length)
        }

        Benchmark("history \(length) float32 blob") { _, s in
            let user = s.nextUser()
            try s.fixture.store.read { txn in
                guard try s.fixture.baselines.readHistory(txn, user: user, into: s.raw.pointer, capacity: s.raw.count) == length else {
                    throw StoreBenchmarkError.check("user \(user) has no float32 history of \(length) rows")
                }
            }
        } setup: {
            try HistoryReads(try SharedStore.fixture(), length: length)
        }
    }

    // Histories of 1,000 behaviours into x · W + b, one history per iteration.
    for width in [64, 128, 256] {
        let length = 1_000
        Benchmark("history \(length) projected H\(width)") { _, s in
            let user = s.reads.nextUser()
            try s.reads.fixture.store.read { txn in
                guard try txn.decodeHistory(user: user, through: s.projection, into: &s.projected) != nil else {
                    throw StoreBenchmarkError.check("user \(user) has no history")
                }
            }
        } setup: {
            try ProjectedReads(try SharedStore.fixture(), length: length, width: width)
        }

        Benchmark("history \(length) decode+sgemm H\(width)") { _, s in
            let user = s.reads.nextUser()
            try s.reads.fixture.store.read { txn in
                guard try txn.decodeHistory(user: user, into: &s.reads.decoded) != nil else {
                    throw StoreBenchmarkError.check("user \(user) has no history")
                }
            }
            s.reads.decoded.withUnsafeBufferPointer { s.projection.apply(to: $0.baseAddress!, count: length, into: s.output.pointer) }
        } setup: {
            try ProjectedReads(try SharedStore.fixture(), length: length, width: width)
        }

        Benchmark("history \(length) float32 rows+sgemm H\(width)") { _, s in
            let user = s.reads.nextUser()
            try s.reads.fixture.store.read { txn in
                guard let h = try txn.history(user: user) else { throw StoreBenchmarkError.check("user \(user) has no history") }
                guard try s.reads.fixture.baselines.readItems(txn, ids: h.itemIDs, into: s.reads.raw.pointer) else {
                    throw StoreBenchmarkError.check("an item of user \(user) has no float32 row")
                }
            }
            s.projection.apply(to: s.reads.raw.pointer, count: length, into: s.output.pointer)
        } setup: {
            try ProjectedReads(try SharedStore.fixture(), length: length, width: width)
        }

        Benchmark("history \(length) float32 blob+sgemm H\(width)") { _, s in
            let user = s.reads.nextUser()
            try s.reads.fixture.store.read { txn in
                guard try s.reads.fixture.baselines.readHistory(txn, user: user, into: s.reads.raw.pointer, capacity: s.reads.raw.count) == length else {
                    throw StoreBenchmarkError.check("user \(user) has no float32 history of \(length) rows")
                }
            }
            s.projection.apply(to: s.reads.raw.pointer, count: length, into: s.output.pointer)
        } setup: {
            try ProjectedReads(try SharedStore.fixture(), length: length, width: width)
        }
    }
}
