import SheafNN

/// How a multi-interest model uses its s interests on examples with one target each (validation or
/// test): whether they differ, which of them scores the target and the top items, and how well each
/// ranks the catalogue alone. A model whose interests collapse onto one direction shows a mean
/// pairwise cosine near 1 and every interest ranking as the combination does; one that uses a
/// single interest shows its share near 1.
///
/// An item "comes from" interest j when cos(r_j, item) is its score, the maximum over the
/// interests (ties go to the lowest j). The model's ranking is by that maximum; the top items are
/// its first `top` items with RankingMetrics' order (score, then lower index), padding never ranked.
public struct InterestUsage: Sendable, Equatable, Codable {
    /// s.
    public let interests: Int
    /// Examples measured.
    public let examples: Int
    /// The cut-off of `topShare`.
    public let top: Int
    /// The mean over examples and pairs j < k of cos(r_j, r_k); nil for one interest.
    public let meanPairwiseCosine: Double?
    /// Per interest: the share of examples whose target item comes from it (sums to 1).
    public let targetShare: [Double]
    /// Per interest: the share of the examples' top items that come from it (sums to 1).
    public let topShare: [Double]
    /// Per interest: full-ranking metrics with every item ranked by cos(r_j, item) alone.
    public let alone: [RankingMetrics]
    /// The model's own full-ranking metrics (items ranked by the maximum over interests).
    public let combined: RankingMetrics

    /// Accumulates examples: `interests` is [rows · s, d] (L2-normalised), `scores` [rows · s, items]
    /// (column 0 padding), `targets` the rows' target items.
    struct Accumulator {
        let s: Int, top: Int
        var examples = 0
        var cosineSum = 0.0
        var targetCounts: [Int], topCounts: [Int]
        var alone: [RankingMetrics]
        var combined = RankingMetrics()
        /// Each example's target rank under the model's scoring (the maximum), in order.
        var ranks: [Int] = []

        init(interests s: Int, top: Int) {
            self.s = s
            self.top = top
            targetCounts = [Int](repeating: 0, count: s)
            topCounts = [Int](repeating: 0, count: s)
            alone = [RankingMetrics](repeating: RankingMetrics(), count: s)
        }

        mutating func add(interests r: [Float], scores: [Float], targets: [Int], dimension d: Int, items n: Int) {
            precondition(r.count == targets.count * s * d && scores.count == targets.count * s * n, "one block of s rows per example")
            var best = [Float](repeating: 0, count: n), from = [Int](repeating: 0, count: n)
            for (row, target) in targets.enumerated() {
                examples += 1
                if s > 1 {
                    var sum = 0.0
                    for j in 0..<s {
                        for k in (j + 1)..<s {
                            var dot: Float = 0
                            for i in 0..<d { dot += r[(row * s + j) * d + i] * r[(row * s + k) * d + i] }
                            sum += Double(dot)
                        }
                    }
                    cosineSum += sum / Double(s * (s - 1) / 2)
                }
                scores.withUnsafeBufferPointer { all in
                    for j in 0..<s {
                        let rowScores = UnsafeBufferPointer(rebasing: all[((row * s + j) * n)..<((row * s + j + 1) * n)])
                        alone[j].add(scores: rowScores, target: target)
                        for i in 0..<n where j == 0 || rowScores[i] > best[i] {
                            best[i] = rowScores[i]
                            from[i] = j
                        }
                    }
                }
                let rank = best.withUnsafeBufferPointer { RankingMetrics.rank(of: target, in: $0) }
                ranks.append(rank)
                combined.add(rank: rank)
                targetCounts[from[target]] += 1
                for i in RankingMetrics.topItems(best, count: top) { topCounts[from[i]] += 1 }
            }
        }

        var usage: InterestUsage {
            let tops = topCounts.reduce(0, +)
            return InterestUsage(
                interests: s, examples: examples, top: top,
                meanPairwiseCosine: s > 1 && examples > 0 ? cosineSum / Double(examples) : nil,
                targetShare: targetCounts.map { examples > 0 ? Double($0) / Double(examples) : 0 },
                topShare: topCounts.map { tops > 0 ? Double($0) / Double(tops) : 0 },
                alone: alone, combined: combined)
        }
    }
}

extension HyMiRec {
    /// How the model uses its interests on `examples` (validation or test: the target is the
    /// behaviour at `cut`), `batchSize` at a time; see `InterestUsage`. `combined` equals `evaluate`'s
    /// metrics on the same examples.
    public func interestUsage(_ examples: [WindowExample], in data: SequenceDataset, top: Int = 10, batchSize: Int = 256,
                              threads: Int = Tape.defaultThreads) -> InterestUsage
    {
        interestUsageAndRanks(examples, in: data, top: top, batchSize: batchSize, threads: threads).usage
    }

    /// `interestUsage`, and each example's target rank under the model's own scoring, the same ranks
    /// `targetRanks` gives: one scoring pass for both (`sheaf evaluate` needs both on test).
    public func interestUsageAndRanks(_ examples: [WindowExample], in data: SequenceDataset, top: Int = 10, batchSize: Int = 256,
                                      threads: Int = Tape.defaultThreads) -> (usage: InterestUsage, ranks: [Int])
    {
        precondition(top >= 1, "top must be at least 1")
        var accumulator = InterestUsage.Accumulator(interests: configuration.interests, top: top)
        let step = max(1, evaluationBatch(batchSize))
        var start = 0
        while start < examples.count {
            let part = examples[start..<min(examples.count, start + step)]
            let (r, scores) = interestScores(part.map { (user: $0.user, cut: $0.cut) }, in: data, threads: threads)
            accumulator.add(interests: r, scores: scores, targets: part.map { Int(data.users[$0.user].items[$0.cut]) },
                            dimension: configuration.width, items: itemCount + 1)
            start += step
        }
        return (accumulator.usage, accumulator.ranks)
    }
}
