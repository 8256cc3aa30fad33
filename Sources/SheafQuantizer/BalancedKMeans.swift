import CSheafEncode
import Dispatch
import Foundation
import SheafCodebook
import SheafLinearAlgebra
import SheafRandom

/// The outcome of clustering one level.
struct Clustering {
    /// K × D centroids (unit-norm for the cosine metric).
    var centroids: [Float]
    /// Training points per centroid in the last assignment.
    var sizes: [Int]
    /// Iterations run (fewer than asked when assignments stopped changing).
    var iterations: Int
    /// Residual energy left after this level, relative to the energy before it (training points, balanced assignment).
    var relativeResidualEnergy: Double
}

/// Balanced k-means over the rows of a matrix, with assignment scores from OpenBLAS.
///
/// - Cosine metric ("k-lines"): a point's value for centroid c is |x·c| (c unit-norm). This is what the
///   projection residual rewards: ‖x − (x·c)c‖² = ‖x‖² − (x·c)². A centroid is updated by one
///   power-iteration step towards the principal direction of its points, c ← normalise(Σ (x·c) x).
/// - Euclidean metric: value 2x·c − ‖c‖² (larger is nearer); centroids are means.
/// - Balance: every point lists its best few centroids; points are then placed greedily, the ones that
///   would lose most by missing their first choice (largest regret) first, into the best centroid
///   that still has room under a capacity of ⌈tolerance · N/K⌉.
/// - Scores: exhaustive (one float32 sgemm of N × K × D per iteration), or an int8 shortlist: int8 scores of
///   every centroid (AVX-512 VNNI), then the best `shortlist` scored exactly in float32; the candidates
///   and regrets come from those exact scores.
enum BalancedKMeans {
    /// Candidates kept per point for the capacity-constrained assignment (exhaustive scoring).
    static let candidates = 8

