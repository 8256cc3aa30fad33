import SheafCodebook
import SheafLinearAlgebra
import SheafRandom

/// Greedy encoding without scoring every centroid exactly: each level's centroids are also kept
/// projected onto their top `rank` principal directions (a D × rank orthonormal basis Q_l from
/// subspace iteration on C_lᵀC_l), every centroid is scored in that small space (one sgemm of
/// rows × K × rank instead of rows × K × D), and only the best `candidates` of those approximate
/// scores are scored exactly in D dimensions.
///
/// The choice among the candidates is exact, so a row's code differs from exhaustive greedy only
/// when its exhaustive best is not among the candidates: `ShortlistConfiguration` says how many are
/// needed for a given agreement (measured, not assumed: `sheaf-measure encode-shortlist`).
public struct ShortlistConfiguration: Sendable, Equatable {
    /// Dimensions of the projection the approximate scores use (more: closer scores, more sgemm work).
    public var rank: Int
    /// Centroids per level scored exactly (more: exhaustive's choice found more often, more dot products).
    public var candidates: Int

    public init(rank: Int = 64, candidates: Int = 32) {
        self.rank = rank
        self.candidates = candidates
    }
}

/// The per-codebook tables of shortlist encoding.
struct ShortlistPlan: @unchecked Sendable {
    // @unchecked Sendable: immutable after init; the arrays are only read.
    let rank: Int
    let candidates: Int
    /// L × D × rank: level l's basis Q_l, row-major (D rows of `rank`).
    let bases: [Float]
    /// L × K × rank: C_l · Q_l.
    let projected: [Float]

    init(plan: EncodePlan, configuration: ShortlistConfiguration) {
        let (L, K, D) = (plan.L, plan.K, plan.D)
        let r = max(1, min(configuration.rank, D))
        rank = r
        candidates = max(1, min(configuration.candidates, K))
        var bases = [Float](repeating: 0, count: L * D * r)
        var projected = [Float](repeating: 0, count: L * K * r)
        plan.codebook.centroids.withUnsafeBufferPointer { c in
            for l in 0..<L {
                let cl = c.baseAddress! + l * K * D
                let q = Self.principalBasis(cl, rows: K, dimension: D, rank: r, seed: UInt64(l + 1))
                bases.withUnsafeMutableBufferPointer { b in
                    (b.baseAddress! + l * D * r).update(from: q, count: D * r)
                }
                q.withUnsafeBufferPointer { qb in
                    projected.withUnsafeMutableBufferPointer { p in
                        BLAS.gemm(m: K, n: r, k: D, a: cl, b: qb.baseAddress!, c: p.baseAddress! + l * K * r)
                    }
                }
            }
        }
        self.bases = bases
        self.projected = projected
    }

    /// An orthonormal D × rank basis of the top principal directions of `rows` × D points (uncentred:
    /// the directions of largest ‖X q‖), by subspace iteration on XᵀX from a seeded random start.
    static func principalBasis(_ x: UnsafePointer<Float>, rows: Int, dimension d: Int, rank r: Int, seed: UInt64) -> [Float] {
        var gram = [Float](repeating: 0, count: d * d)
        gram.withUnsafeMutableBufferPointer { g in
            BLAS.gemm(m: d, n: d, k: rows, a: x, transposeA: true, b: x, c: g.baseAddress!)
        }
        var rng = SplitMix64(seed: seed &* 0x9E37_79B9)
        var q = (0..<(d * r)).map { _ in rng.float(in: -1...1) }
        var z = [Float](repeating: 0, count: d * r)
        orthonormalizeColumns(&q, rows: d, columns: r)
        for _ in 0..<8 {
            gram.withUnsafeBufferPointer { g in
                q.withUnsafeBufferPointer { qb in
                    z.withUnsafeMutableBufferPointer { zb in
                        BLAS.gemm(m: d, n: r, k: d, a: g.baseAddress!, b: qb.baseAddress!, c: zb.baseAddress!)
                    }
                }
            }
            swap(&q, &z)
            orthonormalizeColumns(&q, rows: d, columns: r)
        }
        return q
    }

