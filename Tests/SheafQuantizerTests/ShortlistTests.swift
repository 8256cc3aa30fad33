import SheafCodebook
import SheafRandom
import Testing

@testable import SheafQuantizer

@Suite struct ShortlistTests {
    /// Sign-invariant k-means finds planted axes: points along ±a_k (with a little noise) fall into
    /// one group per axis whatever their sign, and every group direction is a unit vector.
    @Test func axialKMeansGroupsBothSignsOfAnAxis() {
        let (n, d, g) = (240, 12, 4)
        var rng = SplitMix64(seed: 3)
        var axes = [Float](repeating: 0, count: g * d)
        for k in 0..<g { axes[k * d + 2 * k] = 1 }  // orthogonal axes
        var x = [Float](repeating: 0, count: n * d)
        for i in 0..<n {
            let k = i % g
            let sign: Float = i % 8 < 4 ? 1 : -1
            for t in 0..<d { x[i * d + t] = sign * axes[k * d + t] * rng.float(in: 0.5...2) + 0.05 * rng.float(in: -1...1) }
        }
        let (dirs, assignment) = x.withUnsafeBufferPointer {
            ShortlistPlan.axialKMeans($0.baseAddress!, count: n, dimension: d, groups: g, seed: 1)
        }
        for k in 0..<g {
            let norm = (0..<d).reduce(Float(0)) { $0 + dirs[k * d + $1] * dirs[k * d + $1] }
            #expect(abs(norm - 1) < 1e-4)
        }
        for axis in 0..<g {
            let groups = Set((0..<n).filter { $0 % g == axis }.map { assignment[$0] })
            #expect(groups.count == 1, "axis \(axis) split over groups \(groups)")
        }
        #expect(Set(assignment).count == g)
    }

    /// Probing every group scores every centroid: exhaustive greedy's codes (up to the rounding of a
    /// differently blocked sgemm, which may flip exact ties) and no worse residual on any row.
    @Test func probingEveryGroupMatchesExhaustive() throws {
        let d = 24, n = 500
        let data = clusteredData(count: n, dimension: d, seed: 21)
        let (cb, _) = try train(data, count: n, dimension: d, config(.cosine, k: 32, magnitudes: .uint8))
        let exhaustive = try ResidualEncoder(codebook: cb).encode(data, count: n)
        let full = try ResidualEncoder(codebook: cb, shortlist: ShortlistConfiguration(groups: 4, probes: 4)).encode(data, count: n)
        var same = 0
        for i in 0..<n {
            let range = (i * 3)..<(i * 3 + 3)
            if exhaustive.codes[range] == full.codes[range] { same += 1 }
            let row = data[(i * d)..<((i + 1) * d)]
            let e = norm2(residuals(row, codes: exhaustive.codes[range], mags: exhaustive.magnitudes[range], cb)[3])
            let s = norm2(residuals(row, codes: full.codes[range], mags: full.magnitudes[range], cb)[3])
            #expect(abs(e - s) <= 1e-3 * (norm2(Array(row)) + 1e-6), "row \(i): \(s) vs \(e)")
        }
        #expect(same >= n * 99 / 100, "\(same) of \(n) rows")
    }

    /// Euclidean codebooks ignore the shortlist (exhaustive, identical codes).
    @Test func euclideanIsAlwaysExhaustive() throws {
        let d = 16, n = 300
        let data = clusteredData(count: n, dimension: d, seed: 4)
        let (cb, _) = try train(data, count: n, dimension: d, config(.euclidean, k: 32))
        let a = try ResidualEncoder(codebook: cb).encode(data, count: n)
        let b = try ResidualEncoder(codebook: cb, shortlist: ShortlistConfiguration(groups: 8, probes: 1)).encode(data, count: n)
        #expect(a.codes == b.codes)
    }

    /// A single probe still produces valid codes for every row, and most rows agree with exhaustive.
    @Test func oneProbeStaysValid() throws {
        let d = 32, n = 400
        let data = clusteredData(count: n, dimension: d, seed: 8)
        let (cb, _) = try train(data, count: n, dimension: d, config(.cosine, k: 64, magnitudes: .uint8))
        let short = try ResidualEncoder(codebook: cb, shortlist: ShortlistConfiguration(groups: 8, probes: 1)).encode(data, count: n)
        #expect(short.codes.allSatisfy { $0 < 64 })
        #expect(short.magnitudes.allSatisfy { $0.isFinite })
        try short.codes.withUnsafeBufferPointer { c in
            try short.magnitudes.withUnsafeBufferPointer { m in try cb.validate(codes: c, magnitudes: m, count: n) }
        }
    }
}
