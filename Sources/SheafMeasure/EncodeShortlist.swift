import ArgumentParser
import Foundation
import SheafCLI
import SheafCodebook
import SheafFormats
import SheafQuantizer
import SheafStore

extension SheafMeasure {
    /// The int8 shortlist search (`EncodeSearch.int8Shortlist`) against exhaustive greedy encoding, with the codebook a store holds, on rows
    /// of a file (held-out rows, for a quality figure): items/s of each, interleaved, best of `--runs`;
    /// the share of rows whose whole code tuple equals exhaustive's; mean cosine and recall@10 of the
    /// decoded rows.
    struct EncodeShortlist: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "encode-shortlist",
            abstract: "The int8 shortlist search against exhaustive greedy encoding: speed, identical codes, cosine, recall@10.")

        @Option(help: "A store whose active codebook encodes (cosine or euclidean).")
        var store: String
        @Option(help: "Rows to encode (.npy, .fvecs or .safetensors), e.g. held-out embeddings.")
        var input: String
        @Option(help: "Only the first N rows.")
        var rows: Int?
        @Option(help: ArgumentHelp("Shortlist sizes to try (candidates rescored exactly), comma-separated.", valueName: "M,..."))
        var candidates = "2,4,8"
        @Option(help: "Timed runs of each encoder (the best counts).")
        var runs = 3
        @Option(help: "Encoding threads.")
        var threads = 2
        @Option(help: "Recall@10 queries.")
        var queries = 1000
        @Option(help: "Write the results as JSON here.")
        var jsonOut: String?

        struct Result: Codable {
            var name: String
            var candidates: Int?
            var items_per_s: Double
            var speedup: Double
            var identical_rows: Double
            var mean_cosine: Double
            var recall_at_10: Double?
            var recall_at_10_change: Double?
            var build_seconds: Double
        }

        func run() throws {
            var o = StoreOptions()
            o.readOnly = true
            let s = try Store(path: store, options: o)
            guard let codebook = try s.read({ try $0.activeCodebook() }) else { throw MeasureError("\(store) has no active codebook") }
            let file = try EmbeddingFile(path: input)
            let n = min(rows ?? file.count, file.count)
            let d = file.dimension
            guard d == codebook.dimension else { throw MeasureError("\(input) is \(d)-d, the codebook \(codebook.dimension)-d") }
            var data = [Float](repeating: 0, count: n * d)
            try data.withUnsafeMutableBufferPointer { try file.read(rows: 0..<n, into: $0.baseAddress!) }
            log("encode-shortlist: int8 kernel \(EncodeSearch.hasFastInt8Scores ? "AVX-512 VNNI" : "portable (no AVX-512 VNNI)"); \(n) rows × \(d), codebook L\(codebook.levels) K\(codebook.codesPerLevel) \(codebook.metric), \(threads) thread(s)")

            let sizes = try candidates.split(separator: ",").map { spec in
                guard let m = Int(spec), m > 0 else { throw MeasureError("bad shortlist size '\(spec)'") }
                return m
            }
            var encoders: [(String, Int?, ResidualEncoder, Double)] = []
            encoders.append(("exhaustive", nil, ResidualEncoder(codebook: codebook, threads: threads), 0))
            for m in sizes {
                let t0 = nowNanoseconds()
                let e = ResidualEncoder(codebook: codebook, threads: threads, search: .int8Shortlist(candidates: m))
                encoders.append(("int8 shortlist of \(m)", m, e, Double(nowNanoseconds() - t0) / 1e9))
            }
            // Interleaved timed runs.
            var best = [Double](repeating: .infinity, count: encoders.count)
            var outputs = [[UInt32]](repeating: [], count: encoders.count)
            var magnitudes = [[Float]](repeating: [], count: encoders.count)
            for _ in 0..<runs {
                for (k, e) in encoders.enumerated() {
                    let t0 = nowNanoseconds()
                    let (c, m) = try e.2.encode(data, count: n)
                    best[k] = min(best[k], Double(nowNanoseconds() - t0) / 1e9)
                    outputs[k] = c
                    magnitudes[k] = m
                }
            }
            let L = codebook.levels
            var results: [Result] = []
            var exhaustiveRecall: Double?
            for (k, e) in encoders.enumerated() {
                var same = 0
                for i in 0..<n where outputs[k][(i * L)..<((i + 1) * L)] == outputs[0][(i * L)..<((i + 1) * L)] { same += 1 }
                var decoded = [Float](repeating: 0, count: n * d)
                outputs[k].withUnsafeBufferPointer { c in
                    magnitudes[k].withUnsafeBufferPointer { m in
                        decoded.withUnsafeMutableBufferPointer { out in
                            codebook.decode(codes: c.baseAddress!, magnitudes: m.baseAddress!, count: n, into: out.baseAddress!)
                        }
                    }
                }
                let quality = try data.withUnsafeBufferPointer { orig in
                    try decoded.withUnsafeBufferPointer { dec in
                        try QualityReport.measure(original: orig, decoded: dec, count: n, dimension: d, queryCount: min(queries, n))
                    }
                }
                if k == 0 { exhaustiveRecall = quality.recallAt10 }
                var change: Double?
                if let r = quality.recallAt10, let r0 = exhaustiveRecall { change = r - r0 }
                let result = Result(
                    name: e.0, candidates: e.1, items_per_s: Double(n) / best[k],
                    speedup: best[0] / best[k], identical_rows: Double(same) / Double(n), mean_cosine: quality.meanCosine,
                    recall_at_10: quality.recallAt10, recall_at_10_change: change, build_seconds: e.3)
                results.append(result)
            }
            print("machine: \(MachineReport.current.summary)")
            print("| encoder | items/s | vs exhaustive | identical rows | mean cos | recall@10 | Δ recall@10 | tables s |")
            print("|---|---:|---:|---:|---:|---:|---:|---:|")
            for r in results {
                print(String(
                    format: "| %@ | %.0f | %.2f× | %.2f%% | %.4f | %.3f | %+.4f | %.2f |", r.name, r.items_per_s, r.speedup,
                    100 * r.identical_rows, r.mean_cosine, r.recall_at_10 ?? .nan, r.recall_at_10_change ?? .nan, r.build_seconds))
            }
            if let jsonOut {
                let e = JSONEncoder()
                e.outputFormatting = [.prettyPrinted, .sortedKeys]
                struct Output: Codable { var machine: MachineReport; var rows: Int; var results: [Result] }
                try e.encode(Output(machine: .current, rows: n, results: results)).write(to: URL(fileURLWithPath: jsonOut))
            }
        }
    }
}

private func nowNanoseconds() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
