import ArgumentParser
import Foundation
import SheafFormats
import SheafModels
import SheafNN
import SheafQuantizer
import SheafStore
import SheafText

/// What `sheaf chime train` writes to `DIR/metrics.json`.
struct CHIMETrainingReport: Codable {
    var store: String
    var modelVersion: UInt32
    var codebook: String
    var cut: HistoryCut
    var initialization: String
    var users: Int
    var items: Int
    var behaviors: Int
    var readSeconds: Double
    var configuration: CHIMEConfiguration
    var training: TrainingConfiguration
    var outcome: CHIMEOutcome
    var machine: MachineReport
}

/// `--before T` / `--first-fraction F`: which behaviours of each history a command reads.
struct HistoryCutOptions: ParsableArguments {
    @Option(help: "Only behaviours before this timestamp (the rest stay unseen).") var before: Int64?
    @Option(help: "Only each user's first fraction of behaviours (e.g. 0.8: the last 20% stay unseen).") var firstFraction: Double?

    func validate() throws {
        if before != nil && firstFraction != nil { throw ValidationError("give --before or --first-fraction, not both") }
        if let f = firstFraction, !(f > 0 && f <= 1) { throw ValidationError("--first-fraction must be in (0, 1]") }
    }

    var cut: HistoryCut {
        if let before { return .before(before) }
        if let firstFraction { return .leadingFraction(firstFraction) }
        return .all
    }

    var text: String {
        switch cut {
        case .all: "all behaviours"
        case .before(let t): "behaviours before \(t)"
        case .leadingFraction(let f): "each user's first \(Int((f * 100).rounded()))%"
        }
    }
}

extension SheafCommand {
    /// `sheaf chime …`.
    struct CHIMECommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "chime", abstract: "The CHIME compression model: interest representations of whole histories.",
            subcommands: [Train.self])
    }
}

