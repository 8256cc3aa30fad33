import Foundation
import CSheafEncode
import SheafCodebook
import SheafRandom
import Testing

@testable import SheafQuantizer

/// The int8 shortlist search: its C kernels (each path against a scalar reference, and the two paths
/// against each other on the calling thread) and the encoder built on them.
@Suite struct Int8KernelTests {
    /// Runs `body` on the automatic path and on the forced portable one.
    func bothPaths<R>(_ body: () -> R) -> (automatic: R, portable: R) {
        sheaf_encode_force_isa(0)
        let a = body()
        sheaf_encode_force_isa(1)
        defer { sheaf_encode_force_isa(0) }
        return (a, body())
    }

    func random(_ n: Int, _ rng: inout SplitMix64) -> [Float] { (0..<n).map { _ in rng.float(in: -1...1) } }

    /// Random rows × d residuals and cols × d centroids, quantized and packed as the encoder does.
    struct Quantized {
        var c: [Float]
        var dp: Int
        var a: [UInt8], aScales: [Float]
        var packed: [Int8], bScales: [Float], sums: [Int32]

        init(rows: Int, cols: Int, d: Int, _ rng: inout SplitMix64) {
            let x = (0..<(rows * d)).map { _ in rng.float(in: -1...1) }
            c = (0..<(cols * d)).map { _ in rng.float(in: -1...1) }
            dp = sheaf_i8_padded_depth(d)
            a = [UInt8](repeating: 0, count: rows * dp)
            aScales = [Float](repeating: 0, count: rows)
            sheaf_quantize_rows_u8(x, rows, d, dp, &a, &aScales)
            packed = [Int8](repeating: 0, count: sheaf_i8_packed_size(cols, d))
            bScales = [Float](repeating: 0, count: cols)
            sums = [Int32](repeating: 0, count: cols)
            sheaf_pack_i8(c, cols, d, &packed, &bScales, &sums)
        }
    }

    /// Quantization: the scale is max|x|/127, values round to nearest, padding holds 128 (zero).
    @Test func quantizeRows() {
        let x: [Float] = [0.5, -1, 0.25, 0, 0, 0, 0, 0]
        let (fast, portable) = bothPaths { () -> ([UInt8], [Float]) in
            var out = [UInt8](repeating: 0, count: 2 * 4)
            var scales = [Float](repeating: -1, count: 2)
            sheaf_quantize_rows_u8(x, 2, 3, 4, &out, &scales)
            return (out, scales)
        }
        let expected: [UInt8] = [192, 1, 160, 128, 128, 128, 128, 128]  // 128 + 64 (63.5 rounds to even), 128 − 127, 128 + 32
        for (out, scales) in [fast, portable] {
            #expect(scales == [1 / 127, 0])
            #expect(out == expected)
        }
    }

