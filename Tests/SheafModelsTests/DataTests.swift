import Foundation
import SheafStore
import Testing

@testable import SheafModels

/// A fresh temporary directory per test, removed when the value is released.
final class TempDirectory {
    let path: String
    init(_ name: String = "models") { path = NSTemporaryDirectory() + "sheaf-models-\(name)-\(UUID().uuidString)" }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A store of dimension `dimension` holding `histories` (user → (item, timestamp) in append order).
func makeStore(_ dir: TempDirectory, dimension: Int = 4, histories: [UInt64: [(UInt64, Int64)]]) throws -> Store {
    let store = try Store(path: dir.path, dimension: dimension)
    try store.write { txn in
        for (user, behaviors) in histories.sorted(by: { $0.key < $1.key }) {
            try txn.appendBehaviors(
                behaviors.map { Behavior(item: $0.0, timestamp: $0.1, label: Float($0.0 % 5)) }, user: user)
        }
    }
    return store
}

@Suite struct SequenceDataTests {
    /// The hand-made store of the split tests: user 5 has a tie at its last two timestamps (appended in
    /// the order 30, 20, so the store keeps 30 before 20), user 9 has two behaviours, user 7 three.
    func handMade() throws -> (TempDirectory, Store) {
        let dir = TempDirectory()
        let store = try makeStore(dir, histories: [
            5: [(10, 100), (40, 200), (10, 300), (30, 400), (20, 400)],
            7: [(40, 5), (50, 6), (10, 7)],
            9: [(20, 1), (30, 2)],
        ])
        return (dir, store)
    }

    @Test func readsEveryHistoryInStoreOrder() throws {
        let (dir, store) = try handMade()
        _ = dir
        var reports: [(Int, Int)] = []
        let data = try SequenceDataset.load(from: store, usersPerTransaction: 2) { reports.append(($0, $1)) }
        #expect(data.vocabulary.ids == [10, 20, 30, 40, 50])
        #expect(data.users.map(\.user) == [5, 7, 9])
        // Items as dense indices (10 → 1, 20 → 2, …); the tie at 400 keeps the append order.
        #expect(data.users[0].items == [1, 4, 1, 3, 2])
        #expect(data.users[0].timestamps == [100, 200, 300, 400, 400])
        #expect(data.users[0].labels == [0, 0, 0, 0, 0])
        #expect(data.users[1].items == [4, 5, 1])
        #expect(data.behaviorCount == 10)
        #expect(reports.map(\.0) == [2, 3] && reports.allSatisfy { $0.1 == 3 })
        #expect(data.userIndex(of: 7) == 1 && data.userIndex(of: 8) == nil)
        #expect(data.vocabulary.index(of: 30) == 3 && data.vocabulary.id(at: 3) == 30 && data.vocabulary.index(of: 31) == nil)
    }

    @Test func leaveOneOutTargetsPerUser() throws {
        let (dir, store) = try handMade()
        _ = dir
        let data = try SequenceDataset.load(from: store)
        let split = LeaveOneOutSplit(data, maxLength: 2)
        // User 5 (index 0), items [1, 4, 1, 3, 2]: test 2 (the later of the tie), validation 3, training
        // part [1, 4, 1]: targets 4 and 1. Inputs are the last 2 behaviours before the target.
        #expect(split.test.filter { $0.user == 0 } == [SequenceExample(user: 0, inputStart: 2, inputEnd: 4, target: 2)])
        #expect(split.validation.filter { $0.user == 0 } == [SequenceExample(user: 0, inputStart: 1, inputEnd: 3, target: 3)])
        #expect(split.training.filter { $0.user == 0 } == [
            SequenceExample(user: 0, inputStart: 0, inputEnd: 1, target: 4),
            SequenceExample(user: 0, inputStart: 0, inputEnd: 2, target: 1),
        ])
        // User 7 (three behaviours): one training behaviour, so no training example; validation and test.
        #expect(split.training.filter { $0.user == 1 }.isEmpty)
        #expect(split.validation.filter { $0.user == 1 } == [SequenceExample(user: 1, inputStart: 0, inputEnd: 1, target: 5)])
        #expect(split.test.filter { $0.user == 1 } == [SequenceExample(user: 1, inputStart: 0, inputEnd: 2, target: 1)])
        // User 9 (two behaviours): too few for validation and test; both train.
        #expect(split.training.filter { $0.user == 2 } == [SequenceExample(user: 2, inputStart: 0, inputEnd: 1, target: 3)])
        #expect(split.validation.count == 2 && split.test.count == 2)
    }

    /// The window split keeps the leave-one-out targets, and no training window reaches into them.
    /// Examples bucketed by the behaviours before their target: bounds end buckets, the last is open,
    /// empty buckets are left out, and each keeps its examples in order.
    @Test func bucketsByBehavioursBeforeTheTarget() {
        let before = [1, 50, 51, 100, 101, 250, 7]
        let examples = before.enumerated().map { SequenceExample(user: $0.offset, inputStart: max(0, $0.element - 50), inputEnd: $0.element, target: 1) }
        let b = HistoryLengthBuckets.split(examples, bounds: [50, 100, 200])
        #expect(b.map(\.from) == [0, 51, 101, 201] && b.map(\.to) == [50, 100, 200, nil])
        #expect(b.map { $0.examples.map(\.user) } == [[0, 1, 6], [2, 3], [4], [5]])
        let sparse = HistoryLengthBuckets.split(examples, bounds: [50, 100, 200, 300])
        #expect(sparse.map(\.from) == [0, 51, 101, 201] && sparse.map(\.to) == [50, 100, 200, 300])
        let one = HistoryLengthBuckets.split(examples, bounds: [])
        #expect(one.count == 1 && one[0].from == 0 && one[0].to == nil && one[0].examples.map(\.user) == Array(0..<7))
        // The window split's examples count the behaviours before their cut.
        let windows = [WindowExample(user: 0, cut: 60, targetEnd: 61), WindowExample(user: 1, cut: 3, targetEnd: 4)]
        #expect(HistoryLengthBuckets.split(windows, bounds: [50]).map { $0.examples.map(\.user) } == [[1], [0]])
    }

    @Test func windowTargetsStayInTheTrainingPart() throws {
        let (dir, store) = try handMade()
        _ = dir
        let data = try SequenceDataset.load(from: store)
        let split = WindowSplit(data, window: 2)
        // User 5 (index 0), 5 behaviours: training part 0..<3, so cuts 1 and 2 with targets 1..<3 and 2..<3.
        #expect(split.training.filter { $0.user == 0 } == [
            WindowExample(user: 0, cut: 1, targetEnd: 3), WindowExample(user: 0, cut: 2, targetEnd: 3),
        ])
        #expect(split.validation.filter { $0.user == 0 } == [WindowExample(user: 0, cut: 3, targetEnd: 4)])
        #expect(split.test.filter { $0.user == 0 } == [WindowExample(user: 0, cut: 4, targetEnd: 5)])
        // The same targets as the leave-one-out split, for every user.
        let loo = LeaveOneOutSplit(data)
        #expect(split.validation.map(\.cut) == loo.validation.map(\.inputEnd) && split.test.map(\.cut) == loo.test.map(\.inputEnd))
        // User 7 (three behaviours): nothing to train; user 9 (two): one example, one target.
        #expect(split.training.filter { $0.user == 1 }.isEmpty)
        #expect(split.training.filter { $0.user == 2 } == [WindowExample(user: 2, cut: 1, targetEnd: 2)])
        // w = 1 gives exactly the leave-one-out training targets.
        let one = WindowSplit(data, window: 1)
        #expect(one.training.map { [$0.user, $0.cut, $0.targetEnd - $0.cut] } == loo.training.map { [$0.user, $0.inputEnd, 1] })
    }

    @Test func aStoreWithoutHistoriesIsRefused() throws {
        let dir = TempDirectory()
        let store = try Store(path: dir.path, dimension: 4)
        #expect(throws: ModelError.noHistories) { try SequenceDataset.load(from: store) }
    }
}

