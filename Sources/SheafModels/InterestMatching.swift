import SheafNN

/// The matching and clustering steps of HyMiRec's DMIL (disentangled multi-interest learning): the
/// next w behaviours are clustered into at most s groups under cosine similarity, and the s refined
/// interests are matched one-to-one to the groups, maximising the total similarity.
public enum InterestMatching {
    /// An assignment of each of `n` rows to a distinct column of an n × m matrix (n ≤ m) with the
    /// largest total, by the Hungarian algorithm (Kuhn–Munkres with potentials, O(n²·m)).
    ///
    /// - Parameters:
    ///   - scores: row-major n × m values (similarities: larger is better); finite.
    ///   - rows: n. - columns: m ≥ n.
    /// - Returns: per row, its column. Ties between equally good assignments are broken
    ///   deterministically (the same input gives the same answer).
    public static func hungarian(_ scores: [Float], rows n: Int, columns m: Int) -> [Int] {
        precondition(n >= 0 && m >= n && scores.count == n * m, "the Hungarian assignment needs rows ≤ columns and n × m scores")
        precondition(scores.allSatisfy(\.isFinite), "scores must be finite")
        if n == 0 { return [] }
        // Minimise cost = −score. 1-based arrays as in the classic formulation: u (rows), v (columns),
        // p[j] = the row assigned to column j (0: none), way[j] = the previous column on the path.
        let inf = Double.infinity
        var u = [Double](repeating: 0, count: n + 1), v = [Double](repeating: 0, count: m + 1)
        var p = [Int](repeating: 0, count: m + 1), way = [Int](repeating: 0, count: m + 1)
        func cost(_ i: Int, _ j: Int) -> Double { -Double(scores[(i - 1) * m + (j - 1)]) }
        for i in 1...n {
            p[0] = i
            var j0 = 0
            var minv = [Double](repeating: inf, count: m + 1)
            var used = [Bool](repeating: false, count: m + 1)
            repeat {
                used[j0] = true
                let i0 = p[j0]
                var delta = inf, j1 = 0
                for j in 1...m where !used[j] {
                    let reduced = cost(i0, j) - u[i0] - v[j]
                    if reduced < minv[j] {
                        minv[j] = reduced
                        way[j] = j0
                    }
                    if minv[j] < delta {
                        delta = minv[j]
                        j1 = j
                    }
                }
                for j in 0...m {
                    if used[j] {
                        u[p[j]] += delta
                        v[j] -= delta
                    } else {
                        minv[j] -= delta
                    }
                }
                j0 = j1
            } while p[j0] != 0
            repeat {
                let j1 = way[j0]
                p[j0] = p[j1]
                j0 = j1
            } while j0 != 0
        }
        var assignment = [Int](repeating: -1, count: n)
        for j in 1...m where p[j] != 0 { assignment[p[j] - 1] = j - 1 }
        return assignment
    }

    /// The greedy alternative (an ablation): repeatedly match the best remaining (row, column) pair.
    /// Ties go to the lowest row, then the lowest column.
    public static func greedy(_ scores: [Float], rows n: Int, columns m: Int) -> [Int] {
        precondition(n >= 0 && m >= n && scores.count == n * m, "the greedy assignment needs rows ≤ columns and n × m scores")
        var assignment = [Int](repeating: -1, count: n)
        var rowFree = [Bool](repeating: true, count: n), columnFree = [Bool](repeating: true, count: m)
        for _ in 0..<n {
            var best: (i: Int, j: Int, s: Float)?
            for i in 0..<n where rowFree[i] {
                for j in 0..<m where columnFree[j] {
                    let s = scores[i * m + j]
                    if best == nil || s > best!.s { best = (i, j, s) }
                }
            }
            let (i, j, _) = best!
            assignment[i] = j
            rowFree[i] = false
            columnFree[j] = false
        }
        return assignment
    }

    /// Spherical k-means of `count` vectors (row-major, `dimension` wide) into at most `groups`
    /// clusters under cosine similarity, seeded deterministically: the first vector, then repeatedly
    /// the vector least similar to every centroid chosen so far (the earliest on ties). Seeding stops
    /// early when every remaining vector is a duplicate direction of a chosen one (cosine ≥ 1 − 1e-6),
    /// so `groups` larger than the number of distinct directions gives fewer clusters. Then
    /// `iterations` rounds of assignment (nearest centroid by cosine, the lowest index on ties) and
    /// update (the normalised mean; a cluster left empty keeps its centroid).
    ///
    /// - Returns: the unit centroids (k × dimension, k ≤ groups) and each vector's cluster.
    public static func clusters(
        _ vectors: [Float], count: Int, dimension d: Int, groups: Int, iterations: Int = 5
    ) -> (centroids: [Float], k: Int, assignment: [Int]) {
        precondition(count >= 1 && d >= 1 && groups >= 1 && vectors.count == count * d, "clusters need at least one vector and group")
        let unit: [Float] = (0..<count).flatMap { r -> [Float] in
            let row = vectors[(r * d)..<((r + 1) * d)]
            let norm = row.reduce(0) { $0 + $1 * $1 }.squareRoot()
            return norm > 0 ? row.map { $0 / norm } : Array(row)
        }
        func cosine(_ a: Int, _ centroids: [Float], _ c: Int) -> Float {
            var s: Float = 0
            for k in 0..<d { s += unit[a * d + k] * centroids[c * d + k] }
            return s
        }
        var centroids = Array(unit[0..<d])
        var k = 1
        while k < groups {
            var pick = -1, lowest = Float.infinity
            for r in 0..<count {
                var nearest = -Float.infinity
                for c in 0..<k { nearest = max(nearest, cosine(r, centroids, c)) }
                if nearest < lowest {
                    lowest = nearest
                    pick = r
                }
            }
            if lowest >= 1 - 1e-6 { break }  // every vector repeats a chosen direction
            centroids += unit[(pick * d)..<((pick + 1) * d)]
            k += 1
        }
        var assignment = [Int](repeating: 0, count: count)
        for round in 0...iterations {
            for r in 0..<count {
                var best = 0, bestScore = -Float.infinity
                for c in 0..<k {
                    let s = cosine(r, centroids, c)
                    if s > bestScore {
                        bestScore = s
                        best = c
                    }
                }
                assignment[r] = best
            }
            if round == iterations { break }
            var sums = [Float](repeating: 0, count: k * d), sizes = [Int](repeating: 0, count: k)
            for r in 0..<count {
                sizes[assignment[r]] += 1
                for j in 0..<d { sums[assignment[r] * d + j] += unit[r * d + j] }
            }
            for c in 0..<k where sizes[c] > 0 {
                let norm = sums[(c * d)..<((c + 1) * d)].reduce(0) { $0 + $1 * $1 }.squareRoot()
                if norm > 0 { for j in 0..<d { centroids[c * d + j] = sums[c * d + j] / norm } }
            }
        }
        return (centroids, k, assignment)
    }
}

