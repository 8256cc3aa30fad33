import ArgumentParser
import Foundation
import SheafFormats
import SheafModels
import SheafNN
import SheafStore
import SheafText

/// `--model` values.
enum ModelKind: String, ExpressibleByArgument, CaseIterable {
    case sasrec
    case hymirec
}

extension InterestMatchingRule: ExpressibleByArgument {}
extension RecentPositionOrder: ExpressibleByArgument {}

/// What `sheaf train` writes to `DIR/metrics.json`.
struct TrainingReport: Codable {
    var model: String
    var content: String?
    var store: String
    var users: Int
    var items: Int
    var behaviors: Int
    var trainingExamples: Int
    var validationExamples: Int
    var testExamples: Int
    var readSeconds: Double
    var outcome: TrainingOutcome
    var machine: MachineReport
}

/// Reads the store's histories (one read transaction per batch of users), with a progress line.
func loadSequences(_ target: StoreArguments, store: Store) throws -> (SequenceDataset, Double) {
    let started = DispatchTime.now().uptimeNanoseconds
    let reading = target.progress("reading histories", total: nil, unit: "users")
    var last = 0
    let data = try SequenceDataset.load(from: store) { done, _ in
        reading.advance(by: done - last)
        last = done
    }
    reading.finish()
    return (data, Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
}

extension SheafCommand {
    /// `sheaf train STORE --model sasrec|hymirec --output DIR`.
    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Train a sequential recommender on the store's histories (leave-one-out split by time).",
            discussion: """
                Every user's last behaviour is the test target, the one before it the validation target, the \
                rest train. The best epoch is chosen on validation NDCG@10, with early stopping; test metrics \
                are reported for that epoch only, ranking all items. DIR receives model.safetensors (the best \
                epoch), last.safetensors (to resume with --resume) and metrics.json.

                sasrec: every prefix predicts its next item; the defaults are RecBole 1.2.1's SASRec. \
                hymirec: the multi-interest recommender (HyMiRec) over the items' content embeddings (the \
                store's decoded codes, or --content-embeddings): a lightweight transformer whose coarse \
                queries read the whole history before the last --recent behaviours, a refined transformer \
                over the coarse interests, the recent behaviours and --interests queries, trained with DMIL \
                on the next --window behaviours.
                """)

        @OptionGroup var target: StoreArguments
        @Option(help: "The model: sasrec or hymirec.") var model: ModelKind = .sasrec
        @Option(name: .shortAndLong, help: "The model directory to write.") var output: String

        @Flag(help: "SASRec: item inputs and outputs from the items' embeddings (frozen, through a learned projection) instead of ID embeddings.")
        var content = false
        @Option(
            name: [.customLong("content-embeddings"), .customLong("embeddings")],
            help: "The original float32 embeddings (.npy/.fvecs/.safetensors) instead of the store's decoded codes (`codes`, the default).")
        var contentEmbeddings: String?
        @Option(help: "Ids of the --content-embeddings rows (.npy or text); default: row i is id i.")
        var contentIds: String?

        @Option(help: "Maximum epochs.") var epochs = 200
        @Option(help: "Training examples per step.") var batchSize = 256
        @Option(help: "Peak learning rate.") var lr: Float = 1e-3
        @Option(help: "Decoupled weight decay of matrices and embeddings (0: Adam).") var weightDecay: Float = 0
        @Option(help: "constant or warmup-cosine.") var schedule: String = "constant"
        @Option(help: "Warm-up steps of warmup-cosine.") var warmupSteps = 0
        @Option(help: "Global gradient-norm clip (0: none).") var clip: Float = 0
        @Option(help: "Seed of initialisation, shuffling, dropout and sampled negatives.") var seed: UInt64 = 2020
        @Option(help: "Epochs without a better validation NDCG@10 before stopping.") var patience = 10
        @Option(help: "SASRec: behaviours per input sequence.") var maxLength = 50
        @Option(help: "Hidden size (HyMiRec: of the refined recommender; default 64, 384 with --init minilm).") var hidden: Int?
        @Option(help: "Transformer layers (HyMiRec: of the refined recommender).") var layers = 2
        @Option(help: "Attention heads (default 2, 12 with --init minilm).") var heads: Int?
        @Option(help: "Feed-forward width (default 256, 1536 with --init minilm).") var inner: Int?
        @Option(help: "Dropout of embeddings and layer outputs (default 0.5).") var dropout: Float?
        @Option(help: "SASRec: dropout of attention weights (HyMiRec uses --dropout).") var attentionDropout: Float = 0.5

        @Option(help: "HyMiRec: coarse queries N_c of the lightweight recommender.") var coarseQueries = 4
        @Option(help: "HyMiRec: interests s.") var interests = 2
        @Option(help: "HyMiRec: window targets w per training example.") var window = 4
        @Option(help: "HyMiRec: recent behaviours n the refined recommender reads.") var recent = 50
        @Option(help: "HyMiRec: at most this many behaviours before the recent ones reach the lightweight recommender.")
        var maxHistory = 1024
        @Option(help: "HyMiRec: layers of the lightweight recommender.") var lightweightLayers = 1
        @Option(help: "HyMiRec: width of the lightweight recommender (heads 2, feed-forward 4×).") var lightweightWidth = 64
        @Option(help: "HyMiRec: sampled negatives per step (at least the item count: every item, a full softmax).") var negatives = 4096
        @Option(help: "HyMiRec: InfoNCE temperature τ.") var tau: Float = 0.1
        @Option(help: "HyMiRec: hungarian or greedy matching of interests to target clusters.") var matching: InterestMatchingRule = .hungarian
        @Option(help: "HyMiRec: recent positions numbered newest-first (the latest behaviour is always position 0) or oldest-first.")
        var positions: RecentPositionOrder = .newestFirst
        @Option(name: .customLong("init"), help: "HyMiRec: refined layers random or from MiniLM (--model-dir).")
        var initialization: LayerInitialization = .random
        @Option(help: "The pretrained model directory for --init minilm.") var modelDir = "data/minilm"
        @Flag(help: "HyMiRec ablation: no lightweight recommender (the refined one reads only the recent behaviours).")
        var noLightweight = false
        @Flag(help: "HyMiRec ablation: no indicator embedding on the coarse interests.") var noIndicator = false
        @Flag(help: "HyMiRec: add a learned item-ID embedding to each item's projected content (tokens and keys).")
        var itemIds = false

        @Option(help: "Threads (results do not depend on it).") var threads = Tape.defaultThreads
        @Flag(help: "Continue the run saved in DIR/last.safetensors.") var resume = false
        @Flag(help: "Delete the run DIR holds (model, last checkpoint, items, metrics) and start again; without it or --resume, a DIR that holds a run is refused.")
        var overwrite = false
        @Flag(help: "Print one JSON line per epoch on stdout, and the outcome as JSON.") var json = false

        var sasrecConfiguration: SASRecConfiguration {
            var c = SASRecConfiguration()
            c.maxLength = maxLength
            c.hiddenSize = hidden ?? 64
            c.layers = layers
            c.heads = heads ?? 2
            c.innerSize = inner ?? 256
            c.hiddenDropout = dropout ?? c.hiddenDropout
            c.attentionDropout = attentionDropout
            c.content = content
            return c
        }

        var hymirecConfiguration: HyMiRecConfiguration {
            var c = HyMiRecConfiguration()
            let minilm = initialization == .minilm
            c.width = hidden ?? (minilm ? 384 : 64)
            c.heads = heads ?? (minilm ? 12 : 2)
            c.innerSize = inner ?? (minilm ? 1536 : 256)
            c.refinedLayers = layers
            c.initialization = initialization
            c.lightweightWidth = lightweightWidth
            c.lightweightInnerSize = 4 * lightweightWidth
            c.lightweightLayers = lightweightLayers
            c.lightweight = !noLightweight
            c.indicator = !noIndicator
            c.itemIDs = itemIds
            c.coarseQueries = coarseQueries
            c.interests = interests
            c.window = window
            c.recent = recent
            c.maxHistory = maxHistory
            c.negatives = negatives
            c.temperature = tau
            c.matching = matching
            c.recentPositionOrder = positions
            c.dropout = dropout ?? c.dropout
            return c
        }

        var trainingConfiguration: TrainingConfiguration {
            var t = TrainingConfiguration()
            t.epochs = epochs
            t.batchSize = batchSize
            t.learningRate = lr
            t.weightDecay = weightDecay
            t.schedule = TrainingConfiguration.Schedule(rawValue: schedule) ?? .constant
            t.warmupSteps = warmupSteps
            t.gradientClip = clip
            t.seed = seed
            t.patience = patience
            t.threads = threads
            return t
        }

        /// The store's decoded codes unless --content-embeddings names a file.
        var contentFile: String? { contentEmbeddings == "codes" ? nil : contentEmbeddings }

        func validate() throws {
            guard TrainingConfiguration.Schedule(rawValue: schedule) != nil else {
                throw ValidationError("--schedule must be constant or warmup-cosine")
            }
            switch model {
            case .sasrec:
                if contentFile != nil && !content { throw ValidationError("--content-embeddings FILE needs --content") }
            case .hymirec:
                if content { throw ValidationError("--content is SASRec's: HyMiRec always reads the items' content") }
            }
            if contentIds != nil && contentFile == nil { throw ValidationError("--content-ids needs --content-embeddings FILE") }
            if resume && overwrite { throw ValidationError("--resume continues the run in DIR, --overwrite deletes it: give one") }
            do {
                switch model {
                case .sasrec: try sasrecConfiguration.validate()
                case .hymirec: try hymirecConfiguration.validate()
                }
                try trainingConfiguration.validate()
            } catch { throw ValidationError(error.description) }
        }

        func run() throws {
            Memory.retainFreedBuffers()
            // Claimed before anything is read, so a second run into DIR stops at once and a refused
            // start costs nothing; held until the run ends.
            let claim = try RunDirectory(claiming: output, start: resume ? .resume : overwrite ? .overwrite : .fresh)
            defer { claim.release() }
            let store = try target.open(readOnly: true)
            let (data, readSeconds) = try loadSequences(target, store: store)
            switch model {
            case .sasrec:
                var contentTable: ContentTable?
                var contentSource: String?
                if content { (contentTable, contentSource) = try contentVectors(store: store, data: data) }
                let net = try SASRec(configuration: sasrecConfiguration, itemCount: data.vocabulary.count, content: contentTable, seed: seed)
                try train(net, data: data, readSeconds: readSeconds, contentSource: contentSource, detail: "")
            case .hymirec:
                let (table, source) = try contentVectors(store: store, data: data)
                let c = hymirecConfiguration
                let net = try HyMiRec(configuration: c, itemCount: data.vocabulary.count, content: table, seed: seed)
                if initialization == .minilm { try net.loadPretrained(from: try BertEncoder(modelDirectory: modelDir, maxLength: 2)) }
                try train(
                    net, data: data, readSeconds: readSeconds, contentSource: source,
                    detail: "; s = \(c.interests) interests, w = \(c.window), n = \(c.recent) recent, \(c.lightweight ? "\(c.coarseQueries) coarse queries" : "no lightweight recommender"), \(initialization.rawValue) initialisation")
            }
        }

        /// Trains `net` with the shared trainer, writing checkpoints and metrics to DIR.
        func train<Model: SequentialRecommender>(
            _ net: Model, data: SequenceDataset, readSeconds: Double, contentSource: String?, detail: String
        ) throws {
            let split = net.split(data)
            let trainer = try Trainer(model: net, data: data, split: split, configuration: trainingConfiguration)
            let checkpoints = try CheckpointStore(directory: output)
            if resume {
                guard checkpoints.hasLast else { throw CLIError("nothing to resume: \(checkpoints.lastPath) does not exist") }
                try checkpoints.resume(trainer)
                note("resuming after epoch \(trainer.epochsDone)")
            }
            note("\(thousands(data.users.count)) users, \(thousands(data.vocabulary.count)) items, \(thousands(data.behaviorCount)) behaviours read in \(String(format: "%.2f", readSeconds)) s; \(thousands(split.training.count)) training examples (\(trainer.stepsPerEpoch) steps per epoch), \(thousands(split.validation.count)) validation, \(thousands(split.test.count)) test\(detail)")
            var bar: ProgressReporter?
            var barEpoch = 0
            let outcome = try trainer.run(
                checkpoints: checkpoints,
                epochEnded: { log in
                    bar?.finish()
                    bar = nil
                    if json {
                        if let line = try? JSONEncoder().encode(log) { say(String(decoding: line, as: UTF8.self)) }
                    }
                    note(String(
                        format: "epoch %d: loss %.4f, %.1f s (%@ examples/s); validation NDCG@10 %.4f, Recall@10 %.4f (%.1f s)",
                        log.epoch, log.trainingLoss, log.trainingSeconds, thousands(Int(log.examplesPerSecond)),
                        log.validation["ndcg@10"] ?? 0, log.validation["recall@10"] ?? 0, log.validationSeconds))
                },
                progress: { epoch, step, steps, loss in
                    if epoch != barEpoch {
                        barEpoch = epoch
                        bar = target.progress("epoch \(epoch)", total: steps, unit: "steps")
                    }
                    bar?.detail = String(format: "loss %.4f", loss)
                    bar?.advance(by: 1)
                })
            let report = TrainingReport(
                model: model.rawValue, content: contentSource, store: target.store, users: data.users.count,
                items: data.vocabulary.count, behaviors: data.behaviorCount, trainingExamples: split.training.count,
                validationExamples: split.validation.count, testExamples: split.test.count, readSeconds: readSeconds,
                outcome: outcome, machine: MachineReport.current)
            try Data(try jsonText(report).utf8).write(to: URL(fileURLWithPath: output + "/metrics.json"), options: .atomic)
            if json {
                say(try jsonText(outcome))
            } else {
                say("best epoch \(outcome.bestEpoch) of \(outcome.epochs.count)\(outcome.stoppedEarly ? " (stopped early)" : "")")
                say(metricTable(validation: outcome.validation, test: outcome.test))
                say("model in \(checkpoints.modelPath); metrics in \(output)/metrics.json")
            }
        }

        /// The content of the vocabulary's items: the store's codes (the model's input layer runs in
        /// code space), or the original embeddings of --content-embeddings FILE.
        func contentVectors(store: Store, data: SequenceDataset) throws -> (ContentTable, String) {
            let ids = data.vocabulary.ids
            guard let path = contentFile else {
                return (try ContentTable.codes(from: store, ids: ids), "codes (code-space input layer)")
            }
            let file = try EmbeddingFile(path: path, tensor: nil)
            guard file.dimension == store.dimension else {
                throw CLIError("\(path): rows are \(file.dimension)-dimensional, the store holds \(store.dimension)-dimensional embeddings")
            }
            let fileIDs = try loadIDs(contentIds, count: file.count, rowsOf: path)
            var rowOf: [UInt64: Int] = [:]
            for (r, id) in fileIDs.enumerated() { rowOf[id] = r }
            let d = store.dimension
            var all = [Float](repeating: 0, count: file.count * d)
            try all.withUnsafeMutableBufferPointer { try file.read(rows: 0..<file.count, into: $0.baseAddress!) }
            var out = [Float](repeating: 0, count: ids.count * d)
            for (i, id) in ids.enumerated() {
                guard let r = rowOf[id] else { throw CLIError("\(path) has no row for item \(id), which the histories hold") }
                for t in 0..<d {
                    let v = all[r * d + t]
                    guard v.isFinite else { throw CLIError("\(path): row \(r) holds a non-finite value") }
                    out[i * d + t] = v
                }
            }
            return (try ContentTable.rows(out, dimension: d), "float32 \(path)")
        }
    }

    /// What `sheaf evaluate --json` prints.
    struct EvaluationOutput: Codable {
        var validation: [String: Double]
        var test: [String: Double]
        var users: Int
        var seconds: Double
        /// HyMiRec only: how the model uses its interests on the test targets.
        var interests: InterestsOutput?
        /// Test metrics by how many behaviours precede the target (`--history-buckets`).
        var testByHistory: [HistoryBucketOutput]?
        /// HyMiRec with `--matching`: how often greedy matching would move the training windows'
        /// targets to other interests than the Hungarian.
        var matching: MatchingAgreement?
    }

    /// One bucket of `--history-buckets`: targets after `from`…`to` behaviours (no `to`: from on).
    struct HistoryBucketOutput: Codable, Equatable {
        var from: Int
        var to: Int?
        var users: Int
        var metrics: [String: Double]
    }

    /// `InterestUsage` for JSON: per-interest metrics as named values.
    struct InterestsOutput: Codable {
        var interests: Int
        var examples: Int
        var top: Int
        var meanPairwiseCosine: Double?
        var targetShare: [Double]
        var topShare: [Double]
        var alone: [[String: Double]]

        init(_ u: InterestUsage) {
            interests = u.interests
            examples = u.examples
            top = u.top
            meanPairwiseCosine = u.meanPairwiseCosine
            targetShare = u.targetShare
            topShare = u.topShare
            alone = u.alone.map(\.dictionary)
        }
    }

    /// `sheaf evaluate STORE --model DIR`.
    struct Evaluate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Full-ranking metrics of a trained model on the store's validation and test targets.")

        @OptionGroup var target: StoreArguments
        @Option(help: "The model directory (from `sheaf train`).") var model: String
        @Option(help: "Threads.") var threads = Tape.defaultThreads
        @Option(help: ArgumentHelp(
            "Also give the test metrics by how many behaviours precede the target, in buckets that end at these counts (and one above the last); \"\" for none.",
            valueName: "N,N,...")) var historyBuckets = "50,100,200"
        @Flag(help: "HyMiRec: also how often greedy matching would send the training windows' targets to other interests than the Hungarian (a forward pass over every training window).")
        var matching = false
        @Flag(help: "Print JSON.") var json = false

        /// `--history-buckets` as bounds.
        var bounds: [Int] {
            get throws {
                let parts = historyBuckets.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
                if parts == [""] { return [] }
                let values = parts.map { Int($0) }
                guard values.allSatisfy({ ($0 ?? -1) >= 0 }), zip(values, values.dropFirst()).allSatisfy({ $0! < $1! }) else {
                    throw ValidationError("--history-buckets wants strictly increasing counts ≥ 0 separated by commas, not \"\(historyBuckets)\"")
                }
                return values.map { $0! }
            }
        }

        func validate() throws { _ = try bounds }

        func run() throws {
            let bounds = try self.bounds
            let store = try target.open(readOnly: true)
            let checkpoints = try CheckpointStore(directory: model)
            let kind = try checkpoints.kind()
            let (data, _) = try loadSequences(target, store: store)
            switch kind {
            case SASRec.kind:
                if matching { throw CLIError("--matching describes a HyMiRec model's interests; \(model) holds a \(kind) model") }
                try evaluate(try checkpoints.load(SASRec.self, for: data), data: data, bounds: bounds, matching: { _ in nil }) { _ in nil }
            case HyMiRec.kind:
                try evaluate(try checkpoints.load(HyMiRec.self, for: data), data: data, bounds: bounds, matching: { net in
                    matching ? net.matchingAgreement(net.split(data).training, in: data, batchSize: 1024, threads: threads) : nil
                }) { net in
                    net.interestUsageAndRanks(net.split(data).test, in: data, batchSize: 1024, threads: threads)
                }
            default: throw ModelError.corruptCheckpoint(path: checkpoints.modelPath, reason: "an unknown model kind \(kind)")
            }
        }

        /// Prints the metric table; `usage` adds a multi-interest model's use of its interests on test
        /// (with the test ranks, from the same scoring pass).
        func evaluate<Model: SequentialRecommender>(
            _ net: Model, data: SequenceDataset, bounds: [Int], matching: (Model) -> MatchingAgreement?,
            usage: (Model) -> (usage: InterestUsage, ranks: [Int])?
        ) throws {
            let split = net.split(data)
            let started = DispatchTime.now().uptimeNanoseconds
            let validation = net.evaluate(split.validation, in: data, batchSize: 1024, threads: threads)
            // The test targets are ranked once: the buckets regroup their ranks.
            let described = usage(net)
            let testRanks = described?.ranks ?? net.targetRanks(split.test, in: data, batchSize: 1024, threads: threads)
            let test = RankingMetrics(ranks: testRanks)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            let interests = described?.usage
            let agreement = matching(net)  // after `seconds`: a pass over the training windows, not a ranking
            let ranked = zip(split.test, testRanks).map { RankedExample(example: $0, rank: $1) }
            let byHistory = bounds.isEmpty ? nil : HistoryLengthBuckets.split(ranked, bounds: bounds).map { b in
                HistoryBucketOutput(from: b.from, to: b.to, users: b.examples.count,
                                    metrics: RankingMetrics(ranks: b.examples.map(\.rank)).dictionary)
            }
            let v = validation.dictionary
            let s = test.dictionary
            if json {
                say(try jsonText(EvaluationOutput(validation: v, test: s, users: split.test.count, seconds: seconds,
                                                  interests: interests.map(InterestsOutput.init), testByHistory: byHistory,
                                                  matching: agreement)))
            } else {
                say(metricTable(validation: v, test: s))
                say("\(thousands(split.validation.count + split.test.count)) rankings of \(thousands(data.vocabulary.count)) items in \(String(format: "%.2f", seconds)) s")
                if let byHistory { say(historyTable(byHistory)) }
                if let interests { say(interestTable(interests)) }
                if let a = agreement {
                    func share(_ x: Int, _ of: Int) -> String { String(format: "%.1f%%", of > 0 ? 100 * Double(x) / Double(of) : 0) }
                    say("matching on \(thousands(a.examples)) training windows: greedy would send targets of \(thousands(a.differing)) (\(share(a.differing, a.examples))) to other interests than the Hungarian, \(thousands(a.targetsMoved)) of \(thousands(a.targets)) targets (\(share(a.targetsMoved, a.targets)))")
                }
            }
        }
    }

    /// `sheaf recommend STORE --model DIR --user U`.
    struct Recommend: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The top items for a user after their whole history, with titles and scores.",
            discussion: """
                Only this user's history is read (in one read transaction); the model directory holds its own \
                vocabulary. A HyMiRec model scores an item by its best interest (max over j of cos(r_j, item)); \
                --per-interest shows each interest's own top items instead.
                """)

        @OptionGroup var target: StoreArguments
        @Option(help: "The model directory (from `sheaf train`).") var model: String
        @Option(help: "The user id.") var user: UInt64
        @Option(name: .short, help: "Items to show (per interest with --per-interest).") var k = 10
        @Flag(help: "Leave out items the user already has in their history.") var excludeSeen = false
        @Flag(help: "HyMiRec: each interest's top items, by cos(r_j, item).") var perInterest = false
        @Flag(help: "Print JSON.") var json = false

        func validate() throws { guard k >= 1 else { throw ValidationError("-k must be ≥ 1") } }

        struct Row: Codable { var item: UInt64; var score: Float; var title: String?; var seen: Bool }

        func run() throws {
            let store = try target.open(readOnly: true)
            let checkpoints = try CheckpointStore(directory: model)
            let kind = try checkpoints.kind()
            let vocabulary = try checkpoints.vocabulary()
            switch kind {
            case SASRec.kind:
                if perInterest { throw CLIError("--per-interest needs a HyMiRec model; \(model) holds SASRec") }
                try recommend(try checkpoints.load(SASRec.self, for: nil), store: store, vocabulary: vocabulary)
            case HyMiRec.kind:
                let net = try checkpoints.load(HyMiRec.self, for: nil)
                if perInterest { try showInterests(net, store: store, vocabulary: vocabulary) } else {
                    try recommend(net, store: store, vocabulary: vocabulary)
                }
            default: throw ModelError.corruptCheckpoint(path: checkpoints.modelPath, reason: "an unknown model kind \(kind)")
            }
        }

        /// The best `k` of `scores` (index 0, padding, never), with the user's seen items left out on request.
        func top(_ scores: [Float], seen: Set<Int32>) -> [Int] {
            RankingMetrics.topItems(scores, count: k) { !excludeSeen || !seen.contains(Int32($0)) }
        }

        func rows(_ ranked: [Int], scores: [Float], seen: Set<Int32>, store: Store, vocabulary: ItemVocabulary) throws -> [Row] {
            try store.read { txn in
                try ranked.map { j in
                    let id = vocabulary.id(at: Int32(j))
                    return Row(item: id, score: scores[j], title: try txn.title(item: id), seen: seen.contains(Int32(j)))
                }
            }
        }

        func show(_ rows: [Row]) {
            for (i, r) in rows.enumerated() {
                say(String(format: "%3d  %8llu  %8.4f  %@%@", i + 1, r.item, r.score, r.title ?? "—", r.seen ? "  (seen)" : ""))
            }
        }

        func recommend<Model: SequentialRecommender>(_ net: Model, store: Store, vocabulary: ItemVocabulary) throws {
            let (scores, one) = try net.scores(user: user, in: store, vocabulary: vocabulary)
            noteUnknown(one)
            let seen = Set(one.sequence.items)
            let rows = try rows(top(scores, seen: seen), scores: scores, seen: seen, store: store, vocabulary: vocabulary)
            if json {
                say(try jsonText(rows))
            } else {
                say("user \(user): \(thousands(one.sequence.count)) behaviours; top \(rows.count)\(excludeSeen ? " unseen" : "") items")
                show(rows)
            }
        }

        /// Items added to the store after training have no embedding in the model: said, and left out.
        func noteUnknown(_ one: OneUserSequence) {
            if one.unknownItems > 0 {
                note("\(one.unknownItems) of the user's \(one.sequence.count + one.unknownItems) behaviours are on items the model does not know; left out")
            }
        }

        /// Each interest's top items: cos(r_j, key(item)).
        func showInterests(_ net: HyMiRec, store: Store, vocabulary: ItemVocabulary) throws {
            let one = try store.read { try OneUserSequence(user: user, in: $0, vocabulary: vocabulary) }
            noteUnknown(one)
            let interests = net.interests(after: one)
            let keys = net.itemKeys()
            let d = net.configuration.width, n = net.itemCount + 1
            let seen = Set(one.sequence.items)
            var all: [[Row]] = []
            for r in interests {
                var scores = [Float](repeating: 0, count: n)
                for i in 0..<n { scores[i] = (0..<d).reduce(Float(0)) { $0 + r[$1] * keys[i * d + $1] } }
                all.append(try rows(top(scores, seen: seen), scores: scores, seen: seen, store: store, vocabulary: vocabulary))
            }
            if json {
                say(try jsonText(all))
            } else {
                say("user \(user): \(thousands(one.sequence.count)) behaviours; \(interests.count) interests, top \(k)\(excludeSeen ? " unseen" : "") items of each")
                for (j, rows) in all.enumerated() {
                    say("interest \(j + 1)")
                    show(rows)
                }
            }
        }
    }
}