extension SheafCommand.CHIMECommand {
    /// `sheaf chime train STORE --output DIR`.
    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Train CHIME on the store's histories (immediate and holistic contrastive losses).",
            discussion: """
                Each behaviour becomes a token from its item's content embedding (decoded from the store's \
                codes, through a GLU projector), its label, action and time gap; a causal transformer reads \
                the history. Every epoch reads one window per training user, ending at a random cut: h_t \
                matches the next behaviour's item (immediate loss, the batch's other items as negatives) and \
                the window's last h_t matches the behaviours after the cut (holistic loss: labels ≥ \
                --positive-label are positives; labels ≤ --negative-label and other users' behaviours are \
                negatives). Users are held out by a hash of their id; their holistic loss chooses the best \
                epoch, with early stopping. DIR receives model.safetensors (the best epoch so far, written as \
                it improves), last.safetensors (after every epoch; --resume continues from it exactly) and \
                metrics.json (both losses per epoch, on training and held-out users).
                """)

        @OptionGroup var target: StoreArguments
        @Option(name: .shortAndLong, help: "The model directory to write.") var output: String

        @Option(help: "Transformer layers (1…6 with --init minilm).") var layers = 2
        @Option(name: .customLong("init"), help: "random or minilm.") var initialization: CHIMEConfiguration.Initialization = .random
        @Option(help: "The pretrained model directory for --init minilm (config.json, vocab.txt, model.safetensors).")
        var modelDir = "data/minilm"
        @Option(help: "Model width (the pretrained model's with --init minilm).") var width = 384
        @Option(help: "Attention heads.") var heads = 12
        @Option(help: "Feed-forward width.") var inner = 1536
        @Option(help: "Behaviours the transformer reads at once.") var maxLength = 256
        @Option(help: "Output width of the content GLU projector.") var contentWidth = 256
        @Flag(help: "Add learned item-ID embeddings to tokens and keys (off: content only, cold items work).") var itemIds = false
        @Option(help: "InfoNCE temperature.") var tau: Float = 0.1
        @Option(help: "Loss = (1 − w)·immediate + w·holistic.") var holisticWeight: Float = 0.5
        @Option(help: "Future behaviours with a label ≥ this are positives.") var positiveLabel: Float = 4
        @Option(help: "Future behaviours with a label ≤ this are negatives.") var negativeLabel: Float = 2
        @Option(help: "Future behaviours the holistic loss reads after a cut.") var future = 64
        @Option(help: "Dropout.") var dropout: Float = 0.1

        @Option(help: "Maximum epochs.") var epochs = 30
        @Option(help: "Users per step.") var batchSize = 32
        @Option(help: "Peak learning rate.") var lr: Float = 3e-4
        @Option(help: "Decoupled weight decay of matrices and tables.") var weightDecay: Float = 0.01
        @Option(help: "constant or warmup-cosine.") var schedule: TrainingConfiguration.Schedule = .warmupCosine
        @Option(help: "Warm-up steps of warmup-cosine.") var warmupSteps = 20
        @Option(help: "Global gradient-norm clip (0: none).") var clip: Float = 1
        @Option(help: "Seed of initialisation, cuts, order and dropout.") var seed: UInt64 = 1
        @Option(help: "Epochs without a lower held-out holistic loss before stopping.") var patience = 3
        @Option(help: "Fraction of users held out (by a hash of their id).") var heldOut = 0.1
        @OptionGroup var history: HistoryCutOptions
        @Option(help: "Threads (results do not depend on it).") var threads = Tape.defaultThreads
        @Flag(help: "Continue the run saved in DIR/last.safetensors (the same settings; --epochs may grow).") var resume = false
        @Flag(help: "Delete the run DIR holds (model, last checkpoint, metrics) and start again; without it or --resume, a DIR that holds a run is refused.")
        var overwrite = false
        @Flag(help: "Print one JSON line per epoch on stdout, and the outcome as JSON.") var json = false

        var modelConfiguration: CHIMEConfiguration {
            var c = CHIMEConfiguration()
            c.width = width
            c.heads = heads
            c.layers = layers
            c.innerSize = inner
            c.maxLength = maxLength
            c.contentWidth = contentWidth
            c.itemIDs = itemIds
            c.temperature = tau
            c.holisticWeight = holisticWeight
            c.positiveLabel = positiveLabel
            c.negativeLabel = negativeLabel
            c.futureLength = future
            c.dropout = dropout
            c.initialization = initialization
            return c
        }

        var trainingConfiguration: TrainingConfiguration {
            var t = TrainingConfiguration()
            t.epochs = epochs
            t.batchSize = batchSize
            t.learningRate = lr
            t.weightDecay = weightDecay
            t.schedule = schedule
            t.warmupSteps = warmupSteps
            t.gradientClip = clip
            t.seed = seed
            t.patience = patience
            t.threads = threads
            return t
        }

        var cut: HistoryCut { history.cut }

        func validate() throws {
            guard heldOut > 0 && heldOut < 1 else { throw ValidationError("--held-out must be in (0, 1)") }
            if resume && overwrite { throw ValidationError("--resume continues the run in DIR, --overwrite deletes it: give one") }
            do {
                try modelConfiguration.validate()
                try trainingConfiguration.validate()
            } catch { throw ValidationError(error.description) }
        }

        func run() throws {
            Memory.retainFreedBuffers()
            // As `sheaf train`: one run at a time in DIR, and a run there is not replaced unasked.
            let claim = try RunDirectory(claiming: output, start: resume ? .resume : overwrite ? .overwrite : .fresh)
            defer { claim.release() }
            let store = try target.open(readOnly: true)
            guard let codebook = try store.read({ try $0.activeCodebook() }) else {
                throw CLIError("the store has no codebook: CHIME reads the items' decoded codes (`sheaf codebook train`, `sheaf items load`)")
            }
            let (all, readSeconds) = try loadSequences(target, store: store)
            let data = all.cut(history.cut)
            let content = try ContentTable.codes(from: store, ids: data.vocabulary.ids, codebook: codebook.id)
            let net = try CHIME(
                configuration: modelConfiguration, contentDimension: store.dimension, sideFeatureWidth: store.sideFeatureWidth,
                itemCount: data.vocabulary.count, seed: seed)
            if initialization == .minilm {
                let encoder = try BertEncoder(modelDirectory: modelDir, maxLength: 2)
                try net.loadPretrained(from: encoder)
            }
            let trainer = try CHIMETrainer(
                model: net, data: data, content: content, configuration: trainingConfiguration, heldOutFraction: heldOut)
            let checkpoint = try CHIMECheckpoint(directory: output)
            if resume {
                guard checkpoint.hasLast else { throw CLIError("nothing to resume: \(checkpoint.lastPath) does not exist") }
                try checkpoint.resume(trainer)
                note("resuming after epoch \(trainer.epochsDone)")
            }
            let fingerprint = ItemContent.fingerprint(codebook)
            note("\(thousands(data.users.count)) users, \(thousands(data.vocabulary.count)) items, \(thousands(data.behaviorCount)) behaviours (\(history.text)) read in \(String(format: "%.2f", readSeconds)) s; \(thousands(trainer.trainingUsers.count)) training users (\(trainer.stepsPerEpoch) steps per epoch), \(thousands(trainer.heldOutUsers.count)) held out; \(initialization.rawValue) initialisation, \(layers) layer(s)")
            var bar: ProgressReporter?
            var barEpoch = 0
            let outcome = try trainer.run(
                epochEnded: { log, isBest in
                    bar?.finish()
                    bar = nil
                    if isBest {
                        try checkpoint.save(
                            net, training: trainingConfiguration, codebook: fingerprint, cut: cut, heldOutFraction: heldOut,
                            vocabulary: data.vocabulary, bestEpoch: log.epoch)
                    }
                    try checkpoint.saveLast(trainer)
                    if json, let line = try? JSONEncoder().encode(log) { say(String(decoding: line, as: UTF8.self)) }
                    note(String(
                        format: "epoch %d: loss %.4f (immediate %.4f, holistic %.4f), %.1f s (%@ behaviours/s); held out: immediate %.4f, holistic %.4f%@",
                        log.epoch, log.trainingLoss, log.trainingImmediate, log.trainingHolistic, log.trainingSeconds,
                        thousands(Int(log.tokensPerSecond)), log.heldOutImmediate, log.heldOutHolistic, isBest ? " (best)" : ""))
                },
                progress: { epoch, step, steps, loss in
                    if epoch != barEpoch {
                        barEpoch = epoch
                        bar = target.progress("epoch \(epoch)", total: steps, unit: "steps")
                    }
                    bar?.detail = String(format: "loss %.4f", loss)
                    bar?.advance(by: 1)
                })
            let report = CHIMETrainingReport(
                store: target.store, modelVersion: CHIMECheckpoint.version(of: net), codebook: fingerprint, cut: cut,
                initialization: initialization.rawValue, users: data.users.count, items: data.vocabulary.count,
                behaviors: data.behaviorCount, readSeconds: readSeconds, configuration: modelConfiguration,
                training: trainingConfiguration, outcome: outcome, machine: MachineReport.current)
            try Data(try jsonText(report).utf8).write(to: URL(fileURLWithPath: output + "/metrics.json"), options: .atomic)
            if json {
                say(try jsonText(outcome))
            } else {
                say("best epoch \(outcome.bestEpoch) of \(outcome.epochs.count)\(outcome.stoppedEarly ? " (stopped early)" : ""): held-out holistic loss \(String(format: "%.4f", outcome.bestHeldOutHolistic))")
                say("model \(report.modelVersion) in \(checkpoint.modelPath); metrics in \(output)/metrics.json")
            }
        }
    }
}

