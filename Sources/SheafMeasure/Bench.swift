// sheaf-measure bench: the measurements behind tools/bench-report. Each suite writes one JSON file
// of rows, every row a Sheaf figure beside a baseline measured in the same run:
//
//   sheaf-measure bench decode    --out F [--quick]
//   sheaf-measure bench synthetic --out F --dim D --items N --buckets LEN:USERS:MEASURED,... [--keep DIR]
//                                 [--probe F] [--name NAME] [--training-rows N] [--requests N] [--codebook L:K:BITS]
//   sheaf-measure bench real      --out F --embeddings E.npy --ids I.npy --behaviors B.inter [--format recbole]
//                                 [--keep DIR] [--probe F] [--requests N] [--name NAME]
//   sheaf-measure bench npy-load  --out F --dim D --rows N [--name NAME]
//   sheaf-measure bench stand-in  --dir DIR [--items N] [--users N]   (quick mode's tiny MovieLens-shaped files)
//   sheaf-measure bench write-npy --out F.npy --dim D --rows N         (synthetic clustered rows, for faiss)
//
// Progress lines go to stderr.
import Foundation
import _SheafBench
import SheafCLI
import SheafCodebook
import SheafFormats
import SheafQuantizer
import SheafStore

/// One line of the report: Sheaf's figure, the baseline's, and how many times better Sheaf is.
struct ReportRow: Codable {
    var section: String
    /// Stable id, e.g. "decode/stream/D384/K256/L3/m8" (goals look rows up by it).
    var key: String
    var label: String
    var unit: String
    var sheaf: Double
    var baselineName: String
    var baseline: Double
    /// "higher" or "lower": which way is better for this unit.
    var better: String
    /// Sheaf's advantage: sheaf / baseline when higher is better, baseline / sheaf when lower is.
    var ratio: Double
    var params: [String: String]

    init(section: String, key: String, label: String, unit: String, sheaf: Double, baselineName: String, baseline: Double,
         better: String, params: [String: String] = [:]) {
        self.section = section
        self.key = key
        self.label = label
        self.unit = unit
        self.sheaf = sheaf
        self.baselineName = baselineName
        self.baseline = baseline
        self.better = better
        ratio = better == "higher" ? sheaf / baseline : baseline / sheaf
        self.params = params
    }
}

struct SuiteResult: Codable {
    var suite: String
    var dataset: String
    var rows: [ReportRow]
    var notes: [String]
    var details: [String: String]
}

struct BenchArguments {
    var values: [String: String] = [:]
    var flags: Set<String> = []

    init(_ args: [String], flags known: Set<String>) {
        var i = 0
        while i < args.count {
            let a = args[i]
            guard a.hasPrefix("--") else { fail("unexpected argument \(a)") }
            let name = String(a.dropFirst(2))
            if known.contains(name) {
                flags.insert(name)
                i += 1
            } else {
                guard i + 1 < args.count else { fail("\(a) needs a value") }
                values[name] = args[i + 1]
                i += 2
            }
        }
    }

    func string(_ name: String) -> String? { values[name] }
    func required(_ name: String) -> String {
        guard let v = values[name] else { fail("--\(name) is required") }
        return v
    }
    func int(_ name: String, _ fallback: Int) -> Int {
        guard let s = values[name] else { return fallback }
        guard let v = Int(s) else { fail("--\(name) needs an integer") }
        return v
    }
    func has(_ flag: String) -> Bool { flags.contains(flag) }
}

func fail(_ message: String) -> Never {
    log("sheaf-measure bench: \(message)")
    exit(2)
}

func writeJSON<T: Encodable>(_ value: T, to path: String) throws {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    try e.encode(value).write(to: URL(fileURLWithPath: path))
}

func bench(_ args: [String]) throws {
    guard let suite = args.first else { fail("which suite? decode, synthetic, real, npy-load or stand-in") }
    let rest = Array(args.dropFirst())
    switch suite {
    case "decode": try benchDecode(BenchArguments(rest, flags: ["quick"]))
    case "synthetic": try benchSynthetic(BenchArguments(rest, flags: []))
    case "real": try benchReal(BenchArguments(rest, flags: []))
    case "npy-load": try benchNPYLoad(BenchArguments(rest, flags: []))
    case "appends": try benchAppends(BenchArguments(rest, flags: ["durable"]))
    case "stand-in": try writeStandIn(BenchArguments(rest, flags: []))
    case "write-npy": try writeSyntheticNPY(BenchArguments(rest, flags: []))
    default: fail("unknown suite \(suite)")
    }
}

// MARK: - Decode

