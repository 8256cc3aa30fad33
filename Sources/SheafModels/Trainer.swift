import Foundation
import SheafFormats
import SheafNN
import SheafRandom

/// How a sequential recommender is trained. The defaults are RecBole 1.2.1's for SASRec.
public struct TrainingConfiguration: Codable, Sendable, Equatable {
    public enum Schedule: String, Codable, Sendable, CaseIterable {
        /// The peak learning rate throughout (RecBole's default).
        case constant
        /// Linear warm-up over `warmupSteps`, then a cosine decay to 0 at the last epoch's last step.
        case warmupCosine = "warmup-cosine"
    }

    public var epochs = 200
    public var batchSize = 256
    public var learningRate: Float = 1e-3
    /// Decoupled weight decay of weight matrices and embeddings (0: plain Adam, RecBole's default).
    public var weightDecay: Float = 0
    public var schedule: Schedule = .constant
    public var warmupSteps = 0
    /// Global gradient-norm clip (0: none, RecBole's default).
    public var gradientClip: Float = 0
    /// Seeds initialisation, shuffling and dropout.
    public var seed: UInt64 = 2020
    /// Epochs without a better validation NDCG@10 before stopping.
    public var patience = 10
    /// Examples scored at once in evaluation.
    public var evaluationBatchSize = 1024
    /// Threads of every operation (results do not depend on it).
    public var threads = Tape.defaultThreads

    public init() {}

    /// The learning rate of global step `step` (0-based) of a run of `epochs` epochs of `stepsPerEpoch`.
    public func learningRate(at step: Int, stepsPerEpoch: Int) -> Float {
        switch schedule {
        case .constant: return learningRate
        case .warmupCosine:
            let total = max(warmupSteps + 1, epochs * stepsPerEpoch)
            return WarmupCosineSchedule(peak: learningRate, warmupSteps: warmupSteps, totalSteps: total).learningRate(at: step)
        }
    }

    public func validate() throws(ModelError) {
        func fail(_ why: String) -> ModelError { .invalidConfiguration(why) }
        guard epochs >= 1 else { throw fail("epochs must be ≥ 1") }
        guard batchSize >= 1, evaluationBatchSize >= 1 else { throw fail("batch sizes must be ≥ 1") }
        guard learningRate > 0, learningRate.isFinite else { throw fail("the learning rate must be positive") }
        guard weightDecay >= 0, gradientClip >= 0, warmupSteps >= 0 else {
            throw fail("weight decay, gradient clip and warm-up steps must be ≥ 0")
        }
        guard patience >= 1 else { throw fail("patience must be ≥ 1") }
        guard threads >= 1 else { throw fail("threads must be ≥ 1") }
    }
}

/// One epoch's figures (the JSON log line of `sheaf train --json`).
public struct EpochLog: Codable, Sendable, Equatable {
    public var epoch: Int
    public var steps: Int
    public var trainingLoss: Double
    public var trainingSeconds: Double
    public var examplesPerSecond: Double
    public var learningRate: Float
    /// Validation metrics ("recall@10", "ndcg@10", …).
    public var validation: [String: Double]
    public var validationSeconds: Double
}

/// What a training run ended with.
public struct TrainingOutcome: Codable, Sendable {
    /// The epoch with the best validation NDCG@10 (1-based).
    public var bestEpoch: Int
    public var validation: [String: Double]
    /// Test metrics of the best epoch's model (the only test evaluation of the run).
    public var test: [String: Double]
    public var testSeconds: Double
    public var epochs: [EpochLog]
    /// Whether patience ran out before the last epoch.
    public var stoppedEarly: Bool
}

/// Trains a sequential recommender (SASRec, HyMiRec) on its leave-one-out split, choosing the best
/// epoch on validation NDCG@10 with early stopping, and keeping checkpoints that a later run resumes
/// from.
///
/// Runs are reproducible: epoch e shuffles with a generator seeded from (seed, e) and step s of it
/// draws dropout (and the model's sampled negatives) from (seed, e, s), so a run resumed from the
/// checkpoint of epoch e continues exactly as the uninterrupted run would have.
public final class Trainer<Model: SequentialRecommender> {
    public let model: Model
    public let data: SequenceDataset
    public let split: Model.Split
    public let configuration: TrainingConfiguration
    let optimizer: AdamW
    /// Epochs completed.
    public private(set) var epochsDone = 0
    public private(set) var logs: [EpochLog] = []
    /// The best epoch so far, its validation NDCG@10 and metrics, and its parameter values.
    private(set) var best: (epoch: Int, ndcg: Double, validation: [String: Double], values: [[Float]])?

    public init(model: Model, data: SequenceDataset, split: Model.Split, configuration: TrainingConfiguration) throws {
        try configuration.validate()
        guard model.itemCount == data.vocabulary.count else {
            throw ModelError.storeMismatch("the model has \(model.itemCount) items, the store's histories \(data.vocabulary.count)")
        }
        guard !split.training.isEmpty else { throw ModelError.invalidConfiguration("the split has no training examples") }
        guard !split.validation.isEmpty else {
            throw ModelError.invalidConfiguration("no user has 3 behaviours or more, so there is nothing to validate or test on")
        }
        self.model = model
        self.data = data
        self.split = split
        self.configuration = configuration
        let groups = model.parameterGroups
        optimizer = AdamW(
            decayed: groups.decayed, undecayed: groups.undecayed,
            configuration: AdamW.Configuration(weightDecay: configuration.weightDecay), threads: configuration.threads)
    }

    /// Steps per epoch.
    public var stepsPerEpoch: Int { (split.training.count + configuration.batchSize - 1) / configuration.batchSize }

