// sheaf-measure quantize: trains, encodes and decodes with Sheaf's codebooks and writes the figures
// that tools/faiss_compare.py sets beside faiss's ResidualQuantizer.
//
//   sheaf-measure quantize (--input EMB.npy | --synthetic N [--dim D]) [--runs SPEC,...] [--iterations 20]
//        [--beam 1] [--sample 100000] [--queries 1000] [--threads 2] [--json-out FILE] [--verbose]
//
// SPEC is metric:levels:codes:magnitude-bits, e.g. cosine:3:4096:8, cosine:3:256:16, euclidean:8:256:0.
import Foundation
import SheafCodebook
import SheafFormats
import SheafQuantizer
import SheafRandom

struct QuantizeRun: Codable {
    var name: String
    var metric: String
    var levels: Int
    var codes: Int
    var magnitude_bits: Int
    var beam: Int
    var bytes_per_item: Int
    var train_seconds: Double
    var encode_items_per_s: Double
    var decode_gb_per_s: Double
    var memcpy_gb_per_s: Double
    var mean_cosine: Double
    var p5_cosine: Double
    var relative_mse: Double
    var recall_at_10: Double?
    var code_perplexity: [Double]
    var max_over_mean_cluster: [Double]
    var items: Int
    var dimension: Int
    var data: String
    var query_indices: [Int]?
    var train_rows: Int
    var train_fraction: Double?
    var eval_indices: [Int]?
}

