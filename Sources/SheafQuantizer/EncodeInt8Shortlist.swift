import CSheafEncode
import SheafCodebook

/// How greedy encoding finds each level's best centroid.
public enum EncodeSearch: Sendable, Equatable, CustomStringConvertible {
    /// Every centroid scored exactly (one float32 sgemm of rows × K × D per level).
    case exhaustive
    /// Every centroid scored approximately from int8 copies of the residual and the centroids (AVX-512
    /// VNNI, about 3.7× sgemm's multiply-adds per second here), then the best `candidates` scored exactly
    /// in float32; the best of those is chosen exactly as exhaustive search chooses. On 20,000 held-out
    /// MiniLM word embeddings with an L3 K4096 cosine codebook, 4 candidates gave exhaustive's codes on
    /// 100% of rows (2 candidates: 99.98%).
    case int8Shortlist(candidates: Int)

    /// The default shortlist: 4 candidates.
    public static let shortlist = EncodeSearch.int8Shortlist(candidates: 4)

    /// Whether the int8 scores run on AVX-512 VNNI here (otherwise on a portable path slower than sgemm).
    public static var hasFastInt8Scores: Bool { sheaf_encode_isa() == 2 }

    /// The int8 shortlist of `candidates` where it pays: with `hasFastInt8Scores` and K ≥ 1024 (at small
    /// K exhaustive scoring is cheap, and the shortlist was measured at K = 4096 only); exhaustive otherwise.
    public static func automatic(codesPerLevel k: Int, candidates: Int = 4) -> EncodeSearch {
        hasFastInt8Scores && k >= 1024 ? .int8Shortlist(candidates: candidates) : .exhaustive
    }

    public var description: String {
        switch self {
        case .exhaustive: "exhaustive"
        case .int8Shortlist(let m): "int8 shortlist of \(m)"
        }
    }
}

/// Rows (centroids) quantized to int8 with a scale per row and packed for `sheaf_shortlist_u8i8`
/// (`sheaf_pack_i8`): the packed bytes, the scales and each row's int8 sum, owned here.
final class PackedInt8Rows: @unchecked Sendable {
    // @unchecked Sendable: filled in init, then only read.
    let count: Int
    let packed: UnsafeMutablePointer<Int8>
    let scales: UnsafeMutablePointer<Float>
    let sums: UnsafeMutablePointer<Int32>

    /// Packs `count` rows of `dimension` floats.
    init(_ rows: UnsafePointer<Float>, count: Int, dimension d: Int) {
        self.count = count
        packed = .allocate(capacity: max(1, sheaf_i8_packed_size(count, d)))
        scales = .allocate(capacity: max(1, count))
        sums = .allocate(capacity: max(1, count))
        sheaf_pack_i8(rows, count, d, packed, scales, sums)
    }

    deinit {
        packed.deallocate()
        scales.deallocate()
        sums.deallocate()
    }
}

/// The int8 tables of `EncodeSearch.int8Shortlist`: each level's centroids quantized to int8 (a scale
/// per centroid) and packed for `sheaf_dot_u8i8`.
struct Int8ShortlistPlan: Sendable {
    let candidates: Int
    let paddedDepth: Int
    /// Per level, the packed centroids, their scales and their int8 sums.
    let levels: [PackedInt8Rows]

    init(plan: EncodePlan, candidates: Int) {
        let (L, K, D) = (plan.L, plan.K, plan.D)
        self.candidates = max(1, min(candidates, K))
        paddedDepth = sheaf_i8_padded_depth(D)
        levels = plan.codebook.centroids.withUnsafeBufferPointer { c in
            (0..<L).map { l in PackedInt8Rows(c.baseAddress! + l * K * D, count: K, dimension: D) }
        }
    }
}

extension EncodePlan {
    /// Greedy encode of `rows` rows: per level, int8 approximate scores of every centroid, then exact
    /// float32 scores of the best `candidates`, the best of which is chosen exactly as `greedy` chooses
    /// (same objective, same tie rule, same magnitude quantization).
    func greedyInt8(
        _ x: UnsafePointer<Float>, rows: Int, shortlist s: Int8ShortlistPlan, codes: UnsafeMutablePointer<UInt32>,
        magnitudes: UnsafeMutablePointer<Float>
    ) {
        let m = s.candidates, dp = s.paddedDepth
        let residual = UnsafeMutablePointer<Float>.allocate(capacity: rows * D)
        defer { residual.deallocate() }
        residual.update(from: x, count: rows * D)
        let quantized = UnsafeMutablePointer<UInt8>.allocate(capacity: rows * dp)
        defer { quantized.deallocate() }
        let rowScales = UnsafeMutablePointer<Float>.allocate(capacity: rows)
        defer { rowScales.deallocate() }
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: K)
        defer { scratch.deallocate() }
        let candidates = UnsafeMutablePointer<Int32>.allocate(capacity: rows * m)
        defer { candidates.deallocate() }
        let candidateValues = UnsafeMutablePointer<Float>.allocate(capacity: rows * m)
        defer { candidateValues.deallocate() }
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: rows)
        defer { counts.deallocate() }
        let exact = UnsafeMutablePointer<Float>.allocate(capacity: m)
        defer { exact.deallocate() }
        forEachLevel { l, cl, nl, il in
            sheaf_quantize_rows_u8(residual, rows, D, dp, quantized, rowScales)
            // Int8 scores of every centroid, keeping each row's m best (fused: no rows × K buffer).
            let level = s.levels[l]
            _ = sheaf_shortlist_u8i8(
                quantized, rowScales, rows, level.packed, level.scales, level.sums, isCosine ? il : nl, isCosine ? 1 : 0,
                K, D, m, scratch, candidates, candidateValues, counts)
            for i in 0..<rows {
                let filled = counts[i]
                let candidate = candidates + i &* m
                // Exact scores of the candidates; ties go to the lower index, as in `greedy`.
                let row = residual + i &* D
                var bj = K
                var bv = -Float.infinity
                var bs: Float = 0
                sheaf_dot_rows_f32(row, cl, candidate, filled, D, exact)
                for q in 0..<filled {
                    let j = Int(candidate[q])
                    let dot = exact[q]
                    let value = objective(dot, j, inverseNorms2: il, norms2: nl)
                    if value > bv || (value == bv && j < bj) {
                        bv = value
                        bj = j
                        bs = dot
                    }
                }
                choose(bj, dot: bs, level: l, row: i, residual: row, centroids: cl, inverseNorms2: il,
                       codes: codes, magnitudes: magnitudes)
            }
        }
    }
}