/// Test metrics by behaviours before the target, as text.
func historyTable(_ buckets: [SheafCommand.HistoryBucketOutput]) -> String {
    var lines = ["", "test by behaviours before the target:", "behaviours     users  recall@10    ndcg@10  recall@50"]
    for b in buckets {
        let range = b.to.map { "\(b.from)–\($0)" } ?? "\(b.from) or more"
        lines.append(range.padding(toLength: 12, withPad: " ", startingAt: 0) + String(format: "  %6d", b.users)
            + String(format: "  %9.4f  %9.4f  %9.4f", b.metrics["recall@10"] ?? .nan, b.metrics["ndcg@10"] ?? .nan, b.metrics["recall@50"] ?? .nan))
    }
    return lines.joined(separator: "\n")
}

/// A multi-interest model's use of its interests on test (`InterestUsage`), as text.
func interestTable(_ u: InterestUsage) -> String {
    var lines = ["", "interests on test (s = \(u.interests), \(thousands(u.examples)) users; an item comes from the interest that gives its score):"]
    if let c = u.meanPairwiseCosine { lines.append(String(format: "mean cosine between two interests of a user: %.3f", c)) }
    let topName = "top-\(u.top) from it"
    lines.append("interest  targets from it  \(topName)  Recall@10 alone  NDCG@10 alone")
    for j in 0..<u.interests {
        let alone = u.alone[j].dictionary
        lines.append(String(j + 1).padding(toLength: 8, withPad: " ", startingAt: 0)
            + String(format: "  %14.1f%%", 100 * u.targetShare[j])
            + String(format: "  %\(topName.count - 1).1f%%", 100 * u.topShare[j])
            + String(format: "  %15.4f  %13.4f", alone["recall@10"] ?? .nan, alone["ndcg@10"] ?? .nan))
    }
    let combined = u.combined.dictionary
    lines.append(String(format: "max over interests: Recall@10 %.4f, NDCG@10 %.4f", combined["recall@10"] ?? .nan, combined["ndcg@10"] ?? .nan))
    return lines.joined(separator: "\n")
}

/// Validation and test metrics side by side.
func metricTable(validation: [String: Double], test: [String: Double]) -> String {
    let names = RankingMetrics().values.map(\.name)
    var lines = ["metric      validation    test"]
    for n in names {
        lines.append(n.padding(toLength: 10, withPad: " ", startingAt: 0) + String(format: "  %10.4f  %10.4f", validation[n] ?? .nan, test[n] ?? .nan))
    }
    return lines.joined(separator: "\n")
}
