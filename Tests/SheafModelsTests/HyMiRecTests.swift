import Foundation
import SheafNN
import SheafRandom
import SheafText
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
        c.lightweightWidth = 16
        c.lightweightInnerSize = 32
        c.window = 4
        c.recent = 6
        c.negatives = 16
        c.dropout = 0
        c.temperature = 0.2
        return c
    }

    /// Users who each like two of three item groups and alternate between them; content = the
    /// item's own direction plus its group's (rows of items 1…24).
    func planted(users: Int = 36, length: Int = 30, seed: UInt64 = 3) -> (SequenceDataset, [Float], [[Int]]) {
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
        var content = [Float](repeating: 0, count: 24 * dim)
        for i in 1...24 {
            content[(i - 1) * dim + (i - 1)] = 1
            content[(i - 1) * dim + 24 + (i - 1) / 8] = 2
        }
        return (chimeData(data, items: 24), content, tastes)
    }

    /// The interests of a cut read only the behaviours before it; the batch pads rows of other lengths
    /// without changing a row's interests.
    @Test func interestsReadOnlyTheInput() throws {
        let (data, content, _) = planted()
        let model = try HyMiRec(configuration: tiny(), itemCount: 24, content: try .rows(content, dimension: 27), seed: 1)
        func values(_ examples: [(user: Int, cut: Int)], _ d: SequenceDataset) -> [Float] {
            model.interests(HyMiRecBatch(examples, in: d, configuration: model.configuration))
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

    /// The last lightweight layer computes only the coarse queries' rows: they equal those rows of
    /// the same layers computing every row (two layers, so the first one's history rows matter).
    @Test func lastLayerRowsOnly() throws {
        let (data, content, _) = planted()
        var c = tiny()
        c.lightweightLayers = 2
        let model = try HyMiRec(configuration: c, itemCount: 24, content: try .rows(content, dimension: 27), seed: 4)
        let l = try #require(model.lightweight)
        let batch = HyMiRecBatch([(user: 0, cut: 20), (user: 1, cut: 29)], in: data, configuration: c)
        let t = Tape(recording: false)
        let lh = batch.historyLength, length = lh + c.coarseQueries, w = c.lightweightWidth
        #expect(lh > 0)
        let history = t.linear(model.contentOfItems.decodedRows(), l.projection.weight, bias: l.projection.bias)
        let input = t.concatSequence([
            t.reshape(t.embedding(history, ids: batch.history), [2, lh, w]),
            t.reshape(t.embedding(l.queries, ids: [0, 1, 0, 1]), [2, 2, w]),
        ])
        var mask = [Bool](repeating: true, count: 2 * length)
        for r in 0..<2 { for p in 0..<lh { mask[r * length + p] = batch.historyMask[r * lh + p] } }
        func layer(_ i: Int, _ x: Tensor, lastRows: Int? = nil) -> Tensor {
            l.blocks[i](t, x, heads: 2, keyMask: mask, causal: false, hiddenDropout: 0, attentionDropout: 0, epsilon: 1e-12, lastRows: lastRows)
        }
        let first = layer(0, input)
        let full = layer(1, first).values
        let rowsOnly = layer(1, first, lastRows: 2).values
        #expect(rowsOnly.count == 2 * 2 * w)
        for r in 0..<2 {
            for q in 0..<2 {
                for k in 0..<w {
                    let want = full[(r * length + lh + q) * w + k], got = rowsOnly[(r * 2 + q) * w + k]
                    #expect(abs(want - got) < 1e-5, "row \(r) query \(q): \(got) vs \(want)")
                }
            }
        }
    }

    /// Trains HyMiRec with the shared trainer on the planted store and returns, per user, whether
    /// their two groups are nearest different interests, with the test metrics.
    func trainPlanted(interests s: Int, seed: UInt64) throws -> (
        separated: Int, users: Int, coverage: Float, recall: Double, losses: [Double]
    ) {
        let (data, content, tastes) = planted()
        let c = tiny(interests: s)  // with the lightweight recommender over everything before the last 6
        let model = try HyMiRec(configuration: c, itemCount: 24, content: try .rows(content, dimension: 27), seed: seed)
        var training = tinyTrainingConfiguration(epochs: 6)
        training.batchSize = 32
        training.learningRate = 3e-3
        let trainer = try Trainer(model: model, data: data, split: model.split(data), configuration: training)
        let outcome = try trainer.run()
        // Each planted group's mean key, against each user's interests after their history.
        let t = Tape(recording: false)
        let keys = model.itemKeys(t).values
        func groupKey(_ g: Int) -> [Float] {
            (0..<16).map { k in (1...8).map { keys[(g * 8 + $0) * 16 + k] }.reduce(0, +) }
        }
        let r = model.interests(HyMiRecBatch(data.users.indices.map { (user: $0, cut: 28) }, in: data, configuration: c))
        var separated = 0
        var coverage: Float = 0
        for (u, taste) in tastes.enumerated() {
            let nearest = taste.map { g -> (interest: Int, cosine: Float) in
                let gk = groupKey(g)
                let norm = gk.reduce(0) { $0 + $1 * $1 }.squareRoot()
                let cosines = (0..<s).map { j in (0..<16).reduce(Float(0)) { $0 + r[(u * s + j) * 16 + $1] * gk[$1] } / norm }
                let j = cosines.indices.max { cosines[$0] < cosines[$1] }!
                return (j, cosines[j])
            }
            if nearest[0].interest != nearest[1].interest { separated += 1 }
            coverage += (nearest[0].cosine + nearest[1].cosine) / 2
        }
        return (separated, tastes.count, coverage / Float(tastes.count), outcome.test["recall@10"]!, outcome.epochs.map(\.trainingLoss))
    }

    /// Trained with DMIL on two planted interests per user, s = 2 puts each of a user's two groups
    /// nearest a different interest for most users, and the loss falls; s = 1 can neither separate nor
    /// cover them.
    @Test func recoversTwoPlantedInterests() throws {
        let two = try trainPlanted(interests: 2, seed: 2)
        #expect(two.losses.last! < two.losses.first! - 0.2, "\(two.losses)")
        #expect(two.separated >= two.users * 3 / 4, "\(two.separated) of \(two.users) users")
        // Random ranking would give Recall@10 10/24. DMIL trains each interest towards one of the
        // window's groups, not towards the next behaviour's group, so the top 10 mixes both groups.
        #expect(two.recall > 0.45, "Recall@10 \(two.recall)")
        let one = try trainPlanted(interests: 1, seed: 2)
        #expect(one.separated == 0)
        // Coverage: the mean, over a user's two groups, of the best interest's cosine to the group's
        // mean key. With s = 2 each group has an interest close to it; s = 1 cannot be close to both.
        #expect(two.coverage > 0.5 && one.coverage < two.coverage - 0.3, "coverage: s = 2 \(two.coverage), s = 1 \(one.coverage)")
    }
}

extension HyMiRecTests {
    /// MiniLM-style initialisation of the refined recommender: with the encoder's word embeddings as
    /// tokens, the refined layers give the encoder's own hidden states (both read bidirectionally);
    /// a model the encoder cannot fill is refused, naming what differs.
    @Test func pretrainedRefinedLayers() throws {
        for layers in [1, 2] {
            let encoder = try tinyBert(layers: layers)
            var c = tiny()
            c.refinedLayers = layers
            c.initialization = .minilm
            let (_, content, _) = planted()
            let model = try HyMiRec(configuration: c, itemCount: 24, content: try .rows(content, dimension: 27), seed: 8)
            try model.loadPretrained(from: encoder)
            let ids = [2, 5, 7, 4, 9, 3]
            let words = encoder.namedParameters["embeddings.word_embeddings.weight"]!
            let t = Tape(recording: false)
            let n = ids.count, d = 16
            let x = t.add(t.embedding(words, ids: ids), t.embedding(model.recentPositions, ids: Array(0..<n)))
            var y = t.reshape(t.layerNorm(x, gamma: model.inputNorm.gamma, beta: model.inputNorm.beta, epsilon: c.layerNormEpsilon), [1, n, d])
            for block in model.refinedBlocks {
                y = block(
                    t, y, heads: 2, keyMask: [Bool](repeating: true, count: n), causal: false, hiddenDropout: 0, attentionDropout: 0,
                    epsilon: c.layerNormEpsilon)
            }
            let (expected, _) = encoder.hiddenStates([ids.map(Int32.init)])
            let worst = zip(expected.values, y.values).map { abs($0 - $1) }.max()!
            #expect(expected.count == n * d && worst < 1e-4, "\(layers) layer(s): \(worst)")
            var deep = c
            deep.refinedLayers = layers + 1
            #expect(throws: ModelError.invalidConfiguration("the encoder has \(layers) layers; this model asks for \(layers + 1)")) {
                try HyMiRec(configuration: deep, itemCount: 24, content: try .rows(content, dimension: 27), seed: 1).loadPretrained(from: encoder)
            }
            var wide = c
            wide.width = 32
            #expect(throws: ModelError.self) {
                try HyMiRec(configuration: wide, itemCount: 24, content: try .rows(content, dimension: 27), seed: 1).loadPretrained(from: encoder)
            }
        }
    }

    /// A model without the lightweight recommender or the indicator has no parameters for them, and
    /// its interests read only the recent behaviours; item ids add one table.
    @Test func ablationsDropTheirParameters() throws {
        let (data, content, _) = planted()
        var c = tiny()
        let full = try HyMiRec(configuration: c, itemCount: 24, content: try .rows(content, dimension: 27), seed: 1)
        c.indicator = false
        let noIndicator = try HyMiRec(configuration: c, itemCount: 24, content: try .rows(content, dimension: 27), seed: 1)
        c.lightweight = false
        let noLightweight = try HyMiRec(configuration: c, itemCount: 24, content: try .rows(content, dimension: 27), seed: 1)
        var withIDs = tiny()
        withIDs.itemIDs = true
        let ids = try HyMiRec(configuration: withIDs, itemCount: 24, content: try .rows(content, dimension: 27), seed: 1)
        #expect(Set(ids.namedParameters.map(\.name)).subtracting(full.namedParameters.map(\.name)) == ["item_ids"])
        let names = [full, noIndicator, noLightweight].map { Set($0.namedParameters.map(\.name)) }
        #expect(names[0].subtracting(names[1]) == ["indicator"])
        #expect(names[1].subtracting(names[2]).allSatisfy { $0.hasPrefix("lightweight.") } && names[2].isSubset(of: names[1]))
        #expect(!names[2].contains { $0.hasPrefix("lightweight.") })
        // Without the lightweight recommender, behaviours before the last `recent` change nothing.
        var users = data.users
        users[0].items = [Int32](repeating: 24, count: 20) + Array(users[0].items[20...])
        let changed = SequenceDataset(users: users, vocabulary: data.vocabulary)
        func r(_ m: HyMiRec, _ d: SequenceDataset) -> [Float] { m.interests(HyMiRecBatch([(user: 0, cut: 29)], in: d, configuration: m.configuration)) }
        #expect(r(noLightweight, changed) == r(noLightweight, data))
        #expect(r(full, changed) != r(full, data))
    }
}

