import ArgumentParser
import Foundation
import SheafCLI
import SheafCodebook
import SheafFormats
import SheafRandom
import _SheafBench

// The data files the report needs besides its measurements.

extension SheafMeasure.Bench {
    /// Quick mode's stand-in for MovieLens: tiny, synthetic, clearly labelled. Writes
    /// item_embeddings.npy, item_ids.npy and stand-in.inter (RecBole) into `--dir`.
    struct StandIn: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "stand-in", abstract: "Writes quick mode's tiny MovieLens-shaped files.")

        @Option(help: "The directory to write (created if missing).")
        var dir: String
        @Option(help: "Items.")
        var items = 300
        @Option(help: "Users (each with 5 to 64 ratings).")
        var users = 40
        @Option(help: "Embedding dimension D.")
        var dim = 32

        func run() throws {
            let d = dim
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
    }

    /// Synthetic clustered rows as `.npy` (for the faiss side by side).
    struct WriteNPY: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "write-npy", abstract: "Writes synthetic clustered rows as .npy.")

        @Option(help: "The .npy file to write.")
        var out: String
        @Option(help: "Embedding dimension D.")
        var dim = 2048
        @Option(help: "Rows.")
        var rows = 20_000
        @Option(help: "Clusters of the rows.")
        var clusters = 1000

        func run() throws {
            try writeNPY(ClusteredVectors(dimension: dim, clusters: clusters), rows: rows, to: out)
        }
    }
}

/// Writes rows 0..<`rows` of `vectors` to a `<f4` `.npy` at `path`, 32 MB at a time.
func writeNPY(_ vectors: ClusteredVectors, rows: Int, to path: String) throws {
    let writer = try NPYStreamWriter(path: path, rows: rows, dimension: vectors.dimension)
    try vectors.forEachChunk(of: 0..<rows) { try writer.append($0) }
    try writer.finish()
}
