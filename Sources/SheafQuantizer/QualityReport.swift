import Foundation
import SheafCodebook
import SheafLinearAlgebra
import SheafRandom

/// How well decoded vectors ê stand in for the originals e. The definitions match
/// `tools/faiss_compare.py`, so Sheaf and faiss are measured the same way.
public struct QualityReport: Sendable, Codable, Equatable {
    /// Code usage of one level.
    public struct LevelUsage: Sendable, Codable, Equatable {
        /// Shannon entropy of the code histogram, in bits (at most log2 K).
        public var entropyBits: Double
        /// 2^entropy: the number of equally used codes with the same entropy.
        public var perplexity: Double
        /// Codes used at least once.
        public var usedCodes: Int
    }

    /// Rows measured.
    public var count: Int
    /// Dimension D.
    public var dimension: Int
    /// Mean of cosine(e, ê) over rows (a zero vector's cosine counts as 0).
    public var meanCosine: Double
    /// 5th percentile of cosine(e, ê) (linear interpolation, as numpy's default).
    public var p5Cosine: Double
    /// Σ‖e − ê‖² / Σ‖e‖².
    public var relativeMSE: Double
    /// Neighbour recall@10: for Q sampled queries q (unit-normalised e), |top10(ê_norm·q) ∩ top10(e_norm·q)| / 10,
    /// both excluding q itself, averaged over queries. Nil when fewer than 12 rows.
    public var recallAt10: Double?
    /// Queries used for recall.
    public var queries: Int
    /// Code usage per level (empty when no codes were given).
    public var levels: [LevelUsage]
    /// Bytes of one packed code (0 when no codebook was given).
    public var bytesPerItem: Int
    /// Float32 bytes of a row over `bytesPerItem`.
    public var compressionRatio: Double

    /// Measures `decoded` against `original`.
    ///
    /// - Parameters:
    ///   - original, decoded: count × dimension floats each.
    ///   - codes: count × L codes, for the usage figures (optional).
    ///   - codebook: for bytes per item and K (optional).
    ///   - queryCount: recall queries (sampled without replacement with `seed`).
    ///   - queryIndices: explicit query rows instead of sampling (e.g. the ones tools/faiss_compare.py used).
    public static func measure(
        original: UnsafeBufferPointer<Float>, decoded: UnsafeBufferPointer<Float>, count n: Int, dimension d: Int,
        codes: UnsafeBufferPointer<UInt32>? = nil, codebook: Codebook? = nil, queryCount: Int = 1000, seed: UInt64 = 1,
        queryIndices: [Int]? = nil
    ) throws -> QualityReport {
        if let queryIndices, let bad = queryIndices.first(where: { $0 < 0 || $0 >= n }) {
            throw QuantizerError.dimensionMismatch(expected: n, actual: bad)
        }
        guard original.count == n * d, decoded.count == n * d else {
            throw QuantizerError.dimensionMismatch(expected: n * d, actual: min(original.count, decoded.count))
        }
        var cosines = [Double](repeating: 0, count: n)
        var err = 0.0
        var energy = 0.0
        for i in 0..<n {
            var dot = 0.0, ne = 0.0, nd = 0.0, diff = 0.0
            for t in 0..<d {
                let a = Double(original[i * d + t]), b = Double(decoded[i * d + t])
                dot += a * b
                ne += a * a
                nd += b * b
                diff += (a - b) * (a - b)
            }
            cosines[i] = ne > 0 && nd > 0 ? dot / (ne.squareRoot() * nd.squareRoot()) : 0
            err += diff
            energy += ne
        }
        let sorted = cosines.sorted()
        var levels: [LevelUsage] = []
        if let codes, let cb = codebook {
            for l in 0..<cb.levels {
                var hist = [Int](repeating: 0, count: cb.codesPerLevel)
                for i in 0..<n { hist[Int(codes[i * cb.levels + l])] += 1 }
                var h = 0.0
                for c in hist where c > 0 {
                    let p = Double(c) / Double(n)
                    h -= p * log2(p)
                }
                levels.append(LevelUsage(entropyBits: h, perplexity: pow(2, h), usedCodes: hist.filter { $0 > 0 }.count))
            }
        }
        let queryIDs = queryIndices ?? sampleQueries(count: n, queries: min(queryCount, n), seed: seed)
        let q = queryIDs.count
        let recall = n >= 12 && q > 0 ? neighbourRecall(original: original, decoded: decoded, count: n, dimension: d, queryIDs: queryIDs) : nil
        let bytes = codebook?.bytesPerItem ?? 0
        return QualityReport(
            count: n, dimension: d, meanCosine: n > 0 ? cosines.reduce(0, +) / Double(n) : 0,
            p5Cosine: percentile(sorted, 5), relativeMSE: energy > 0 ? err / energy : 0, recallAt10: recall,
            queries: recall == nil ? 0 : q, levels: levels, bytesPerItem: bytes,
            compressionRatio: bytes > 0 ? Double(d * 4) / Double(bytes) : 0)
    }

