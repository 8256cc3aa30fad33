import Foundation
import SheafNN
import Testing

@testable import SheafModels

/// `InterestUsage`: a hand-computed case, and HyMiRec's against a sort-based reference.
@Suite struct InterestUsageTests {
    /// Two examples, two interests, items 1…3 (0 is padding), top 2. Example A: interests (1, 0) and
    /// (0, 1) (cosine 0); item 3 ties across the interests and so comes from the first; target 3.
    /// Example B: interests (1, 0) and (0.6, 0.8) (cosine 0.6); items 1 and 3 tie on the combined
    /// score, so the lower index ranks first; target 1.
    @Test func handComputed() {
        var a = InterestUsage.Accumulator(interests: 2, top: 2)
        a.add(interests: [1, 0, 0, 1, 1, 0, 0.6, 0.8],
              scores: [0, 0.9, 0.1, 0.5, /**/ 0, 0.2, 0.8, 0.5, /**/ 0, 0.3, 0.3, 0.1, /**/ 0, 0.1, 0.7, 0.3],
              targets: [3, 1], dimension: 2, items: 4)
        let u = a.usage
        #expect(u.interests == 2 && u.examples == 2 && u.top == 2)
        #expect(abs(u.meanPairwiseCosine! - 0.3) < 1e-6)
        // A's target comes from interest 1 (the tie), B's from interest 1 (0.3 against 0.1).
        #expect(u.targetShare == [1, 0])
        // Top 2: A items 1 (interest 1) and 2 (interest 2); B items 2 (interest 2) and 1 (interest 1).
        #expect(u.topShare == [0.5, 0.5])
        // Combined: A's item 3 is behind items 1 and 2; B's item 1 only behind item 2 (item 3 ties
        // it but has the higher index). Alone: interest 1 ranks A's target 1st after item 1 and B's
        // first; interest 2 ranks A's target after item 2 and B's after items 2 and 3.
        #expect(u.combined == RankingMetrics(ranks: [2, 1]))
        #expect(u.alone == [RankingMetrics(ranks: [1, 0]), RankingMetrics(ranks: [1, 2])])
    }

    @Test func topItemsKeepTheRankingOrder() {
        let scores: [Float] = [9, 0.5, 0.7, 0.5, 0.1, 0.7]
        #expect(RankingMetrics.topItems(scores, count: 3) == [2, 5, 1])
        #expect(RankingMetrics.topItems(scores, count: 1) == [2])
        // More than there are items: every item but the padding, in order.
        #expect(RankingMetrics.topItems(scores, count: 10) == [2, 5, 1, 3, 4])
    }

