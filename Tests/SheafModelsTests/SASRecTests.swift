import Foundation
import SheafNN
import SheafStore
import Testing

@testable import SheafModels

/// A tiny store where every user walks the 8 items in a cycle (item i is followed by i + 1), each from
/// their own start: the next item is a function of the current one, so a model can learn it exactly.
func cyclicStore(_ dir: TempDirectory, users: Int = 12, length: Int = 9) throws -> Store {
    var histories: [UInt64: [(UInt64, Int64)]] = [:]
    for u in 0..<users {
        histories[UInt64(100 + u)] = (0..<length).map { p in (UInt64(10 + (u + p) % 8), Int64(p * 10)) }
    }
    return try makeStore(dir, histories: histories)
}

func tinyModelConfiguration() -> SASRecConfiguration {
    var c = SASRecConfiguration()
    c.maxLength = 6
    c.hiddenSize = 16
    c.heads = 2
    c.layers = 1
    c.innerSize = 32
    c.hiddenDropout = 0.1
    c.attentionDropout = 0.1
    return c
}

func tinyTrainingConfiguration(epochs: Int) -> TrainingConfiguration {
    var t = TrainingConfiguration()
    t.epochs = epochs
    t.batchSize = 16
    t.learningRate = 1e-2
    t.seed = 7
    t.patience = 100
    t.threads = 2
    return t
}

/// Trains `trainer(2)` straight, and `trainer(1)` then a resumed `trainer(2)` from its checkpoints:
/// the same losses, best epoch, test metrics, parameters and optimizer state. Returns the resumed
/// trainer and its checkpoint directory (kept alive by the returned value).
@discardableResult
func expectResumeContinuesTheRun<Model: SequentialRecommender>(
    _ trainer: (_ epochs: Int) throws -> Trainer<Model>, sourceLocation: SourceLocation = #_sourceLocation
) throws -> (trainer: Trainer<Model>, checkpoints: CheckpointStore, directory: TempDirectory) {
    let a = TempDirectory("a"), b = TempDirectory("b")
    let straight = try trainer(2)
    let whole = try straight.run(checkpoints: try CheckpointStore(directory: a.path))
    let store = try CheckpointStore(directory: b.path)
    _ = try trainer(1).run(checkpoints: store)
    let resumed = try trainer(2)
    try store.resume(resumed)
    #expect(resumed.epochsDone == 1, sourceLocation: sourceLocation)
    let continued = try resumed.run(checkpoints: store)
    #expect(continued.epochs.map(\.trainingLoss) == whole.epochs.map(\.trainingLoss), sourceLocation: sourceLocation)
    #expect(continued.bestEpoch == whole.bestEpoch && continued.test == whole.test, sourceLocation: sourceLocation)
    #expect(straight.optimizer.state == resumed.optimizer.state, sourceLocation: sourceLocation)
    #expect(
        straight.model.namedParameters.map(\.tensor.values) == resumed.model.namedParameters.map(\.tensor.values),
        sourceLocation: sourceLocation)
    return (resumed, store, b)
}

/// The cycle store's data and split, and a tiny ID model's trainer for `epochs` epochs (the store's
/// directory lives as long as the returned value).
struct TinyRun {
    let dir = TempDirectory()
    let data: SequenceDataset
    let split: LeaveOneOutSplit
    let model: SASRec
    let trainer: SASRecTrainer

    init(epochs: Int) throws {
        data = try SequenceDataset.load(from: try cyclicStore(dir))
        split = LeaveOneOutSplit(data, maxLength: 6)
        model = try SASRec(configuration: tinyModelConfiguration(), itemCount: data.vocabulary.count, seed: 3)
        trainer = try SASRecTrainer(model: model, data: data, split: split, configuration: tinyTrainingConfiguration(epochs: epochs))
    }
}

@Suite struct SASRecTests {
    @Test func aTinyModelLearnsTheCycle() throws {
        let dir = TempDirectory()
        let data = try SequenceDataset.load(from: try cyclicStore(dir))
        let split = LeaveOneOutSplit(data, maxLength: 6)
        let model = try SASRec(configuration: tinyModelConfiguration(), itemCount: data.vocabulary.count, seed: 3)
        let trainer = try SASRecTrainer(model: model, data: data, split: split, configuration: tinyTrainingConfiguration(epochs: 40))
        let before = trainer.evaluate(split.test)
        var losses: [Double] = []
        let outcome = try trainer.run(epochEnded: { losses.append($0.trainingLoss) })
        #expect(losses.count == 40)
        #expect(losses.last! < losses.first! / 3, "\(losses.first!) → \(losses.last!)")
        #expect(outcome.test["recall@10"] == 1)  // 8 items: every target is in the top 10
        #expect(outcome.test["mrr@10"]! > 0.9, "\(outcome.test)")
        #expect(before.mrr < 0.6)
        #expect(outcome.bestEpoch >= 1 && outcome.bestEpoch <= 40 && !outcome.stoppedEarly)
    }

