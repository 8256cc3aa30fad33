import Foundation
import SheafFormats
import SheafModels
import SheafStore
import Testing

@testable import SheafCLI

/// `sheaf chime train`, `sheaf profiles build` and `sheaf profile` on tiny stores made here, and
/// their refusals.
@Suite struct CHIMECommandTests {
    /// A store with a codebook, 40 items (ids 0…39) and 30 users of 24 rated behaviours.
    func chimeStore(_ s: Scratch, seed: UInt64 = 5, dimension: Int = 16) throws -> String {
        let (store, emb) = try preparedStore(s, dimension: dimension, items: 40)
        try sheaf("items", "load", store, "--input", emb)
        try writeBehaviours(behaviourRows(users: 30, perUser: 24, items: 40, seed: seed), format: .csv, to: s.file("b.csv"))
        try sheaf("behaviors", "load", store, "--input", s.file("b.csv"))
        return store
    }

    let tiny = [
        "--width", "16", "--heads", "2", "--inner", "32", "--layers", "1", "--max-length", "8", "--content-width", "8",
        "--future", "4", "--batch-size", "8", "--held-out", "0.2", "--threads", "2",
    ]

    func train(_ store: String, _ out: String, epochs: Int = 2, seed: Int = 1) throws -> CHIMETrainingReport {
        try sheaf(["chime", "train", store, "--output", out, "--epochs", "\(epochs)", "--seed", "\(seed)", "--quiet"] + tiny)
        return try JSONDecoder().decode(CHIMETrainingReport.self, from: Data(contentsOf: URL(fileURLWithPath: out + "/metrics.json")))
    }

    struct Shown: Codable {
        var user: UInt64, modelVersion: UInt32, codebookVersion: UInt32, behaviors: Int, bytes: Int
        var historyBehaviors: Int, historyBytes: Int
        var entries: [CodeHistogram.Entry]
    }

    func show(_ store: String, _ user: UInt64, model: String) throws -> Shown {
        let out = try sheaf("profile", store, "--user", "\(user)", "--model", model, "--json").standardOutput
        return try JSONDecoder().decode(Shown.self, from: Data(out.utf8))
    }