@Suite struct RankingMetricsTests {
    func rank(_ scores: [Float], _ target: Int) -> Int {
        scores.withUnsafeBufferPointer { RankingMetrics.rank(of: target, in: $0) }
    }

    @Test func ranksSkipPaddingAndBreakTiesByIndex() {
        // Index 0 is padding: its huge score never counts.
        #expect(rank([99, 0.5, 0.9, 0.1], 1) == 1)
        #expect(rank([99, 0.5, 0.9, 0.1], 2) == 0)
        #expect(rank([99, 0.5, 0.9, 0.1], 3) == 2)
        // Ties: lower indices first.
        #expect(rank([0, 0.7, 0.7, 0.7], 1) == 0)
        #expect(rank([0, 0.7, 0.7, 0.7], 3) == 2)
        #expect(rank([0, 0.7, 0.9, 0.7], 3) == 2)
    }

    @Test func metricsAgainstHandComputedRanks() {
        var m = RankingMetrics(cutoffs: [1, 3, 1000], mrrCutoff: 2)
        for r in [0, 1, 2, 5] { m.add(rank: r) }
        #expect(m.count == 4)
        #expect(m.recall(at: 1) == 0.25)
        #expect(m.recall(at: 3) == 0.75)
        #expect(m.recall(at: 1000) == 1)  // K above the item count counts every rank
        let dcg3 = 1 + 1 / log2(3.0) + 1 / log2(4.0)
        #expect(abs(m.ndcg(at: 3) - dcg3 / 4) < 1e-12)
        #expect(abs(m.ndcg(at: 1000) - (dcg3 + 1 / log2(7.0)) / 4) < 1e-12)
        #expect(abs(m.mrr - (1 + 0.5) / 4) < 1e-12)
        #expect(m.values.map(\.name) == ["recall@1", "recall@3", "recall@1000", "ndcg@1", "ndcg@3", "ndcg@1000", "mrr@2"])
    }

    @Test func mergingEqualsAddingInOneAccumulator() {
        var a = RankingMetrics(), b = RankingMetrics(), all = RankingMetrics()
        for r in [0, 9, 10, 49, 50, 199, 200, 3] {
            all.add(rank: r)
            if r % 2 == 0 { a.add(rank: r) } else { b.add(rank: r) }
        }
        a.merge(b)
        #expect(a == all)
        #expect(RankingMetrics().recall(at: 10) == 0 && RankingMetrics().mrr == 0)
    }

    @Test func scoresOfOneExample() {
        var m = RankingMetrics(cutoffs: [1, 2], mrrCutoff: 2)
        let scores: [Float] = [5, 0.1, 0.3, 0.2]
        scores.withUnsafeBufferPointer { m.add(scores: $0, target: 3) }  // rank 1
        #expect(m.recall(at: 1) == 0 && m.recall(at: 2) == 1 && m.mrr == 0.5)
    }
}