    /// The AVX-512 quantization and packing write the portable loops' bytes, scales and sums exactly, over
    /// every tail of 16 values, including values that land on a half step (rounded to even) and a zero row.
    @Test(arguments: [1, 5, 16, 17, 100, 384, 385])
    func quantizeAndPackAreTheSameOnBothPaths(d: Int) {
        var rng = SplitMix64(seed: UInt64(d))
        let rows = 7
        var x = random(rows * d, &rng)
        // Row 0: max |x| = 63.5, so x · 127/63.5 = 2x, and multiples of 1/4 land on half steps.
        for t in 0..<d { x[t] = t == 0 ? 63.5 : Float(Int(rng.next() % 255) - 127) / 4 }
        for t in 0..<d { x[d + t] = 0 }
        let dp = sheaf_i8_padded_depth(d)
        let (fast, portable) = bothPaths { () -> ([UInt8], [Float]) in
            var out = [UInt8](repeating: 7, count: rows * dp)
            var scales = [Float](repeating: -1, count: rows)
            sheaf_quantize_rows_u8(x, rows, d, dp, &out, &scales)
            return (out, scales)
        }
        #expect(fast.0 == portable.0)
        #expect(fast.1 == portable.1)
        #expect(portable.1[1] == 0 && portable.0[dp..<(2 * dp)].allSatisfy { $0 == 128 })
        // Packing the same rows as centroids (17 columns: a partial group of 16).
        let cols = 17
        let c = x + random((cols - rows) * d, &rng)
        let (fastPack, portablePack) = bothPaths { () -> ([Int8], [Float], [Int32]) in
            var packed = [Int8](repeating: 5, count: sheaf_i8_packed_size(cols, d))
            var scales = [Float](repeating: -1, count: cols)
            var sums = [Int32](repeating: 0, count: cols)
            sheaf_pack_i8(c, cols, d, &packed, &scales, &sums)
            return (packed, scales, sums)
        }
        #expect(fastPack.0 == portablePack.0)
        #expect(fastPack.1 == portablePack.1)
        #expect(fastPack.2 == portablePack.2)
        // The quantized values are the rows' (offset by 128), so the sums follow from them.
        for j in 0..<rows {
            #expect(portablePack.2[j] == portable.0[(j * dp)..<(j * dp + d)].reduce(0) { $0 + Int32($1) - 128 })
        }
    }

    /// The int8 dot products equal an integer reference exactly (same float expression), on both paths,
    /// for shapes that exercise every tail (rows not a multiple of 4, columns of 16 × 4, depth of 4).
    @Test(arguments: [(1, 1, 1), (3, 17, 5), (4, 64, 32), (5, 70, 130), (9, 100, 384), (8, 129, 7)])
    func dotMatchesIntegerReference(rows: Int, cols: Int, d: Int) {
        var rng = SplitMix64(seed: UInt64(rows * 1000 + cols * 10 + d))
        let q = Quantized(rows: rows, cols: cols, d: d, &rng)
        let (c, dp, a, aScales, packed, bScales, sums) = (q.c, q.dp, q.a, q.aScales, q.packed, q.bScales, q.sums)
        // Reference: unpack q_b from the column's own quantization (scale and rounding as the kernel does).
        var reference = [Float](repeating: 0, count: rows * cols)
        for j in 0..<cols {
            let row = Array(c[(j * d)..<((j + 1) * d)])
            let m = row.map(abs).max()!
            let inv: Float = m > 0 ? 127 / m : 0
            let qb = row.map { Int32(max(-127, min(127, ($0 * inv).rounded(.toNearestOrEven)))) }
            #expect(sums[j] == qb.reduce(0, +))
            for i in 0..<rows {
                var acc: Int32 = 0
                for t in 0..<d { acc += (Int32(a[i * dp + t]) - 128) * qb[t] }
                reference[i * cols + j] = aScales[i] * bScales[j] * Float(acc)
            }
        }
        let (fast, portable) = bothPaths { () -> [Float] in
            var out = [Float](repeating: .nan, count: rows * cols)
            sheaf_dot_u8i8(a, aScales, rows, packed, bScales, sums, cols, d, &out)
            return out
        }
        #expect(fast == reference)
        #expect(portable == reference)
    }

    /// The candidates are the m largest objective values, best first, ties to the lower index, on both paths.
    @Test(arguments: [1, 4, 16])
    func topCandidatesMatchASort(m: Int) {
        var rng = SplitMix64(seed: UInt64(m))
        let k = 203
        var s = random(k, &rng)
        s[50] = s[7]  // a tie
        let w = (0..<k).map { _ in rng.float(in: 0.5...2) }
        for cosine in [true, false] {
            let v = (0..<k).map { cosine ? s[$0] * s[$0] * w[$0] : 2 * s[$0] - w[$0] }
            let expected = (0..<k).sorted { v[$0] > v[$1] || (v[$0] == v[$1] && $0 < $1) }.prefix(m).map(Int32.init)
            let (fast, portable) = bothPaths { () -> [Int32] in
                var idx = [Int32](repeating: -1, count: m), val = [Float](repeating: 0, count: m)
                let n = sheaf_top_candidates(s, w, cosine ? 1 : 0, k, m, &idx, &val)
                return Array(idx.prefix(n))
            }
            #expect(fast == Array(expected), "cosine \(cosine)")
            #expect(portable == Array(expected), "cosine \(cosine)")
        }
    }

