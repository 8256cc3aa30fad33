import ArgumentParser
import Foundation
import SheafCLI
import SheafCodebook
import SheafFormats
import SheafQuantizer
import _SheafBench

extension SheafMeasure {
    /// Trains, encodes and decodes with Sheaf's codebooks and writes the figures that
    /// tools/faiss_compare.py sets beside faiss's ResidualQuantizer (tools/quantizer-report,
    /// tools/bench-report).
    struct Quantize: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "quantize",
            abstract: "Codebook training, encoding, decoding and quality, per run spec, as a table and JSON.",
            discussion: """
                A run spec is metric:levels:codes:magnitude-bits, e.g. cosine:3:4096:8, cosine:3:256:16, \
                euclidean:8:256:0. --queries-file takes what tools/faiss_compare.py --emit-queries writes (a JSON \
                list of query rows, or an object with "query_indices" and optionally "train_indices" and \
                "eval_indices"), so both sides use the same rows.
                """)

        @Option(help: "Embeddings to quantize (a 2-d float .npy).")
        var input: String?
        @Option(help: "Instead of --input: this many synthetic clustered rows (speed only, not a quality result).")
        var synthetic = 0
        @Option(help: "Dimension of the --synthetic rows.")
        var dim = 384
        @Option(help: "Comma-separated run specs, metric:levels:codes:magnitude-bits.")
        var runs = RunSpecs(specs: ["cosine:4:256:8", "euclidean:8:256:0", "cosine:3:256:16", "euclidean:9:256:0"].map { RunSpec(argument: $0)! })
        @Option(help: "k-means iterations per level.")
        var iterations = 20
        @Option(help: "Beam width of the encoder (1 = greedy).")
        var beam = 1
        @Option(help: "Rows the codebook is trained on (a sample of the training rows).")
        var sample = 100_000
        @Option(help: "Query rows of recall@10.")
        var queries = 1000
        @Option(help: "Threads of training and encoding.")
        var threads = 2
        @Option(help: "Write the runs as JSON to this file.")
        var jsonOut: String?
        @Flag(help: "Report each training level's time and objective on stderr.")
        var verbose = false
        @Option(help: "Query (and train/evaluation) rows from tools/faiss_compare.py --emit-queries.")
        var queriesFile: String?
        @Option(help: "Balance tolerance of the k-means (largest cluster over the mean).")
        var tolerance = QuantizerConfiguration().balanceTolerance

        func validate() throws {
            if input == nil && synthetic <= 0 { throw ValidationError("give --input EMB.npy or --synthetic N") }
        }

        func run() throws {
            // Load or make the data.
            var data: [Float]
            var n: Int
            var source: String
            var dim = dim
            if let input {
                let a = try NPYArray(contentsOf: input)
                guard a.shape.count == 2 else { throw FormatError.malformed(path: input, reason: "expected a 2-d array, got shape \(a.shape)") }
                data = try a.floats(path: input)
                n = a.shape[0]
                dim = a.shape[1]
                source = input
            } else {
                n = synthetic
                data = ClusteredVectors.uniformClusters(count: n, dimension: dim, seed: 42)
                source = "synthetic clustered \(n)×\(dim) (speed only, not a quality result)"
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
                    throw MeasureError("\(queriesFile) needs query_indices (and train_indices with eval_indices, or neither)")
                }
                for r in (trainRows ?? []) + (evalRows ?? []) + queryIndices! where r < 0 || r >= n {
                    throw MeasureError("\(queriesFile) names row \(r), but the data has \(n) rows")
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
            for spec in self.runs.specs {
                let (metric, levels, k, mags) = (spec.metric, spec.levels, spec.codesPerLevel, spec.magnitudes)
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
                var t0 = monotonicNanoseconds()
                let progress: ((String) -> Void)? = verbose ? { log($0) } : nil
                let trained: (codebook: Codebook, report: TrainingReport) = try trainData.withUnsafeBufferPointer { buffer in
                    try CodebookTrainer(configuration: config).train(buffer, count: trainCount, dimension: dim, progress: progress)
                }
                let codebook = trained.codebook
                let report = trained.report
                let trainSeconds = Double(monotonicNanoseconds() - t0) / 1e9
                t0 = monotonicNanoseconds()
                let encoder = ResidualEncoder(codebook: codebook, beamWidth: beam, threads: threads)
                let (codes, mags2) = try encoder.encode(data, count: n)
                let encodeSeconds = Double(monotonicNanoseconds() - t0) / 1e9
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
                    let a = monotonicNanoseconds()
                    packed.withUnsafeBytes { p in decoded.withUnsafeMutableBufferPointer { codebook.decodePacked(p, count: n, into: $0.baseAddress!, streaming: n * dim * 4 > 32 << 20) } }
                    let b = monotonicNanoseconds()
                    decoded.withUnsafeMutableBytes { dst in source2.withUnsafeBytes { dst.copyMemory(from: $0) } }
                    let c = monotonicNanoseconds()
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
    }

    /// One run of `quantize`: metric:levels:codes:magnitude-bits.
    struct RunSpec: ExpressibleByArgument, CustomStringConvertible {
        var metric: Metric
        var levels: Int
        var codesPerLevel: Int
        var magnitudes: MagnitudeEncoding
        var description: String

        init?(argument: String) {
            let parts = argument.split(separator: ":").map(String.init)
            guard parts.count == 4, let metric = ["cosine": Metric.cosine, "euclidean": .euclidean][parts[0]],
                let levels = Int(parts[1]), let k = Int(parts[2]), let bits = Int(parts[3]),
                let mags = MagnitudeEncoding(rawValue: UInt8(clamping: bits))
            else { return nil }
            (self.metric, self.levels, codesPerLevel, magnitudes, description) = (metric, levels, k, mags, argument)
        }
    }

    /// `--runs`: run specs separated by commas.
    struct RunSpecs: ExpressibleByArgument, CustomStringConvertible {
        var specs: [RunSpec]
        init(specs: [RunSpec]) { self.specs = specs }
        init?(argument: String) {
            let specs = argument.split(separator: ",").map { RunSpec(argument: String($0)) }
            guard !specs.isEmpty, !specs.contains(where: { $0 == nil }) else { return nil }
            self.specs = specs.map { $0! }
        }
        var description: String { specs.map(\.description).joined(separator: ",") }
    }
}

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
    /// The OpenBLAS core and how it was chosen (training and encoding are sgemm-bound).
    var blas_core = MachineReport.current.blasCoreSelection
    var cpu = MachineReport.current.cpu
}
