import Foundation
import SheafNN
import SheafRandom

/// One CHIME epoch's figures (the JSON log line of `sheaf chime train --json`): both losses on the
/// training users (running means over the epoch, with dropout) and on the held-out users (no dropout).
public struct CHIMEEpochLog: Codable, Sendable, Equatable {
    public var epoch: Int
    public var steps: Int
    public var trainingLoss: Double
    public var trainingImmediate: Double
    public var trainingHolistic: Double
    public var heldOutImmediate: Double
    public var heldOutHolistic: Double
    public var trainingSeconds: Double
    /// Behaviours (tokens) read per second in training.
    public var tokensPerSecond: Double
    public var learningRate: Float
    public var heldOutSeconds: Double
}

/// What a CHIME run ended with.
public struct CHIMEOutcome: Codable, Sendable {
    /// The epoch with the lowest held-out holistic loss (1-based).
    public var bestEpoch: Int
    public var bestHeldOutHolistic: Double
    public var epochs: [CHIMEEpochLog]
    public var stoppedEarly: Bool
    public var trainingUsers: Int
    public var heldOutUsers: Int
}

/// Trains CHIME on a store's histories: every epoch reads one window per training user, ending at a
/// cut point drawn uniformly from 1…n − 1 (the holistic loss matches the window's last h_t against
/// the behaviours after the cut). Users are held out by a hash of their id (the same users whatever
/// the seed); their cut is fixed at max(⌈n/2⌉, n − futureLength), and their losses, without dropout,
/// choose the best epoch (lowest holistic) with early stopping.
///
/// Runs are reproducible: epoch e draws its cuts and order from (seed, e) and step s its dropout from
/// (seed, e, s).
public final class CHIMETrainer {
    public let model: CHIME
    /// The histories the model may see (already cut).
    public let data: SequenceDataset
    /// The content of items 0…N in the vocabulary's order, row 0 zeros (frozen): the store's codes
    /// (read through the code-space GLU) or float32 rows.
    public let content: ContentTable
    public let configuration: TrainingConfiguration
    public let heldOutFraction: Double
    /// Indices into `data.users` of users with at least two behaviours.
    public let trainingUsers: [Int], heldOutUsers: [Int]
    let optimizer: AdamW
    /// The optimizer's state (for checkpoints).
    public var optimizerState: AdamW.State { optimizer.state }
    /// The best epoch so far and its criterion (held-out holistic loss).
    public var bestEpoch: (epoch: Int, criterion: Double)? { best.map { ($0.epoch, $0.holistic) } }
    public private(set) var epochsDone = 0
    public private(set) var logs: [CHIMEEpochLog] = []
    private(set) var best: (epoch: Int, holistic: Double, values: [[Float]])?

    /// Whether user `id` is held out at `fraction` (a hash of the id, independent of the seed).
    public static func isHeldOut(_ id: UInt64, fraction: Double) -> Bool {
        Double(SplitMix64.mix(id ^ 0xC41E_0_5EED) % 1_000_000) < fraction * 1_000_000
    }

    /// The training and held-out users of `data` (indices into `data.users`): those with at least
    /// two behaviours, split by `isHeldOut`.
    public static func users(of data: SequenceDataset, heldOutFraction: Double) -> (training: [Int], heldOut: [Int]) {
        var training: [Int] = [], heldOut: [Int] = []
        for (i, u) in data.users.enumerated() where u.count >= 2 {
            if isHeldOut(u.user, fraction: heldOutFraction) { heldOut.append(i) } else { training.append(i) }
        }
        return (training, heldOut)
    }

