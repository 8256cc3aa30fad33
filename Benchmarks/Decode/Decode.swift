// Decode: n × D float32 reconstruction from packed codes (_SheafBench.DecodeWorkload), beside a memcpy
// of the same output bytes.
//
// The grid is D ∈ {384, 2048} × K ∈ {256, 4096} × L ∈ {2, 3, 4} × magnitudes at 8/16/32 bits, each
// as a cache-resident batch (256 items, ordinary stores) and as a streaming one (100,000 items,
// non-temporal stores): 72 decode benchmarks, 24 more with float16 centroids beside the 8-bit ones
// (suffix " c16"), plus memcpy at the four (D, n) sizes.
//
// Names, for --filter (a regular expression that must match the whole name):
//   decode D384 L3 K256 m8 n256             cache-resident batch
//   decode D384 L3 K256 m8 n100000 stream   streaming batch
//   memcpy D384 n256, memcpy D384 n100000   the baselines (same bytes as the decodes of that D and n)
//
// Metrics: wall clock per decode of the whole batch, throughput in batches per second, and
// "output MB/s" = float32 bytes written per second (10^6 bytes), the figure to set beside memcpy's.
//
// Workloads (random codebook and codes: decode speed does not depend on code quality) are built in
// each benchmark's setup closure, so only the benchmarks that run build anything; every benchmark
// runs in a process of its own.
import Benchmark
import _SheafBench
import SheafCodebook

/// Float32 output bytes written per second, in MB (10^6 B), one sample per decode.
let outputMegabytesPerSecond = BenchmarkMetric.custom("output MB/s", polarity: .prefersLarger, useScalingFactor: false)

enum DecodeError: Error, CustomStringConvertible {
    case wrongResult(String, Float)
    var description: String {
        switch self {
        case let .wrongResult(name, error): "\(name): decoded rows differ from the scalar reference by \(error)"
        }
    }
}

/// Runs `body` once (one decode or copy of the whole batch) and records its output rate.
@inline(__always)
func measure(_ benchmark: Benchmark, bytes: Int, _ body: () -> Void) {
    let t0 = monotonicNanoseconds()
    body()
    let t1 = monotonicNanoseconds()
    // bytes per nanosecond = GB/s; × 1000 = MB/s.
    benchmark.measurement(outputMegabytesPerSecond, Int((Double(bytes) * 1000 / Double(max(1, t1 - t0))).rounded()))
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, outputMegabytesPerSecond],
        units: [outputMegabytesPerSecond: .count],
        warmupIterations: 2,
        maxDuration: .seconds(1),
        maxIterations: 20_000)

    let batches: [(rows: Int, streaming: Bool)] = [(256, false), (100_000, true)]

    for batch in batches {
        // The baselines: memcpy of rows × D × 4 bytes (libc), buffer to buffer.
        for dimension in [384, 2048] {
            Benchmark("memcpy D\(dimension) n\(batch.rows)") { benchmark, workload in
                let bytes = workload.outputBytes
                for _ in benchmark.scaledIterations {
                    measure(benchmark, bytes: bytes) { workload.copy() }
                }
            } setup: { () throws -> DecodeWorkload in
                // A small codebook: only the two buffers matter for the copy.
                try DecodeWorkload(
                    DecodeConfiguration(dimension: dimension, levels: 2, codesPerLevel: 256, magnitudeBits: 8, rows: batch.rows))
            }
        }

        for config in DecodeConfiguration.grid(rows: batch.rows) {
            // Half-precision centroids beside the 8-bit configurations (their cost does not depend on
            // how magnitudes are stored).
            let precisions: [CentroidPrecision] = config.magnitudeBits == 8 ? [.float32, .float16] : [.float32]
            for precision in precisions {
                let name = "decode \(config)" + (batch.streaming ? " stream" : "") + (precision == .float16 ? " c16" : "")
                Benchmark(name) { benchmark, workload in
                    let bytes = workload.outputBytes
                    for _ in benchmark.scaledIterations {
                        measure(benchmark, bytes: bytes) { workload.decode(streaming: batch.streaming, precision: precision) }
                    }
                } setup: { () throws -> DecodeWorkload in
                    let workload = try DecodeWorkload(config)
                    // The measured kernel must compute the right thing (first 16 rows against the scalar path).
                    let error = workload.maximumErrorAgainstReference(precision: precision)
                    guard error <= 1e-4 else { throw DecodeError.wrongResult(name, error) }
                    return workload
                }
            }
        }
    }
}