    static func run(
        points x: UnsafePointer<Float>, count m: Int, dimension d: Int, k: Int, metric: Metric, iterations: Int,
        tolerance: Double, seed: UInt64, threads: Int, level: Int, int8: Int8Points? = nil,
        progress: ((String) -> Void)?
    ) -> Clustering {
        var rng = SplitMix64(seed: seed &+ UInt64(level) &* 0x9E37_79B9)
        let norms2 = rowNorms2(x, count: m, dimension: d)
        let totalEnergy = norms2.reduce(0.0) { $0 + Double($1) }
        // Initialise with K distinct random rows of non-zero norm.
        var centroids = [Float](repeating: 0, count: k * d)
        let usable = (0..<m).filter { norms2[$0] > 0 }
        var pool = usable
        rng.partialShuffle(&pool, count: k)
        for j in 0..<k {
            let src = x + pool[j] * d
            for t in 0..<d { centroids[j * d + t] = src[t] }
        }
        if metric == .cosine { normaliseRows(&centroids, count: k, dimension: d) }

        let capacity = max(1, Int((tolerance * Double(m) / Double(k)).rounded(.up)))
        let M = min(k, int8?.candidates ?? candidates)
        var topIndex = [Int32](repeating: 0, count: m * M)
        var topScore = [Float](repeating: 0, count: m * M)
        var regret = [Float](repeating: 0, count: m)
        var assignment = [Int32](repeating: -1, count: m)
        var assignedScore = [Float](repeating: 0, count: m)
        var sizes = [Int](repeating: 0, count: k)
        var ran = 0
        var residual = 1.0

        for iteration in 0..<iterations {
            let started = DispatchTime.now().uptimeNanoseconds
            let cn = rowNorms2(centroids, count: k, dimension: d)
            // 1. Each point's best M candidates (signed scores) and its regret.
            if let int8 {
                int8.shortlist(
                    centroids: centroids, norms2: cn, k: k, metric: metric, keep: M, threads: threads, index: &topIndex,
                    score: &topScore, regret: &regret)
            } else {
                centroids.withUnsafeBufferPointer { c in
                    topIndex.withUnsafeMutableBufferPointer { ti in
                        topScore.withUnsafeMutableBufferPointer { ts in
                            regret.withUnsafeMutableBufferPointer { rg in
                                let tiB = ti.baseAddress!, tsB = ts.baseAddress!, rgB = rg.baseAddress!
                                ParallelBlocks.run(count: m, blockRows: blockRows(k), threads: threads, scratchPerRow: k) { rows, scores in
                                    BLAS.gemm(
                                        m: rows.count, n: k, k: d, a: x + rows.lowerBound * d, b: c.baseAddress!,
                                        transposeB: true, c: scores)
                                    for (r, i) in rows.enumerated() {
                                        selectTop(
                                            scores + r * k, k: k, m: M, metric: metric, centroidNorms2: cn,
                                            index: tiB + i * M, score: tsB + i * M, regret: rgB + i)
                                    }
                                }
                            }
                        }
                    }
                }
            }
            // 2. Capacity-constrained greedy placement, largest regret first.
            let order = (0..<m).sorted { regret[$0] > regret[$1] || (regret[$0] == regret[$1] && $0 < $1) }
            for j in 0..<k { sizes[j] = 0 }
            var changed = 0
            var captured = 0.0
            // Points whose listed candidates are all full wait, in order, for one batch scoring all K.
            var deferred: [Int] = []
            func place(_ i: Int, _ chosen: Int, _ score: Float) {
                if assignment[i] != Int32(chosen) { changed += 1 }
                assignment[i] = Int32(chosen)
                assignedScore[i] = score
                sizes[chosen] += 1
                captured += metric == .cosine
                    ? Double(score) * Double(score) / Double(max(cn[chosen], .leastNormalMagnitude))
                    : Double(2 * score - cn[chosen])
            }
            for i in order {
                var chosen = -1
                var score: Float = 0
                for t in 0..<M {
                    let j = Int(topIndex[i * M + t])
                    if sizes[j] < capacity {
                        chosen = j
                        score = topScore[i * M + t]
                        break
                    }
                }
                if chosen < 0 { deferred.append(i) } else { place(i, chosen, score) }
            }
            placeDeferred(
                deferred, points: x, dimension: d, centroids: centroids, k: k, metric: metric, norms2: cn,
                hasRoom: { sizes[$0] < capacity }, place: place)
            residual = totalEnergy > 0 ? max(0, 1 - captured / totalEnergy) : 0
            ran = iteration + 1
            // 3. Update.
            var next = [Float](repeating: 0, count: k * d)
            next.withUnsafeMutableBufferPointer { nb in
                let n = nb.baseAddress!
                for i in 0..<m {
                    let j = Int(assignment[i])
                    // safe: j < k, i < m; rows are d floats.
                    let w: Float = metric == .cosine ? assignedScore[i] : 1
                    let src = x + i &* d
                    let dst = n + j &* d
                    for t in 0..<d { dst[t] += w * src[t] }
                }
            }
            for j in 0..<k {
                if metric == .euclidean, sizes[j] > 0 {
                    let inv = 1 / Float(sizes[j])
                    for t in 0..<d { next[j * d + t] *= inv }
                }
                var norm: Float = 0
                for t in 0..<d { norm += next[j * d + t] * next[j * d + t] }
                if sizes[j] == 0 || norm == 0 {
                    // Empty (or degenerate) centroid: reseed on a random usable point.
                    let src = x + usable[Int(rng.next() % UInt64(usable.count))] * d
                    for t in 0..<d { next[j * d + t] = src[t] }
                }
            }
            if metric == .cosine { normaliseRows(&next, count: k, dimension: d) }
            centroids = next
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            let maxSize = sizes.max() ?? 0
            progress?(
                String(
                    format: "level %d iteration %d/%d: residual energy %.4f, %d reassigned, max/mean cluster %.2f, %.2f s",
                    level + 1, iteration + 1, iterations, residual, changed, Double(maxSize) * Double(k) / Double(m),
                    seconds))
            if changed == 0 && iteration > 0 { break }
        }
        return Clustering(centroids: centroids, sizes: sizes, iterations: ran, relativeResidualEnergy: residual)
    }