func benchDecode(_ a: BenchArguments) throws {
    let out = a.required("out")
    let quick = a.has("quick")
    let cacheRows = 256
    let streamRows = quick ? 2_000 : 100_000
    let grid: [DecodeConfiguration] =
        quick
        ? DecodeConfiguration.grid(dimensions: [64], codes: [256], levels: [2, 3], magnitudeBits: [8, 32], rows: 1)
        : DecodeConfiguration.grid(rows: 1)
    let minimumSeconds = quick ? 0.01 : 0.25
    var rows: [ReportRow] = []
    var worstError: Float = 0
    for base in grid {
        for (mode, n) in [("cache", cacheRows), ("stream", streamRows)] {
            var c = base
            c.rows = n
            let w = try DecodeWorkload(c)
            let streaming = mode == "stream"
            // The half table only changes what the centroid reads cost, which does not depend on how
            // magnitudes are stored, so it is measured beside the 8-bit configurations only.
            let precisions: [CentroidPrecision] = c.magnitudeBits == 8 ? [.float32, .float16] : [.float32]
            for precision in precisions {
                worstError = max(worstError, w.maximumErrorAgainstReference(precision: precision))
                // Interleave: decode, copy, decode, copy... best of each.
                var bestDecode = Double.infinity, bestCopy = Double.infinity
                for _ in 0..<3 {
                    bestDecode = min(bestDecode, bestSeconds(minimumRuns: 2, minimumSeconds: minimumSeconds / 3) { w.decode(streaming: streaming, precision: precision) })
                    bestCopy = min(bestCopy, bestSeconds(minimumRuns: 2, minimumSeconds: minimumSeconds / 3) { w.copy() })
                }
                let gb = Double(w.outputBytes) / 1e9
                let half = precision == .float16
                let tableMiB = Double(c.levels * c.codesPerLevel * c.dimension * (half ? 2 : 4)) / 1_048_576
                rows.append(
                    ReportRow(
                        section: "decode", key: "decode/\(mode)/D\(c.dimension)/K\(c.codesPerLevel)/L\(c.levels)/m\(c.magnitudeBits)" + (half ? "/c16" : ""),
                        label: "\(mode == "cache" ? "cache-resident, 256 items" : "streaming, \(n) items") D=\(c.dimension) K=\(c.codesPerLevel) L=\(c.levels) \(c.magnitudeBits)-bit\(half ? ", float16 centroids" : "")",
                        unit: "GB/s", sheaf: gb / bestDecode, baselineName: "memcpy", baseline: gb / bestCopy, better: "higher",
                        params: [
                            "mode": mode, "dimension": "\(c.dimension)", "codes": "\(c.codesPerLevel)", "levels": "\(c.levels)",
                            "magnitude_bits": "\(c.magnitudeBits)", "rows": "\(n)", "bytes_per_item": "\(w.codebook.bytesPerItem)",
                            "centroids": precision.rawValue, "codebook_mib": String(format: "%.1f", tableMiB),
                        ]))
                log("decode \(c) \(precision): \(String(format: "%.2f", gb / bestDecode)) GB/s, memcpy \(String(format: "%.2f", gb / bestCopy)) GB/s")
            }
        }
    }
    try writeJSON(
        SuiteResult(
            suite: "decode", dataset: "random codes and codebooks (speed does not depend on code quality)", rows: rows,
            notes: ["single thread; streaming rows use non-temporal stores; largest |kernel − scalar reference| \(worstError)"],
            details: ["isa": Codebook.decodeInstructionSet, "quick": "\(quick)"]),
        to: out)
}

// MARK: - Store (shared by synthetic and real)

