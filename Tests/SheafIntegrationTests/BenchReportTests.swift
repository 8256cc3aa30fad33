import Foundation
import Testing

/// `tools/bench-report --quick`: the whole report pipeline (every suite of `sheaf-measure bench`, the
/// Python lmdb reader, the faiss side by side and the renderer) on tiny sizes, to prove it works.
/// Its numbers are not looked at, only that every section is there and self-consistent.
@Suite struct BenchReportTests {
    /// The built sheaf-measure, next to the test bundle (`swift build --build-tests` builds it), or nil.
    static let measureBinary = builtProduct("sheaf-measure")

    @Test(
        .enabled(if: measureBinary != nil, "needs sheaf-measure built (`swift build --build-tests` builds it; tools/test does)"),
        .enabled(if: PythonEnvironment.canImport("numpy", "faiss", "lmdb"), PythonEnvironment.missing("numpy", "faiss-cpu", "lmdb")))
    func quickReportHasEverySectionAndConsistentRatios() throws {
        let scratch = TemporaryPath()
        let out = scratch.path + "/report"
        let binary = try #require(Self.measureBinary)
        var env = ProcessInfo.processInfo.environment
        env["SHEAF_MEASURE"] = binary
        let run = try #require(runProcess("/bin/bash", [repositoryRoot + "/tools/bench-report", "--quick", "--out", out], environment: env))
        try #require(run.status == 0, "bench-report failed:\n\(run.stderr.suffix(3000))")

        let data = try Data(contentsOf: URL(fileURLWithPath: out + "/report.json"))
        let report = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(report["mode"] as? String == "quick")
        let rows = try #require(report["rows"] as? [[String: Any]])
        let sections = Set(rows.compactMap { $0["section"] as? String })
        #expect(sections == ["decode", "store", "bandwidth", "ingest", "side-by-side", "faiss", "projected"])
        for row in rows {
            let key = row["key"] as? String ?? "?"
            let sheaf = try #require(row["sheaf"] as? Double, "\(key)")
            let baseline = try #require(row["baseline"] as? Double, "\(key)")
            let ratio = try #require(row["ratio"] as? Double, "\(key)")
            #expect(sheaf.isFinite && sheaf > 0 && baseline.isFinite && baseline > 0, "\(key)")
            let expected = row["better"] as? String == "higher" ? sheaf / baseline : baseline / sheaf
            #expect(abs(ratio - expected) <= 1e-9 * expected, "\(key): ratio \(ratio), expected \(expected)")
            #expect((row["baselineName"] as? String)?.isEmpty == false, "\(key)")
        }
        // Quick grid: D=64, K=256, L ∈ {2, 3}, magnitudes 8 and 32 bits, cache-resident and streaming,
        // plus float16 centroids beside the 8-bit rows.
        #expect(rows.filter { $0["section"] as? String == "decode" }.count == 12)
        // History latency for every measured bucket of both synthetic sets and the stand-in, with bytes.
        let keys = Set(rows.compactMap { $0["key"] as? String })
        for k in ["store/synthetic-small/history/10/p50", "store/synthetic-small/history/100/p99", "store/synthetic-small/history/100/c16-p50", "store/synthetic-large/history/50/p50",
                  "store/stand-in/history/all/blob-p50", "bytes/synthetic-large/50", "ingest/synthetic-small/npy-load",
                  "ingest/stand-in/append", "ingest/appends-small/append-existing/late", "store/stand-in/item-gets/100/record", "python-lmdb/synthetic-large/50/rows/p50",
                  "projected/synthetic-small/100/h64/rows-p50", "projected/synthetic-large/50/h256/blob-p99", "projected/stand-in/all/h128/decode-p50"] {
            #expect(keys.contains(k), "missing row \(k)")
        }
        let goals = try #require(report["goals"] as? [[String: Any]])
        #expect(goals.count >= 13)
        #expect(goals.contains { ($0["goal"] as? String)?.hasPrefix("history → model inputs, 1,000 behaviours, D=2048, H=64") == true })
        for g in goals { #expect(["met", "missed", "partly met"].contains(g["status"] as? String ?? ""), "\(g)") }

        let markdown = try String(contentsOfFile: out + "/report.md", encoding: .utf8)
        for heading in ["# Sheaf benchmark report (quick)", "**Quick mode**", "## Goals", "## Bandwidth", "## Decode throughput",
                        "## Encode and load", "## Side by side: faiss", "## Side by side: Python lmdb",
                        "## Histories into a model's first layer"] {
            #expect(markdown.contains(heading), "report.md lacks \(heading)")
        }
        // Temporary stores are removed; the raw suite files stay.
        #expect(!FileManager.default.fileExists(atPath: out + "/tmp"))
        #expect(FileManager.default.fileExists(atPath: out + "/raw/decode.json"))
    }
}
