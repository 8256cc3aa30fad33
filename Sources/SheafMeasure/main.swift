// sheaf-measure: the store measurements behind the README and closing notes.
//
//   swift run -c release sheaf-measure history-fetch [--users 100] [--length 1000] [--items 100000]
//        [--dim 384] [--levels 3] [--codes 4096] [--reps 2000] [--json]
//
// Builds a temporary store with random codes (decode cost does not depend on code quality; this is a
// speed measurement, not a quality result), then times, per request, interleaved in one run:
//   sheaf      read txn + history segments + SIMD decode into a reused n × D buffer
//   raw-rows   read txn + history (item ids) + one get per behaviour of a float32 row + copy
//   raw-blob   read txn + one get of the whole history stored as float32 rows + copy
//   memcpy     copying the same n × D × 4 output bytes from one buffer to another
import Foundation
import SheafCodebook
import SheafFormats
import SheafQuantizer
import SheafRandom
import SheafStore

struct Options {
    var users = 100
    var length = 1000
    var items = 100_000
    var dim = 384
    var levels = 3
    var codes = 4096
    var reps = 2000
    var json = false
}

func parse() -> (String, Options) {
    var args = Array(CommandLine.arguments.dropFirst())
    guard !args.isEmpty else {
        FileHandle.standardError.write("usage: sheaf-measure bench SUITE ... | quantize --help | history-fetch [--users N] [--length N] [--items N] [--dim D] [--levels L] [--codes K] [--reps N] [--json]\n".data(using: .utf8)!)
        exit(2)
    }
    let command = args.removeFirst()
    var o = Options()
    var i = 0
    func value() -> Int {
        i += 1
        guard i < args.count, let v = Int(args[i]) else {
            FileHandle.standardError.write("sheaf-measure: \(args[i - 1]) needs an integer\n".data(using: .utf8)!)
            exit(2)
        }
        return v
    }
    while i < args.count {
        switch args[i] {
        case "--users": o.users = value()
        case "--length": o.length = value()
        case "--items": o.items = value()
        case "--dim": o.dim = value()
        case "--levels": o.levels = value()
        case "--codes": o.codes = value()
        case "--reps": o.reps = value()
        case "--json": o.json = true
        default:
            FileHandle.standardError.write("sheaf-measure: unknown option \(args[i])\n".data(using: .utf8)!)
            exit(2)
        }
        i += 1
    }
    return (command, o)
}

func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

func log(_ s: String) { FileHandle.standardError.write((s + "\n").data(using: .utf8)!) }

struct Stats {
    var samples: [Double] = []
    mutating func add(_ ns: UInt64) { samples.append(Double(ns) / 1000) }
    func percentile(_ p: Double) -> Double {
        let s = samples.sorted()
        return s[min(s.count - 1, Int(Double(s.count - 1) * p))]
    }
    var median: Double { percentile(0.5) }
    var p99: Double { percentile(0.99) }
}