extension HyMiRecTests {
    /// Batches of similar history length: every example once, ⌈n / batch⌉ batches of at most the
    /// batch size, the same for the same generator, and far less padding than the shuffled order.
    @Test func lengthGroupedBatches() throws {
        var rows: [(items: [Int32], labels: [Float])] = []
        var rng = SplitMix64(seed: 11)
        for u in 0..<40 {
            let n = 3 + (u * 37) % 90
            rows.append(((0..<n).map { _ in Int32(1 + rng.next() % 24) }, [Float](repeating: 1, count: n)))
        }
        let data = chimeData(rows, items: 24)
        let (_, content, _) = planted()
        let model = try HyMiRec(configuration: tiny(), itemCount: 24, content: try .rows(content, dimension: 27), seed: 1)
        let split = model.split(data)
        var order = Array(split.training.indices)
        rng.partialShuffle(&order, count: order.count)
        var a = SplitMix64(seed: 5), b = SplitMix64(seed: 5)
        let batches = model.batches(order, of: split.training, in: data, batchSize: 7, rng: &a)
        #expect(batches.count == (order.count + 6) / 7 && batches.allSatisfy { !$0.isEmpty && $0.count <= 7 })
        #expect(batches.flatMap { $0 }.sorted() == Array(split.training.indices))
        #expect(model.batches(order, of: split.training, in: data, batchSize: 7, rng: &b).map(Array.init) == batches.map(Array.init))
        func padded(_ batches: [ArraySlice<Int>]) -> Int {
            batches.map { batch in batch.count * batch.map { max(0, split.training[$0].cut - 6) }.max()! }.reduce(0, +)
        }
        let plain = order.consecutive(7)
        #expect(padded(batches) * 2 < padded(plain), "\(padded(batches)) vs \(padded(plain))")
    }
}