    /// - Parameter content: the content of items 0…N (the vocabulary's order).
    /// - Throws: `ModelError.invalidConfiguration` (bad values, no training or held-out user),
    ///   `.storeMismatch` (content of the wrong size).
    public init(
        model: CHIME, data: SequenceDataset, content: ContentTable, configuration: TrainingConfiguration, heldOutFraction: Double = 0.1
    ) throws {
        try configuration.validate()
        guard heldOutFraction > 0 && heldOutFraction < 1 else { throw ModelError.invalidConfiguration("heldOutFraction must be in (0, 1)") }
        let d = model.contentDimension, n = data.vocabulary.count
        guard content.rowCount == n + 1, content.dimension == d else {
            throw ModelError.storeMismatch("content of \(content.rowCount - 1) items of dimension \(content.dimension) for \(n) items of dimension \(d)")
        }
        guard data.sideFeatureWidth == model.sideFeatureWidth else {
            throw ModelError.storeMismatch("the model reads \(model.sideFeatureWidth) side features, the store has \(data.sideFeatureWidth)")
        }
        if model.configuration.itemIDs, model.itemCount != n {
            throw ModelError.storeMismatch("the model's item table has \(model.itemCount) items, the histories \(n)")
        }
        let (training, heldOut) = Self.users(of: data, heldOutFraction: heldOutFraction)
        guard !training.isEmpty else { throw ModelError.invalidConfiguration("no user has the 2 behaviours a training example needs") }
        guard !heldOut.isEmpty else {
            throw ModelError.invalidConfiguration("no user is held out at fraction \(heldOutFraction); raise it or add users")
        }
        self.model = model
        self.data = data
        self.content = content
        self.configuration = configuration
        self.heldOutFraction = heldOutFraction
        trainingUsers = training
        heldOutUsers = heldOut
        let groups = model.parameterGroups
        optimizer = AdamW(
            decayed: groups.decayed, undecayed: groups.undecayed,
            configuration: AdamW.Configuration(weightDecay: configuration.weightDecay), threads: configuration.threads)
    }

    /// Steps per epoch.
    public var stepsPerEpoch: Int { (trainingUsers.count + configuration.batchSize - 1) / configuration.batchSize }

    func learningRate(at step: Int) -> Float { configuration.learningRate(at: step, stepsPerEpoch: stepsPerEpoch) }

    /// The held-out examples: (user, fixed cut).
    var heldOutExamples: [(user: Int, cut: Int)] {
        let f = model.configuration.futureLength
        return heldOutUsers.map { u in
            let n = data.users[u].count
            return (u, max((n + 1) / 2, n - f))
        }
    }

    /// Batches of `examples` with similar window lengths (less padding): groups of 8 batches are
    /// sorted by length and cut into batches, then the batches are shuffled by `rng` (when given).
    func batches(_ examples: [(user: Int, cut: Int)], rng: inout SplitMix64?) -> [[(user: Int, cut: Int)]] {
        let size = configuration.batchSize, maxLength = model.configuration.maxLength
        var out: [[(user: Int, cut: Int)]] = []
        var start = 0
        while start < examples.count {
            let group = examples[start..<min(examples.count, start + 8 * size)].sorted {
                (min($0.cut, maxLength), $0.user) < (min($1.cut, maxLength), $1.user)
            }
            var i = 0
            while i < group.count {
                out.append(Array(group[i..<min(group.count, i + size)]))
                i += size
            }
            start += 8 * size
        }
        if rng != nil { rng!.partialShuffle(&out, count: out.count) }
        return out
    }

    /// Both losses on the held-out users (no dropout), averaged over their terms.
    public func heldOutLosses() -> (immediate: Double, holistic: Double) {
        var none: SplitMix64?
        var immediate = 0.0, holistic = 0.0, terms = 0, rows = 0
        for batch in batches(heldOutExamples, rng: &none) {
            let t = Tape(recording: false, threads: configuration.threads)
            let l = model.losses(t, CHIMEBatch(batch, in: data, configuration: model.configuration), content: content, training: false)
            immediate += Double(l.immediate) * Double(l.immediateTerms)
            terms += l.immediateTerms
            if let h = l.holistic {
                holistic += Double(h) * Double(l.holisticRows)
                rows += l.holisticRows
            }
        }
        return (immediate / Double(max(terms, 1)), rows > 0 ? holistic / Double(rows) : .nan)
    }