    @Test func trainBuildAndReadProfiles() throws {
        let s = Scratch()
        let store = try chimeStore(s)
        let report = try train(store, s.file("m"))
        #expect(report.outcome.epochs.count == 2 && report.users == 30 && report.behaviors == 720)
        #expect(report.outcome.trainingUsers + report.outcome.heldOutUsers == 30 && report.outcome.heldOutUsers > 0)
        for e in report.outcome.epochs {
            #expect(e.trainingImmediate.isFinite && e.heldOutHolistic.isFinite && e.heldOutImmediate > 0)
        }
        let built = try sheaf("profiles", "build", store, "--model", s.file("m"), "--levels", "2", "--codes", "4", "--json").standardOutput
        let first = try JSONDecoder().decode(ProfileBuildReport.self, from: Data(built.utf8))
        #expect(first.built == 30 && first.current == 0 && first.behaviors == 720)
        #expect(try statistics(store).profiles == 30)
        // Every h_t is counted once per level, and the profile names the model that made it.
        let p = try show(store, 1, model: s.file("m"))
        #expect(p.behaviors == 24 && p.historyBehaviors == 24 && p.modelVersion == report.modelVersion)
        for l in 0..<2 { #expect(p.entries.filter { $0.level == l }.map(\.count).reduce(0, +) == 24) }
        #expect(p.entries.allSatisfy { $0.code < 4 && $0.count > 0 })
        // A second run finds every profile current, and writes nothing.
        let again = try JSONDecoder().decode(
            ProfileBuildReport.self, from: Data(try sheaf("profiles", "build", store, "--model", s.file("m"), "--json").standardOutput.utf8))
        #expect(again.built == 0 && again.current == 30)
        // The library call a ranking service makes returns the same histogram.
        let reader = try ProfileReader(modelDirectory: s.file("m"))
        let h = try {
            var o = StoreOptions()
            o.readOnly = true
            // Closed again before the commands below open the store (one environment per file per process).
            return try reader.histograms(users: [1, 99_999], store: try Store(path: store, options: o))
        }()
        #expect(h[0]!.entries == p.entries && h[1] == nil)
        #expect(h[0]!.level(0).counts.reduce(0, +) == 24)
        // `profiles export`: one decoded unit vector per user, with ids and behaviour counts beside it.
        try sheaf("profiles", "export", store, "--model", s.file("m"), "--output", s.file("v.npy"), "--ids-output", s.file("i.npy"),
                  "--behaviors-output", s.file("n.npy"))
        let vectors = try NPYArray(contentsOf: s.file("v.npy"))
        #expect(vectors.shape == [30, 16])
        let ids = try NPYArray(contentsOf: s.file("i.npy")).ids()
        let users = try histories(store).keys.sorted()
        #expect(ids == users && users.count == 30, "\(ids)")
        #expect(try NPYArray(contentsOf: s.file("n.npy")).ids() == [UInt64](repeating: 24, count: 30))
        let row = Array(try vectors.floats()[(ids.firstIndex(of: 1)! * 16)..<(ids.firstIndex(of: 1)! * 16 + 16)])
        #expect(row == reader.decodedMean(h[0]!) && abs(row.reduce(0) { $0 + $1 * $1 } - 1) < 1e-5)
    }

    /// On a terminal each epoch shows a progress line with its steps and running loss; `--json` prints
    /// one line per epoch, equal to the metrics file's.
    @Test func progressAndJSONLines() throws {
        let s = Scratch()
        let store = try chimeStore(s)
        let out = CommandOutput(capture: true, asTerminal: true)
        try CommandOutput.$current.withValue(out) {
            var c = try SheafCommand.parseAsRoot(["chime", "train", store, "--output", s.file("m"), "--epochs", "2", "--json"] + tiny)
            try c.run()
        }
        #expect(out.standardError.contains("epoch 1: 4/4 steps") && out.standardError.contains("epoch 2: 4/4 steps"))
        #expect(out.standardError.contains(" loss ") && out.standardError.contains("held out: immediate"))
        let lines = out.standardOutput.split(separator: "\n").filter { $0.hasPrefix("{\"") }
        let report = try JSONDecoder().decode(CHIMETrainingReport.self, from: Data(contentsOf: URL(fileURLWithPath: s.file("m/metrics.json"))))
        #expect(lines.count == 2)
        #expect(try JSONDecoder().decode(CHIMEEpochLog.self, from: Data(lines[0].utf8)) == report.outcome.epochs[0])
    }

    /// A run stopped after epoch 1 and resumed equals the straight run: the same parameters, optimizer
    /// moments and losses. Another configuration is refused.
    @Test func resumeContinuesTheSameRun() throws {
        let s = Scratch()
        let store = try chimeStore(s)
        let straight = try train(store, s.file("a"), epochs: 3)
        _ = try train(store, s.file("b"), epochs: 1)
        let out = try sheaf(["chime", "train", store, "--output", s.file("b"), "--epochs", "3", "--seed", "1", "--resume"] + tiny)
        #expect(out.standardError.contains("resuming after epoch 1"))
        let resumed = try JSONDecoder().decode(CHIMETrainingReport.self, from: Data(contentsOf: URL(fileURLWithPath: s.file("b/metrics.json"))))
        func losses(_ r: CHIMETrainingReport) -> [[Double]] {
            r.outcome.epochs.map { [$0.trainingLoss, $0.trainingImmediate, $0.trainingHolistic, $0.heldOutImmediate, $0.heldOutHolistic] }
        }
        #expect(losses(resumed) == losses(straight) && resumed.modelVersion == straight.modelVersion)
        let a = try SafeTensors.read(path: s.file("a/last.safetensors")), b = try SafeTensors.read(path: s.file("b/last.safetensors"))
        #expect(a.entries.count == b.entries.count && a.entries.count > 40)
        for e in a.entries { #expect(try a.floats(e.name).values == b.floats(e.name).values, "\(e.name)") }
        // A new run is not started over it unasked.
        let finished = try Data(contentsOf: URL(fileURLWithPath: s.file("b/model.safetensors")))
        #expect(throws: ModelError.runExists(directory: s.file("b"), files: ["model.safetensors", "last.safetensors", "metrics.json"])) {
            try sheaf(["chime", "train", store, "--output", s.file("b"), "--epochs", "3", "--seed", "1"] + tiny)
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: s.file("b/model.safetensors"))) == finished)
        #expect(throws: ModelError.invalidConfiguration(
            "the run in \(s.file("b")) has other training settings (only --epochs and --threads may change); use a new directory")) {
            try sheaf(["chime", "train", store, "--output", s.file("b"), "--epochs", "4", "--seed", "2", "--resume"] + tiny)
        }
    }

    /// A model with item-ID embeddings is refused once the store's histories hold other items.
    @Test func itemIDModelsNeedTheirVocabulary() throws {
        let s = Scratch()
        let store = try chimeStore(s)
        try sheaf(["chime", "train", store, "--output", s.file("m"), "--epochs", "1", "--item-ids", "--quiet"] + tiny)
        try sheaf("profiles", "build", store, "--model", s.file("m"), "--levels", "1", "--codes", "4", "--quiet")
        let items = Set(try histories(store).values.flatMap(\.itemIDs)).count
        try writeBehaviours([BehaviorRecord(user: 1, item: 39_999, timestamp: 2_000_000_000, label: 5)], format: .csv, to: s.file("new.csv"))
        try sheaf("behaviors", "load", store, "--input", s.file("new.csv"))
        let before = try statistics(store)
        #expect(throws: ModelError.storeMismatch(
            "the model has item-ID embeddings for \(items) items; the store's histories now hold \(items + 1) items with other ids. Retrain, or train without --item-ids")) {
            try sheaf("profiles", "build", store, "--model", s.file("m"), "--quiet")
        }
        #expect(try statistics(store) == before)
    }

    /// `--before T` summarises only the behaviours before T: the profile counts exactly them, and
    /// rebuilding without the cut replaces it.
    @Test func beforeExcludesLaterBehaviours() throws {
        let s = Scratch()
        let store = try chimeStore(s)
        _ = try train(store, s.file("m"))
        let all = try histories(store)
        let user: UInt64 = 8
        let cutoff = all[user]!.timestamps[10]
        let expected = try #require(all[user]).timestamps.filter { $0 < cutoff }.count
        try sheaf("profiles", "build", store, "--model", s.file("m"), "--levels", "2", "--codes", "4", "--before", "\(cutoff)", "--quiet")
        let cut = try show(store, user, model: s.file("m"))
        #expect(cut.behaviors == expected && expected < 24 && cut.historyBehaviors == 24)
        for l in 0..<2 { #expect(cut.entries.filter { $0.level == l }.map(\.count).reduce(0, +) == expected) }
        try sheaf("profiles", "build", store, "--model", s.file("m"), "--quiet")
        #expect(try show(store, user, model: s.file("m")).behaviors == 24)
    }

    /// Profiles made by another model (or another ICM codebook) are refused, not misread; nothing is
    /// written by a refused build.
    @Test func otherModelsAndStoresAreRefused() throws {
        let s = Scratch()
        let store = try chimeStore(s)
        _ = try train(store, s.file("m"))
        _ = try train(store, s.file("m2"), seed: 2)
        try sheaf("profiles", "build", store, "--model", s.file("m"), "--levels", "2", "--codes", "4", "--quiet")
        let before = try histogramsOf(store, model: s.file("m"))
        // Reading user 1's profile with model m2, which has not made it.
        let mVersion = try ProfileReader(modelDirectory: s.file("m")).modelVersion
        #expect(throws: ModelError.self) { _ = try show(store, 1, model: s.file("m2")) }  // m2 has no ICM codebook yet
        try FileManager.default.copyItem(atPath: s.file("m/icm.safetensors"), toPath: s.file("m2/icm.safetensors"))
        // m's ICM codebook copied into m2 belongs to m: building with it is refused before anything is written.
        #expect(throws: CLIError.self) { try sheaf("profiles", "build", store, "--model", s.file("m2"), "--quiet") }
        #expect(try histogramsOf(store, model: s.file("m")) == before)
        // With its own codebook, m2 rebuilds every profile (another model version); m then refuses them.
        try sheaf("profiles", "build", store, "--model", s.file("m2"), "--retrain-codebook", "--levels", "2", "--codes", "4", "--quiet")
        #expect(throws: ModelError.profileMismatch(user: 1, reason: "made by model \(try ProfileReader(modelDirectory: s.file("m2")).modelVersion), this is model \(mVersion)")) {
            _ = try show(store, 1, model: s.file("m"))
        }
        // An unknown user: refused, nothing written.
        let stats = try statistics(store)
        #expect(throws: ModelError.unknownUser(424_242)) {
            try sheaf("profiles", "build", store, "--model", s.file("m"), "--users", "1", "424242", "--quiet")
        }
        #expect(try statistics(store) == stats)

        // Another store, whose codebook 1 was trained on other embeddings: not the one m was trained with.
        let other = Scratch()
        let otherStore = other.file("store")
        let emb = other.file("items.npy")
        try NPYArray.write(floats: clustered(count: 40, dimension: 16, seed: 77), shape: [40, 16], to: emb)
        try sheaf("init", otherStore, "--dim", "16")
        try sheaf("codebook", "train", otherStore, "--input", emb, "--codes", "16", "--levels", "2", "--iterations", "5")
        try sheaf("items", "load", otherStore, "--input", emb)
        try sheaf("behaviors", "load", otherStore, "--input", s.file("b.csv"))
        #expect(throws: ModelError.storeMismatch("this store's codebook 1 is not the one the model was trained with (another store?)")) {
            try sheaf("profiles", "build", otherStore, "--model", s.file("m"), "--quiet")
        }
        #expect(try statistics(otherStore).profiles == 0)
        // Another dimension.
        let narrow = Scratch()
        let narrowStore = try chimeStore(narrow, dimension: 8)
        #expect(throws: ModelError.storeMismatch("the model reads 16-dimensional content; the store holds 8-dimensional embeddings")) {
            try sheaf("profiles", "build", narrowStore, "--model", s.file("m"), "--quiet")
        }
        #expect(try statistics(narrowStore).profiles == 0)
        // A damaged checkpoint.
        let path = s.file("m/model.safetensors")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        try bytes.prefix(bytes.count - 9).write(to: URL(fileURLWithPath: path))
        #expect(throws: ModelError.self) { try sheaf("profiles", "build", store, "--model", s.file("m"), "--quiet") }
        #expect(try statistics(store).profiles == 30)
    }

    func histogramsOf(_ store: String, model: String) throws -> [CodeHistogram?] {
        var o = StoreOptions()
        o.readOnly = true
        return try ProfileReader(modelDirectory: model).histograms(users: (0..<30).map { UInt64($0 * 7 + 1) }, store: try Store(path: store, options: o))
    }
}
