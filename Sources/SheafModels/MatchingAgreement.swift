import SheafNN

/// How often DMIL's two matching rules would train different interests on the same windows: for
/// each window example, its targets clustered as in training (`InterestMatching.clusters`) and the
/// clusters matched to the model's interests by the Hungarian algorithm and by greedy max matching
/// (`DMILPlan` with each rule). With s = 1, or a window whose targets form one cluster, the two
/// cannot differ; with s = 2 they differ only when the pair of largest cosine is not in the
/// assignment with the larger sum. It measures the model as it is (interests without dropout), not
/// the matchings that trained it.
public struct MatchingAgreement: Sendable, Equatable, Codable {
    /// Window examples measured (each has at least one target).
    public let examples: Int
    /// Examples whose targets greedy matching sends to at least one other interest than the Hungarian.
    public let differing: Int
    /// Targets in the examples.
    public let targets: Int
    /// Targets that greedy matching sends to another interest than the Hungarian.
    public let targetsMoved: Int

    public init(examples: Int, differing: Int, targets: Int, targetsMoved: Int) {
        self.examples = examples
        self.differing = differing
        self.targets = targets
        self.targetsMoved = targetsMoved
    }
}

extension HyMiRec {
    /// `MatchingAgreement` of the model on window `examples` (the training split's), `batchSize` at
    /// a time: each batch's interests (no dropout) and its targets' projected items, planned with
    /// both rules as the training step plans them.
    public func matchingAgreement(_ examples: [WindowExample], in data: SequenceDataset, batchSize: Int = 256,
                                  threads: Int = Tape.defaultThreads) -> MatchingAgreement
    {
        let c = configuration, d = c.width
        let keys = projectedItems(Tape(recording: false, threads: threads)).values  // [(N + 1) × d]
        var differing = 0, targets = 0, moved = 0
        let step = max(1, evaluationBatch(batchSize))
        var start = 0
        while start < examples.count {
            let part = examples[start..<min(examples.count, start + step)]
            let batch = HyMiRecBatch(part.map { (user: $0.user, cut: $0.cut) }, in: data, configuration: c)
            let r = interests(batch, threads: threads)
            let windows = part.map { e in
                e.targets.flatMap { p in
                    let item = Int(data.users[e.user].items[p])
                    return keys[(item * d)..<((item + 1) * d)]
                }
            }
            func plan(_ rule: InterestMatchingRule) -> DMILPlan {
                DMILPlan(interests: r, targets: windows, interestsPerRow: c.interests, dimension: d,
                         iterations: c.clusterIterations, rule: rule)
            }
            let hungarian = plan(.hungarian), greedy = plan(.greedy)
            var rowsDiffering = Set<Int>()
            for (i, row) in hungarian.targetRow.enumerated() where hungarian.interest[i] != greedy.interest[i] {
                moved += 1
                rowsDiffering.insert(row)
            }
            differing += rowsDiffering.count
            targets += hungarian.targetRow.count
            start += step
        }
        return MatchingAgreement(examples: examples.count, differing: differing, targets: targets, targetsMoved: moved)
    }
}