extension CHIMEConfiguration.Initialization: ExpressibleByArgument {}
extension TrainingConfiguration.Schedule: ExpressibleByArgument {}

extension SheafCommand {
    /// `sheaf profiles …`.
    struct ProfilesCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "profiles", abstract: "CHIME profiles: code histograms of every user's interest representations.",
            subcommands: [Build.self, Export.self])
    }

    /// `sheaf profile STORE --user U`.
    struct ProfileShow: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "profile", abstract: "A user's stored profile: (level, code, count) entries and the versions that made it.")

        @OptionGroup var target: StoreArguments
        @Option(help: "The user id.") var user: UInt64
        @Option(help: "A model directory: refuse a profile it did not make.") var model: String?
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let store = try target.open(readOnly: true)
            let (histogram, history): (CodeHistogram, (count: Int, bytes: Int)) = try store.read { txn in
                let h: CodeHistogram
                if let model {
                    guard let found = try ProfileReader(modelDirectory: model).histogram(user: user, in: txn) else {
                        throw CLIError("user \(user) has no profile; build them with `sheaf profiles build`")
                    }
                    h = found
                } else {
                    guard let stored = try txn.profile(user: user) else {
                        throw CLIError("user \(user) has no profile; build them with `sheaf profiles build`")
                    }
                    h = try CodeHistogram(stored, user: user)
                }
                return (h, try txn.historySize(user: user))
            }
            let bytes = histogram.profile.storedSize
            if json {
                struct Output: Codable {
                    var user: UInt64, modelVersion: UInt32, codebookVersion: UInt32, behaviors: Int, bytes: Int
                    var historyBehaviors: Int, historyBytes: Int
                    var entries: [CodeHistogram.Entry]
                }
                return say(try jsonText(Output(
                    user: user, modelVersion: histogram.modelVersion, codebookVersion: histogram.codebookVersion,
                    behaviors: histogram.behaviors, bytes: bytes, historyBehaviors: history.count, historyBytes: history.bytes,
                    entries: histogram.entries)))
            }
            say("user \(user): profile of \(thousands(histogram.behaviors)) behaviours in \(bytes) B (model \(histogram.modelVersion), ICM codebook \(histogram.codebookVersion)); the stored history holds \(thousands(history.count)) behaviours in \(thousands(history.bytes)) B")
            let levels = (histogram.entries.map(\.level).max() ?? -1) + 1
            for l in 0..<levels {
                let e = histogram.entries.filter { $0.level == l }.sorted { ($0.count, -$0.code) > ($1.count, -$1.code) }
                say("level \(l): \(e.count) codes; " + e.prefix(12).map { "\($0.code)×\($0.count)" }.joined(separator: " ") + (e.count > 12 ? " …" : ""))
            }
        }
    }
}