    /// Modified Gram–Schmidt on the columns of a rows × columns row-major matrix, in double precision.
    /// A column that vanishes (linearly dependent) becomes zero.
    static func orthonormalizeColumns(_ a: inout [Float], rows: Int, columns: Int) {
        var col = [[Double]](repeating: [], count: columns)
        for j in 0..<columns { col[j] = (0..<rows).map { Double(a[$0 * columns + j]) } }
        for j in 0..<columns {
            for k in 0..<j {
                var dot = 0.0
                for i in 0..<rows { dot += col[j][i] * col[k][i] }
                for i in 0..<rows { col[j][i] -= dot * col[k][i] }
            }
            var norm = 0.0
            for i in 0..<rows { norm += col[j][i] * col[j][i] }
            norm = norm.squareRoot()
            for i in 0..<rows { col[j][i] = norm > 1e-12 ? col[j][i] / norm : 0 }
        }
        for j in 0..<columns { for i in 0..<rows { a[i * columns + j] = Float(col[j][i]) } }
    }
}

extension EncodePlan {
    /// Greedy encode of `rows` rows through `shortlist`: per level, approximate scores of every centroid
    /// in the projected space, then exact scores of the best `candidates`, the best of which is chosen
    /// exactly as `greedy` chooses (same objective, same magnitude quantization).
    func greedyShortlist(
        _ x: UnsafePointer<Float>, rows: Int, shortlist s: ShortlistPlan, codes: UnsafeMutablePointer<UInt32>,
        magnitudes: UnsafeMutablePointer<Float>
    ) {
        let r = s.rank, m = s.candidates
        let residual = UnsafeMutablePointer<Float>.allocate(capacity: rows * D)
        defer { residual.deallocate() }
        residual.update(from: x, count: rows * D)
        let reduced = UnsafeMutablePointer<Float>.allocate(capacity: rows * r)
        defer { reduced.deallocate() }
        let approx = UnsafeMutablePointer<Float>.allocate(capacity: rows * K)
        defer { approx.deallocate() }
        let candidate = UnsafeMutablePointer<Int>.allocate(capacity: m)
        defer { candidate.deallocate() }
        let candidateValue = UnsafeMutablePointer<Float>.allocate(capacity: m)
        defer { candidateValue.deallocate() }
        codebook.centroids.withUnsafeBufferPointer { c in
          norms2.withUnsafeBufferPointer { cn in
            inverseNorms2.withUnsafeBufferPointer { icn in
              s.bases.withUnsafeBufferPointer { qb in
                s.projected.withUnsafeBufferPointer { pb in
                  for l in 0..<L {
                    let cl = c.baseAddress! + l * K * D
                    let nl = cn.baseAddress! + l * K
                    let il = icn.baseAddress! + l * K
                    BLAS.gemm(m: rows, n: r, k: D, a: residual, b: qb.baseAddress! + l * D * r, c: reduced)
                    BLAS.gemm(m: rows, n: K, k: r, a: reduced, b: pb.baseAddress! + l * K * r, transposeB: true, c: approx)
                    for i in 0..<rows {
                        // The m best approximate values, best first (insertion into a short sorted list).
                        let a = approx + i &* K
                        var filled = 0
                        for j in 0..<K {
                            // safe: j < K; a holds K scores, nl and il K norms each.
                            let v = isCosine ? a[j] * a[j] * il[j] : 2 * a[j] - nl[j]
                            if filled == m && v <= candidateValue[m - 1] { continue }
                            var p = filled < m ? filled : m - 1
                            while p > 0 && candidateValue[p - 1] < v {
                                candidateValue[p] = candidateValue[p - 1]
                                candidate[p] = candidate[p - 1]
                                p -= 1
                            }
                            candidateValue[p] = v
                            candidate[p] = j
                            if filled < m { filled += 1 }
                        }
                        // Exact scores of the candidates; ties go to the lower index, as in `greedy`.
                        let row = residual + i &* D
                        var bj = K
                        var bv = -Float.infinity
                        var bs: Float = 0
                        for q in 0..<filled {
                            let j = candidate[q]
                            let cen = cl + j &* D
                            var dot: Float = 0
                            for t in 0..<D { dot += row[t] * cen[t] }
                            let value = isCosine ? dot * dot * il[j] : 2 * dot - nl[j]
                            if value > bv || (value == bv && j < bj) {
                                bv = value
                                bj = j
                                bs = dot
                            }
                        }
                        let alpha = isCosine ? codebook.quantizedMagnitude(bs * il[bj], level: l) : 1
                        codes[i * L + l] = UInt32(bj)
                        magnitudes[i * L + l] = alpha
                        let cen = cl + bj &* D
                        for t in 0..<D { row[t] -= alpha * cen[t] }
                    }
                  }
                }
              }
            }
          }
        }
    }
}