    /// numpy's default (linear) percentile of sorted values.
    static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let pos = Double(sorted.count - 1) * p / 100
        let lo = Int(pos.rounded(.down))
        let hi = min(sorted.count - 1, lo + 1)
        return sorted[lo] + (pos - Double(lo)) * (sorted[hi] - sorted[lo])
    }

    /// `q` distinct rows drawn with `seed`.
    static func sampleQueries(count n: Int, queries q: Int, seed: UInt64) -> [Int] {
        var rng = SplitMix64(seed: seed)
        var ids = Array(0..<n)
        rng.partialShuffle(&ids, count: q)
        return Array(ids[0..<q])
    }

    static func neighbourRecall(
        original: UnsafeBufferPointer<Float>, decoded: UnsafeBufferPointer<Float>, count n: Int, dimension d: Int,
        queryIDs: [Int]
    ) -> Double {
        let q = queryIDs.count
        var e = Array(original)
        var r = Array(decoded)
        normaliseRows(&e, count: n, dimension: d)
        normaliseRows(&r, count: n, dimension: d)
        var queryRows = [Float](repeating: 0, count: q * d)
        for (k, id) in queryIDs.enumerated() { for t in 0..<d { queryRows[k * d + t] = e[id * d + t] } }
        let block = max(1, min(q, (16 << 20) / max(1, n)))
        var exact = [Float](repeating: 0, count: block * n)
        var approx = [Float](repeating: 0, count: block * n)
        var hits = 0
        var start = 0
        while start < q {
            let rows = min(block, q - start)
            queryRows.withUnsafeBufferPointer { qp in
                BLAS.gemm(m: rows, n: n, k: d, a: qp.baseAddress! + start * d, b: e, transposeB: true, c: &exact)
                BLAS.gemm(m: rows, n: n, k: d, a: qp.baseAddress! + start * d, b: r, transposeB: true, c: &approx)
            }
            for k in 0..<rows {
                let self_ = queryIDs[start + k]
                let a = top10(exact, row: k, n: n, excluding: self_)
                let b = top10(approx, row: k, n: n, excluding: self_)
                hits += Set(a).intersection(b).count
            }
            start += rows
        }
        return Double(hits) / Double(q * 10)
    }

    /// Indices of the 10 largest values of a score row, excluding one index (ties: lower index first).
    static func top10(_ scores: [Float], row: Int, n: Int, excluding: Int) -> [Int] {
        var idx: [Int] = []
        var val: [Float] = []
        for j in 0..<n where j != excluding {
            let v = scores[row * n + j]
            if idx.count == 10 && v <= val[9] { continue }
            var p = idx.count
            if p < 10 {
                idx.append(j)
                val.append(v)
            } else {
                p = 9
            }
            while p > 0 && val[p - 1] < v {
                idx[p] = idx[p - 1]
                val[p] = val[p - 1]
                p -= 1
            }
            idx[p] = j
            val[p] = v
        }
        return idx
    }
}