func storeRows(
    section: String, dataset: String, latency: HistoryLatency, bucket: String, dimension: Int
) -> [ReportRow] {
    let p = ["users": "\(latency.users)", "requests": "\(latency.requests)", "mean_length": String(format: "%.0f", latency.meanLength), "dimension": "\(dimension)"]
    let k = "store/\(dataset)/history/\(bucket)"
    let what = "history of \(bucket == "all" ? String(format: "%.0f (mean)", latency.meanLength) : bucket) behaviours, D=\(dimension)"
    return [
        ReportRow(section: section, key: k + "/p50", label: "fetch + decode p50, \(what)", unit: "µs", sheaf: latency.sheaf.p50Microseconds,
                  baselineName: "float32 rows, one get per behaviour", baseline: latency.rawRows.p50Microseconds, better: "lower", params: p),
        ReportRow(section: section, key: k + "/p99", label: "fetch + decode p99, \(what)", unit: "µs", sheaf: latency.sheaf.p99Microseconds,
                  baselineName: "float32 rows, one get per behaviour", baseline: latency.rawRows.p99Microseconds, better: "lower", params: p),
        ReportRow(section: section, key: k + "/blob-p50", label: "fetch + decode p50, \(what)", unit: "µs", sheaf: latency.sheaf.p50Microseconds,
                  baselineName: "float32 history blob, one get", baseline: latency.rawBlob.p50Microseconds, better: "lower", params: p),
        ReportRow(section: section, key: k + "/c16-p50", label: "fetch + decode p50, float16 centroids, \(what)", unit: "µs",
                  sheaf: latency.sheafHalf.p50Microseconds, baselineName: "float32 rows, one get per behaviour",
                  baseline: latency.rawRows.p50Microseconds, better: "lower", params: p),
        ReportRow(section: section, key: k + "/c16-p99", label: "fetch + decode p99, float16 centroids, \(what)", unit: "µs",
                  sheaf: latency.sheafHalf.p99Microseconds, baselineName: "float32 rows, one get per behaviour",
                  baseline: latency.rawRows.p99Microseconds, better: "lower", params: p),
        ReportRow(section: section, key: k + "/fetch-only-p50", label: "fetch only (segments, no decode) p50, \(what)", unit: "µs",
                  sheaf: latency.sheafSegmentsOnly.p50Microseconds, baselineName: "float32 rows, one get per behaviour",
                  baseline: latency.rawRows.p50Microseconds, better: "lower", params: p),
        ReportRow(section: section, key: k + "/memcpy-p50", label: "fetch + decode p50, \(what)", unit: "µs", sheaf: latency.sheaf.p50Microseconds,
                  baselineName: "memcpy of the output bytes", baseline: latency.memcpy.p50Microseconds, better: "lower", params: p),
        ReportRow(section: section, key: k + "/memset-p50", label: "fetch + decode p50, \(what)", unit: "µs", sheaf: latency.sheaf.p50Microseconds,
                  baselineName: "memset of the output bytes (the floor for any decoder writing float32)", baseline: latency.memset.p50Microseconds,
                  better: "lower", params: p),
        ReportRow(section: "bandwidth", key: "bytes/\(dataset)/\(bucket)", label: "bytes fetched per history, \(what)", unit: "B",
                  sheaf: latency.sheafBytesPerHistory, baselineName: "float32 rows", baseline: latency.float32BytesPerHistory, better: "lower", params: p),
    ]
}

func itemGetRows(dataset: String, gets: StoreMeasurements.ItemGets, dimension: Int) -> [ReportRow] {
    let p = ["per_transaction": "\(gets.perTransaction)", "reads": "\(gets.reads)", "dimension": "\(dimension)"]
    let k = "store/\(dataset)/item-gets/\(gets.perTransaction)"
    return [
        ReportRow(section: "store", key: k + "/record", label: "random item-record gets, \(gets.perTransaction) per read txn, D=\(dimension)", unit: "gets/s",
                  sheaf: gets.sheafRecordGetsPerSecond, baselineName: "float32 row get + copy", baseline: gets.rawRowGetsPerSecond, better: "higher", params: p),
        ReportRow(section: "store", key: k + "/decoded", label: "random item gets + decode, \(gets.perTransaction) per read txn, D=\(dimension)", unit: "items/s",
                  sheaf: gets.sheafDecodedGetsPerSecond, baselineName: "float32 row get + copy", baseline: gets.rawRowGetsPerSecond, better: "higher", params: p),
    ]
}

/// The users and their item ids, for the Python lmdb reader (tools/lmdb_baseline.py).
struct Probe: Codable {
    struct Bucket: Codable {
        var name: String
        var sheafP50Microseconds: Double
        var sheafP99Microseconds: Double
        var users: [UInt64]
        var items: [[UInt64]]
    }
    var dataset: String
    var store: String
    var dimension: Int
    var rawItemsTable: String
    var rawHistoriesTable: String
    var buckets: [Bucket]
}

func probeBucket(_ store: Store, name: String, users: [UInt64], latency: HistoryLatency, limit: Int = 50) throws -> Probe.Bucket {
    let chosen = Array(users.prefix(limit))
    let items = try store.read { txn in try chosen.map { try txn.history(user: $0)?.itemIDs ?? [] } }
    return Probe.Bucket(name: name, sheafP50Microseconds: latency.sheaf.p50Microseconds, sheafP99Microseconds: latency.sheaf.p99Microseconds, users: chosen, items: items)
}

func storeDirectory(_ a: BenchArguments, _ tag: String) -> (String, keep: Bool) {
    if var k = a.string("keep") {
        if !k.hasPrefix("/") { k = FileManager.default.currentDirectoryPath + "/" + k }
        try? FileManager.default.removeItem(atPath: k)
        return (k, true)
    }
    return (NSTemporaryDirectory() + "sheaf-bench-\(tag)-\(UUID().uuidString)", false)
}