extension HyMiRecTests {
    /// Two epochs in one run, and one epoch, then a resumed run of one more: the same losses, test
    /// metrics, parameters and optimizer state (the negatives and the batch grouping are seeded per
    /// epoch and step); the best model loads back with the same scores.
    @Test func resumingContinuesTheSameRun() throws {
        let (data, content, _) = planted(users: 12, length: 20)
        var c = tiny()
        c.dropout = 0.1
        let (resumed, store, directory) = try expectResumeContinuesTheRun { epochs in
            let model = try HyMiRec(configuration: c, itemCount: 24, content: try .rows(content, dimension: 27), seed: 3)
            var t = tinyTrainingConfiguration(epochs: epochs)
            t.batchSize = 8
            return try Trainer(model: model, data: data, split: model.split(data), configuration: t)
        }
        // The saved best model scores as the trained one does.
        let loaded = try store.load(HyMiRec.self, for: data)
        #expect(loaded.scoresAfterHistory(of: [0, 5], in: data, threads: 1) == resumed.model.scoresAfterHistory(of: [0, 5], in: data, threads: 1))
        // A HyMiRec directory is not a SASRec one.
        #expect(throws: ModelError.corruptCheckpoint(path: store.modelPath, reason: "a hymirec checkpoint, not sasrec")) {
            try store.loadModel(for: data)
        }
        withExtendedLifetime(directory) {}
    }
}