    /// Rows per scoring block: about 8M scores (32 MB) per block at most.
    static func blockRows(_ k: Int) -> Int { max(16, min(2048, (8 << 20) / k)) }

    /// Keeps the best `m` centroids of one score row, best first, and the regret (best − second best value).
    @inline(__always)
    static func selectTop(
        _ s: UnsafePointer<Float>, k: Int, m: Int, metric: Metric, centroidNorms2 cn: [Float],
        index: UnsafeMutablePointer<Int32>, score: UnsafeMutablePointer<Float>, regret: UnsafeMutablePointer<Float>
    ) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: m) { values in
            let v = values.baseAddress!
            var filled = 0
            cn.withUnsafeBufferPointer { cnp in
                for j in 0..<k {
                    // safe: j < k; s holds k scores, cn k norms.
                    let sj = s[j]
                    let value = metric == .cosine ? abs(sj) : 2 * sj - cnp[j]
                    if filled == m && value <= v[m - 1] { continue }
                    var p = filled < m ? filled : m - 1
                    while p > 0 && v[p - 1] < value {
                        v[p] = v[p - 1]
                        index[p] = index[p - 1]
                        score[p] = score[p - 1]
                        p -= 1
                    }
                    v[p] = value
                    index[p] = Int32(j)
                    score[p] = sj
                    if filled < m { filled += 1 }
                }
            }
            regret.pointee = m > 1 ? v[0] - v[1] : 0
        }
    }

    /// Places the points none of whose candidates had room, in their (regret) order, each into the best
    /// centroid that still has room, from exact scores of all K computed in batches. `hasRoom` reads the
    /// cluster sizes that `place` updates, so each placement sees the ones before it.
    static func placeDeferred(
        _ deferred: [Int], points x: UnsafePointer<Float>, dimension d: Int, centroids: [Float], k: Int, metric: Metric,
        norms2 cn: [Float], hasRoom: (Int) -> Bool, place: (Int, Int, Float) -> Void
    ) {
        guard !deferred.isEmpty else { return }
        let batch = blockRows(k)
        let rows = UnsafeMutablePointer<Float>.allocate(capacity: batch * d)
        defer { rows.deallocate() }
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: batch * k)
        defer { scores.deallocate() }
        var start = 0
        while start < deferred.count {
            let end = min(deferred.count, start + batch)
            for (r, i) in deferred[start..<end].enumerated() { (rows + r * d).update(from: x + i * d, count: d) }
            centroids.withUnsafeBufferPointer { c in
                BLAS.gemm(m: end - start, n: k, k: d, a: rows, b: c.baseAddress!, transposeB: true, c: scores)
            }
            for (r, i) in deferred[start..<end].enumerated() {
                let s = scores + r * k
                var best = -1
                var bestValue = -Float.infinity
                for j in 0..<k where hasRoom(j) {
                    let value = metric == .cosine ? abs(s[j]) : 2 * s[j] - cn[j]
                    if value > bestValue {
                        best = j
                        bestValue = value
                    }
                }
                place(i, best, s[best])
            }
            start = end
        }
    }
}

/// The training points of one level quantized to int8 once, for the shortlist scoring of every iteration.
struct Int8Points: @unchecked Sendable {
    // @unchecked Sendable: filled in init, then only read (concurrently, by disjoint row blocks).
    let x: UnsafePointer<Float>
    let count: Int
    let dimension: Int
    let paddedDepth: Int
    let quantized: [UInt8]
    let scales: [Float]
    /// Centroids per point the shortlist keeps (scored exactly).
    let candidates: Int

    init(_ x: UnsafePointer<Float>, count: Int, dimension d: Int, candidates: Int) {
        self.x = x
        self.candidates = candidates
        self.count = count
        dimension = d
        paddedDepth = sheaf_i8_padded_depth(d)
        var q = [UInt8](repeating: 0, count: count * paddedDepth)
        var s = [Float](repeating: 0, count: count)
        sheaf_quantize_rows_u8(x, count, d, paddedDepth, &q, &s)
        quantized = q
        scales = s
    }

