import Foundation
import SheafNN
import SheafRandom

/// AUC and GAUC of scores against binary labels.
public enum BinaryMetrics {
    /// The probability that a random positive scores above a random negative (ties count half), or
    /// nil when one class is missing.
    public static func auc(scores: [Float], labels: [Bool]) -> Double? {
        precondition(scores.count == labels.count, "one label per score")
        let positives = labels.filter { $0 }.count, negatives = labels.count - positives
        guard positives > 0, negatives > 0 else { return nil }
        let order = scores.indices.sorted { scores[$0] < scores[$1] }
        // Mid-ranks (1-based) of tied runs; AUC = (Σ ranks of positives − P(P + 1)/2) / (P·N).
        var rankSum = 0.0
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && scores[order[j + 1]] == scores[order[i]] { j += 1 }
            let mid = Double(i + j) / 2 + 1
            for k in i...j where labels[order[k]] { rankSum += mid }
            i = j + 1
        }
        let p = Double(positives)
        return (rankSum - p * (p + 1) / 2) / (p * Double(negatives))
    }

    /// Per-group AUC weighted by the group's sample count, over groups that have both classes
    /// (nil when none has).
    public static func gauc(scores: [Float], labels: [Bool], groups: [Int]) -> Double? {
        precondition(scores.count == labels.count && groups.count == labels.count, "one label and group per score")
        var members: [Int: [Int]] = [:]
        for (i, g) in groups.enumerated() { members[g, default: []].append(i) }
        var total = 0.0, weight = 0.0
        for g in members.keys.sorted() {
            let m = members[g]!
            guard let a = auc(scores: m.map { scores[$0] }, labels: m.map { labels[$0] }) else { continue }
            total += a * Double(m.count)
            weight += Double(m.count)
        }
        return weight > 0 ? total / weight : nil
    }
}

/// The click-through-style task of the CHIME evaluation: for each user, the last `evaluationFraction`
/// of behaviours by time is the evaluation window, and each of its behaviours is a sample whose label
/// is (label ≥ `positiveLabel`). Everything before the window is what the compression model and its
/// codebooks may see.
public struct ClickTask: Sendable {
    public struct Sample: Sendable, Equatable {
        /// Index into `data.users`.
        public let user: Int
        /// The behaviour's position in the user's sequence (the history before it is 0..<position).
        public let position: Int
        public let label: Bool
    }

    public let data: SequenceDataset
    /// Per user, the first position of the window (⌊(1 − fraction)·n⌋: the cut `HistoryCut.leadingFraction`
    /// keeps exactly the behaviours before it).
    public let windowStart: [Int]
    public let samples: [Sample]
    public let evaluationFraction: Double

    public init(data: SequenceDataset, evaluationFraction: Double = 0.2, positiveLabel: Float = 4) {
        precondition(evaluationFraction > 0 && evaluationFraction < 1, "the window must be a fraction in (0, 1)")
        self.data = data
        self.evaluationFraction = evaluationFraction
        let cut = HistoryCut.leadingFraction(1 - evaluationFraction)
        var starts: [Int] = [], samples: [Sample] = []
        for (u, s) in data.users.enumerated() {
            let start = cut.kept(s)
            starts.append(start)
            if start == 0 { continue }  // nothing before the window to read
            for p in start..<s.count { samples.append(Sample(user: u, position: p, label: s.labels[p] >= positiveLabel)) }
        }
        windowStart = starts
        self.samples = samples
    }
}

/// Which user input a ranker reads.
public enum RankerInput: String, Codable, Sendable, CaseIterable {
    /// The last `recent` behaviours before the target.
    case recent
    /// The same, plus the user's CHIME profile (made from the behaviours before the window).
    case recentAndProfile = "recent+profile"
    /// Every behaviour before the target (the expensive upper bound).
    case full
}

/// How the profile ranker reads a CHIME profile.
public enum ProfileReading: String, Codable, Sendable, CaseIterable {
    /// Learned embeddings of the histogram's codes; the target attends over them, each weighted by
    /// its count.
    case codes
    /// The profile decoded into CHIME's space (`InterestCodebook.decodedMean`): CHIME's own score of
    /// the target, cos(profile, the model's key of the target), and a learned projection of the
    /// decoded profile.
    case decoded
}

/// The CHIME profiles a ranker reads, per user of the task's dataset.
public struct RankerProfiles: Sendable {
    /// Per user: the normalised code counts over the ICM's L·K codes (level-major).
    public let counts: [[Float]]
    /// Per user: the decoded mean, [d].
    public let vectors: [[Float]]
    /// CHIME's item keys [N + 1, d] (`CHIME.itemKeys`).
    public let itemKeys: Tensor
    public var codeCount: Int { counts.first?.count ?? 0 }
    public var width: Int { itemKeys.shape[1] }

