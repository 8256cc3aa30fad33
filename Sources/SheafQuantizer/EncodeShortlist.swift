import SheafCodebook
import SheafLinearAlgebra
import SheafRandom

/// Greedy cosine encoding without scoring every centroid: each level's K centroid directions are
/// grouped (sign-invariant spherical k-means, since the cosine objective |r·c|/‖c‖ does not care about
/// sign), a residual is scored against the group directions, and only the centroids of its best
/// `probes` groups are scored exactly. Rows that probe the same group are scored together with one
/// sgemm, as an inverted-file index batches its lists.
///
/// The choice among the probed centroids is exact, so a row's code differs from exhaustive greedy only
/// when its exhaustive best lies in a group it did not probe. How often that happens depends on the
/// data: `sheaf-measure encode-shortlist` measures it (identical rows, recall@10, speed).
public struct ShortlistConfiguration: Sendable, Equatable {
    /// Groups per level (more: smaller groups, less exact scoring, a larger coarse search).
    public var groups: Int
    /// Groups scored exactly per row and level (more: exhaustive's choice found more often, more work).
    public var probes: Int

    public init(groups: Int = 64, probes: Int = 8) {
        self.groups = groups
        self.probes = probes
    }
}

/// The per-codebook tables of shortlist encoding.
struct ShortlistPlan: @unchecked Sendable {
    // @unchecked Sendable: immutable after init; the arrays are only read.
    let groups: Int
    let probes: Int
    /// L × groups × D unit group directions.
    let directions: [Float]
    /// Per level, groups + 1 offsets into `members`.
    let offsets: [[Int]]
    /// Per level, centroid indices ordered by group.
    let members: [[Int]]
    /// Per level, the centroids in `members` order (K × D), so that a group's are one contiguous block.
    let grouped: [[Float]]

    init(plan: EncodePlan, configuration: ShortlistConfiguration) {
        let (L, K, D) = (plan.L, plan.K, plan.D)
        let g = max(1, min(configuration.groups, K))
        groups = g
        probes = max(1, min(configuration.probes, g))
        var directions = [Float](repeating: 0, count: L * g * D)
        var offsets: [[Int]] = []
        var members: [[Int]] = []
        var grouped: [[Float]] = []
        plan.codebook.centroids.withUnsafeBufferPointer { c in
            for l in 0..<L {
                let cl = c.baseAddress! + l * K * D
                let (dirs, assignment) = Self.axialKMeans(cl, count: K, dimension: D, groups: g, seed: UInt64(l + 1))
                directions.replaceSubrange((l * g * D)..<((l + 1) * g * D), with: dirs)
                var order = Array(0..<K)
                order.sort { (assignment[$0], $0) < (assignment[$1], $1) }
                var off = [Int](repeating: 0, count: g + 1)
                for j in 0..<K { off[assignment[j] + 1] += 1 }
                for k in 0..<g { off[k + 1] += off[k] }
                var block = [Float](repeating: 0, count: K * D)
                for (p, j) in order.enumerated() {
                    for t in 0..<D { block[p * D + t] = cl[j * D + t] }
                }
                offsets.append(off)
                members.append(order)
                grouped.append(block)
            }
        }
        self.directions = directions
        self.offsets = offsets
        self.members = members
        self.grouped = grouped
    }

    /// Sign-invariant spherical k-means of `count` directions: each is assigned to the group direction
    /// g maximising |u·g|, and g becomes the normalised Σ sign(u·g)·u of its members. Seeded, 12
    /// iterations; an empty group takes the direction worst served by its group.
    static func axialKMeans(
        _ x: UnsafePointer<Float>, count n: Int, dimension d: Int, groups g: Int, seed: UInt64
    ) -> (directions: [Float], assignment: [Int]) {
        var unit = [Float](repeating: 0, count: n * d)
        for i in 0..<n {
            var s: Float = 0
            for t in 0..<d { s += x[i * d + t] * x[i * d + t] }
            let inv = s > 0 ? 1 / s.squareRoot() : 0
            for t in 0..<d { unit[i * d + t] = x[i * d + t] * inv }
        }
        var rng = SplitMix64(seed: seed &* 0xA5A5_5A5A_1234_5678)
        var dirs = [Float](repeating: 0, count: g * d)
        for (k, i) in rng.sortedSample(g, of: n).enumerated() {
            for t in 0..<d { dirs[k * d + t] = unit[i * d + t] }
        }
        var assignment = [Int](repeating: 0, count: n)
        var scores = [Float](repeating: 0, count: n * g)
        for _ in 0..<12 {
            unit.withUnsafeBufferPointer { u in
                dirs.withUnsafeBufferPointer { dd in
                    scores.withUnsafeMutableBufferPointer { s in
                        BLAS.gemm(m: n, n: g, k: d, a: u.baseAddress!, b: dd.baseAddress!, transposeB: true, c: s.baseAddress!)
                    }
                }
            }
            var fit = [Float](repeating: 0, count: n)
            for i in 0..<n {
                var best = 0
                var bv: Float = -1
                for k in 0..<g where abs(scores[i * g + k]) > bv {
                    bv = abs(scores[i * g + k])
                    best = k
                }
                assignment[i] = best
                fit[i] = bv
            }
            var sums = [Float](repeating: 0, count: g * d)
            var sizes = [Int](repeating: 0, count: g)
            for i in 0..<n {
                let k = assignment[i]
                let sign: Float = scores[i * g + k] < 0 ? -1 : 1
                sizes[k] += 1
                for t in 0..<d { sums[k * d + t] += sign * unit[i * d + t] }
            }
            for k in 0..<g {
                if sizes[k] == 0 {
                    // Reseed with the direction its group serves worst.
                    let worst = (0..<n).min { fit[$0] < fit[$1] }!
                    fit[worst] = 2
                    for t in 0..<d { sums[k * d + t] = unit[worst * d + t] }
                }
                var s: Float = 0
                for t in 0..<d { s += sums[k * d + t] * sums[k * d + t] }
                let inv = s > 0 ? 1 / s.squareRoot() : 0
                for t in 0..<d { dirs[k * d + t] = sums[k * d + t] * inv }
            }
        }
        return (dirs, assignment)
    }
}

