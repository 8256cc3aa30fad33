import Dispatch
import SheafCodebook
import SheafLinearAlgebra

/// Encodes embeddings into a codebook's codes and stored magnitudes, in batches, on several threads.
///
/// Greedy (beam width 1): at each level pick the centroid that removes the most residual energy,
/// store its magnitude (quantized as the codebook stores it), and continue on e' = e − α̂·c.
/// With a wider beam, the B best partial code tuples (by exact residual energy) are extended at each
/// level, as faiss's ResidualQuantizer does; the greedy tuple is kept when it ends better, so a wider
/// beam is never worse than greedy for any item.
///
/// Zero vectors have no direction: the cosine metric cannot encode them and refuses them with
/// `QuantizerError.zeroVector`; the euclidean metric encodes them like any other point.
public struct ResidualEncoder: Sendable {
    /// The codebook codes are made for.
    public let codebook: Codebook
    /// Beam width (1 = greedy).
    public var beamWidth: Int
    /// Threads to encode on.
    public var threads: Int
    /// How greedy encoding (beam width 1) finds each level's centroid; beam search is always exhaustive.
    public let search: EncodeSearch
    private let plan: EncodePlan
    private let int8Plan: Int8ShortlistPlan?

    /// - Parameter search: `.exhaustive` (the default) or `.int8Shortlist`, whose int8 tables cost
    ///   L × K × D bytes and one pass over the centroids to build.
    public init(codebook: Codebook, beamWidth: Int = 1, threads: Int = 2, search: EncodeSearch = .exhaustive) {
        self.codebook = codebook
        self.beamWidth = max(1, beamWidth)
        self.threads = max(1, threads)
        self.search = search
        let plan = EncodePlan(codebook: codebook)
        self.plan = plan
        if case .int8Shortlist(let m) = search { int8Plan = Int8ShortlistPlan(plan: plan, candidates: m) } else { int8Plan = nil }
    }

    /// Encodes `count` rows.
    ///
    /// - Parameters:
    ///   - data: count × D floats, row-major.
    ///   - codes: receives count × L codes.
    ///   - magnitudes: receives count × L stored magnitudes (1 for euclidean codebooks).
    /// - Throws: `QuantizerError.dimensionMismatch` (buffer size), `.nonFiniteValue`, `.zeroVector` (cosine).
    ///   Nothing is written when it throws.
    public func encode(
        _ data: UnsafeBufferPointer<Float>, count: Int, codes: UnsafeMutablePointer<UInt32>,
        magnitudes: UnsafeMutablePointer<Float>
    ) throws {
        let d = codebook.dimension
        guard data.count == count * d else { throw QuantizerError.dimensionMismatch(expected: count * d, actual: data.count) }
        try validateFinite(data, count: count, dimension: d)
        if codebook.metric == .cosine {
            for i in 0..<count where UnsafeBufferPointer(rebasing: data[(i * d)..<((i + 1) * d)]).allSatisfy({ $0 == 0 }) {
                throw QuantizerError.zeroVector(row: i)
            }
        }
        guard count > 0 else { return }
        let plan = plan
        let int8Plan = int8Plan
        let base = data.baseAddress!
        let beam = beamWidth
        let blockRows = beam == 1 ? max(16, min(512, (4 << 20) / codebook.codesPerLevel)) : 32
        ParallelBlocks.run(count: count, blockRows: blockRows, threads: threads, scratchPerRow: 0) { rows, _ in
            if beam == 1, let int8Plan {
                plan.greedyInt8(
                    base + rows.lowerBound * d, rows: rows.count, shortlist: int8Plan,
                    codes: codes + rows.lowerBound * plan.L, magnitudes: magnitudes + rows.lowerBound * plan.L)
            } else if beam == 1 {
                plan.greedy(base + rows.lowerBound * d, rows: rows.count, codes: codes + rows.lowerBound * plan.L,
                            magnitudes: magnitudes + rows.lowerBound * plan.L, residualNorms: nil)
            } else {
                plan.beam(base + rows.lowerBound * d, rows: rows.count, width: beam,
                          codes: codes + rows.lowerBound * plan.L, magnitudes: magnitudes + rows.lowerBound * plan.L)
            }
        }
    }

    /// Encodes `count` rows of an array; returns count × L codes and count × L magnitudes.
    public func encode(_ data: [Float], count: Int) throws -> (codes: [UInt32], magnitudes: [Float]) {
        let n = count * codebook.levels
        var codes = [UInt32](repeating: 0, count: n)
        var mags = [Float](repeating: 0, count: n)
        try data.withUnsafeBufferPointer { src in
            try codes.withUnsafeMutableBufferPointer { c in
                try mags.withUnsafeMutableBufferPointer { m in
                    try encode(src, count: count, codes: c.baseAddress!, magnitudes: m.baseAddress!)
                }
            }
        }
        return (codes, mags)
    }
}