    /// HyMiRec's usage on the planted data's test targets, against the same scores accumulated by
    /// sorting; its combined metrics are `evaluate`'s. Batches of 7 (the last one shorter).
    @Test func hymirecAgainstReference() throws {
        let fixture = HyMiRecTests()
        let (data, content, _) = fixture.planted()
        let model = try HyMiRec(configuration: fixture.tiny(interests: 3), itemCount: 24, content: try .rows(content, dimension: 27), seed: 5)
        let examples = model.split(data).test
        #expect(examples.count == 36)
        let usage = model.interestUsage(examples, in: data, top: 5, batchSize: 7, threads: 1)
        #expect(usage.combined == model.evaluate(examples, in: data, batchSize: 7, threads: 1))
        // The ranks from the same pass are targetRanks'.
        let both = model.interestUsageAndRanks(examples, in: data, top: 5, batchSize: 7, threads: 1)
        #expect(both.usage == usage)
        #expect(both.ranks == model.targetRanks(examples, in: data, batchSize: 7, threads: 1))

        let s = 3, n = 25, d = model.configuration.width
        var alone = [RankingMetrics](repeating: RankingMetrics(), count: s)
        var targetCounts = [0, 0, 0], topCounts = [0, 0, 0], cosines = 0.0, combinedRanks: [Int] = []
        for start in stride(from: 0, to: examples.count, by: 7) {
            let part = Array(examples[start..<min(examples.count, start + 7)])
            let (r, scores) = model.interestScores(part.map { (user: $0.user, cut: $0.cut) }, in: data, threads: 1)
            for (row, e) in part.enumerated() {
                let target = Int(data.users[e.user].items[e.cut])
                func score(_ j: Int, _ i: Int) -> Float { scores[(row * s + j) * n + i] }
                func vector(_ j: Int) -> ArraySlice<Float> { r[((row * s + j) * d)..<((row * s + j + 1) * d)] }
                func cosine(_ j: Int, _ k: Int) -> Double { Double(zip(vector(j), vector(k)).reduce(Float(0)) { $0 + $1.0 * $1.1 }) }
                cosines += (cosine(0, 1) + cosine(0, 2) + cosine(1, 2)) / 3
                // Rank by sorting all items of 1…24 on (score descending, index ascending).
                func rank(_ key: (Int) -> Float) -> Int {
                    (1..<n).sorted { (-key($0), $0) < (-key($1), $1) }.firstIndex(of: target)!
                }
                for j in 0..<s { alone[j].add(rank: rank { score(j, $0) }) }
                func best(_ i: Int) -> Float { (0..<s).map { score($0, i) }.max()! }
                func from(_ i: Int) -> Int { (0..<s).first { score($0, i) == best(i) }! }
                combinedRanks.append(rank(best))
                targetCounts[from(target)] += 1
                for i in (1..<n).sorted(by: { (-best($0), $0) < (-best($1), $1) }).prefix(5) { topCounts[from(i)] += 1 }
            }
        }
        #expect(usage.alone == alone)
        // The model's own ranks of the targets are the combined score's, and give `evaluate`'s metrics.
        let ranks = model.targetRanks(examples, in: data, batchSize: 7, threads: 1)
        #expect(ranks == combinedRanks)
        #expect(RankingMetrics(ranks: ranks) == model.evaluate(examples, in: data, batchSize: 7, threads: 1))
        // Regrouped by history length (as `sheaf evaluate` does), each bucket's ranks give the metrics
        // of ranking that bucket's examples alone. The test targets all follow histories of one
        // length here, so these are training cuts of many lengths, one target each.
        let varied = model.split(data).training.filter { $0.cut % 3 == 0 }.map { WindowExample(user: $0.user, cut: $0.cut, targetEnd: $0.cut + 1) }
        let variedRanks = model.targetRanks(varied, in: data, batchSize: 7, threads: 1)
        let lengths = Set(varied.map(\.behavioursBefore)).sorted()
        #expect(lengths.count >= 3)
        let bounds = [lengths[0], lengths[lengths.count / 2]]
        let buckets = HistoryLengthBuckets.split(zip(varied, variedRanks).map { RankedExample(example: $0, rank: $1) }, bounds: bounds)
        #expect(buckets.count == 3 && buckets.map(\.examples.count).reduce(0, +) == varied.count)
        for b in buckets {
            #expect(RankingMetrics(ranks: b.examples.map(\.rank))
                == model.evaluate(b.examples.map(\.example), in: data, batchSize: 7, threads: 1))
        }
        #expect(usage.targetShare == targetCounts.map { Double($0) / 36 })
        #expect(usage.topShare == topCounts.map { Double($0) / (36 * 5) })
        #expect(abs(usage.meanPairwiseCosine! - cosines / 36) < 1e-5)
        // Random interests are not one direction: their mean cosine is clearly below 1.
        #expect(usage.meanPairwiseCosine! < 0.95)
    }

    /// With one interest, every item comes from it, it ranks as the model does, and there is no pair.
    @Test func oneInterest() throws {
        let fixture = HyMiRecTests()
        let (data, content, _) = fixture.planted()
        let model = try HyMiRec(configuration: fixture.tiny(interests: 1), itemCount: 24, content: try .rows(content, dimension: 27), seed: 5)
        let usage = model.interestUsage(model.split(data).test, in: data, threads: 1)
        #expect(usage.meanPairwiseCosine == nil && usage.targetShare == [1] && usage.topShare == [1])
        #expect(usage.alone == [usage.combined] && usage.combined.count == 36)
    }
    /// `MatchingAgreement` against each training window clustered and matched here, one at a time,
    /// with the matching functions themselves; s = 1 never differs.
    @Test func matchingAgreementAgainstReference() throws {
        let fixture = HyMiRecTests()
        let (data, content, _) = fixture.planted()
        for s in [1, 3] {
            let model = try HyMiRec(configuration: fixture.tiny(interests: s), itemCount: 24, content: try .rows(content, dimension: 27), seed: 5)
            let c = model.configuration, d = c.width
            let examples = model.split(data).training
            let agreement = model.matchingAgreement(examples, in: data, batchSize: 50, threads: 1)
            let keys = model.projectedItems(Tape(recording: false, threads: 1)).values
            var differing = 0, moved = 0, targets = 0
            for start in stride(from: 0, to: examples.count, by: 50) {
                let part = Array(examples[start..<min(examples.count, start + 50)])
                let r = model.interests(HyMiRecBatch(part.map { (user: $0.user, cut: $0.cut) }, in: data, configuration: c), threads: 1)
                for (row, e) in part.enumerated() {
                    let window: [Float] = e.targets.flatMap { p in
                        let item = Int(data.users[e.user].items[p])
                        return keys[(item * d)..<((item + 1) * d)]
                    }
                    let clusters = InterestMatching.clusters(window, count: e.targets.count, dimension: d, groups: s, iterations: c.clusterIterations)
                    var scores = [Float](repeating: 0, count: clusters.k * s)
                    for j in 0..<s {
                        let v = r[((row * s + j) * d)..<((row * s + j + 1) * d)]
                        let inverse = 1 / v.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
                        for g in 0..<clusters.k {
                            scores[g * s + j] = zip(clusters.centroids[(g * d)..<((g + 1) * d)], v).reduce(Float(0)) { $0 + $1.0 * $1.1 } * inverse
                        }
                    }
                    let h = InterestMatching.hungarian(scores, rows: clusters.k, columns: s)
                    let g = InterestMatching.greedy(scores, rows: clusters.k, columns: s)
                    let m = clusters.assignment.filter { h[$0] != g[$0] }.count
                    moved += m
                    differing += m > 0 ? 1 : 0
                    targets += e.targets.count
                }
            }
            #expect(agreement == MatchingAgreement(examples: examples.count, differing: differing, targets: targets, targetsMoved: moved))
            #expect(examples.count == 36 * 27 && targets > examples.count)
            if s == 1 {
                #expect(differing == 0 && moved == 0)
            } else {
                #expect(differing > 0 && moved >= differing, "\(agreement)")
            }
        }
    }
}