/// How DMIL matches interests to targets.
public enum InterestMatchingRule: String, Codable, Sendable, CaseIterable {
    /// One-to-one, maximising the total similarity (the Hungarian algorithm).
    case hungarian
    /// One-to-one, greedily (an ablation).
    case greedy
}

/// One DMIL step's plan for a batch: which refined interest each window target trains. Computed on
/// detached values (no gradient flows through clustering or matching), as the paper does.
public struct DMILPlan: Sendable, Equatable {
    /// Per target (rows in order, each row's targets in time order): its row.
    public let targetRow: [Int]
    /// Per target: the interest it is matched to, as a row of the interests tensor (row·s + j).
    public let interest: [Int]

    /// - Parameters:
    ///   - interests: the refined interests' values, rows × s × d (row-major).
    ///   - targets: per row, its window targets' embeddings (w_r × d each, w_r ≥ 0; a row without
    ///     targets is skipped).
    ///   - s: interests per row. - d: width.
    ///   - iterations: k-means rounds.
    public init(
        interests: [Float], targets: [[Float]], interestsPerRow s: Int, dimension d: Int, iterations: Int = 5,
        rule: InterestMatchingRule = .hungarian
    ) {
        precondition(s >= 1 && d >= 1 && interests.count == targets.count * s * d, "interests must be rows × s × d")
        var rows: [Int] = [], chosen: [Int] = []
        for (r, t) in targets.enumerated() {
            precondition(t.count % d == 0, "targets must be whole rows of width d")
            let w = t.count / d
            if w == 0 { continue }
            let c = InterestMatching.clusters(t, count: w, dimension: d, groups: s, iterations: iterations)
            // scores[cluster, interest] = cos(g_c, r_j) (g_c is unit; r_j normalised here).
            var scores = [Float](repeating: 0, count: c.k * s)
            for j in 0..<s {
                let base = (r * s + j) * d
                var norm: Float = 0
                for x in 0..<d { norm += interests[base + x] * interests[base + x] }
                let inverse = norm > 0 ? 1 / norm.squareRoot() : 0
                for g in 0..<c.k {
                    var dot: Float = 0
                    for x in 0..<d { dot += c.centroids[g * d + x] * interests[base + x] }
                    scores[g * s + j] = dot * inverse
                }
            }
            let match = rule == .hungarian
                ? InterestMatching.hungarian(scores, rows: c.k, columns: s) : InterestMatching.greedy(scores, rows: c.k, columns: s)
            for a in c.assignment {
                rows.append(r)
                chosen.append(r * s + match[a])
            }
        }
        targetRow = rows
        interest = chosen
    }
}

extension Tape {
    /// DMIL's loss: InfoNCE between each window target and the interest it is matched to, with
    /// sampled negatives. For target t with matched interest q_t and item key k_t (both
    /// L2-normalised here), and negatives n_1…n_N (the same for every target; a negative that is t's
    /// own item is left out of t's term):
    ///
    ///     ℓ_t = −cos(q_t, k_t)/τ + log(exp(cos(q_t, k_t)/τ) + Σ_i exp(cos(q_t, n_i)/τ))
    ///
    /// averaged over the targets. Only matched interests receive gradient.
    ///
    /// - Parameters:
    ///   - interests: [rows · s, d] (on the tape).
    ///   - plan: which interest each target trains.
    ///   - keys: item keys [N + 1, d] (on the tape); `targetItems` and `negativeItems` are rows of it.
    public func dmilLoss(
        interests: Tensor, plan: DMILPlan, keys: Tensor, targetItems: [Int], negativeItems: [Int], temperature: Float
    ) -> Tensor {
        precondition(plan.interest.count == targetItems.count, "one item per planned target")
        precondition(temperature > 0, "the temperature must be positive")
        let t = targetItems.count
        guard t > 0 else { return scale(sum(interests), 0) }
        let queries = l2Normalize(embedding(interests, ids: plan.interest))
        let columns = targetItems + negativeItems
        let columnKeys = l2Normalize(embedding(keys, ids: columns))
        let logits = scale(matmul(queries, columnKeys, transposeB: true), 1 / temperature)
        let negatives = Array(t..<(t + negativeItems.count))
        return contrastive(
            logits, ContrastiveTargets(positives: (0..<t).map { [$0] }, negatives: Array(repeating: negatives, count: t), columnKeys: columns))
    }
}