    /// Each point's best `keep` centroids by exact score among its int8 shortlist of `keep`, best first
    /// (ties: lower index), their signed exact scores, and the regret (best − second best value).
    func shortlist(
        centroids: [Float], norms2 cn: [Float], k: Int, metric: Metric, keep M: Int, threads: Int,
        index: inout [Int32], score: inout [Float], regret: inout [Float]
    ) {
        let d = dimension, dp = paddedDepth
        let packed = centroids.withUnsafeBufferPointer { PackedInt8Rows($0.baseAddress!, count: k, dimension: d) }
        let cosine = metric == .cosine
        // The kernel's objective: s²·w (cosine, w = 1/‖c‖²) or 2s − w (euclidean, w = ‖c‖²).
        let w = cosine ? cn.map { $0 > 0 ? 1 / $0 : 0 } : cn
        let blockRows = 256
        centroids.withUnsafeBufferPointer { c in
          w.withUnsafeBufferPointer { wp in
            quantized.withUnsafeBufferPointer { q in
              scales.withUnsafeBufferPointer { qs in
                index.withUnsafeMutableBufferPointer { ti in
                  score.withUnsafeMutableBufferPointer { ts in
                    regret.withUnsafeMutableBufferPointer { rg in
                      let tiB = ti.baseAddress!, tsB = ts.baseAddress!, rgB = rg.baseAddress!
                      ParallelBlocks.run(count: count, blockRows: blockRows, threads: threads, scratchPerRow: 0) { rows, _ in
                          Self.block(
                              rows: rows, x: x, d: d, q: q.baseAddress! + rows.lowerBound * dp, qs: qs.baseAddress! + rows.lowerBound,
                              packed: packed, w: wp.baseAddress!, cosine: cosine, norms2: cn, centroids: c.baseAddress!, k: k,
                              keep: M, index: tiB, score: tsB, regret: rgB)
                      }
                    }
                  }
                }
              }
            }
          }
        }
    }

    private static func block(
        rows: Range<Int>, x: UnsafePointer<Float>, d: Int, q: UnsafePointer<UInt8>, qs: UnsafePointer<Float>,
        packed: PackedInt8Rows, w: UnsafePointer<Float>,
        cosine: Bool, norms2 cn: [Float], centroids: UnsafePointer<Float>, k: Int, keep M: Int,
        index: UnsafeMutablePointer<Int32>, score: UnsafeMutablePointer<Float>, regret: UnsafeMutablePointer<Float>
    ) {
        let n = rows.count
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: k)
        defer { scratch.deallocate() }
        let values = UnsafeMutablePointer<Float>.allocate(capacity: n * M)
        defer { values.deallocate() }
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: n)
        defer { counts.deallocate() }
        let exact = UnsafeMutablePointer<Float>.allocate(capacity: M)
        defer { exact.deallocate() }
        let order = UnsafeMutablePointer<Int>.allocate(capacity: M)
        defer { order.deallocate() }
        let sortedIndex = UnsafeMutablePointer<Int32>.allocate(capacity: M)
        defer { sortedIndex.deallocate() }
        let sortedScore = UnsafeMutablePointer<Float>.allocate(capacity: M)
        defer { sortedScore.deallocate() }
        let lo = rows.lowerBound
        // The shortlist lands straight in the point's slots of `index`, then is re-sorted by exact value.
        _ = sheaf_shortlist_u8i8(
            q, qs, n, packed.packed, packed.scales, packed.sums, w, cosine ? 1 : 0, k, d, M, scratch, index + lo * M,
            values, counts)
        cn.withUnsafeBufferPointer { cnp in
            for r in 0..<n {
                let i = lo + r
                let ti = index + i * M, ts = score + i * M
                let filled = counts[r]
                sheaf_dot_rows_f32(x + i * d, centroids, ti, filled, d, exact)
                func value(_ t: Int) -> Float {
                    cosine ? abs(exact[t]) : 2 * exact[t] - cnp[Int(ti[t])]
                }
                // Insertion sort of ≤ M candidates by exact value, ties to the lower index.
                for t in 0..<filled { order[t] = t }
                for a in 1..<max(1, filled) {
                    let o = order[a]
                    let (vo, jo) = (value(o), ti[o])
                    var b = a
                    while b > 0 {
                        let p = order[b - 1]
                        let vp = value(p)
                        if vp > vo || (vp == vo && ti[p] < jo) { break }
                        order[b] = p
                        b -= 1
                    }
                    order[b] = o
                }
                let v0 = filled > 0 ? value(order[0]) : 0
                let v1 = filled > 1 ? value(order[1]) : v0
                for t in 0..<filled {
                    sortedIndex[t] = ti[order[t]]
                    sortedScore[t] = exact[order[t]]
                }
                // (filled == M: M ≤ k; the guard keeps a short list safe all the same.)
                for t in 0..<M {
                    ti[t] = sortedIndex[min(t, max(0, filled - 1))]
                    ts[t] = sortedScore[min(t, max(0, filled - 1))]
                }
                regret[i] = v0 - v1
            }
        }
    }
}