    /// The fused kernel keeps exactly what dot products followed by `sheaf_top_candidates` keep, row by
    /// row, on both paths (shapes with row and column tails; m above and below the column count).
    @Test(arguments: [(5, 70, 130, 4), (9, 200, 384, 2), (3, 17, 5, 32), (4, 64, 32, 1), (13, 256, 64, 4)])
    func fusedShortlistEqualsDotThenSelect(rows: Int, cols: Int, d: Int, m: Int) {
        var rng = SplitMix64(seed: UInt64(rows + cols + d + m))
        let q = Quantized(rows: rows, cols: cols, d: d, &rng)
        let (a, aScales, packed, bScales, sums) = (q.a, q.aScales, q.packed, q.bScales, q.sums)
        let w = (0..<cols).map { _ in rng.float(in: 0.5...2) }
        let mm = min(m, cols)
        for cosine in [Int32(1), 0] {
            sheaf_encode_force_isa(1)
            var scores = [Float](repeating: 0, count: rows * cols)
            sheaf_dot_u8i8(a, aScales, rows, packed, bScales, sums, cols, d, &scores)
            var expected: [[Int32]] = []
            for i in 0..<rows {
                var idx = [Int32](repeating: -1, count: mm), val = [Float](repeating: 0, count: mm)
                let n = Array(scores[(i * cols)..<((i + 1) * cols)]).withUnsafeBufferPointer {
                    sheaf_top_candidates($0.baseAddress!, w, cosine, cols, mm, &idx, &val)
                }
                expected.append(Array(idx.prefix(n)))
            }
            sheaf_encode_force_isa(0)
            let (fast, portable) = bothPaths { () -> [[Int32]] in
                var idx = [Int32](repeating: -1, count: rows * mm), val = [Float](repeating: 0, count: rows * mm)
                var counts = [Int](repeating: -1, count: rows), scratch = [Float](repeating: 0, count: cols)
                _ = sheaf_shortlist_u8i8(a, aScales, rows, packed, bScales, sums, w, cosine, cols, d, m, &scratch, &idx, &val, &counts)
                return (0..<rows).map { Array(idx[($0 * mm)..<($0 * mm + counts[$0])]) }
            }
            #expect(fast == expected, "cosine \(cosine)")
            #expect(portable == expected, "cosine \(cosine)")
        }
    }

    /// Exact rescoring equals a double-precision dot within float rounding, on both paths.
    @Test func rescoringMatchesDoubleReference() {
        var rng = SplitMix64(seed: 77)
        let (n, d) = (40, 131)
        let rows = random(n * d, &rng), x = random(d, &rng)
        let idx: [Int32] = [3, 39, 0, 17, 17]
        let (fast, portable) = bothPaths { () -> [Float] in
            var out = [Float](repeating: 0, count: idx.count)
            sheaf_dot_rows_f32(x, rows, idx, idx.count, d, &out)
            return out
        }
        for (q, j) in idx.enumerated() {
            var ref = 0.0, mag = 0.0
            for t in 0..<d {
                ref += Double(x[t]) * Double(rows[Int(j) * d + t])
                mag += abs(Double(x[t]) * Double(rows[Int(j) * d + t]))
            }
            #expect(abs(Double(fast[q]) - ref) <= 1e-6 * mag + 1e-7)
            #expect(abs(Double(portable[q]) - ref) <= 1e-6 * mag + 1e-7)
        }
    }