func historyFetch(_ o: Options) throws {
    let dir = NSTemporaryDirectory() + "sheaf-measure-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var so = StoreOptions()
    so.durable = false
    so.mapSize = 1 << 30
    let store = try Store(path: dir, dimension: o.dim, options: so)
    var rng = SplitMix64(seed: 7)
    let D = o.dim
    // A random codebook with unit-norm centroids.
    var centroids = [Float](repeating: 0, count: o.levels * o.codes * D)
    for r in 0..<(o.levels * o.codes) {
        var norm: Float = 0
        for d in 0..<D {
            let v = rng.nextFloat() - 0.5
            centroids[r * D + d] = v
            norm += v * v
        }
        let inv = 1 / norm.squareRoot()
        for d in 0..<D { centroids[r * D + d] *= inv }
    }
    let ranges = (0..<o.levels).map { l in MagnitudeRange(lower: 0, upper: l == 0 ? 1 : 0.5) }
    let cb = try Codebook(
        id: 1, dimension: D, levels: o.levels, codesPerLevel: o.codes, metric: .cosine, magnitudeEncoding: .uint8,
        magnitudeRanges: ranges, centroids: centroids)
    try store.write { try $0.putCodebook(cb) }
    log("codebook: \(cb.layout)")

    // Items, coded and as raw float32 rows.
    let rawItems = try store.auxiliaryTable("raw_items")
    let rawHistories = try store.auxiliaryTable("raw_histories")
    let chunk = 20_000
    var start = 0
    while start < o.items {
        let n = min(chunk, o.items - start)
        let ids = (start..<(start + n)).map(UInt64.init)
        let codes = (0..<(n * o.levels)).map { _ in UInt32(rng.next() % UInt64(o.codes)) }
        let mags = (0..<(n * o.levels)).map { i in ranges[i % o.levels].upper * rng.nextFloat() }
        try store.write { txn in
            try txn.putItems(ids: ids, codes: codes, magnitudes: mags)
            let rows = try txn.decodeItems(ids)
            try rows.withUnsafeBytes { bytes in
                for (r, id) in ids.enumerated() {
                    try txn.putAuxiliaryValue(
                        rawItems, id: id, UnsafeRawBufferPointer(rebasing: bytes[(r * D * 4)..<((r + 1) * D * 4)]), append: true)
                }
            }
        }
        start += n
    }
    log("items: \(o.items) coded at \(cb.bytesPerItem) B, and as \(D * 4)-byte float32 rows")

    // Histories, coded and as raw float32 blobs.
    for u in 0..<o.users {
        var t: Int64 = 1_600_000_000
        let behaviors = (0..<o.length).map { _ -> Behavior in
            t += Int64(rng.next() % 600)
            return Behavior(item: rng.next() % UInt64(o.items), timestamp: t, action: UInt16(rng.next() % 3), label: 1)
        }
        try store.write { txn in
            try txn.appendBehaviors(behaviors, user: UInt64(u))
            var rows: [Float] = []
            _ = try txn.decodeHistory(user: UInt64(u), into: &rows)
            try rows.withUnsafeBytes { try txn.putAuxiliaryValue(rawHistories, id: UInt64(u), $0, append: true) }
        }
    }
    log("users: \(o.users) × \(o.length) behaviours")

    let outBytes = o.length * D * 4
    var buffer = [Float](repeating: 0, count: o.length * D)
    var check = [Float](repeating: 0, count: o.length * D)
    let source = [Float](repeating: 1, count: o.length * D)
    var sheaf = Stats(), segmentsOnly = Stats(), rawRows = Stats(), rawBlob = Stats(), copy = Stats()
    var storedBytes = 0
    for u in 0..<o.users { storedBytes += try store.read { try $0.historyStoredBytes(user: UInt64(u)) } }

    // Correctness once: the decoded history equals its stored float32 rows.
    try store.read { txn in
        _ = try txn.decodeHistory(user: 0, into: &buffer)
        try txn.withAuxiliaryValue(rawHistories, id: 0) { raw in
            check.withUnsafeMutableBytes { $0.copyMemory(from: raw!) }
        }
    }
    precondition(buffer == check, "decoded history differs from its raw rows")

    for rep in 0..<(o.reps + 50) {
        let user = UInt64(rng.next() % UInt64(o.users))
        var t0 = now()
        try store.read { txn in _ = try txn.decodeHistory(user: user, into: &buffer) }
        var t1 = now()
        if rep >= 50 { sheaf.add(t1 - t0) }

        t0 = now()
        _ = try store.read { txn in try txn.history(user: user) }
        t1 = now()
        if rep >= 50 { segmentsOnly.add(t1 - t0) }

        t0 = now()
        try store.read { txn in
            let h = try txn.history(user: user)!
            try buffer.withUnsafeMutableBytes { out in
                for (i, id) in h.itemIDs.enumerated() {
                    try txn.withAuxiliaryValue(rawItems, id: id) { row in
                        (out.baseAddress! + i * D * 4).copyMemory(from: row!.baseAddress!, byteCount: D * 4)
                    }
                }
            }
        }
        t1 = now()
        if rep >= 50 { rawRows.add(t1 - t0) }

        t0 = now()
        try store.read { txn in
            try txn.withAuxiliaryValue(rawHistories, id: user) { raw in
                buffer.withUnsafeMutableBytes { $0.copyMemory(from: raw!) }
            }
        }
        t1 = now()
        if rep >= 50 { rawBlob.add(t1 - t0) }

        t0 = now()
        buffer.withUnsafeMutableBytes { dst in source.withUnsafeBytes { dst.copyMemory(from: $0) } }
        t1 = now()
        if rep >= 50 { copy.add(t1 - t0) }
    }

    let perHistory = Double(storedBytes) / Double(o.users)
    let rows: [(String, Stats)] = [("sheaf fetch+decode", sheaf), ("sheaf fetch only (segments, no decode)", segmentsOnly), ("raw float32 rows, get per behaviour", rawRows), ("raw float32 history blob, one get", rawBlob), ("memcpy of the output bytes", copy)]
    if o.json {
        var obj: [String: Any] = [
            "dimension": D, "levels": o.levels, "codes": o.codes, "magnitudes": "uint8", "length": o.length,
            "users": o.users, "items": o.items, "reps": o.reps, "decode_isa": Codebook.decodeInstructionSet,
            "output_bytes": outBytes, "stored_bytes_per_history": perHistory,
        ]
        for (name, s) in rows { obj[name] = ["p50_us": s.median, "p99_us": s.p99] }
        let data = try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    } else {
        print("history fetch + decode: \(o.length) behaviours, D=\(D), L=\(o.levels), K=\(o.codes), 8-bit magnitudes, kernel \(Codebook.decodeInstructionSet)")
        print("output \(outBytes) B per history; stored \(Int(perHistory)) B per history (\(String(format: "%.1f", Double(outBytes) / perHistory))× fewer bytes fetched than float32)")
        print("| path | p50 µs | p99 µs | p50 vs sheaf |")
        print("|---|---:|---:|---:|")
        for (name, s) in rows {
            print("| \(name) | \(String(format: "%.1f", s.median)) | \(String(format: "%.1f", s.p99)) | \(String(format: "%.2f×", s.median / sheaf.median)) |")
        }
    }
}

if CommandLine.arguments.count > 1, CommandLine.arguments[1] == "quantize" {
    try quantize(Array(CommandLine.arguments.dropFirst(2)))
} else if CommandLine.arguments.count > 1, CommandLine.arguments[1] == "nn-step" {
    try nnStep(Array(CommandLine.arguments.dropFirst(2)))
} else if CommandLine.arguments.count > 1, CommandLine.arguments[1] == "bench" {
    do { try bench(Array(CommandLine.arguments.dropFirst(2))) } catch {
        log("sheaf-measure bench: \(error)")
        exit(1)
    }
} else {
    let (command, options) = parse()
    switch command {
    case "history-fetch": try historyFetch(options)
    default:
        log("sheaf-measure: unknown command \(command) (try history-fetch or quantize)")
        exit(2)
    }
}
