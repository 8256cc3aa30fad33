import ArgumentParser
import Foundation
import SheafCLI
import SheafFormats
import SheafStore
import _SheafBench

extension SheafMeasure.Bench {
    /// `sheaf items load` end to end from a `.npy` of synthetic clustered rows, beside float32 rows
    /// from the same file put into LMDB.
    struct NPYLoad: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "npy-load", abstract: "Items loaded end to end from .npy, beside float32 rows put into LMDB.")

        @OptionGroup var output: SuiteOutput
        @Option(help: "Embedding dimension D.")
        var dim = 2048
        @Option(help: "Rows written to the .npy and loaded.")
        var rows = 100_000
        @Option(help: "The dataset's name in the rows (default synthetic-D).")
        var name: String?

        func run() throws {
            let out = output.out
            let d = dim
            let n = rows
            let name = self.name ?? "synthetic-\(d)"
            let work = NSTemporaryDirectory() + "sheaf-bench-npy-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: work) }
            let vectors = ClusteredVectors(dimension: d)
            let npy = work + "/items.npy"
            try writeNPY(vectors, rows: n, to: npy)
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
            let chunk = max(1, (32 << 20) / (d * 4))
            let buffer = AlignedFloats(count: chunk * d)
            var start = 0
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
    }
}