    /// Forcing the portable path stays on the calling thread: a new thread still sees the automatic path.
    /// (Synchronous on purpose: across an `await` the task may resume on another thread.)
    @Test func forcingStaysOnTheCallingThread() {
        let automatic = sheaf_encode_isa()
        sheaf_encode_force_isa(1)
        defer { sheaf_encode_force_isa(0) }
        #expect(sheaf_encode_isa() == 1)
        final class Box: @unchecked Sendable { var value: Int32 = 0 }  // written before signal(), read after wait()
        let box = Box(), done = DispatchSemaphore(value: 0)
        Thread {
            box.value = sheaf_encode_isa()
            done.signal()
        }.start()
        done.wait()
        #expect(box.value == automatic)
        #expect(sheaf_encode_isa() == 1)
    }
}

@Suite struct Int8ShortlistEncoderTests {
    /// With every centroid a candidate the search is exhaustive in effect: exhaustive's codes (up to the
    /// rounding of a differently ordered dot product, which may flip exact ties) and no row's final
    /// residual energy differs beyond rounding, for both metrics.
    @Test(arguments: [Metric.cosine, .euclidean])
    func everyCandidateMatchesExhaustive(_ metric: Metric) throws {
        let d = 24, n = 500
        let data = clusteredData(count: n, dimension: d, seed: 21)
        let (cb, _) = try train(data, count: n, dimension: d, config(metric, k: 32, magnitudes: .uint8))
        let exhaustive = try ResidualEncoder(codebook: cb).encode(data, count: n)
        let full = try ResidualEncoder(codebook: cb, search: .int8Shortlist(candidates: 32)).encode(data, count: n)
        var same = 0
        for i in 0..<n {
            let range = (i * 3)..<(i * 3 + 3)
            if exhaustive.codes[range] == full.codes[range] { same += 1 }
            let row = data[(i * d)..<((i + 1) * d)]
            let e = norm2(residuals(row, codes: exhaustive.codes[range], mags: exhaustive.magnitudes[range], cb)[3])
            let s = norm2(residuals(row, codes: full.codes[range], mags: full.magnitudes[range], cb)[3])
            #expect(abs(e - s) <= 1e-3 * (norm2(Array(row)) + 1e-6), "\(metric) row \(i): \(s) vs \(e)")
        }
        #expect(same >= n * 99 / 100, "\(metric): \(same) of \(n) rows")
    }

    /// A short list still finds exhaustive's choice on nearly every row of clustered data and always
    /// produces valid codes, with the automatic kernels and with the portable ones forced on the calling
    /// thread (one encoding thread: libdispatch runs a single `concurrentPerform` iteration there; the
    /// kernel tests above check the portable path directly either way).
    @Test func fourCandidatesAgreeWithExhaustive() throws {
        let d = 32, n = 400
        let data = clusteredData(count: n, dimension: d, seed: 8)
        let (cb, _) = try train(data, count: n, dimension: d, config(.cosine, k: 64, magnitudes: .uint8))
        let exhaustive = try ResidualEncoder(codebook: cb, threads: 1).encode(data, count: n)
        for forced in [Int32(0), 1] {
            sheaf_encode_force_isa(forced)
            defer { sheaf_encode_force_isa(0) }
            let short = try ResidualEncoder(codebook: cb, threads: 1, search: .shortlist).encode(data, count: n)
            var same = 0
            for i in 0..<n where exhaustive.codes[(i * 3)..<(i * 3 + 3)] == short.codes[(i * 3)..<(i * 3 + 3)] { same += 1 }
            #expect(same >= n * 95 / 100, "forced \(forced): \(same) of \(n) rows")
            try short.codes.withUnsafeBufferPointer { c in
                try short.magnitudes.withUnsafeBufferPointer { m in try cb.validate(codes: c, magnitudes: m, count: n) }
            }
        }
    }