// MARK: - Synthetic

func benchSynthetic(_ a: BenchArguments) throws {
    let out = a.required("out")
    let d = a.int("dim", 384)
    let name = a.string("name") ?? "synthetic-\(d)"
    var c = SyntheticStoreConfiguration(dimension: d, items: a.int("items", 100_000), buckets: [])
    for spec in a.required("buckets").split(separator: ",") {
        let f = spec.split(separator: ":").compactMap { Int($0) }
        guard f.count == 3 else { fail("--buckets takes LEN:USERS:MEASURED,...") }
        c.buckets.append(.init(length: f[0], users: f[1], measuredUsers: min(f[1], f[2])))
    }
    c.trainingRows = a.int("training-rows", 50_000)
    c.clusters = a.int("clusters", 1000)
    if let cb = a.string("codebook") {
        let f = cb.split(separator: ":").compactMap { Int($0) }
        guard f.count == 3 else { fail("--codebook takes L:K:BITS") }
        (c.levels, c.codesPerLevel, c.magnitudeBits) = (f[0], f[1], f[2])
    }
    let requests = a.int("requests", 1000)
    let (dir, keep) = storeDirectory(a, name)
    defer { if !keep { try? FileManager.default.removeItem(atPath: dir) } }
    let started = monotonicNanoseconds()
    let s = try SyntheticStore(directory: dir, configuration: c) { log("\(name): \($0)") }
    let t = s.timings
    var rows: [ReportRow] = []
    var probe = Probe(dataset: name, store: dir, dimension: d, rawItemsTable: BaselineTables.rawItemsTable, rawHistoriesTable: BaselineTables.rawHistoriesTable, buckets: [])
    var notes: [String] = []
    for bucket in c.buckets where bucket.measuredUsers > 0 {
        let users = s.measuredUsers[bucket.length] ?? []
        let n = max(10, bucket.length >= 10_000 ? requests / 10 : requests)
        let latency = try StoreMeasurements.historyLatency(store: s.store, baselines: s.baselines, users: users, requests: n)
        log("\(name): \(bucket.length)-behaviour histories: sheaf p50 \(String(format: "%.1f", latency.sheaf.p50Microseconds)) µs (float16 centroids \(String(format: "%.1f", latency.sheafHalf.p50Microseconds)) µs, segments only \(String(format: "%.1f", latency.sheafSegmentsOnly.p50Microseconds)) µs), float32 rows \(String(format: "%.1f", latency.rawRows.p50Microseconds)) µs")
        rows += storeRows(section: "store", dataset: name, latency: latency, bucket: "\(bucket.length)", dimension: d)
        notes.append("\(bucket.length)-behaviour histories: decoded-vs-original mean cosine \(String(format: "%.3f", latency.decodedCosine)) (sanity check only; synthetic data)")
        probe.buckets.append(try probeBucket(s.store, name: "\(bucket.length)", users: users, latency: latency))
    }
    for per in [1, 100] {
        let gets = try StoreMeasurements.itemGets(store: s.store, baselines: s.baselines, ids: s.rawItemIDs, perTransaction: per, reads: per == 1 ? 20_000 : 100_000)
        rows += itemGetRows(dataset: name, gets: gets, dimension: d)
    }
    let rawItemsPerSecond = Double(t.rawItems) / t.rawItemPutSeconds
    rows.append(ReportRow(section: "ingest", key: "ingest/\(name)/encode", label: "items encoded (ResidualEncoder, 2 threads), D=\(d)", unit: "items/s",
                          sheaf: Double(t.items) / t.encodeSeconds, baselineName: "float32 rows put into LMDB", baseline: rawItemsPerSecond, better: "higher",
                          params: ["items": "\(t.items)"]))
    rows.append(ReportRow(section: "ingest", key: "ingest/\(name)/store-items", label: "items encoded + stored, D=\(d)", unit: "items/s",
                          sheaf: Double(t.items) / (t.encodeSeconds + t.itemPutSeconds), baselineName: "float32 rows put into LMDB", baseline: rawItemsPerSecond,
                          better: "higher", params: ["items": "\(t.items)"]))
    rows.append(ReportRow(section: "ingest", key: "ingest/\(name)/append", label: "behaviours appended (whole histories), D=\(d)", unit: "behaviours/s",
                          sheaf: Double(t.behaviours) / t.appendSeconds, baselineName: "float32 history blobs put", baseline: Double(t.rawHistoryBehaviours) / t.rawHistoryPutSeconds,
                          better: "higher", params: ["behaviours": "\(t.behaviours)", "baseline_behaviours": "\(t.rawHistoryBehaviours)"]))
    if let p = a.string("probe") { try writeJSON(probe, to: p) }
    notes.append("built in \(String(format: "%.0f", Double(monotonicNanoseconds() - started) / 1e9)) s; codebook trained on \(t.trainingRows) rows in \(String(format: "%.1f", t.trainSeconds)) s")
    notes.append("float32 baselines hold only what the measured users reference: \(t.rawItems) item rows and \(t.rawHistoryBehaviours) history rows")
    try writeJSON(
        SuiteResult(
            suite: "synthetic", dataset: name, rows: rows, notes: notes,
            details: [
                "dimension": "\(d)", "items": "\(c.items)", "clusters": "\(c.clusters)",
                "codebook": "cosine L\(c.levels) K\(c.codesPerLevel) \(c.magnitudeBits)-bit", "bytes_per_item": "\(t.bytesPerItem)",
                "buckets": c.buckets.map { "\($0.users) users × \($0.length) (\($0.measuredUsers) measured)" }.joined(separator: ", "),
                "behaviours": "\(t.behaviours)", "isa": Codebook.decodeInstructionSet,
            ]),
        to: out)
}