    /// One epoch over the training users.
    /// - Parameter progress: called after each step with (step, steps, running mean loss).
    public func trainEpoch(progress: ((Int, Int, Double) -> Void)? = nil)
        -> (loss: Double, immediate: Double, holistic: Double, seconds: Double, steps: Int, tokens: Int)
    {
        let c = configuration
        let epoch = epochsDone
        var rng = SplitMix64(seed: SplitMix64.mix(c.seed ^ (UInt64(epoch + 1) &* 0x9E37_79B9_7F4A_7C15)))
        var order = trainingUsers
        rng.partialShuffle(&order, count: order.count)
        let examples = order.map { u -> (user: Int, cut: Int) in
            let n = data.users[u].count
            return (u, 1 + Int(rng.next() % UInt64(n - 1)))
        }
        var shuffler: SplitMix64? = SplitMix64(seed: rng.next())
        let all = batches(examples, rng: &shuffler)
        let started = DispatchTime.now().uptimeNanoseconds
        var total = 0.0, immediate = 0.0, holistic = 0.0, holisticSteps = 0, tokens = 0
        for (step, examples) in all.enumerated() {
            let batch = CHIMEBatch(examples, in: data, configuration: model.configuration)
            tokens += batch.lengths.reduce(0, +)
            let tape = Tape(seed: SplitMix64.mix(rng.state ^ UInt64(step)), threads: c.threads)
            let l = model.losses(tape, batch, content: content)
            optimizer.zeroGrad()
            tape.backward(l.total)
            if c.gradientClip > 0 { clipGradientNorm(optimizer.parameters, maxNorm: c.gradientClip) }
            optimizer.step(learningRate: learningRate(at: epoch * stepsPerEpoch + step))
            total += Double(l.total.scalar)
            immediate += Double(l.immediate)
            if let h = l.holistic {
                holistic += Double(h)
                holisticSteps += 1
            }
            progress?(step + 1, all.count, total / Double(step + 1))
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        let n = Double(max(all.count, 1))
        return (total / n, immediate / n, holisticSteps > 0 ? holistic / Double(holisticSteps) : .nan, seconds, all.count, tokens)
    }

    /// Trains until `configuration.epochs` or until patience runs out, and leaves the best epoch's
    /// parameters in the model.
    /// - Parameters:
    ///   - epochEnded: called with each epoch's log, and whether it is the best so far.
    ///   - progress: called after each step with (epoch, step, steps, running loss).
    public func run(
        epochEnded: ((CHIMEEpochLog, Bool) throws -> Void)? = nil, progress: ((Int, Int, Int, Double) -> Void)? = nil
    ) throws -> CHIMEOutcome {
        let c = configuration
        var sinceBest = best.map { epochsDone - $0.epoch } ?? 0
        while epochsDone < c.epochs && !(best != nil && sinceBest >= c.patience) {
            let epoch = epochsDone + 1
            let lr = learningRate(at: epochsDone * stepsPerEpoch)
            let trained = trainEpoch { step, steps, loss in progress?(epoch, step, steps, loss) }
            let t0 = DispatchTime.now().uptimeNanoseconds
            let heldOut = heldOutLosses()
            let heldOutSeconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            epochsDone = epoch
            let log = CHIMEEpochLog(
                epoch: epoch, steps: trained.steps, trainingLoss: trained.loss, trainingImmediate: trained.immediate,
                trainingHolistic: trained.holistic, heldOutImmediate: heldOut.immediate, heldOutHolistic: heldOut.holistic,
                trainingSeconds: trained.seconds, tokensPerSecond: Double(trained.tokens) / max(trained.seconds, 1e-9),
                learningRate: lr, heldOutSeconds: heldOutSeconds)
            logs.append(log)
            guard trained.loss.isFinite else {
                throw ModelError.invalidConfiguration("the training loss became \(trained.loss) in epoch \(epoch); lower the learning rate")
            }
            // The holistic loss chooses; when no held-out user has a positive future behaviour it is
            // NaN, and the immediate loss chooses instead.
            let criterion = heldOut.holistic.isNaN ? heldOut.immediate : heldOut.holistic
            let isBest = best == nil || criterion < best!.holistic
            if isBest {
                best = (epoch, criterion, model.namedParameters.map(\.tensor.values))
                sinceBest = 0
            } else {
                sinceBest += 1
            }
            try epochEnded?(log, isBest)
        }
        guard let best else { throw ModelError.invalidConfiguration("no epoch ran") }
        for (p, v) in zip(model.namedParameters, best.values) { p.tensor.assign(v) }
        return CHIMEOutcome(
            bestEpoch: best.epoch, bestHeldOutHolistic: best.holistic, epochs: logs, stoppedEarly: epochsDone < c.epochs,
            trainingUsers: trainingUsers.count, heldOutUsers: heldOutUsers.count)
    }

    /// Puts the trainer where a checkpointed run left it: epochs done, logs, optimizer moments and
    /// the best epoch with its parameter values. Returns false when the state does not fit.
    public func restore(
        epochsDone: Int, logs: [CHIMEEpochLog], optimizer state: AdamW.State, best: (epoch: Int, criterion: Double, values: [[Float]])?
    ) -> Bool {
        guard logs.count == epochsDone, optimizer.restore(state) else { return false }
        if let best {
            guard best.values.count == model.namedParameters.count,
                zip(best.values, model.namedParameters).allSatisfy({ $0.count == $1.tensor.count })
            else { return false }
        }
        self.epochsDone = epochsDone
        self.logs = logs
        self.best = best.map { (epoch: $0.epoch, holistic: $0.criterion, values: $0.values) }
        return true
    }
}