extension EncodePlan {
    /// Greedy cosine encode of `rows` rows through `shortlist` (see `ShortlistPlan`): the chosen code,
    /// its magnitude and the residual update are exactly `greedy`'s for the centroids probed.
    func greedyShortlist(
        _ x: UnsafePointer<Float>, rows: Int, shortlist s: ShortlistPlan, codes: UnsafeMutablePointer<UInt32>,
        magnitudes: UnsafeMutablePointer<Float>
    ) {
        let g = s.groups, p = s.probes
        var residual = Array(UnsafeBufferPointer(start: x, count: rows * D))
        var coarse = [Float](repeating: 0, count: rows * g)
        var probeList = [Int](repeating: 0, count: rows * p)
        var bestValue = [Float](repeating: 0, count: rows)
        var bestCode = [Int](repeating: 0, count: rows)
        var bestDot = [Float](repeating: 0, count: rows)
        var gathered = [Float](repeating: 0, count: rows * D)
        var rowsOf = [[Int]](repeating: [], count: g)
        var scores: [Float] = []
        var top = [(Float, Int)](repeating: (0, 0), count: p)
        for l in 0..<L {
            let il = l * K
            // 1. Coarse scores and each row's best `p` groups.
            residual.withUnsafeBufferPointer { r in
                s.directions.withUnsafeBufferPointer { dd in
                    coarse.withUnsafeMutableBufferPointer { cs in
                        BLAS.gemm(m: rows, n: g, k: D, a: r.baseAddress!, b: dd.baseAddress! + l * g * D, transposeB: true, c: cs.baseAddress!)
                    }
                }
            }
            for k in 0..<g { rowsOf[k].removeAll(keepingCapacity: true) }
            for i in 0..<rows {
                var filled = 0
                for k in 0..<g {
                    let v = abs(coarse[i * g + k])
                    if filled == p && v <= top[p - 1].0 { continue }
                    var q = filled < p ? filled : p - 1
                    while q > 0 && top[q - 1].0 < v {
                        top[q] = top[q - 1]
                        q -= 1
                    }
                    top[q] = (v, k)
                    if filled < p { filled += 1 }
                }
                for q in 0..<p {
                    probeList[i * p + q] = top[q].1
                    rowsOf[top[q].1].append(i)
                }
                bestValue[i] = -.infinity
                bestCode[i] = K
            }
            // 2. Exact scores, group by group: the rows probing a group against its centroids.
            let offsets = s.offsets[l], members = s.members[l]
            s.grouped[l].withUnsafeBufferPointer { block in
                for k in 0..<g where !rowsOf[k].isEmpty && offsets[k + 1] > offsets[k] {
                    let list = rowsOf[k]
                    let size = offsets[k + 1] - offsets[k]
                    for (a, i) in list.enumerated() {
                        for t in 0..<D { gathered[a * D + t] = residual[i * D + t] }
                    }
                    if scores.count < list.count * size { scores = [Float](repeating: 0, count: list.count * size) }
                    gathered.withUnsafeBufferPointer { gb in
                        scores.withUnsafeMutableBufferPointer { sb in
                            BLAS.gemm(
                                m: list.count, n: size, k: D, a: gb.baseAddress!, b: block.baseAddress! + offsets[k] * D,
                                transposeB: true, c: sb.baseAddress!)
                        }
                    }
                    for (a, i) in list.enumerated() {
                        for q in 0..<size {
                            let j = members[offsets[k] + q]
                            let dot = scores[a * size + q]
                            let value = dot * dot * inverseNorms2[il + j]
                            // Ties go to the lower index, as in `greedy`.
                            if value > bestValue[i] || (value == bestValue[i] && j < bestCode[i]) {
                                bestValue[i] = value
                                bestCode[i] = j
                                bestDot[i] = dot
                            }
                        }
                    }
                }
            }
            // 3. Codes, magnitudes and residuals.
            codebook.centroids.withUnsafeBufferPointer { c in
                for i in 0..<rows {
                    let j = bestCode[i]
                    let alpha = codebook.quantizedMagnitude(bestDot[i] * inverseNorms2[il + j], level: l)
                    codes[i * L + l] = UInt32(j)
                    magnitudes[i * L + l] = alpha
                    let cen = c.baseAddress! + (l * K + j) * D
                    for t in 0..<D { residual[i * D + t] -= alpha * cen[t] }
                }
            }
        }
    }
}