// MARK: - Real data (MovieLens-100K + MiniLM), through the sheaf CLI

func runSheaf(_ args: [String]) throws -> Double {
    let t0 = monotonicNanoseconds()
    try CommandOutput.$current.withValue(CommandOutput(capture: true)) {
        var command = try SheafCommand.parseAsRoot(args)
        try command.run()
    }
    return Double(monotonicNanoseconds() - t0) / 1e9
}

func benchReal(_ a: BenchArguments) throws {
    let out = a.required("out")
    let embeddings = a.required("embeddings"), idsPath = a.required("ids"), behaviors = a.required("behaviors")
    let format = a.string("format") ?? "recbole"
    let name = a.string("name") ?? "movielens-100k"
    let requests = a.int("requests", 2000)
    let (dir, keep) = storeDirectory(a, "real")
    defer { if !keep { try? FileManager.default.removeItem(atPath: dir) } }

    let file = try EmbeddingFile(path: embeddings)
    let d = file.dimension
    let ids = try IDFile.read(path: idsPath)
    _ = try runSheaf(["init", dir, "--dim", "\(d)"])
    let trainSeconds = try runSheaf(["codebook", "train", dir, "--input", embeddings, "--levels", "4", "--codes", "256", "--magnitude-bits", "8", "-q"])
    let loadSeconds = try runSheaf(["items", "load", dir, "--input", embeddings, "--ids", idsPath, "-q"])
    let behaviorSeconds = try runSheaf(["behaviors", "load", dir, "--input", behaviors, "--format", format, "-q"])
    log("\(name): trained in \(String(format: "%.1f", trainSeconds)) s, items loaded in \(String(format: "%.2f", loadSeconds)) s, behaviours in \(String(format: "%.2f", behaviorSeconds)) s")

    var options = StoreOptions()
    options.durable = false
    let store = try Store(path: dir, options: options)
    let baselines = try BaselineTables(store: store)
    // Baseline load: the same .npy, read in chunks, rows put under ascending ids.
    let t0 = monotonicNanoseconds()
    let all = try EmbeddingFile(path: embeddings).read(rows: 0..<file.count)
    let order = ids.indices.sorted { ids[$0] < ids[$1] }
    var sortedRows = [Float](repeating: 0, count: all.count)
    for (r, i) in order.enumerated() { for t in 0..<d { sortedRows[r * d + t] = all[i * d + t] } }
    try sortedRows.withUnsafeBufferPointer { try baselines.putItems(ids: order.map { ids[$0] }, rows: $0) }
    let rawLoadSeconds = Double(monotonicNanoseconds() - t0) / 1e9
    var rowOf: [UInt64: Int] = [:]
    for (i, id) in ids.enumerated() { rowOf[id] = i }

    // Baseline histories: every user's rows as one float32 blob; Sheaf's behaviours re-appended to a
    // second store through the library, for the append rate on the same behaviours.
    // The users are those of the behaviour file.
    guard let behaviorFormat = BehaviorFormat(rawValue: format) else { fail("unknown behaviour format \(format)") }
    var seen = Set<UInt64>()
    try BehaviorFileReader(path: behaviors, format: behaviorFormat).forEach { r, _ in
        seen.insert(r.user)
        return true
    }
    var users = Array(seen)
    users.sort()
    var histories: [UInt64: History] = [:]
    try store.read { txn in for u in users { histories[u] = try txn.history(user: u) } }
    var rawBehaviours = 0
    let t1 = monotonicNanoseconds()
    try store.write { txn in
        for u in users {
            let h = histories[u]!
            var blob = [Float](repeating: 0, count: h.count * d)
            for (r, id) in h.itemIDs.enumerated() {
                let src = rowOf[id]!
                for t in 0..<d { blob[r * d + t] = all[src * d + t] }
            }
            try blob.withUnsafeBufferPointer { try baselines.putHistory(txn, user: u, rows: $0) }
            rawBehaviours += h.count
        }
    }
    let rawAppendSeconds = Double(monotonicNanoseconds() - t1) / 1e9
    let appendDir = dir + "-append"
    defer { try? FileManager.default.removeItem(atPath: appendDir) }
    let appendStore = try Store(path: appendDir, dimension: d, options: options)
    try appendStore.write { txn in
        let cb = try store.read { try $0.activeCodebook()! }
        try txn.putCodebook(cb)
        for chunk in stride(from: 0, to: ids.count, by: 4096) {
            let part = Array(ids[chunk..<min(ids.count, chunk + 4096)])
            let codes = try store.read { rt in try part.map { try rt.item($0)! } }
            try txn.putItems(ids: part, codes: codes.flatMap(\.codes), magnitudes: codes.flatMap(\.magnitudes))
        }
    }
    let t2 = monotonicNanoseconds()
    try appendStore.write { txn in
        for u in users {
            let h = histories[u]!
            let bs = (0..<h.count).map { Behavior(item: h.itemIDs[$0], timestamp: h.timestamps[$0], action: h.actions[$0], label: h.labels[$0]) }
            try txn.appendBehaviors(bs, user: u)
        }
    }
    let appendSeconds = Double(monotonicNanoseconds() - t2) / 1e9

    let latency = try StoreMeasurements.historyLatency(store: store, baselines: baselines, users: users, requests: requests)
    var rows = storeRows(section: "store", dataset: name, latency: latency, bucket: "all", dimension: d)
    for per in [1, 100] {
        let gets = try StoreMeasurements.itemGets(store: store, baselines: baselines, ids: ids, perTransaction: per, reads: per == 1 ? 20_000 : 100_000)
        rows += itemGetRows(dataset: name, gets: gets, dimension: d)
    }
    rows.append(ReportRow(section: "ingest", key: "ingest/\(name)/npy-load", label: "items loaded end to end from .npy (`sheaf items load`), D=\(d)", unit: "items/s",
                          sheaf: Double(ids.count) / loadSeconds, baselineName: "float32 rows from the same .npy put into LMDB", baseline: Double(ids.count) / rawLoadSeconds,
                          better: "higher", params: ["items": "\(ids.count)"]))
    rows.append(ReportRow(section: "ingest", key: "ingest/\(name)/append", label: "behaviours appended (whole histories), D=\(d)", unit: "behaviours/s",
                          sheaf: Double(rawBehaviours) / appendSeconds, baselineName: "float32 history blobs put", baseline: Double(rawBehaviours) / rawAppendSeconds,
                          better: "higher", params: ["behaviours": "\(rawBehaviours)"]))
    if let p = a.string("probe") {
        try writeJSON(Probe(dataset: name, store: dir, dimension: d, rawItemsTable: BaselineTables.rawItemsTable, rawHistoriesTable: BaselineTables.rawHistoriesTable,
                            buckets: [try probeBucket(store, name: "all", users: users, latency: latency, limit: 200)]), to: p)
    }
    try writeJSON(
        SuiteResult(
            suite: "real", dataset: name, rows: rows,
            notes: [
                "`sheaf behaviors load` of the whole file (parse, check, idempotent append): \(String(format: "%.0f", Double(rawBehaviours) / behaviorSeconds)) behaviours/s",
                "codebook cosine L4 K256 8-bit trained in \(String(format: "%.1f", trainSeconds)) s (in-sample: the items it encodes)",
            ],
            details: ["items": "\(ids.count)", "users": "\(users.count)", "behaviours": "\(rawBehaviours)", "dimension": "\(d)", "isa": Codebook.decodeInstructionSet]),
        to: out)
}