    public init(histograms: [CodeHistogram], icm: InterestCodebook, itemKeys: Tensor) {
        let (levels, k) = (icm.codebook.levels, icm.codebook.codesPerLevel)
        counts = histograms.map { h in
            var v = [Float](repeating: 0, count: levels * k)
            for e in h.entries where e.level < levels && e.code < k { v[e.level * k + e.code] = Float(e.count) / Float(max(h.behaviors, 1)) }
            return v
        }
        vectors = histograms.map { icm.decodedMean(of: $0) }
        self.itemKeys = itemKeys
    }
}

public struct RankerConfiguration: Codable, Sendable, Equatable {
    public var input: RankerInput = .recent
    /// Behaviours of the recent input.
    public var recent = 20
    /// Embedding width of items, labels and codes.
    public var width = 32
    /// Hidden width of the scoring MLP.
    public var hidden = 64
    public var labelBuckets = 8
    /// How the profile input is read.
    public var profileReading: ProfileReading = .decoded
    public init() {}
}

/// A small target-attention ranker in the style of DIN: the target item's content embedding attends
/// over the user's behaviours (content embedding plus a rating embedding), and an MLP scores the
/// pooled interest, the target and their product. The profile variant adds what it reads of the
/// profile (`ProfileReading`): a profile embedding (the count-weighted attention over learned code
/// embeddings, or a learned projection of the decoded profile) and its product with the target, and
/// with the decoded reading CHIME's own score of the target. The networks differ only in what they read.
public final class TargetAttentionRanker {
    public let configuration: RankerConfiguration
    public let contentDimension: Int
    /// ICM levels × codes, and CHIME's width (0 without profiles).
    public let codeCount: Int, profileWidth: Int
    let itemProjection: TransformerBlock.Linear
    let labels: Tensor
    let query: Tensor, key: Tensor
    /// Codes reading: code embeddings [L·K, e] and their key projection [e, e].
    let codes: Tensor?, codeKey: Tensor?
    /// Decoded reading: the profile's projection [d, e], CHIME's score into the hidden layer [1, h].
    let profileProjection: Tensor?, hiddenFromScore: Tensor?
    let hiddenFromUser: Tensor, hiddenFromTarget: Tensor, hiddenFromProduct: Tensor
    let hiddenFromProfile: Tensor?, hiddenFromProfileProduct: Tensor?
    let hiddenBias: Tensor
    let output: TransformerBlock.Linear

    public init(configuration: RankerConfiguration, contentDimension: Int, codeCount: Int = 0, profileWidth: Int = 0, seed: UInt64)
        throws(ModelError)
    {
        let c = configuration
        guard c.recent >= 1, c.width >= 1, c.hidden >= 1, c.labelBuckets >= 1, contentDimension >= 1 else {
            throw .invalidConfiguration("ranker sizes must be ≥ 1")
        }
        let profile = c.input == .recentAndProfile
        let readsCodes = profile && c.profileReading == .codes, readsDecoded = profile && c.profileReading == .decoded
        if readsCodes, codeCount < 1 { throw .invalidConfiguration("the profile's codes reading needs the ICM's code count") }
        if readsDecoded, profileWidth < 1 { throw .invalidConfiguration("the profile's decoded reading needs CHIME's width") }
        self.configuration = c
        self.contentDimension = contentDimension
        self.codeCount = readsCodes ? codeCount : 0
        self.profileWidth = readsDecoded ? profileWidth : 0
        let initializer = ParameterInitializer(seed: seed)
        let normal = initializer.normal as ([Int], Double) -> Tensor
        func zeros(_ n: Int) -> Tensor { ParameterInitializer.constant(n, 0) }
        let (e, h) = (c.width, c.hidden)
        itemProjection = (normal([contentDimension, e], 1 / Double(contentDimension).squareRoot()), zeros(e))
        labels = normal([c.labelBuckets, e], 0.1)
        query = normal([e, e], 1 / Double(e).squareRoot())
        key = normal([e, e], 1 / Double(e).squareRoot())
        codes = readsCodes ? normal([codeCount, e], 0.1) : nil
        codeKey = readsCodes ? normal([e, e], 1 / Double(e).squareRoot()) : nil
        profileProjection = readsDecoded ? normal([profileWidth, e], 1 / Double(profileWidth).squareRoot()) : nil
        hiddenFromScore = readsDecoded ? normal([1, h], 1) : nil
        let s = 1 / Double(e).squareRoot()
        hiddenFromUser = normal([e, h], s)
        hiddenFromTarget = normal([e, h], s)
        hiddenFromProduct = normal([e, h], s)
        hiddenFromProfile = profile ? normal([e, h], s) : nil
        hiddenFromProfileProduct = profile ? normal([e, h], s) : nil
        hiddenBias = zeros(h)
        output = (normal([h, 1], 1 / Double(h).squareRoot()), zeros(1))
    }