extension HyMiRecTests {
    /// A checkpoint written before a configuration field existed reads with that field's default;
    /// a field of the wrong type, or JSON that is not an object, is unreadable.
    @Test func configurationFieldsAddedLaterTakeTheirDefaults() throws {
        var c = tiny()
        c.interests = 3
        var object = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(c)) as? [String: Any])
        object.removeValue(forKey: "itemIDs")
        let old = String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
        let read = try #require(CheckpointStore.configuration(HyMiRec.self, old))
        #expect(read == c && !read.itemIDs)
        object["interests"] = "three"
        #expect(CheckpointStore.configuration(HyMiRec.self, String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)) == nil)
        #expect(CheckpointStore.configuration(HyMiRec.self, "[1, 2]") == nil)
        #expect(CheckpointStore.configuration(SASRec.self, "{}") == SASRecConfiguration())
        // A field listed in fieldsAddedLater reads as the earlier behaviour, not today's default.
        object["interests"] = 3
        object.removeValue(forKey: "recentPositionOrder")
        let before = try #require(
            CheckpointStore.configuration(HyMiRec.self, String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)))
        #expect(c.recentPositionOrder == .newestFirst && before.recentPositionOrder == .oldestFirst)
        var earlier = c
        earlier.recentPositionOrder = .oldestFirst
        #expect(before == earlier)
    }

    /// Recent tokens sit at the start of their row, oldest first. Newest-first positions give the
    /// latest behaviour position 0 in every row; oldest-first ones number from the row's start.
    /// Padding gets 0 either way.
    @Test func recentPositions() throws {
        let (data, _, _) = planted()
        var c = tiny()
        c.recent = 4
        let batch = HyMiRecBatch([(user: 0, cut: 2), (user: 1, cut: 9), (user: 2, cut: 0)], in: data, configuration: c)
        #expect(batch.recentLength == 4)
        #expect(batch.positions(.newestFirst) == [1, 0, 0, 0] + [3, 2, 1, 0] + [0, 0, 0, 0])
        #expect(batch.positions(.oldestFirst) == [0, 1, 2, 3] + [0, 1, 2, 3] + [0, 1, 2, 3])
        // The order changes the interests of a row shorter than n (the same parameters otherwise).
        var oldest = tiny()
        oldest.recentPositionOrder = .oldestFirst
        let (_, content, _) = planted()
        let a = try HyMiRec(configuration: tiny(), itemCount: 24, content: try .rows(content, dimension: 27), seed: 1)
        let b = try HyMiRec(configuration: oldest, itemCount: 24, content: try .rows(content, dimension: 27), seed: 1)
        let short = [(user: 0, cut: 3)]
        #expect(a.interests(HyMiRecBatch(short, in: data, configuration: a.configuration))
            != b.interests(HyMiRecBatch(short, in: data, configuration: b.configuration)))
    }
}

extension HyMiRecTests {
    /// Negatives: drawn with replacement from 1…N below the item count (the same for the same
    /// generator), every item once (nothing drawn) from it on.
    @Test func negativesUpToTheWholeCatalogue() {
        var a = SplitMix64(seed: 4), b = SplitMix64(seed: 4)
        let drawn = HyMiRec.negatives(10, itemCount: 24, rng: &a)
        #expect(drawn.count == 10 && drawn.allSatisfy { (1...24).contains($0) } && drawn == HyMiRec.negatives(10, itemCount: 24, rng: &b))
        let before = a.state
        #expect(HyMiRec.negatives(24, itemCount: 24, rng: &a) == Array(1...24))
        #expect(HyMiRec.negatives(500, itemCount: 24, rng: &a) == Array(1...24) && a.state == before)
    }

    /// A model keeps min(negatives, N): every count from N on means the same (every item once), so
    /// runs that differ only there have one configuration (and one can resume the other's checkpoint).
    @Test func negativesBeyondTheCatalogueAreStoredAsIt() throws {
        let (_, content, _) = planted()
        var c = tiny()
        c.negatives = 4096
        let model = try HyMiRec(configuration: c, itemCount: 24, content: try .rows(content, dimension: 27), seed: 1)
        #expect(model.configuration.negatives == 24)
        c.negatives = 24
        #expect(try HyMiRec(configuration: c, itemCount: 24, content: try .rows(content, dimension: 27), seed: 1).configuration == model.configuration)
        c.negatives = 16
        #expect(try HyMiRec(configuration: c, itemCount: 24, content: try .rows(content, dimension: 27), seed: 1).configuration.negatives == 16)
    }
}