// MARK: - End-to-end .npy load at a chosen dimension (synthetic rows)

func benchNPYLoad(_ a: BenchArguments) throws {
    let out = a.required("out")
    let d = a.int("dim", 2048)
    let n = a.int("rows", 100_000)
    let name = a.string("name") ?? "synthetic-\(d)"
    let work = NSTemporaryDirectory() + "sheaf-bench-npy-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: work) }
    let vectors = ClusteredVectors(dimension: d)
    let npy = work + "/items.npy"
    let writer = try NPYStreamWriter(path: npy, rows: n, dimension: d)
    let chunk = max(1, (32 << 20) / (d * 4))
    var start = 0
    while start < n {
        let rows = vectors.rows(start..<min(n, start + chunk))
        try rows.withUnsafeBufferPointer { try writer.append($0) }
        start += chunk
    }
    try writer.finish()
    let store = work + "/store"
    _ = try runSheaf(["init", store, "--dim", "\(d)"])
    _ = try runSheaf(["codebook", "train", store, "--input", npy, "--levels", "4", "--codes", "256", "--magnitude-bits", "8", "--sample", "\(min(n, 20_000))", "--iterations", "5", "-q"])
    let loadSeconds = try runSheaf(["items", "load", store, "--input", npy, "-q"])
    // Baseline: the same file read in the same chunks, float32 rows put under ascending ids.
    var options = StoreOptions()
    options.durable = false
    let raw = try Store(path: work + "/raw", dimension: d, options: options)
    let baselines = try BaselineTables(store: raw)
    let t0 = monotonicNanoseconds()
    let file = try EmbeddingFile(path: npy)
    let buffer = AlignedFloats(count: chunk * d)
    start = 0
    while start < n {
        let m = min(chunk, n - start)
        try file.read(rows: start..<(start + m), into: buffer.pointer)
        try baselines.putItems(ids: (start..<(start + m)).map(UInt64.init), rows: UnsafeBufferPointer(start: buffer.pointer, count: m * d))
        start += m
    }
    let rawSeconds = Double(monotonicNanoseconds() - t0) / 1e9
    log("\(name): \(n) items loaded from .npy in \(String(format: "%.2f", loadSeconds)) s; float32 rows in \(String(format: "%.2f", rawSeconds)) s")
    try writeJSON(
        SuiteResult(
            suite: "npy-load", dataset: name,
            rows: [ReportRow(section: "ingest", key: "ingest/\(name)/npy-load", label: "items loaded end to end from .npy (`sheaf items load`), D=\(d)", unit: "items/s",
                             sheaf: Double(n) / loadSeconds, baselineName: "float32 rows from the same .npy put into LMDB", baseline: Double(n) / rawSeconds,
                             better: "higher", params: ["items": "\(n)"])],
            notes: ["\(n) synthetic clustered rows written to a .npy first; the codebook (cosine L4 K256 8-bit) is trained before the timed load; the Sheaf store is durable (the CLI default), the float32 baseline is not"],
            details: ["dimension": "\(d)", "rows": "\(n)"]),
        to: out)
}