// MARK: - Plan

/// Per-codebook constants of encoding.
struct EncodePlan: @unchecked Sendable {
    // @unchecked Sendable: immutable after init; the centroid array is only read.
    let codebook: Codebook
    let L: Int
    let K: Int
    let D: Int
    let norms2: [Float]  // L × K
    let inverseNorms2: [Float]  // L × K, 1/‖c‖² (0 for a zero centroid)
    let isCosine: Bool

    init(codebook: Codebook) {
        self.codebook = codebook
        L = codebook.levels
        K = codebook.codesPerLevel
        D = codebook.dimension
        norms2 = rowNorms2(codebook.centroids, count: L * K, dimension: D)
        inverseNorms2 = norms2.map { $0 > 0 ? 1 / $0 : 0 }
        isCosine = codebook.metric == .cosine
    }

    /// Greedy encode of `rows` rows; optionally reports each row's final residual energy.
    func greedy(
        _ x: UnsafePointer<Float>, rows: Int, codes: UnsafeMutablePointer<UInt32>, magnitudes: UnsafeMutablePointer<Float>,
        residualNorms: UnsafeMutablePointer<Float>?
    ) {
        let residual = UnsafeMutablePointer<Float>.allocate(capacity: rows * D)
        defer { residual.deallocate() }
        residual.update(from: x, count: rows * D)
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: rows * K)
        defer { scores.deallocate() }
        forEachLevel { l, cl, nl, il in
            BLAS.gemm(m: rows, n: K, k: D, a: residual, b: cl, transposeB: true, c: scores)
            for i in 0..<rows {
                let s = scores + i &* K
                var bj = 0
                var bv = -Float.infinity
                for j in 0..<K {
                    // safe: j < K; s holds K scores, nl and il K norms each.
                    let value = objective(s[j], j, inverseNorms2: il, norms2: nl)
                    if value > bv {
                        bv = value
                        bj = j
                    }
                }
                choose(bj, dot: s[bj], level: l, row: i, residual: residual + i &* D, centroids: cl,
                       inverseNorms2: il, codes: codes, magnitudes: magnitudes)
            }
        }
        if let residualNorms {
            for i in 0..<rows {
                var e: Float = 0
                let row = residual + i * D
                for t in 0..<D { e += row[t] * row[t] }
                residualNorms[i] = e
            }
        }
    }

    /// Calls `body` for each level l with its K × D centroids, their K squared norms and K inverse
    /// squared norms.
    func forEachLevel(
        _ body: (_ level: Int, _ centroids: UnsafePointer<Float>, _ norms2: UnsafePointer<Float>,
                 _ inverseNorms2: UnsafePointer<Float>) -> Void
    ) {
        codebook.centroids.withUnsafeBufferPointer { c in
            norms2.withUnsafeBufferPointer { cn in
                inverseNorms2.withUnsafeBufferPointer { icn in
                    for l in 0..<L {
                        body(l, c.baseAddress! + l * K * D, cn.baseAddress! + l * K, icn.baseAddress! + l * K)
                    }
                }
            }
        }
    }

    /// The greedy objective of centroid `j` whose dot product with the residual is `dot`: the residual
    /// energy its choice removes, up to terms that do not depend on j — (r·c)²/‖c‖² for cosine
    /// codebooks, 2 r·c − ‖c‖² for euclidean ones. (The int8 kernels in CSheafEncode compute the same.)
    @inline(__always)
    func objective(_ dot: Float, _ j: Int, inverseNorms2 il: UnsafePointer<Float>, norms2 nl: UnsafePointer<Float>) -> Float {
        isCosine ? dot * dot * il[j] : 2 * dot - nl[j]
    }

    /// Records centroid `j` of level `l` as row `i`'s choice (its dot product with the residual is
    /// `dot`): the stored magnitude (quantized as the codebook stores it; 1 for euclidean), the code, and
    /// the residual update e' = e − α̂·c. Every greedy search ends a level with this.
    @inline(__always)
    func choose(
        _ j: Int, dot: Float, level l: Int, row i: Int, residual row: UnsafeMutablePointer<Float>,
        centroids cl: UnsafePointer<Float>, inverseNorms2 il: UnsafePointer<Float>,
        codes: UnsafeMutablePointer<UInt32>, magnitudes: UnsafeMutablePointer<Float>
    ) {
        let alpha = isCosine ? codebook.quantizedMagnitude(dot * il[j], level: l) : 1
        codes[i * L + l] = UInt32(j)
        magnitudes[i * L + l] = alpha
        let cen = cl + j &* D
        for t in 0..<D { row[t] -= alpha * cen[t] }
    }

    /// Beam-search encode of `rows` rows with `width` beams, keeping greedy's tuple when it is better.
    func beam(
        _ x: UnsafePointer<Float>, rows: Int, width B: Int, codes: UnsafeMutablePointer<UInt32>,
        magnitudes: UnsafeMutablePointer<Float>
    ) {
        // Greedy first: its tuples and final energies are the fallback.
        let greedyNorms = UnsafeMutablePointer<Float>.allocate(capacity: rows)
        defer { greedyNorms.deallocate() }
        greedy(x, rows: rows, codes: codes, magnitudes: magnitudes, residualNorms: greedyNorms)

        // Beams of all rows: row i's beam b lives at slot i × B + b.
        let slots = rows * B
        var residual = [Float](repeating: 0, count: slots * D)
        var nextResidual = [Float](repeating: 0, count: slots * D)
        var energy = [Float](repeating: .infinity, count: slots)
        var nextEnergy = [Float](repeating: .infinity, count: slots)
        var tupleCodes = [UInt32](repeating: 0, count: slots * L)
        var tupleMags = [Float](repeating: 0, count: slots * L)
        var nextCodes = tupleCodes
        var nextMags = tupleMags
        var live = [Int](repeating: 1, count: rows)
        for i in 0..<rows {
            for t in 0..<D { residual[(i * B) * D + t] = x[i * D + t] }
            var e: Float = 0
            for t in 0..<D { e += x[i * D + t] * x[i * D + t] }
            energy[i * B] = e
        }
        var scores = [Float](repeating: 0, count: slots * K)
        // Candidate lists per row: (energy, beam, code, magnitude), best first.
        var candE = [Float](repeating: 0, count: B)
        var candBeam = [Int](repeating: 0, count: B)
        var candCode = [Int](repeating: 0, count: B)
        var candMag = [Float](repeating: 0, count: B)
        codebook.centroids.withUnsafeBufferPointer { c in
            for l in 0..<L {
                let cl = c.baseAddress! + l * K * D
                residual.withUnsafeBufferPointer { r in
                    scores.withUnsafeMutableBufferPointer { s in
                        BLAS.gemm(m: slots, n: K, k: D, a: r.baseAddress!, b: cl, transposeB: true, c: s.baseAddress!)
                    }
                }
                for i in 0..<rows {
                    var filled = 0
                    for b in 0..<live[i] {
                        let slot = i * B + b
                        let e0 = energy[slot]
                        for j in 0..<K {
                            let sj = scores[slot * K + j]
                            let cn = norms2[l * K + j]
                            let alpha = isCosine ? codebook.quantizedMagnitude(sj / max(cn, .leastNormalMagnitude), level: l) : 1
                            let e = e0 - 2 * alpha * sj + alpha * alpha * cn
                            if filled == B && e >= candE[B - 1] { continue }
                            var p = filled < B ? filled : B - 1
                            while p > 0 && candE[p - 1] > e {
                                candE[p] = candE[p - 1]
                                candBeam[p] = candBeam[p - 1]
                                candCode[p] = candCode[p - 1]
                                candMag[p] = candMag[p - 1]
                                p -= 1
                            }
                            candE[p] = e
                            candBeam[p] = b
                            candCode[p] = j
                            candMag[p] = alpha
                            if filled < B { filled += 1 }
                        }
                    }
                    for n in 0..<filled {
                        let src = i * B + candBeam[n]
                        let dst = i * B + n
                        let cen = cl + candCode[n] * D
                        var e: Float = 0
                        for t in 0..<D {
                            let v = residual[src * D + t] - candMag[n] * cen[t]
                            nextResidual[dst * D + t] = v
                            e += v * v
                        }
                        nextEnergy[dst] = e  // exact, not the running estimate
                        for q in 0..<l {
                            nextCodes[dst * L + q] = tupleCodes[src * L + q]
                            nextMags[dst * L + q] = tupleMags[src * L + q]
                        }
                        nextCodes[dst * L + l] = UInt32(candCode[n])
                        nextMags[dst * L + l] = candMag[n]
                    }
                    live[i] = filled
                }
                swap(&residual, &nextResidual)
                swap(&energy, &nextEnergy)
                swap(&tupleCodes, &nextCodes)
                swap(&tupleMags, &nextMags)
            }
        }
        for i in 0..<rows {
            var best = 0
            for b in 1..<live[i] where energy[i * B + b] < energy[i * B + best] { best = b }
            guard energy[i * B + best] < greedyNorms[i] else { continue }
            for l in 0..<L {
                codes[i * L + l] = tupleCodes[(i * B + best) * L + l]
                magnitudes[i * L + l] = tupleMags[(i * B + best) * L + l]
            }
        }
    }
}
