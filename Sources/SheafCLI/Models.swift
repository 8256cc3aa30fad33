import ArgumentParser
import Foundation
import SheafFormats
import SheafModels
import SheafNN
import SheafStore

/// `--model` values.
enum ModelKind: String, ExpressibleByArgument, CaseIterable {
    case sasrec
}

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
    /// `sheaf train STORE --model sasrec --output DIR`.
    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Train a sequential recommender on the store's histories (leave-one-out split by time).",
            discussion: """
                Every user's last behaviour is the test target, the one before it the validation target, the \
                rest train (every prefix predicting its next item). The best epoch is chosen on validation \
                NDCG@10, with early stopping; test metrics are reported for that epoch only, ranking all items. \
                DIR receives model.safetensors (the best epoch), last.safetensors (to resume with --resume) and \
                metrics.json. The defaults are RecBole 1.2.1's SASRec.
                """)

        @OptionGroup var target: StoreArguments
        @Option(help: "The model.") var model: ModelKind = .sasrec
        @Option(name: .shortAndLong, help: "The model directory to write.") var output: String

        @Flag(help: "Item inputs and outputs from the items' embeddings (frozen, through a learned projection) instead of ID embeddings.")
        var content = false
        @Option(help: "With --content: the original float32 embeddings (.npy/.fvecs/.safetensors) instead of the store's decoded codes.")
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
        @Option(help: "Seed of initialisation, shuffling and dropout.") var seed: UInt64 = 2020
        @Option(help: "Epochs without a better validation NDCG@10 before stopping.") var patience = 10
        @Option(help: "Behaviours per input sequence.") var maxLength = 50
        @Option(help: "Hidden size.") var hidden = 64
        @Option(help: "Transformer layers.") var layers = 2
        @Option(help: "Attention heads.") var heads = 2
        @Option(help: "Feed-forward width.") var inner = 256
        @Option(help: "Dropout of embeddings and layer outputs.") var dropout: Float = 0.5
        @Option(help: "Dropout of attention weights.") var attentionDropout: Float = 0.5
        @Option(help: "Threads (results do not depend on it).") var threads = Tape.defaultThreads
        @Flag(help: "Continue the run saved in DIR/last.safetensors.") var resume = false
        @Flag(help: "Print one JSON line per epoch on stdout, and the outcome as JSON.") var json = false

        var modelConfiguration: SASRecConfiguration {
            var c = SASRecConfiguration()
            c.maxLength = maxLength
            c.hiddenSize = hidden
            c.layers = layers
            c.heads = heads
            c.innerSize = inner
            c.hiddenDropout = dropout
            c.attentionDropout = attentionDropout
            c.content = content
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

        func validate() throws {
            guard TrainingConfiguration.Schedule(rawValue: schedule) != nil else {
                throw ValidationError("--schedule must be constant or warmup-cosine")
            }
            if contentEmbeddings != nil && !content { throw ValidationError("--content-embeddings needs --content") }
            do {
                try modelConfiguration.validate()
                try trainingConfiguration.validate()
            } catch { throw ValidationError(error.description) }
        }

        func run() throws {
            Memory.retainFreedBuffers()
            let store = try target.open(readOnly: true)
            let (data, readSeconds) = try loadSequences(target, store: store)
            let split = LeaveOneOutSplit(data, maxLength: maxLength)
            var contentRows: [Float]?
            var contentSource: String?
            if content {
                (contentRows, contentSource) = try contentVectors(store: store, data: data)
            }
            let net = try SASRec(
                configuration: modelConfiguration, itemCount: data.vocabulary.count, content: contentRows,
                contentDimension: content ? store.dimension : 0, seed: seed)
            let trainer = try SASRecTrainer(model: net, data: data, split: split, configuration: trainingConfiguration)
            let checkpoints = try CheckpointStore(directory: output)
            if resume {
                guard checkpoints.hasLast else { throw CLIError("nothing to resume: \(checkpoints.lastPath) does not exist") }
                try checkpoints.resume(trainer)
                note("resuming after epoch \(trainer.epochsDone)")
            }
            note("\(thousands(data.users.count)) users, \(thousands(data.vocabulary.count)) items, \(thousands(data.behaviorCount)) behaviours read in \(String(format: "%.2f", readSeconds)) s; \(thousands(split.training.count)) training examples (\(trainer.stepsPerEpoch) steps per epoch), \(thousands(split.validation.count)) validation, \(thousands(split.test.count)) test")
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

        /// N × D content rows in vocabulary order: the store's decoded codes, or the original embeddings.
        func contentVectors(store: Store, data: SequenceDataset) throws -> ([Float], String) {
            let ids = data.vocabulary.ids
            guard let path = contentEmbeddings else {
                var options = DecodeOptions()
                options.missingItems = .fail
                let rows = try store.read { try $0.decodeItems(ids, options: options) }
                return (rows, "decoded codes")
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
            return (out, "float32 \(path)")
        }
    }

    /// `sheaf evaluate STORE --model DIR`.
    struct Evaluate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Full-ranking metrics of a trained model on the store's validation and test targets.")

        @OptionGroup var target: StoreArguments
        @Option(help: "The model directory (from `sheaf train`).") var model: String
        @Option(help: "Threads.") var threads = Tape.defaultThreads
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let store = try target.open(readOnly: true)
            let (data, _) = try loadSequences(target, store: store)
            let net = try CheckpointStore(directory: model).loadModel(for: data)
            let split = LeaveOneOutSplit(data, maxLength: net.configuration.maxLength)
            let started = DispatchTime.now().uptimeNanoseconds
            let validation = net.evaluate(split.validation, in: data, threads: threads)
            let test = net.evaluate(split.test, in: data, threads: threads)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            let v = validation.dictionary
            let s = test.dictionary
            if json {
                struct Output: Codable { var validation: [String: Double]; var test: [String: Double]; var users: Int; var seconds: Double }
                say(try jsonText(Output(validation: v, test: s, users: split.test.count, seconds: seconds)))
            } else {
                say(metricTable(validation: v, test: s))
                say("\(thousands(split.validation.count + split.test.count)) rankings of \(thousands(data.vocabulary.count)) items in \(String(format: "%.2f", seconds)) s")
            }
        }
    }

    /// `sheaf recommend STORE --model DIR --user U`.
    struct Recommend: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The top items for a user after their whole history, with titles and scores.")

        @OptionGroup var target: StoreArguments
        @Option(help: "The model directory (from `sheaf train`).") var model: String
        @Option(help: "The user id.") var user: UInt64
        @Option(name: .short, help: "Items to show.") var k = 10
        @Flag(help: "Leave out items the user already has in their history.") var excludeSeen = false
        @Flag(help: "Print JSON.") var json = false

        func validate() throws { guard k >= 1 else { throw ValidationError("-k must be ≥ 1") } }

        func run() throws {
            let store = try target.open(readOnly: true)
            // Only this user's history is read: the model directory has its own vocabulary.
            let checkpoints = try CheckpointStore(directory: model)
            let net = try checkpoints.loadModel(for: nil)
            let vocabulary = try checkpoints.vocabulary()
            guard let history = try store.read({ try $0.history(user: user) }), !history.isEmpty else {
                throw ModelError.unknownUser(user)
            }
            // Items the model never saw (added to the store after training) have no embedding: left out.
            let known = history.itemIDs.indices.filter { vocabulary.index(of: history.itemIDs[$0]) != nil }
            if known.count < history.count {
                note("\(history.count - known.count) of the user's \(history.count) behaviours are on items the model does not know; left out")
            }
            guard !known.isEmpty else { throw ModelError.storeMismatch("none of user \(user)'s items is in the model's vocabulary") }
            let sequence = UserSequence(
                user: user, items: known.map { vocabulary.index(of: history.itemIDs[$0])! }, timestamps: known.map { history.timestamps[$0] },
                labels: known.map { history.labels[$0] })
            let data = SequenceDataset(users: [sequence], vocabulary: vocabulary)
            let example = SequenceExample(
                user: 0, inputStart: max(0, sequence.count - net.configuration.maxLength), inputEnd: sequence.count, target: 0)
            let scores = net.scores(SequenceBatch([example], in: data, maxLength: net.configuration.maxLength))
            let seen = Set(sequence.items)
            var candidates: [Int] = []
            for j in 1..<scores.count where !excludeSeen || !seen.contains(Int32(j)) { candidates.append(j) }
            let ranked = candidates.sorted { (a: Int, b: Int) -> Bool in
                scores[a] > scores[b] || (scores[a] == scores[b] && a < b)
            }.prefix(k)
            struct Row: Codable { var item: UInt64; var score: Float; var title: String?; var seen: Bool }
            let rows = try store.read { txn in
                try ranked.map { j in
                    let id = data.vocabulary.id(at: Int32(j))
                    return Row(item: id, score: scores[j], title: try txn.title(item: id), seen: seen.contains(Int32(j)))
                }
            }
            if json {
                say(try jsonText(rows))
            } else {
                say("user \(user): \(thousands(sequence.count)) behaviours; top \(rows.count)\(excludeSeen ? " unseen" : "") items")
                for (i, r) in rows.enumerated() {
                    say(String(format: "%3d  %8llu  %8.4f  %@%@", i + 1, r.item, r.score, r.title ?? "—", r.seen ? "  (seen)" : ""))
                }
            }
        }
    }
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