func quantize(_ args: [String]) throws {
    var input: String?
    var synthetic = 0
    var dim = 384
    var specs = ["cosine:4:256:8", "euclidean:8:256:0", "cosine:3:256:16", "euclidean:9:256:0"]
    var iterations = 20
    var beam = 1
    var sample = 100_000
    var queries = 1000
    var threads = 2
    var jsonOut: String?
    var verbose = false
    var queriesFile: String?
    var tolerance = QuantizerConfiguration().balanceTolerance
    var i = 0
    func next() -> String {
        i += 1
        guard i < args.count else {
            log("sheaf-measure quantize: \(args[i - 1]) needs a value")
            exit(2)
        }
        return args[i]
    }
    func int(_ s: String) -> Int {
        guard let v = Int(s) else {
            log("sheaf-measure quantize: \(s) is not an integer")
            exit(2)
        }
        return v
    }
    while i < args.count {
        switch args[i] {
        case "--input": input = next()
        case "--synthetic": synthetic = int(next())
        case "--dim": dim = int(next())
        case "--runs": specs = next().split(separator: ",").map(String.init)
        case "--iterations": iterations = int(next())
        case "--beam": beam = int(next())
        case "--sample": sample = int(next())
        case "--queries": queries = int(next())
        case "--threads": threads = int(next())
        case "--json-out": jsonOut = next()
        case "--verbose": verbose = true
        case "--queries-file": queriesFile = next()
        case "--tolerance":
            guard let t = Double(next()) else {
                log("sheaf-measure quantize: --tolerance needs a number")
                exit(2)
            }
            tolerance = t
        case "--help", "-h":
            print("usage: sheaf-measure quantize (--input EMB.npy | --synthetic N [--dim D]) [--runs metric:L:K:bits,...] [--iterations N] [--beam B] [--sample N] [--queries Q] [--threads T] [--json-out FILE] [--queries-file FILE] [--tolerance T] [--verbose]")
            return
        default:
            log("sheaf-measure quantize: unknown option \(args[i])")
            exit(2)
        }
        i += 1
    }
    // Load or make the data.
    var data: [Float]
    var n: Int
    var source: String
    if let input {
        let a = try NPYArray(contentsOf: input)
        guard a.shape.count == 2 else { throw FormatError.malformed(path: input, reason: "expected a 2-d array, got shape \(a.shape)") }
        data = try a.floats(path: input)
        n = a.shape[0]
        dim = a.shape[1]
        source = input
    } else if synthetic > 0 {
        n = synthetic
        data = syntheticClustered(count: n, dimension: dim, seed: 42)
        source = "synthetic clustered \(n)×\(dim) (speed only, not a quality result)"
    } else {
        log("sheaf-measure quantize: give --input EMB.npy or --synthetic N")
        exit(2)
    }
    log("data: \(source), \(n) × \(dim); decode kernel \(Codebook.decodeInstructionSet)")
    // Query rows for recall, and optionally a train/evaluation split, from
    // tools/faiss_compare.py --emit-queries (a JSON list of query rows, or an object with
    // "query_indices" and optionally "train_indices"/"eval_indices"), so both sides use the same rows.
    var queryIndices: [Int]?
    var trainRows: [Int]?
    var evalRows: [Int]?
    if let queriesFile {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: queriesFile)))
        let object = json as? [String: Any]
        queryIndices = (json as? [Int]) ?? (object?["query_indices"] as? [Int])
        trainRows = object?["train_indices"] as? [Int]
        evalRows = object?["eval_indices"] as? [Int]
        guard queryIndices != nil, (trainRows == nil) == (evalRows == nil) else {
            log("sheaf-measure quantize: \(queriesFile) needs query_indices (and train_indices with eval_indices, or neither)")
            exit(2)
        }
        for r in (trainRows ?? []) + (evalRows ?? []) + queryIndices! where r < 0 || r >= n {
            log("sheaf-measure quantize: \(queriesFile) names row \(r), but the data has \(n) rows")
            exit(2)
        }
    }
    // Training rows, and the rows that are encoded, decoded and measured.
    func rows(_ index: [Int]) -> [Float] {
        var out = [Float](repeating: 0, count: index.count * dim)
        for (k, r) in index.enumerated() { for t in 0..<dim { out[k * dim + t] = data[r * dim + t] } }
        return out
    }
    let trainData = trainRows.map(rows) ?? data
    var splitFraction: Double?
    if let queriesFile, trainRows != nil {
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: queriesFile))) as? [String: Any]
        splitFraction = object?["train_fraction"] as? Double
    }
    let trainCount = trainRows?.count ?? n
    if let evalRows {
        let position = Dictionary(uniqueKeysWithValues: evalRows.enumerated().map { ($1, $0) })
        queryIndices = try queryIndices!.map { q in
            guard let p = position[q] else { throw FormatError.malformed(path: queriesFile!, reason: "query row \(q) is not an evaluation row") }
            return p
        }
        data = rows(evalRows)
        n = evalRows.count
        source += ", trained on \(trainCount) rows, measured on \(n) held-out rows"
        log("split: train \(trainCount) rows, evaluate \(n) held-out rows")
    }
    // Query indices as the script wrote them (rows of the full file), for its cross-check.
    let queryIndicesFull: [Int]? = queryIndices.map { q in evalRows.map { e in q.map { e[$0] } } ?? q }
    var runs: [QuantizeRun] = []
    for spec in specs {
        let parts = spec.split(separator: ":").map(String.init)
        guard parts.count == 4, let metric = ["cosine": Metric.cosine, "euclidean": .euclidean][parts[0]],
            let levels = Int(parts[1]), let k = Int(parts[2]), let bits = Int(parts[3]),
            let mags = MagnitudeEncoding(rawValue: UInt8(clamping: bits))
        else {
            log("sheaf-measure quantize: bad run spec \(spec) (want metric:levels:codes:bits)")
            exit(2)
        }
        var config = QuantizerConfiguration()
        config.metric = metric
        config.levels = levels
        config.codesPerLevel = k
        config.magnitudeEncoding = metric == .euclidean ? .uint8 : mags
        config.iterations = iterations
        config.trainingSampleSize = sample
        config.threads = threads
        config.beamWidth = beam
        config.balanceTolerance = tolerance
        let name = "sheaf \(metric) L\(levels) K\(k) \(metric == .euclidean ? "no magnitudes" : "\(mags) magnitudes")\(beam > 1 ? " beam \(beam)" : "")"
        log("\(name): \(config.bytesPerItem) B/item")
        var t0 = now()
        let progress: ((String) -> Void)? = verbose ? { log($0) } : nil
        let trained: (codebook: Codebook, report: TrainingReport) = try trainData.withUnsafeBufferPointer { buffer in
            try CodebookTrainer(configuration: config).train(buffer, count: trainCount, dimension: dim, progress: progress)
        }
        let codebook = trained.codebook
        let report = trained.report
        let trainSeconds = Double(now() - t0) / 1e9
        t0 = now()
        let encoder = ResidualEncoder(codebook: codebook, beamWidth: beam, threads: threads)
        let (codes, mags2) = try encoder.encode(data, count: n)
        let encodeSeconds = Double(now() - t0) / 1e9
        var packed = [UInt8](repeating: 0, count: n * codebook.bytesPerItem)
        try codes.withUnsafeBufferPointer { c in
            try mags2.withUnsafeBufferPointer { m in
                try packed.withUnsafeMutableBytes { try codebook.pack(codes: c, magnitudes: m, count: n, into: $0) }
            }
        }
        // Decode all items (single thread, best of 5) next to a copy of the same output bytes.
        var decoded = [Float](repeating: 0, count: n * dim)
        var source2 = [Float](repeating: 1, count: n * dim)
        source2[0] = 0
        var bestDecode = Double.infinity
        var bestCopy = Double.infinity
        for _ in 0..<5 {
            let a = now()
            packed.withUnsafeBytes { p in decoded.withUnsafeMutableBufferPointer { codebook.decodePacked(p, count: n, into: $0.baseAddress!, streaming: n * dim * 4 > 32 << 20) } }
            let b = now()
            decoded.withUnsafeMutableBytes { dst in source2.withUnsafeBytes { dst.copyMemory(from: $0) } }
            let c = now()
            bestDecode = min(bestDecode, Double(b - a))
            bestCopy = min(bestCopy, Double(c - b))
        }
        packed.withUnsafeBytes { p in decoded.withUnsafeMutableBufferPointer { codebook.decodePacked(p, count: n, into: $0.baseAddress!) } }
        let quality = try data.withUnsafeBufferPointer { o in
            try decoded.withUnsafeBufferPointer { r in
                try codes.withUnsafeBufferPointer { c in
                    try QualityReport.measure(
                        original: o, decoded: r, count: n, dimension: dim, codes: c, codebook: codebook, queryCount: queries,
                        queryIndices: queryIndices)
                }
            }
        }
        let bytes = Double(n * dim * 4)
        let run = QuantizeRun(
            name: name, metric: "\(metric)", levels: levels, codes: k, magnitude_bits: codebook.magnitudeEncoding.bits, beam: beam,
            bytes_per_item: codebook.bytesPerItem, train_seconds: trainSeconds, encode_items_per_s: Double(n) / encodeSeconds,
            decode_gb_per_s: bytes / bestDecode, memcpy_gb_per_s: bytes / bestCopy, mean_cosine: quality.meanCosine,
            p5_cosine: quality.p5Cosine, relative_mse: quality.relativeMSE, recall_at_10: quality.recallAt10,
            code_perplexity: quality.levels.map { $0.perplexity }, max_over_mean_cluster: report.levels.map { $0.maxOverMeanClusterSize },
            items: n, dimension: dim, data: source, query_indices: queryIndicesFull, train_rows: trainCount,
            train_fraction: splitFraction, eval_indices: evalRows)
        log(String(format: "  train %.1f s, encode %.0f items/s, decode %.2f GB/s (copy %.2f), mean cos %.4f, recall@10 %.3f",
                   run.train_seconds, run.encode_items_per_s, run.decode_gb_per_s, run.memcpy_gb_per_s, run.mean_cosine, run.recall_at_10 ?? Double.nan))
        runs.append(run)
    }
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys]
    let json = try enc.encode(runs)
    if let jsonOut {
        try FileManager.default.createDirectory(atPath: (jsonOut as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try json.write(to: URL(fileURLWithPath: jsonOut))
    }
    print("| run | B/item | train s | encode items/s | decode GB/s | memcpy GB/s | mean cos | p5 cos | rel. MSE | recall@10 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in runs {
        print(String(format: "| %@ | %d | %.1f | %.0f | %.2f | %.2f | %.4f | %.4f | %.4f | %.3f |", r.name, r.bytes_per_item, r.train_seconds,
                     r.encode_items_per_s, r.decode_gb_per_s, r.memcpy_gb_per_s, r.mean_cosine, r.p5_cosine, r.relative_mse, r.recall_at_10 ?? Double.nan))
    }
}

/// Clustered unit vectors: 1,000 random directions with noise (for speed runs only).
func syntheticClustered(count n: Int, dimension d: Int, seed: UInt64) -> [Float] {
    var rng = SplitMix64(seed: seed)
    let clusters = 1000
    let centers = (0..<(clusters * d)).map { _ in rng.nextFloat() - 0.5 }
    var out = [Float](repeating: 0, count: n * d)
    for i in 0..<n {
        let c = Int(rng.next() % UInt64(clusters))
        var norm: Float = 0
        for t in 0..<d {
            let v = centers[c * d + t] + 0.35 * (rng.nextFloat() - 0.5)
            out[i * d + t] = v
            norm += v * v
        }
        let inv = 1 / norm.squareRoot()
        for t in 0..<d { out[i * d + t] *= inv }
    }
    return out
}