// MARK: - Quick mode's stand-in for MovieLens (tiny, synthetic, clearly labelled)

func writeStandIn(_ a: BenchArguments) throws {
    let dir = a.required("dir")
    let items = a.int("items", 300)
    let users = a.int("users", 40)
    let d = a.int("dim", 32)
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let v = ClusteredVectors(dimension: d, clusters: 20, seed: 3)
    try NPYArray.write(floats: v.rows(0..<items), shape: [items, d], to: dir + "/item_embeddings.npy")
    try NPYArray.write(ids: (0..<items).map { UInt64($0 + 1) }, to: dir + "/item_ids.npy")
    var rng = SplitMix64(seed: 5)
    var text = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    for u in 1...users {
        var t = 880_000_000 + Int(rng.next() % 1000)
        for _ in 0..<(5 + Int(rng.next() % 60)) {
            t += 1 + Int(rng.next() % 500)
            text += "\(u)\t\(1 + Int(rng.next() % UInt64(items)))\t\(1 + rng.next() % 5)\t\(t)\n"
        }
    }
    try text.write(toFile: dir + "/stand-in.inter", atomically: true, encoding: .utf8)
}

// MARK: - Synthetic rows as .npy (for the faiss side-by-side)

func writeSyntheticNPY(_ a: BenchArguments) throws {
    let out = a.required("out")
    let d = a.int("dim", 2048)
    let n = a.int("rows", 20_000)
    let vectors = ClusteredVectors(dimension: d, clusters: a.int("clusters", 1000))
    let writer = try NPYStreamWriter(path: out, rows: n, dimension: d)
    let chunk = max(1, (32 << 20) / (d * 4))
    var start = 0
    while start < n {
        let rows = vectors.rows(start..<min(n, start + chunk))
        try rows.withUnsafeBufferPointer { try writer.append($0) }
        start += chunk
    }
    try writer.finish()
}

// MARK: - Appends to growing histories

