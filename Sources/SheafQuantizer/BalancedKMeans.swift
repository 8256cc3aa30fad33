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
enum BalancedKMeans {
    /// Candidates kept per point for the capacity-constrained assignment.
    static let candidates = 8

    static func run(
        points x: UnsafePointer<Float>, count m: Int, dimension d: Int, k: Int, metric: Metric, iterations: Int,
        tolerance: Double, seed: UInt64, threads: Int, level: Int, progress: ((String) -> Void)?
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
        let M = min(k, candidates)
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
            // 2. Capacity-constrained greedy placement, largest regret first.
            let order = (0..<m).sorted { regret[$0] > regret[$1] || (regret[$0] == regret[$1] && $0 < $1) }
            for j in 0..<k { sizes[j] = 0 }
            var changed = 0
            var captured = 0.0
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
                if chosen < 0 {
                    (chosen, score) = bestWithRoom(
                        x + i * d, centroids: centroids, k: k, dimension: d, metric: metric, norms2: cn, sizes: sizes,
                        capacity: capacity)
                }
                if assignment[i] != Int32(chosen) { changed += 1 }
                assignment[i] = Int32(chosen)
                assignedScore[i] = score
                sizes[chosen] += 1
                captured += metric == .cosine
                    ? Double(score) * Double(score) / Double(max(cn[chosen], .leastNormalMagnitude))
                    : Double(2 * score - cn[chosen])
            }
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

    /// The best centroid with room, scanning all K (rare: when every listed candidate is full).
    static func bestWithRoom(
        _ row: UnsafePointer<Float>, centroids: [Float], k: Int, dimension d: Int, metric: Metric, norms2 cn: [Float],
        sizes: [Int], capacity: Int
    ) -> (Int, Float) {
        var best = -1
        var bestValue = -Float.infinity
        var bestScore: Float = 0
        for j in 0..<k where sizes[j] < capacity {
            var s: Float = 0
            for t in 0..<d { s += row[t] * centroids[j * d + t] }
            let value = metric == .cosine ? abs(s) : 2 * s - cn[j]
            if value > bestValue {
                best = j
                bestValue = value
                bestScore = s
            }
        }
        return (best, bestScore)
    }
}

// MARK: - Row helpers

/// Squared norm of each row.
func rowNorms2(_ x: UnsafePointer<Float>, count: Int, dimension d: Int) -> [Float] {
    (0..<count).map { i in
        var s: Float = 0
        let r = x + i * d
        for t in 0..<d { s += r[t] * r[t] }
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
