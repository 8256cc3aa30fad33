import Foundation

/// Full-ranking metrics of next-item prediction, one target per example, as RecBole reports them for
/// sequential models: every item is ranked (no sampled negatives, no masking of items the user has
/// already seen); only the padding index 0 is left out.
///
/// The rank of the target is the number of items with a strictly higher score, plus the tied items
/// with a lower index (ties broken by index, deterministically). Then, with rank r counted from 0:
/// Recall@K = [r < K], NDCG@K = [r < K] / log₂(r + 2), MRR@K = [r < K] / (r + 1), each averaged
/// over the examples. A K larger than the item count counts every rank.
public struct RankingMetrics: Sendable, Equatable, Codable {
    /// The cut-offs of Recall and NDCG.
    public let cutoffs: [Int]
    /// The cut-off of MRR.
    public let mrrCutoff: Int
    /// Examples ranked.
    public private(set) var count = 0
    private var hits: [Double]
    private var gains: [Double]
    private var reciprocalRanks = 0.0

    public static let standardCutoffs = [10, 50, 200]

    public init(cutoffs: [Int] = RankingMetrics.standardCutoffs, mrrCutoff: Int = 10) {
        precondition(cutoffs.allSatisfy { $0 > 0 } && mrrCutoff > 0, "cut-offs must be positive")
        self.cutoffs = cutoffs
        self.mrrCutoff = mrrCutoff
        hits = cutoffs.map { _ in 0 }
        gains = cutoffs.map { _ in 0 }
    }

    /// The 0-based rank of item `target` among `scores[1...]` (index 0 is padding and never ranked).
    public static func rank(of target: Int, in scores: UnsafeBufferPointer<Float>) -> Int {
        precondition(target >= 1 && target < scores.count, "target \(target) outside 1..<\(scores.count)")
        let s = scores[target]
        var rank = 0
        for j in 1..<scores.count where scores[j] > s || (scores[j] == s && j < target) { rank += 1 }
        return rank
    }

    /// The first `count` items of 1..<scores.count (index 0 is padding) that `include` accepts, in
    /// ranking order: score descending, ties by lower index, as `rank(of:in:)` counts them.
    public static func topItems(_ scores: [Float], count: Int, where include: (Int) -> Bool = { _ in true }) -> [Int] {
        guard count > 0 else { return [] }
        var kept: [Int] = []  // best first
        func before(_ a: Int, _ b: Int) -> Bool { scores[a] > scores[b] || (scores[a] == scores[b] && a < b) }
        for i in 1..<max(1, scores.count) where include(i) {
            if kept.count == count, !before(i, kept[kept.count - 1]) { continue }
            var at = kept.count
            while at > 0, before(i, kept[at - 1]) { at -= 1 }
            kept.insert(i, at: at)
            if kept.count > count { kept.removeLast() }
        }
        return kept
    }

    /// Adds one example whose target has 0-based rank `rank`.
    public mutating func add(rank: Int) {
        count += 1
        for (i, k) in cutoffs.enumerated() where rank < k {
            hits[i] += 1
            gains[i] += 1 / log2(Double(rank) + 2)
        }
        if rank < mrrCutoff { reciprocalRanks += 1 / Double(rank + 1) }
    }

    /// Adds one example: the scores of every item (index 0 = padding) and the target index.
    public mutating func add(scores: UnsafeBufferPointer<Float>, target: Int) {
        add(rank: Self.rank(of: target, in: scores))
    }

    /// The metrics of examples whose targets have these 0-based ranks, added in order.
    public init(ranks: some Sequence<Int>, cutoffs: [Int] = RankingMetrics.standardCutoffs, mrrCutoff: Int = 10) {
        self.init(cutoffs: cutoffs, mrrCutoff: mrrCutoff)
        for r in ranks { add(rank: r) }
    }

    /// Each example's 0-based target rank under full ranking, `batchSize` examples at a time: `score`
    /// gives a part's scores, one row of `items` values per example (row-major), and each example's
    /// target column.
    public static func ranks<Example>(
        _ examples: [Example], items: Int, batchSize: Int, score: (ArraySlice<Example>) -> (scores: [Float], targets: [Int])
    ) -> [Int] {
        var ranks: [Int] = []
        ranks.reserveCapacity(examples.count)
        var start = 0
        while start < examples.count {
            let end = min(examples.count, start + max(1, batchSize))
            let (scores, targets) = score(examples[start..<end])
            precondition(targets.count == end - start && scores.count == targets.count * items, "one row of \(items) scores per example")
            scores.withUnsafeBufferPointer { s in
                for (r, target) in targets.enumerated() {
                    ranks.append(rank(of: target, in: UnsafeBufferPointer(rebasing: s[(r * items)..<((r + 1) * items)])))
                }
            }
            start = end
        }
        return ranks
    }

    /// Merges another accumulator with the same cut-offs (for examples ranked on other threads).
    public mutating func merge(_ other: RankingMetrics) {
        precondition(other.cutoffs == cutoffs && other.mrrCutoff == mrrCutoff, "merging metrics with other cut-offs")
        count += other.count
        for i in cutoffs.indices {
            hits[i] += other.hits[i]
            gains[i] += other.gains[i]
        }
        reciprocalRanks += other.reciprocalRanks
    }

    /// Recall@K (hit rate: one target per example); 0 with no examples.
    public func recall(at k: Int) -> Double { mean(hits, k) }
    /// NDCG@K.
    public func ndcg(at k: Int) -> Double { mean(gains, k) }
    /// MRR@`mrrCutoff`.
    public var mrr: Double { count > 0 ? reciprocalRanks / Double(count) : 0 }

    private func mean(_ sums: [Double], _ k: Int) -> Double {
        guard let i = cutoffs.firstIndex(of: k) else { preconditionFailure("no cut-off \(k); have \(cutoffs)") }
        return count > 0 ? sums[i] / Double(count) : 0
    }

    /// The named values as a dictionary (what logs, checkpoints and `metrics.json` keep).
    public var dictionary: [String: Double] { Dictionary(uniqueKeysWithValues: values.map { ($0.name, $0.value) }) }

    /// Named values: "recall@10", "ndcg@10", …, "mrr@10".
    public var values: [(name: String, value: Double)] {
        cutoffs.map { ("recall@\($0)", recall(at: $0)) } + cutoffs.map { ("ndcg@\($0)", ndcg(at: $0)) }
            + [("mrr@\(mrrCutoff)", mrr)]
    }
}