    @Test func automaticChoosesTheShortlistOnlyWhereItPays() {
        #expect(EncodeSearch.automatic(codesPerLevel: 256) == .exhaustive)
        #expect(EncodeSearch.automatic(codesPerLevel: 4096) == (sheaf_encode_isa() == 2 ? .shortlist : .exhaustive))
    }
}

/// k-means scored through the int8 shortlist (`QuantizerConfiguration.trainingSearch`).
@Suite struct Int8ShortlistTrainingTests {
    let n = 2000, d = 24

    func trained(_ metric: Metric, _ search: EncodeSearch, threads: Int = 2) throws -> (Codebook, TrainingReport) {
        let data = clusteredData(count: n, dimension: d, clusters: 40, seed: 31)
        var c = config(metric, k: 64, magnitudes: .uint8)
        c.balanceTolerance = 1.2  // tight enough that some points find all their candidates full
        c.trainingSearch = search
        c.threads = threads
        return try train(data, count: n, dimension: d, c)
    }

    /// The shortlist fits the training data as well as exhaustive scoring (within 2% of its residual
    /// energy at every level), keeps the balance bound, and says in the codebook how it was trained.
    @Test(arguments: [Metric.cosine, .euclidean])
    func fitsAsWellAsExhaustive(_ metric: Metric) throws {
        let (exhaustive, e) = try trained(metric, .exhaustive)
        let (short, s) = try trained(metric, .int8Shortlist(candidates: 8))
        for (l, (el, sl)) in zip(e.levels, s.levels).enumerated() {
            #expect(sl.residualEnergy <= el.residualEnergy * 1.02 + 1e-4, "\(metric) level \(l + 1): \(sl) vs \(el)")
            #expect(sl.maxOverMeanClusterSize <= 1.2 + 64.0 / Double(n), "\(metric) level \(l + 1): \(sl)")
        }
        #expect(exhaustive.trainingStats["training_int8_shortlist"] == 0)
        #expect(short.trainingStats["training_int8_shortlist"] == 8)
    }

    /// Rows are scored independently, so one or two threads give the same codebook. The portable kernels
    /// (forced on the calling thread: one thread) give the same int8 shortlists but round the exact rescoring
    /// differently (16 partial sums unfused against fused), which may flip near-ties: their codebook
    /// fits as well, within 1% of the residual energy at every level.
    @Test func sameCodebookWithAnyThreadCountAndAsGoodOnThePortablePath() throws {
        let (two, twoReport) = try trained(.cosine, .shortlist, threads: 2)
        let (one, _) = try trained(.cosine, .shortlist, threads: 1)
        #expect(two.hasSameContent(as: one))
        sheaf_encode_force_isa(1)
        defer { sheaf_encode_force_isa(0) }
        let (_, portable) = try trained(.cosine, .shortlist, threads: 1)
        for (a, b) in zip(twoReport.levels, portable.levels) {
            #expect(abs(a.residualEnergy - b.residualEnergy) <= 0.01 * a.residualEnergy, "\(a) vs \(b)")
        }
    }

    @Test func aShortlistNeedsTwoCandidates() {
        var c = config(k: 64)
        c.trainingSearch = .int8Shortlist(candidates: 1)
        #expect(throws: QuantizerError.invalidConfiguration(
            "the training shortlist needs at least 2 candidates (the best and the runner-up)")) { try c.validate() }
    }

    @Test func automaticTrainingSearchFollowsTheEncoder() {
        var c = QuantizerConfiguration()
        #expect(c.effectiveTrainingSearch == .exhaustive)  // K = 256
        c.codesPerLevel = 4096
        #expect(c.effectiveTrainingSearch == (sheaf_encode_isa() == 2 ? .int8Shortlist(candidates: 8) : .exhaustive))
        c.trainingSearch = .exhaustive
        #expect(c.effectiveTrainingSearch == .exhaustive)
    }
}