    @Test func checkpointRoundTripGivesTheSameScores() throws {
        let run = try TinyRun(epochs: 3), out = TempDirectory("checkpoints")
        let checkpoints = try CheckpointStore(directory: out.path)
        _ = try run.trainer.run(checkpoints: checkpoints)
        let loaded = try checkpoints.loadModel(for: run.data)
        let batch = SequenceBatch(run.split.test, in: run.data, maxLength: 6)
        #expect(loaded.scores(batch) == run.model.scores(batch))
        #expect(loaded.configuration == run.model.configuration)
    }

    /// Two epochs in one run, and one epoch, then a resumed run of one more: the same parameters,
    /// optimizer state and losses.
    @Test func resumingContinuesTheSameRun() throws {
        let dir = TempDirectory()
        let data = try SequenceDataset.load(from: try cyclicStore(dir))
        let split = LeaveOneOutSplit(data, maxLength: 6)
        try expectResumeContinuesTheRun { epochs in
            let model = try SASRec(configuration: tinyModelConfiguration(), itemCount: data.vocabulary.count, seed: 3)
            return try SASRecTrainer(model: model, data: data, split: split, configuration: tinyTrainingConfiguration(epochs: epochs))
        }
    }

    @Test func anotherStoresModelIsRefused() throws {
        let run = try TinyRun(epochs: 1), other = TempDirectory("other"), out = TempDirectory("checkpoints")
        let data = run.data
        let checkpoints = try CheckpointStore(directory: out.path)
        _ = try run.trainer.run(checkpoints: checkpoints)
        // Same item count, other ids.
        let otherData = try SequenceDataset.load(from: try makeStore(other, histories: [
            1: (0..<8).map { (UInt64(20 + $0), Int64($0)) },
        ]))
        #expect(throws: ModelError.storeMismatch(
            "the model was trained on 8 items with other ids; this store's histories hold 8")) {
            try checkpoints.loadModel(for: otherData)
        }
        // A truncated checkpoint.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: checkpoints.modelPath))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: checkpoints.modelPath))
        #expect {
            try checkpoints.loadModel(for: data)
        } throws: { error in
            guard case ModelError.corruptCheckpoint(let path, _) = error else { return false }
            return path == checkpoints.modelPath
        }
    }

    /// Histories too short to hold back a validation and a test target cannot be trained on.
    @Test func aStoreOfShortHistoriesIsRefused() throws {
        let dir = TempDirectory()
        let data = try SequenceDataset.load(from: try makeStore(dir, histories: [
            1: [(10, 1), (11, 2)], 2: [(11, 1), (12, 2)],
        ]))
        let split = LeaveOneOutSplit(data, maxLength: 6)
        let model = try SASRec(configuration: tinyModelConfiguration(), itemCount: data.vocabulary.count, seed: 3)
        #expect(throws: ModelError.invalidConfiguration("no user has 3 behaviours or more, so there is nothing to validate or test on")) {
            try SASRecTrainer(model: model, data: data, split: split, configuration: tinyTrainingConfiguration(epochs: 1))
        }
    }

    @Test func badConfigurationsAreRefused() {
        var c = tinyModelConfiguration()
        c.hiddenSize = 15
        #expect(throws: ModelError.invalidConfiguration("hiddenSize 15 must be a positive multiple of heads 2")) {
            try SASRec(configuration: c, itemCount: 8, seed: 1)
        }
        var content = tinyModelConfiguration()
        content.content = true
        #expect(throws: ModelError.invalidConfiguration("the content variant needs the content of 8 items")) {
            try SASRec(configuration: content, itemCount: 8, content: try .rows([1, 2, 3, 4], dimension: 4), seed: 1)
        }
        #expect(throws: ModelError.invalidConfiguration("the content variant needs the content of 8 items")) {
            try SASRec(configuration: content, itemCount: 8, seed: 1)
        }
        #expect(throws: ModelError.invalidConfiguration("content rows: 3 floats are not whole rows of 4")) {
            try ContentTable.rows([1, 2, 3], dimension: 4)
        }
        #expect(throws: ModelError.invalidConfiguration("content rows hold a NaN or infinity")) {
            try ContentTable.rows([1, 2, .nan, 4], dimension: 4)
        }
    }

    /// The content variant reads frozen item vectors through a projection: the vectors get no
    /// gradient, and it learns the cycle too when the vectors tell the items apart.
    @Test func theContentVariantLearnsFromFrozenVectors() throws {
        let dir = TempDirectory()
        let data = try SequenceDataset.load(from: try cyclicStore(dir))
        let split = LeaveOneOutSplit(data, maxLength: 6)
        var c = tinyModelConfiguration()
        c.content = true
        let d = 8
        var vectors = [Float](repeating: 0, count: 8 * d)
        for i in 0..<8 { vectors[i * d + i] = 1 }  // one-hot: items are told apart
        let model = try SASRec(configuration: c, itemCount: 8, content: try .rows(vectors, dimension: d), seed: 3)
        let trainer = try SASRecTrainer(model: model, data: data, split: split, configuration: tinyTrainingConfiguration(epochs: 40))
        let outcome = try trainer.run()
        #expect(outcome.test["mrr@10"]! > 0.9, "\(outcome.test)")
        #expect(model.content!.decodedRows().values == [Float](repeating: 0, count: d) + vectors)
        #expect(!model.namedParameters.contains { $0.tensor === model.content!.decodedRows() })
    }
}
