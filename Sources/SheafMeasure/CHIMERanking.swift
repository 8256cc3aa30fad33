import ArgumentParser
import Foundation
import SheafCLI
import SheafModels
import SheafNN
import SheafRandom
import SheafStore
import _SheafBench

extension SheafMeasure {
    /// The CHIME evaluation: three rankers that differ only in their user input (recent behaviours;
    /// recent + CHIME profile; every behaviour), AUC and GAUC on each user's evaluation window, by
    /// cross-validation over users; then what each input costs a ranking service per request.
    ///
    /// The store must hold profiles built from each user's behaviours before the window (`sheaf
    /// profiles build --first-fraction 0.8` with a model trained with `--first-fraction 0.8`); the
    /// command checks every profile's behaviour count against the window. tools/chime-ranking runs the
    /// whole pipeline.
    struct CHIMERanking: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "chime-ranking",
            abstract: "AUC/GAUC of recent, recent + CHIME profile and full-history rankers, and their per-request cost.")

        @Option(help: "The store (histories, items, profiles).") var store: String
        @Option(help: "The CHIME model directory whose profiles the store holds.") var model: String
        @Option(parsing: .upToNextOption, help: "Seeds (each: its own user folds and initialisation).") var seeds: [UInt64] = [1, 2, 3]
        @Option(help: "Cross-validation folds over users.") var folds = 5
        @Option(help: "The evaluation window: each user's last fraction of behaviours.") var window = 0.2
        @Option(help: "Behaviours of the recent input.") var recent = 20
        @Option(parsing: .upToNextOption, help: "Inputs to evaluate.") var inputs: [String] = RankerInput.allCases.map(\.rawValue)
        @Option(parsing: .upToNextOption, help: "How the recent+profile ranker reads the profile (one run each): \(ProfileReading.allCases.map(\.rawValue).joined(separator: ", ")).")
        var readings: [String] = [ProfileReading.decoded.rawValue]
        @Option(help: "Rounds over all users for the per-request costs.") var costRounds = 5
        @Option(help: "Threads.") var threads = Tape.defaultThreads
        @Option(parsing: .upToNextOption, help: "What to run: rankers (AUC/GAUC per seed), scores (CHIME's own scores), costs (per request).")
        var parts: [String] = ["rankers", "scores", "costs"]
        @Option(help: "Write the JSON report here.") var output: String?

        struct Run: Codable {
            var input: String, seed: UInt64, auc: Double, gauc: Double, seconds: Double, epochs: [Int]
        }
        struct DirectScore: Codable {
            var user: String, auc: Double, gauc: Double
        }
        struct Cost: Codable {
            var input: String, microsecondsPerRequest: Double, bytesPerRequest: Double, behavioursPerRequest: Double
        }
        struct Report: Codable {
            var store: String, model: String, modelVersion: UInt32, codebookVersion: UInt32
            var users: Int, samples: Int, positives: Int, window: Double, folds: Int, recent: Int
            var runs: [Run]
            /// CHIME's own score of each window sample, without a ranker, for three user vectors.
            var chimeScores: [DirectScore]
            var costs: [Cost]
            var machine: MachineReport
        }

        func validate() throws {
            for p in parts where !["rankers", "scores", "costs"].contains(p) { throw ValidationError("unknown part \(p): rankers, scores or costs") }
        }

        func run() throws {
            Memory.retainFreedBuffers()
            var options = StoreOptions()
            options.readOnly = true
            options.createIfMissing = false
            let opened = try Store(path: store, options: options)
            let data = try SequenceDataset.load(from: opened)
            let task = ClickTask(data: data, evaluationFraction: window)
            let (chime, header) = try CHIMECheckpoint(directory: model).load(for: opened)
            let content = try ContentTable.codes(from: opened, ids: data.vocabulary.ids, codebook: header.codebookID)
            let reader = try ProfileReader(modelDirectory: model)
            let stored = try reader.histograms(users: data.users.map(\.user), store: opened)
            var histograms: [CodeHistogram] = []
            for (u, h) in stored.enumerated() {
                guard let h else { throw ValidationError("user \(data.users[u].user) has no profile from this model: run `sheaf profiles build --first-fraction \(1 - window)`") }
                guard h.behaviors == task.windowStart[u] else {
                    throw ValidationError("user \(data.users[u].user)'s profile summarises \(h.behaviors) behaviours; the \(Int(window * 100))% window starts after \(task.windowStart[u]): build profiles with --first-fraction \(1 - window)")
                }
                histograms.append(h)
            }
            let profiles = RankerProfiles(histograms: histograms, icm: reader.codebook, itemKeys: chime.itemKeys(content: content, threads: threads))
            log("\(data.users.count) users, \(task.samples.count) window samples (\(task.samples.filter(\.label).count) positive); profiles: \(reader.levels) levels × \(reader.codesPerLevel) codes")
            let direct = parts.contains("scores") ? directScores(chime, data: data, task: task, content: content, profiles: profiles) : []

            var variants: [(name: String, configuration: RankerConfiguration)] = []
            for name in inputs {
                guard let input = RankerInput(rawValue: name) else { throw ValidationError("unknown input \(name)") }
                var c = RankerConfiguration()
                c.input = input
                c.recent = recent
                if input != .recentAndProfile {
                    variants.append((name, c))
                    continue
                }
                for r in readings {
                    guard let reading = ProfileReading(rawValue: r) else { throw ValidationError("unknown profile reading \(r)") }
                    c.profileReading = reading
                    variants.append((readings.count > 1 ? "\(name) (\(r))" : name, c))
                }
            }
            var runs: [Run] = []
            for seed in parts.contains("rankers") ? seeds : [] {
                let fold = { (u: Int) in Int(SplitMix64.mix(UInt64(u) &* 0x9E37 ^ seed) % UInt64(folds)) }
                for (name, c) in variants {
                    var training = RankerTraining()
                    training.threads = threads
                    var scores = [Float](repeating: 0, count: task.samples.count)
                    var epochs: [Int] = []
                    let t0 = monotonicNanoseconds()
                    for f in 0..<folds {
                        let inFold = task.samples.indices.filter { fold(task.samples[$0].user) == f }
                        let rest = task.samples.indices.filter { fold(task.samples[$0].user) != f }
                        let result = try training.trainAndScore(
                            c, task: task, content: content, profiles: c.input == .recentAndProfile ? profiles : nil,
                            training: rest.map { task.samples[$0] }, evaluation: inFold.map { task.samples[$0] },
                            seed: seed &* 1000 &+ UInt64(f))
                        for (i, s) in zip(inFold, result.scores) { scores[i] = s }
                        epochs.append(result.epochs)
                    }
                    let seconds = Double(monotonicNanoseconds() - t0) / 1e9
                    let labels = task.samples.map(\.label)
                    let auc = BinaryMetrics.auc(scores: scores, labels: labels) ?? .nan
                    let gauc = BinaryMetrics.gauc(scores: scores, labels: labels, groups: task.samples.map(\.user)) ?? .nan
                    runs.append(Run(input: name, seed: seed, auc: auc, gauc: gauc, seconds: seconds, epochs: epochs))
                    log(String(format: "seed %llu %@: AUC %.4f GAUC %.4f (%.0f s, epochs %@)", seed, name, auc, gauc, seconds, epochs.map(String.init).joined(separator: ",")))
                }
            }
            let costs = parts.contains("costs") ? try servingCosts(opened, data: data, reader: reader) : []
            let report = Report(
                store: store, model: model, modelVersion: reader.modelVersion, codebookVersion: reader.codebookVersion,
                users: data.users.count, samples: task.samples.count, positives: task.samples.filter(\.label).count, window: window,
                folds: folds, recent: recent, runs: runs, chimeScores: direct, costs: costs, machine: MachineReport.current)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let json = String(decoding: try encoder.encode(report), as: UTF8.self)
            if let output { try Data(json.utf8).write(to: URL(fileURLWithPath: output), options: .atomic) }
            print(json)
        }

        /// CHIME's own scores, without a ranker: each window sample scored by cos(user vector, the
        /// model's key of the target item), the similarity its holistic loss was trained on; the user
        /// vector is (a) the profile's decoded mean, Σ_l m_l Σ_k (count_lk / n)·c_lk with m_l the
        /// middle of level l's magnitude range, (b) the exact mean of the user's h_t before the window
        /// (what the profile approximates), (c) h at the last behaviour before the window.
        func directScores(_ chime: CHIME, data: SequenceDataset, task: ClickTask, content: ContentTable, profiles: RankerProfiles) -> [DirectScore] {
            let d = profiles.width, keys = profiles.itemKeys.values
            let before = data.cut(.leadingFraction(1 - window))
            let reps = chime.representations(of: Array(before.users.indices), in: before, content: content, threads: threads)
            var means: [[Float]] = [], lasts: [[Float]] = []
            for u in before.users.indices {
                let n = before.users[u].count
                var mean = [Float](repeating: 0, count: d)
                for t in 0..<n { for k in 0..<d { mean[k] += reps[u][t * d + k] } }
                let norm = mean.reduce(0) { $0 + $1 * $1 }.squareRoot()
                means.append(norm > 0 ? mean.map { $0 / norm } : mean)
                lasts.append(n > 0 ? Array(reps[u][((n - 1) * d)..<(n * d)]) : mean)
            }
            let labels = task.samples.map(\.label), groups = task.samples.map(\.user)
            return zip(["profile (decoded mean)", "exact mean of h_t", "last h_t"], [profiles.vectors, means, lasts]).map { name, users in
                let scores = task.samples.map { s -> Float in
                    let item = Int(data.users[s.user].items[s.position])
                    var dot: Float = 0
                    for k in 0..<d { dot += users[s.user][k] * keys[item * d + k] }
                    return dot
                }
                let auc = BinaryMetrics.auc(scores: scores, labels: labels) ?? .nan
                let gauc = BinaryMetrics.gauc(scores: scores, labels: labels, groups: groups) ?? .nan
                log(String(format: "CHIME's score alone, user = %@: AUC %.4f GAUC %.4f", name, auc, gauc))
                return DirectScore(user: name, auc: auc, gauc: gauc)
            }
        }

        /// Per request, over every user, interleaved: the profile (fetch + parse), its decoding into
        /// CHIME's space (`ProfileReader.decodedMean`, what the decoded reading reads), the last `recent`
        /// behaviours (fetch + decode of their items), the whole history (fetch + decode). Bytes: the
        /// stored records read (profile record; history segments holding the behaviours; the items'
        /// packed codes).
        func servingCosts(_ store: Store, data: SequenceDataset, reader: ProfileReader) throws -> [Cost] {
            let users = data.users.map(\.user)
            let itemBytes = try store.read { try $0.activeCodebook()?.bytesPerItem ?? 0 }
            let names = ["profile", "recent", "full", "profile decode"]
            var time = [0.0, 0.0, 0.0, 0.0], bytes = [0.0, 0.0, 0.0, 0.0], behaviours = [0.0, 0.0, 0.0, 0.0]
            var requests = 0
            var decoded: [Float] = []
            for round in 0..<costRounds {
                for u in users {
                    try store.read { txn in
                        var t = monotonicNanoseconds()
                        let h = try reader.histogram(user: u, in: txn)
                        time[0] += Double(monotonicNanoseconds() - t)
                        t = monotonicNanoseconds()
                        if let h { decoded = reader.decodedMean(h) }  // what the decoded reading reads
                        time[3] += Double(monotonicNanoseconds() - t)
                        t = monotonicNanoseconds()
                        let recentHistory = try txn.history(user: u, .last(recent))!
                        _ = try txn.decodeItems(recentHistory.itemIDs)
                        time[1] += Double(monotonicNanoseconds() - t)
                        t = monotonicNanoseconds()
                        let whole = try txn.history(user: u)!
                        _ = try txn.decodeItems(whole.itemIDs)
                        time[2] += Double(monotonicNanoseconds() - t)
                        if round == 0 {
                            bytes[0] += Double(h.map { $0.profile.storedSize } ?? 0)
                            let segments = try txn.historySegmentSizes(user: u)
                            var need = recentHistory.count, tail = 0
                            for s in segments.reversed() where need > 0 {
                                tail += s.bytes
                                need -= s.count
                            }
                            bytes[1] += Double(tail + recentHistory.count * itemBytes)
                            bytes[2] += Double(segments.reduce(0) { $0 + $1.bytes } + whole.count * itemBytes)
                            behaviours[1] += Double(recentHistory.count)
                            behaviours[2] += Double(whole.count)
                            behaviours[0] += Double(h?.behaviors ?? 0)
                        }
                    }
                    requests += 1
                }
            }
            precondition(decoded.isEmpty || decoded.count == reader.codebook.codebook.dimension)
            let n = Double(users.count)
            return zip(names.indices, names).map { i, name in
                Cost(input: name, microsecondsPerRequest: time[i] / Double(requests) / 1000, bytesPerRequest: bytes[i] / n,
                     behavioursPerRequest: behaviours[i] / n)
            }
        }
    }
}