// MARK: - Row helpers

/// Squared norm of each row (16 partial sums, then their total: vectorised, and the same on every machine).
func rowNorms2(_ x: UnsafePointer<Float>, count: Int, dimension d: Int) -> [Float] {
    let d16 = d & ~15
    return (0..<count).map { i in
        let r = x + i &* d
        var acc = SIMD16<Float>(repeating: 0)
        var t = 0
        while t < d16 {
            // safe: t + 16 ≤ d16 ≤ d; the row has d floats.
            let v = UnsafeRawPointer(r + t).loadUnaligned(as: SIMD16<Float>.self)
            acc += v * v
            t += 16
        }
        var s = acc.sum()
        while t < d {
            s += r[t] * r[t]
            t += 1
        }
        return s
    }
}

func rowNorms2(_ x: [Float], count: Int, dimension d: Int) -> [Float] {
    x.withUnsafeBufferPointer { rowNorms2($0.baseAddress!, count: count, dimension: d) }
}

/// Scales every non-zero row to unit length.
func normaliseRows(_ x: inout [Float], count: Int, dimension d: Int) {
    for i in 0..<count {
        var s: Float = 0
        for t in 0..<d { s += x[i * d + t] * x[i * d + t] }
        guard s > 0 else { continue }
        let inv = 1 / s.squareRoot()
        for t in 0..<d { x[i * d + t] *= inv }
    }
}

// MARK: - Parallel blocks

/// Splits rows into blocks and runs them on `threads` threads, each with its own score scratch.
/// OpenBLAS must run single-threaded meanwhile (the callers set it); blocks never nest.
enum ParallelBlocks {
    static func run(
        count: Int, blockRows: Int, threads: Int, scratchPerRow: Int,
        _ body: (Range<Int>, UnsafeMutablePointer<Float>) -> Void
    ) {
        guard count > 0 else { return }
        let blocks = (count + blockRows - 1) / blockRows
        let workers = max(1, min(threads, blocks))
        let perRow = scratchPerRow > 0 ? scratchPerRow : 0
        withoutActuallyEscaping(body) { body in
            // @unchecked Sendable: every worker handles disjoint row blocks, and `body` writes only the
            // rows of the block it is given (and its own scratch); shared inputs are only read.
            let work = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                // Worker w takes blocks w, w + workers, … (static interleave: deterministic).
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(1, blockRows * max(perRow, 1)))
                defer { scratch.deallocate() }
                var b = w
                while b < blocks {
                    let lo = b * blockRows
                    work.value(lo..<min(count, lo + blockRows), scratch)
                    b += workers
                }
            }
        }
    }
}

/// Carries a value into a concurrent closure whose safety the caller has argued for.
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