extension SheafCommand.ProfilesCommand {
    /// `sheaf profiles export STORE --model DIR --output FILE.npy`.
    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every stored profile decoded into CHIME's space, as a U × d float32 .npy (for analysis and plots).",
            discussion: """
                Each row is the profile's decoded mean: Σ_l m_l Σ_k (count_lk / n)·c_lk over its ICM                 codebook's centroids (m_l: the middle of level l's magnitude range for a cosine codebook),                 normalised; its dot product with the model's item keys is CHIME's score of those items.                 Users without a profile are left out (counted on stderr); a profile made by another model                 or codebook is an error.
                """)

        @OptionGroup var target: StoreArguments
        @Option(help: "The CHIME model directory whose profiles the store holds.") var model: String
        @Option(help: "The U × d float32 vectors.") var output: String
        @Option(help: "Also write the U user ids (int64 .npy), in the rows' order.") var idsOutput: String?
        @Option(help: "Also write the U behaviour counts each profile summarises (int64 .npy).") var behaviorsOutput: String?

        func run() throws {
            let store = try target.open(readOnly: true)
            let reader = try ProfileReader(modelDirectory: model)
            var ids: [UInt64] = [], behaviors: [UInt64] = [], vectors: [Float] = []
            var missing = 0
            try store.read { txn in
                var users: [UInt64] = []
                try txn.forEachUser { users.append($0); return true }
                for u in users {
                    guard let h = try reader.histogram(user: u, in: txn) else {
                        missing += 1
                        continue
                    }
                    ids.append(u)
                    behaviors.append(UInt64(h.behaviors))
                    vectors += reader.decodedMean(h)
                }
            }
            guard !ids.isEmpty else { throw CLIError("the store holds no profile; build them with `sheaf profiles build`") }
            let d = reader.codebook.codebook.dimension
            try NPYArray.write(floats: vectors, shape: [ids.count, d], to: output)
            if let idsOutput { try NPYArray.write(ids: ids, to: idsOutput) }
            if let behaviorsOutput { try NPYArray.write(ids: behaviors, to: behaviorsOutput) }
            if missing > 0 { note("\(thousands(missing)) users have no profile and are left out") }
            say("\(thousands(ids.count)) profiles × \(d) written to \(output)")
        }
    }

    /// `sheaf profiles build STORE --model DIR`.
    struct Build: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compute and store every user's CHIME profile (resumable and incremental).",
            discussion: """
                Every user's h_t comes from the model in DIR; the ICM codebook (a residual quantizer over \
                h_t, kept as DIR/icm.safetensors) is trained on the h_t of the model's training users the \
                first time, with --levels, --codes and --metric. A profile is the histogram of the codes of \
                all the user's h_t. A user whose stored profile has the same model, codebook and behaviour \
                count is skipped: a stopped run continues, and a later run rebuilds only users with new \
                behaviours.
                """)

        @OptionGroup var target: StoreArguments
        @Option(help: "The CHIME model directory (from `sheaf chime train`).") var model: String
        @Option(help: "ICM levels (first build, or with --retrain-codebook).") var levels: Int?
        @Option(help: "ICM codes per level, a power of two.") var codes: Int?
        @Option(help: "ICM residual rule: cosine or euclidean.") var metric: String?
        @Flag(help: "Train a new ICM codebook even though DIR has one (every profile is rebuilt).") var retrainCodebook = false
        @Option(parsing: .upToNextOption, help: "Only these users.") var users: [UInt64] = []
        @OptionGroup var history: HistoryCutOptions
        @Option(help: "Users per write transaction.") var batchUsers = 256
        @Option(help: "Threads.") var threads = Tape.defaultThreads
        @Flag(help: "Print the report as JSON.") var json = false

        func validate() throws {
            if let metric, metric != "cosine" && metric != "euclidean" { throw ValidationError("--metric must be cosine or euclidean") }
            guard batchUsers >= 1, threads >= 1 else { throw ValidationError("--batch-users and --threads must be ≥ 1") }
        }

        func run() throws {
            Memory.retainFreedBuffers()
            let store = try target.open(readOnly: false)
            let (net, header) = try CHIMECheckpoint(directory: model).load(for: store)
            let (all, readSeconds) = try loadSequences(target, store: store)
            try header.check(all.vocabulary)
            let content = try ContentTable.codes(from: store, ids: all.vocabulary.ids, codebook: header.codebookID)
            var icm = try InterestCodebook.load(from: model)
            if let existing = icm, existing.modelVersion != header.version, !retrainCodebook {
                throw CLIError("\(InterestCodebook.path(in: model)) belongs to model \(existing.modelVersion), not to this one (\(header.version)); pass --retrain-codebook")
            }
            if let existing = icm, !retrainCodebook {
                let c = existing.codebook
                if (levels.map { $0 != c.levels } ?? false) || (codes.map { $0 != c.codesPerLevel } ?? false)
                    || (metric.map { $0 != c.metric.description } ?? false)
                {
                    throw CLIError("the ICM codebook in \(model) is \(c.metric) L=\(c.levels) K=\(c.codesPerLevel); pass --retrain-codebook to replace it (every profile is then rebuilt)")
                }
            }
            if icm == nil || retrainCodebook {
                var q = QuantizerConfiguration()
                q.levels = levels ?? 3
                q.codesPerLevel = codes ?? 256
                q.metric = metric == "euclidean" ? .euclidean : .cosine
                q.magnitudeEncoding = q.metric == .euclidean ? .none : .uint8
                q.threads = threads
                do { try q.validate() } catch { throw ValidationError(error.description) }
                // The h_t of the users the model trained on, under its own cut.
                let seen = all.cut(header.trainingCut)
                let trainingUsers = CHIMETrainer.users(of: seen, heldOutFraction: header.heldOutFraction).training
                note("training the ICM codebook (\(q.metric) L=\(q.levels) K=\(q.codesPerLevel)) on the h_t of \(thousands(trainingUsers.count)) training users")
                let t0 = DispatchTime.now().uptimeNanoseconds
                let trained = try ProfileBuilder.trainCodebook(
                    model: net, modelVersion: header.version, data: seen, users: trainingUsers, content: content, configuration: q,
                    threads: threads)
                try trained.save(in: model)
                icm = trained
                note(String(format: "ICM codebook %u trained in %.1f s", trained.version, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9))
            }
            let data = all.cut(history.cut)
            var indices: [Int]
            if users.isEmpty {
                indices = Array(data.users.indices)
            } else {
                indices = try users.map { u in
                    guard let i = data.userIndex(of: u) else { throw ModelError.unknownUser(u) }
                    return i
                }
            }
            indices.sort()
            let builder = try ProfileBuilder(model: net, modelVersion: header.version, icm: icm!, threads: threads)
            let bar = target.progress("profiles", total: indices.count, unit: "users")
            var last = 0
            let report = try builder.build(users: indices, in: data, content: content, store: store, usersPerTransaction: batchUsers) { done, _ in
                bar.advance(by: done - last)
                last = done
            }
            bar.finish()
            if json { return say(try jsonText(report)) }
            say("\(thousands(report.built)) profiles built, \(thousands(report.current)) already current, of \(thousands(report.users)) users (\(history.text)); \(thousands(report.behaviors)) behaviours in \(String(format: "%.1f", report.seconds)) s (histories read in \(String(format: "%.2f", readSeconds)) s)")
            if report.built > 0 {
                say(String(format: "%.1f B per profile written, %.2f B per behaviour", Double(report.bytes) / Double(report.built), Double(report.bytes) / Double(max(report.behaviors, 1))))
            }
        }

    }
}
