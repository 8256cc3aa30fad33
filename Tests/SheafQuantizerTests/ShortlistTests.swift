import SheafCodebook
import SheafRandom
import Testing

@testable import SheafQuantizer

@Suite struct ShortlistTests {
    /// The basis is orthonormal and spans a planted subspace: points that live in 4 of 16 dimensions
    /// keep their whole norm when projected onto a rank-4 basis.
    @Test func principalBasisFindsAPlantedSubspace() {
        let (n, d, r) = (300, 16, 4)
        var rng = SplitMix64(seed: 3)
        let directions = (0..<(r * d)).map { _ in rng.float(in: -1...1) }
        var x = [Float](repeating: 0, count: n * d)
        for i in 0..<n {
            for k in 0..<r {
                let w = rng.float(in: -1...1)
                for t in 0..<d { x[i * d + t] += w * directions[k * d + t] }
            }
        }
        let q = x.withUnsafeBufferPointer { ShortlistPlan.principalBasis($0.baseAddress!, rows: n, dimension: d, rank: r, seed: 1) }
        for a in 0..<r {
            for b in 0..<r {
                var dot: Float = 0
                for t in 0..<d { dot += q[t * r + a] * q[t * r + b] }
                #expect(abs(dot - (a == b ? 1 : 0)) < 1e-4, "column \(a)·\(b) = \(dot)")
            }
        }
        for i in 0..<n {
            var norm: Float = 0, kept: Float = 0
            for t in 0..<d { norm += x[i * d + t] * x[i * d + t] }
            for a in 0..<r {
                var p: Float = 0
                for t in 0..<d { p += x[i * d + t] * q[t * r + a] }
                kept += p * p
            }
            #expect(abs(kept - norm) <= 1e-3 * max(norm, 1), "row \(i): \(kept) of \(norm)")
        }
    }

    /// With every centroid a candidate, the shortlist chooses as exhaustive greedy does (up to the
    /// rounding of its exact dot products, which may flip exact ties): same codes on nearly every row,
    /// and no row's final residual energy differs beyond rounding.
    @Test(arguments: [Metric.cosine, .euclidean])
    func everyCandidateMatchesExhaustive(_ metric: Metric) throws {
        let d = 24, n = 500
        let data = clusteredData(count: n, dimension: d, seed: 21)
        let (cb, _) = try train(data, count: n, dimension: d, config(metric, k: 32, magnitudes: .uint8))
        let exhaustive = try ResidualEncoder(codebook: cb).encode(data, count: n)
        let full = try ResidualEncoder(codebook: cb, shortlist: ShortlistConfiguration(rank: 4, candidates: 32)).encode(data, count: n)
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

    /// A full-rank projection gives exact approximate scores, so even a short list finds exhaustive's choice.
    @Test func fullRankNeedsFewCandidates() throws {
        let d = 16, n = 400
        let data = clusteredData(count: n, dimension: d, seed: 5)
        let (cb, _) = try train(data, count: n, dimension: d, config(.cosine, k: 64, magnitudes: .float32))
        let exhaustive = try ResidualEncoder(codebook: cb).encode(data, count: n)
        let short = try ResidualEncoder(codebook: cb, shortlist: ShortlistConfiguration(rank: d, candidates: 2)).encode(data, count: n)
        var same = 0
        for i in 0..<n where exhaustive.codes[(i * 3)..<(i * 3 + 3)] == short.codes[(i * 3)..<(i * 3 + 3)] { same += 1 }
        #expect(same >= n * 99 / 100, "\(same) of \(n) rows")
    }

    /// A low-rank shortlist still produces valid codes for every row and keeps most of the quality.
    @Test func lowRankShortlistStaysValid() throws {
        let d = 32, n = 400
        let data = clusteredData(count: n, dimension: d, seed: 8)
        let (cb, _) = try train(data, count: n, dimension: d, config(.cosine, k: 64, magnitudes: .uint8))
        let short = try ResidualEncoder(codebook: cb, shortlist: ShortlistConfiguration(rank: 4, candidates: 4)).encode(data, count: n)
        #expect(short.codes.allSatisfy { $0 < 64 })
        #expect(short.magnitudes.allSatisfy { $0.isFinite })
        try short.codes.withUnsafeBufferPointer { c in
            try short.magnitudes.withUnsafeBufferPointer { m in try cb.validate(codes: c, magnitudes: m, count: n) }
        }
    }
}