/// Behaviours appended to existing histories: `--users` users each get `--batch` behaviours a round,
/// all users in one write transaction, for `--rounds` rounds, so every append rewrites an open tail
/// segment. Reports the cost per behaviour early and late (it must not grow with the history's
/// length), beside float32 rows put one per behaviour in the same LMDB.
func benchAppends(_ a: BenchArguments) throws {
    let out = a.required("out")
    let d = a.int("dim", 384)
    let users = a.int("users", 100)
    let batch = a.int("batch", 10)
    let rounds = a.int("rounds", 240)
    let items = a.int("items", 20_000)
    let name = a.string("name") ?? "appends-\(d)"
    let (dir, keep) = storeDirectory(a, name)
    defer { if !keep { try? FileManager.default.removeItem(atPath: dir) } }
    var options = StoreOptions()
    options.durable = a.has("durable")
    options.mapSize = 1 << 30
    let store = try Store(path: dir, dimension: d, options: options)
    let baselines = try BaselineTables(store: store)
    let vectors = ClusteredVectors(dimension: d, clusters: 100)
    let training = min(items, 5_000)
    let sample = vectors.rows(0..<training)
    var q = QuantizerConfiguration()
    q.levels = 4
    q.codesPerLevel = 256
    q.metric = .cosine
    q.magnitudeEncoding = .uint8
    q.iterations = 4
    q.trainingSampleSize = 0
    let (codebook, _) = try sample.withUnsafeBufferPointer {
        try CodebookTrainer(configuration: q).train($0, count: training, dimension: d, id: 1)
    }
    try store.write { try $0.putCodebook(codebook) }
    let rows = vectors.rows(0..<items)
    let (codes, mags) = try ResidualEncoder(codebook: codebook, beamWidth: 1, threads: 2).encode(rows, count: items)
    try store.write { try $0.putItems(ids: (0..<items).map(UInt64.init), codes: codes, magnitudes: mags) }

    var rng = SplitMix64(seed: 21)
    var clock = [Int64](repeating: 1_600_000_000, count: users)
    var perRound: [Double] = []
    var rawPerRound: [Double] = []
    let raw = AlignedFloats(count: batch * d, value: 0.5)
    for round in 0..<rounds {
        let batches: [[Behavior]] = (0..<users).map { u in
            (0..<batch).map { _ in
                clock[u] += 1 + Int64(rng.next() % 600)
                return Behavior(item: rng.next() % UInt64(items), timestamp: clock[u], action: 0, label: 1)
            }
        }
        var t0 = monotonicNanoseconds()
        try store.write { txn in
            for (u, b) in batches.enumerated() { try txn.appendBehaviors(b, user: UInt64(u)) }
        }
        var t1 = monotonicNanoseconds()
        perRound.append(Double(t1 - t0) / 1e3 / Double(users * batch))
        // Baseline: the same behaviours as float32 rows, one row per behaviour keyed (user, position).
        t0 = monotonicNanoseconds()
        try store.write { txn in
            for u in 0..<users {
                try baselines.putHistoryRows(
                    txn, user: UInt64(u), first: round * batch, rows: UnsafeBufferPointer(start: raw.pointer, count: batch * d))
            }
        }
        t1 = monotonicNanoseconds()
        rawPerRound.append(Double(t1 - t0) / 1e3 / Double(users * batch))
        if (round + 1) % 20 == 0 {
            let w = perRound.suffix(20), r = rawPerRound.suffix(20)
            log("\(name): \((round + 1) * batch) behaviours per user: \(String(format: "%.2f", w.reduce(0, +) / Double(w.count))) µs per behaviour appended, float32 rows \(String(format: "%.2f", r.reduce(0, +) / Double(r.count))) µs")
        }
    }
    func mean(_ x: ArraySlice<Double>) -> Double { x.reduce(0, +) / Double(max(1, x.count)) }
    let window = max(1, rounds / 10)
    var result: [ReportRow] = []
    for (tag, range) in [("early", 0..<window), ("late", (rounds - window)..<rounds)] {
        let length = (range.lowerBound + range.upperBound) / 2 * batch
        let sheaf = 1e6 / mean(perRound[range]), base = 1e6 / mean(rawPerRound[range])
        result.append(ReportRow(
            section: "ingest", key: "ingest/\(name)/append-existing/\(tag)",
            label: "behaviours appended to existing histories (\(batch) per user, \(users) users per txn), histories ≈\(length) long, D=\(d)",
            unit: "behaviours/s", sheaf: sheaf, baselineName: "float32 row per behaviour put", baseline: base, better: "higher",
            params: ["users": "\(users)", "batch": "\(batch)", "history_length": "\(length)", "durable": "\(options.durable)"]))
    }
    try writeJSON(SuiteResult(suite: "appends", dataset: name, rows: result, notes: [], details: ["dimension": "\(d)", "rounds": "\(rounds)"]), to: out)
}