    public var parameters: [Tensor] {
        [itemProjection.weight, itemProjection.bias, labels, query, key] + [codes, codeKey, profileProjection, hiddenFromScore].compactMap { $0 }
            + [hiddenFromUser, hiddenFromTarget, hiddenFromProduct] + [hiddenFromProfile, hiddenFromProfileProduct].compactMap { $0 }
            + [hiddenBias, output.weight, output.bias]
    }

    /// Which behaviours (a range of positions) the ranker reads for a target at `position`.
    public func behaviours(before position: Int) -> Range<Int> {
        configuration.input == .full ? 0..<position : max(0, position - configuration.recent)..<position
    }

    /// Logits [B] of samples.
    /// - Parameters:
    ///   - content: the content table (N + 1 rows), read in code space when it is the store's codes.
    ///   - profiles: the users' profiles (profile input).
    public func logits(_ t: Tape, _ samples: [ClickTask.Sample], in data: SequenceDataset, content: ContentTable, profiles: RankerProfiles? = nil)
        -> Tensor
    {
        let c = configuration, e = c.width, b = samples.count
        let ranges = samples.map { behaviours(before: $0.position) }
        let length = max(1, ranges.map(\.count).max() ?? 1)
        var tokenItems = [Int](repeating: 0, count: b * length), tokenLabels = [Int](repeating: 0, count: b * length)
        var bias = [Float](repeating: -1e9, count: b * length)
        for (r, s) in samples.enumerated() {
            let seq = data.users[s.user]
            for (p, i) in ranges[r].enumerated() {
                tokenItems[r * length + p] = Int(seq.items[i])
                tokenLabels[r * length + p] = CHIMEConfiguration.labelBucket(seq.labels[i], buckets: c.labelBuckets)
                bias[r * length + p] = 0
            }
        }
        let targets = samples.map { Int(data.users[$0.user].items[$0.position]) }
        func project(_ ids: [Int]) -> Tensor { content.linear(t, itemProjection.weight, bias: itemProjection.bias, rows: ids) }
        let target = project(targets)  // [B, e]
        let tokens = t.add(project(tokenItems), t.embedding(labels, ids: tokenLabels))  // [B·T, e]
        let q = t.reshape(t.matmul(target, query), [b, 1, e])
        let k = t.reshape(t.matmul(tokens, key), [b, length, e])
        let scores = t.add(t.scale(t.batchedMatmul(q, k, transposeB: true), 1 / Float(e).squareRoot()), Tensor(shape: [b, 1, length], values: bias))
        let user = t.reshape(t.batchedMatmul(t.softmax(scores), t.reshape(tokens, [b, length, e])), [b, e])
        var hidden = t.add(t.matmul(user, hiddenFromUser), t.matmul(target, hiddenFromTarget))
        hidden = t.add(hidden, t.matmul(t.mul(user, target), hiddenFromProduct))
        if let hiddenFromProfile, let hiddenFromProfileProduct {
            guard let profiles else { preconditionFailure("the profile input needs profiles") }
            let pooled: Tensor
            if let codes, let codeKey {
                // The target attends over each profile's codes; log(weight) makes it count-weighted.
                let counts = samples.map { profiles.counts[$0.user] }
                let entries = counts.map { p in p.indices.filter { p[$0] > 0 } }
                let m = max(1, entries.map(\.count).max() ?? 1)
                var ids = [Int](repeating: 0, count: b * m), codeBias = [Float](repeating: -1e9, count: b * m)
                for (r, list) in entries.enumerated() {
                    for (j, code) in list.enumerated() {
                        ids[r * m + j] = code
                        codeBias[r * m + j] = logf(counts[r][code])
                    }
                }
                let codeTokens = t.embedding(codes, ids: ids)  // [B·M, e]
                let codeKeys = t.reshape(t.matmul(codeTokens, codeKey), [b, m, e])
                let codeScores = t.add(
                    t.scale(t.batchedMatmul(q, codeKeys, transposeB: true), 1 / Float(e).squareRoot()), Tensor(shape: [b, 1, m], values: codeBias))
                pooled = t.reshape(t.batchedMatmul(t.softmax(codeScores), t.reshape(codeTokens, [b, m, e])), [b, e])
            } else {
                guard let profileProjection, let hiddenFromScore else { preconditionFailure("a profile ranker reads codes or the decoded profile") }
                // CHIME's score of the target (both vectors are fixed: no gradient flows into them).
                let d = profiles.width, keys = profiles.itemKeys.values
                var vectors = [Float](repeating: 0, count: b * d), score = [Float](repeating: 0, count: b)
                for (r, s) in samples.enumerated() {
                    let v = profiles.vectors[s.user], row = targets[r] * d
                    var dot: Float = 0
                    for j in 0..<d {
                        vectors[r * d + j] = v[j]
                        dot += v[j] * keys[row + j]
                    }
                    score[r] = dot
                }
                hidden = t.add(hidden, t.matmul(Tensor(shape: [b, 1], values: score), hiddenFromScore))
                pooled = t.matmul(Tensor(shape: [b, d], values: vectors), profileProjection)
            }
            hidden = t.add(hidden, t.matmul(pooled, hiddenFromProfile))
            hidden = t.add(hidden, t.matmul(t.mul(pooled, target), hiddenFromProfileProduct))
        }
        let out = t.linear(t.gelu(t.add(hidden, hiddenBias)), output.weight, bias: output.bias)
        return t.reshape(out, [b])
    }
}

