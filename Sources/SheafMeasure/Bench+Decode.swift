import ArgumentParser
import Foundation
import SheafCodebook
import _SheafBench

extension SheafMeasure.Bench {
    /// n × D decode throughput over the grid (D, K, L, magnitude bits; float16 centroids beside the
    /// 8-bit rows), cache-resident and streaming, beside memcpy of the same output bytes.
    struct Decode: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "decode", abstract: "Decode throughput over the grid, beside memcpy of the same bytes.")

        @OptionGroup var output: SuiteOutput
        @Flag(help: "A tiny grid (D=64, K=256, L 2 and 3, 8- and 32-bit magnitudes) and short runs.")
        var quick = false

        func run() throws {
            let out = output.out
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
    }
}