    /// The learning rate of global step `step` (0-based).
    func learningRate(at step: Int) -> Float { configuration.learningRate(at: step, stepsPerEpoch: stepsPerEpoch) }

    /// Full-ranking metrics of `examples` with the current parameters (no dropout).
    public func evaluate(_ examples: [Model.Split.Example]) -> RankingMetrics {
        model.evaluate(examples, in: data, batchSize: configuration.evaluationBatchSize, threads: configuration.threads)
    }

    /// One epoch over the training examples in a seeded order.
    /// - Parameter progress: called after each step with (step, steps, running mean loss).
    public func trainEpoch(progress: ((Int, Int, Double) -> Void)? = nil) -> (loss: Double, seconds: Double, steps: Int) {
        let c = configuration
        let epoch = epochsDone
        var order = Array(split.training.indices)
        var rng = SplitMix64(seed: SplitMix64.mix(c.seed ^ (UInt64(epoch + 1) &* 0x9E37_79B9_7F4A_7C15)))
        rng.partialShuffle(&order, count: order.count)
        let started = DispatchTime.now().uptimeNanoseconds
        var total = 0.0
        let steps = stepsPerEpoch
        var grouping = SplitMix64(seed: SplitMix64.mix(rng.state ^ 0x4255_434B_4554))
        let batches = model.batches(order, of: split.training, in: data, batchSize: c.batchSize, rng: &grouping)
        precondition(batches.count == steps && batches.allSatisfy { $0.count <= c.batchSize }, "the model cut an epoch into other steps")
        for (step, slice) in batches.enumerated() {
            let stepSeed = SplitMix64.mix(rng.state ^ UInt64(step))
            let tape = Tape(seed: stepSeed, threads: c.threads)
            var sampler = SplitMix64(seed: SplitMix64.mix(stepSeed ^ 0x5A4D_504C_4552))
            let loss = model.loss(tape, slice.map { split.training[$0] }, in: data, rng: &sampler)
            optimizer.zeroGrad()
            tape.backward(loss)
            if c.gradientClip > 0 { clipGradientNorm(optimizer.parameters, maxNorm: c.gradientClip) }
            optimizer.step(learningRate: learningRate(at: epoch * steps + step))
            total += Double(loss.scalar)
            progress?(step + 1, steps, total / Double(step + 1))
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        return (total / Double(steps), seconds, steps)
    }

    /// Trains until `configuration.epochs` or until patience runs out, then evaluates the best epoch's
    /// parameters on the test examples (and leaves them in the model).
    ///
    /// - Parameters:
    ///   - checkpoints: a directory for `last.safetensors` (after every epoch: parameters, optimizer,
    ///     progress) and `model.safetensors` (the best epoch's parameters); nil writes none.
    ///   - epochEnded: called with each epoch's log.
    ///   - progress: called after each step with (epoch, step, steps, running loss).
    public func run(
        checkpoints: CheckpointStore? = nil, epochEnded: ((EpochLog) -> Void)? = nil,
        progress: ((Int, Int, Int, Double) -> Void)? = nil
    ) throws -> TrainingOutcome {
        let c = configuration
        var sinceBest = best.map { epochsDone - $0.epoch } ?? 0
        while epochsDone < c.epochs && !(best != nil && sinceBest >= c.patience) {
            let epoch = epochsDone + 1
            let lr = learningRate(at: epochsDone * stepsPerEpoch)
            let trained = trainEpoch { step, steps, loss in progress?(epoch, step, steps, loss) }
            let t0 = DispatchTime.now().uptimeNanoseconds
            let validation = evaluate(split.validation)
            let validationSeconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            epochsDone = epoch
            let values = validation.dictionary
            let log = EpochLog(
                epoch: epoch, steps: trained.steps, trainingLoss: trained.loss, trainingSeconds: trained.seconds,
                examplesPerSecond: Double(split.training.count) / max(trained.seconds, 1e-9), learningRate: lr,
                validation: values, validationSeconds: validationSeconds)
            logs.append(log)
            let ndcg = validation.ndcg(at: 10)
            if best == nil || ndcg > best!.ndcg {
                best = (epoch, ndcg, values, model.namedParameters.map(\.tensor.values))
                sinceBest = 0
                try checkpoints?.saveBest(self)
            } else {
                sinceBest += 1
            }
            try checkpoints?.saveLast(self)
            epochEnded?(log)
        }
        guard let best else { throw ModelError.invalidConfiguration("no epoch ran") }
        for (p, v) in zip(model.namedParameters, best.values) { p.tensor.assign(v) }
        let t0 = DispatchTime.now().uptimeNanoseconds
        let test = evaluate(split.test)
        let testSeconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        return TrainingOutcome(
            bestEpoch: best.epoch, validation: best.validation,
            test: test.dictionary, testSeconds: testSeconds,
            epochs: logs, stoppedEarly: epochsDone < c.epochs)
    }

    /// Restores parameters, optimizer, progress and the best epoch from a checkpoint directory's
    /// `last.safetensors` and `model.safetensors`.
    func restore(epochsDone: Int, logs: [EpochLog], optimizer state: AdamW.State, best: (Int, Double, [String: Double], [[Float]])?)
        -> Bool
    {
        guard optimizer.restore(state) else { return false }
        self.epochsDone = epochsDone
        self.logs = logs
        self.best = best.map { (epoch: $0.0, ndcg: $0.1, validation: $0.2, values: $0.3) }
        return true
    }
}

/// The trainer of SASRec (the name the sequence-training issue introduced).
public typealias SASRecTrainer = Trainer<SASRec>