/// Trains rankers on some users' samples and scores the others' (cross-validation by user).
public struct RankerTraining: Sendable {
    public var epochs = 30
    public var patience = 4
    public var batchSize = 256
    public var learningRate: Float = 1e-3
    public var weightDecay: Float = 1e-4
    /// Fraction of the training users whose samples choose the epoch (validation AUC, patience epochs).
    public var validationFraction = 0.15
    public var threads = Tape.defaultThreads
    public init() {}

    /// Trains a fresh ranker on `training` (choosing the epoch on `validationFraction` of its users) and
    /// returns its scores of `evaluation`, with the epochs run.
    public func trainAndScore(
        _ configuration: RankerConfiguration, task: ClickTask, content: ContentTable, profiles: RankerProfiles?,
        training: [ClickTask.Sample], evaluation: [ClickTask.Sample], seed: UInt64
    ) throws -> (scores: [Float], epochs: Int, validationAUC: Double) {
        let model = try TargetAttentionRanker(
            configuration: configuration, contentDimension: content.dimension, codeCount: profiles?.codeCount ?? 0,
            profileWidth: profiles?.width ?? 0, seed: seed)
        let isValidation = { (u: Int) in SplitMix64.mix(UInt64(u) ^ seed &* 0x51ED) % 1000 < UInt64(validationFraction * 1000) }
        let fit = training.filter { !isValidation($0.user) }, check = training.filter { isValidation($0.user) }
        let optimizer = AdamW(
            decayed: model.parameters.filter { $0.rank == 2 }, undecayed: model.parameters.filter { $0.rank != 2 },
            configuration: AdamW.Configuration(weightDecay: weightDecay), threads: threads)
        func score(_ samples: [ClickTask.Sample]) -> [Float] {
            var out: [Float] = []
            out.reserveCapacity(samples.count)
            var start = 0
            while start < samples.count {
                let part = Array(samples[start..<min(samples.count, start + 1024)])
                out += model.logits(
                    Tape(recording: false, threads: threads), part, in: task.data, content: content,
                    profiles: profiles).values
                start += part.count
            }
            return out
        }
        var rng = SplitMix64(seed: seed ^ 0xC11C)
        var best: (auc: Double, epoch: Int, values: [[Float]])?
        var epoch = 0
        while epoch < epochs {
            epoch += 1
            var order = fit
            rng.partialShuffle(&order, count: order.count)
            var start = 0
            while start < order.count {
                let part = Array(order[start..<min(order.count, start + batchSize)])
                start += part.count
                let t = Tape(threads: threads)
                let logits = model.logits(t, part, in: task.data, content: content, profiles: profiles)
                let loss = t.binaryCrossEntropy(logits, labels: part.map { $0.label ? 1 : 0 })
                optimizer.zeroGrad()
                t.backward(loss)
                optimizer.step(learningRate: learningRate)
            }
            let auc = BinaryMetrics.auc(scores: score(check), labels: check.map(\.label)) ?? 0
            if best == nil || auc > best!.auc {
                best = (auc, epoch, model.parameters.map(\.values))
            } else if epoch - best!.epoch >= patience {
                break
            }
        }
        for (p, v) in zip(model.parameters, best!.values) { p.assign(v) }
        return (score(evaluation), epoch, best!.auc)
    }
}
