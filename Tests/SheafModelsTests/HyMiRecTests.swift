import SheafNN
import SheafRandom
import Testing

@testable import SheafModels

@Suite struct HyMiRecTests {
    func tiny(interests: Int = 2) -> HyMiRecConfiguration {
        var c = HyMiRecConfiguration()
        c.width = 16
        c.heads = 2
        c.innerSize = 32
        c.coarseQueries = 2
        c.interests = interests
        c.window = 4
        c.recent = 6
        c.negatives = 16
        c.dropout = 0
        c.temperature = 0.2
        return c
    }

    /// Users who each like two of three item groups and alternate between them; content = the
    /// item's own direction plus its group's.
    func planted(users: Int = 36, length: Int = 30, seed: UInt64 = 3) -> (SequenceDataset, Tensor, [[Int]]) {
        var rng = SplitMix64(seed: seed)
        let groups = [Array(1...8), Array(9...16), Array(17...24)]
        var data: [(items: [Int32], labels: [Float])] = [], tastes: [[Int]] = []
        for u in 0..<users {
            let taste = [[0, 1], [1, 2], [0, 2]][u % 3]
            tastes.append(taste)
            let items = (0..<length).map { p in Int32(groups[taste[p % 2]][Int(rng.next() % 8)]) }
            data.append((items, [Float](repeating: 5, count: length)))
        }
        let dim = 27
        var content = [Float](repeating: 0, count: 25 * dim)
        for i in 1...24 {
            content[i * dim + (i - 1)] = 1
            content[i * dim + 24 + (i - 1) / 8] = 2
        }
        return (chimeData(data, items: 24), Tensor(shape: [25, dim], values: content), tastes)
    }

    /// The interests of a cut read only the behaviours before it; the batch pads rows of other lengths
    /// without changing a row's interests.
    @Test func interestsReadOnlyTheInput() throws {
        let (data, content, _) = planted()
        let model = try HyMiRec(configuration: tiny(), contentDimension: 27, seed: 1)
        func values(_ examples: [(user: Int, cut: Int)], _ d: SequenceDataset) -> [Float] {
            let t = Tape(recording: false)
            return model.interests(t, HyMiRecBatch(examples, in: d, configuration: model.configuration), content: content, training: false).values
        }
        let alone = values([(user: 0, cut: 12)], data)
        #expect(alone.count == 2 * 16)
        // Change user 0's behaviours from the cut on: the interests stay.
        var users = data.users
        users[0].items = Array(users[0].items[..<12]) + [Int32](repeating: 24, count: users[0].count - 12)
        let changed = SequenceDataset(users: users, vocabulary: data.vocabulary)
        #expect(values([(user: 0, cut: 12)], changed) == alone)
        // Batched with a longer and a shorter row, row 0's interests are the same (to rounding).
        let batched = values([(user: 0, cut: 12), (user: 1, cut: 29), (user: 2, cut: 2)], data)
        for k in 0..<alone.count { #expect(abs(batched[k] - alone[k]) < 1e-4) }
    }

    /// Trained with DMIL on two planted interests per user, s = 2 puts each of a user's two groups
    /// nearest a different interest for most users; the loss falls.
    @Test func recoversTwoPlantedInterests() throws {
        let (data, content, tastes) = planted()
        let c = tiny()  // with the lightweight recommender over everything before the last 6
        let model = try HyMiRec(configuration: c, contentDimension: 27, seed: 2)
        let split = WindowSplit(data, window: c.window)
        let groups = model.namedParameters.map(\.tensor)
        let optimizer = AdamW(decayed: groups.filter { $0.rank == 2 }, undecayed: groups.filter { $0.rank != 2 }, threads: 2)
        var rng = SplitMix64(seed: 9)
        var losses: [Float] = []
        for epoch in 0..<6 {
            var order = split.training
            rng.partialShuffle(&order, count: order.count)
            var sum: Float = 0, steps = 0
            var start = 0
            while start < order.count {
                let part = Array(order[start..<min(order.count, start + 32)])
                start += part.count
                let t = Tape(seed: UInt64(epoch * 1000 + steps), threads: 2)
                let loss = model.loss(t, part, in: data, content: content, rng: &rng)
                optimizer.zeroGrad()
                t.backward(loss)
                optimizer.step(learningRate: 3e-3)
                sum += loss.scalar
                steps += 1
            }
            losses.append(sum / Float(steps))
        }
        #expect(losses.last! < losses.first! - 0.2, "\(losses)")
        // Each planted group's mean key, against each user's two interests after their history.
        let t = Tape(recording: false)
        let keys = model.itemKeys(t, content: content).values
        func groupKey(_ g: Int) -> [Float] {
            (0..<16).map { k in (1...8).map { keys[(g * 8 + $0) * 16 + k] }.reduce(0, +) }
        }
        let r = t.l2Normalize(model.interests(
            t, HyMiRecBatch(data.users.indices.map { (user: $0, cut: 28) }, in: data, configuration: c), content: content, training: false)).values
        var separated = 0
        for (u, taste) in tastes.enumerated() {
            let nearest = taste.map { g -> Int in
                let gk = groupKey(g)
                let dots = (0..<2).map { j in (0..<16).reduce(Float(0)) { $0 + r[(u * 2 + j) * 16 + $1] * gk[$1] } }
                return dots[0] >= dots[1] ? 0 : 1
            }
            if nearest[0] != nearest[1] { separated += 1 }
        }
        #expect(separated >= tastes.count * 3 / 4, "\(separated) of \(tastes.count) users")
        let metrics = model.evaluate(split.test, in: data, content: content)
        // Random ranking would give Recall@10 10/24; knowing only the two groups, 10/16.
        #expect(metrics.count == 36 && metrics.recall(at: 10) > 0.7, "\(metrics.dictionary)")
    }
}
