import Foundation
import SheafFormats
import SheafModels
import SheafStore
import Testing

@testable import SheafCLI

/// `sheaf train`, `evaluate` and `recommend` on a tiny store made here, and their errors.
@Suite struct ModelCommandTests {
    /// A store with 12 users walking 8 items in a cycle (ids 10…17), titles for the items.
    func cycleStore(_ s: Scratch) throws -> String {
        let store = s.file("store")
        try sheaf("init", store, "--dim", "4")
        var rows: [BehaviorRecord] = []
        for u in 0..<12 {
            for p in 0..<9 { rows.append(BehaviorRecord(user: UInt64(100 + u), item: UInt64(10 + (u + p) % 8), timestamp: Int64(p * 10), label: 4)) }
        }
        try writeBehaviours(rows, format: .csv, to: s.file("b.csv"))
        try sheaf("behaviors", "load", store, "--input", s.file("b.csv"))
        try (0..<8).map { "\(10 + $0)\titem \(10 + $0)" }.joined(separator: "\n").write(toFile: s.file("titles.tsv"), atomically: true, encoding: .utf8)
        return store
    }

    let tiny = [
        "--max-length", "6", "--hidden", "16", "--layers", "1", "--inner", "32", "--dropout", "0.1",
        "--attention-dropout", "0.1", "--batch-size", "16", "--lr", "0.01", "--seed", "7", "--threads", "2",
    ]

    @Test func trainEvaluateRecommend() throws {
        let s = Scratch()
        let store = try cycleStore(s)
        let out = try sheaf(["train", store, "--output", s.file("model"), "--epochs", "30", "--json"] + tiny)
        let report = try JSONDecoder().decode(TrainingReport.self, from: Data(contentsOf: URL(fileURLWithPath: s.file("model/metrics.json"))))
        // One JSON line per epoch run (early stopping may end the run before 30), then the outcome.
        let epochLines = out.standardOutput.split(separator: "\n").filter { $0.hasPrefix("{\"") }
        #expect(epochLines.count == report.outcome.epochs.count && report.outcome.epochs.count >= 11)
        let first = try JSONDecoder().decode(EpochLog.self, from: Data(epochLines[0].utf8))
        #expect(first == report.outcome.epochs[0])
        #expect(report.users == 12 && report.items == 8 && report.behaviors == 108)
        #expect(report.trainingExamples == 12 * 6 && report.testExamples == 12)
        #expect(report.outcome.test["mrr@10"]! > 0.9, "\(report.outcome.test)")

        let evaluated = try sheaf("evaluate", store, "--model", s.file("model"), "--json").standardOutput
        let e = try JSONDecoder().decode(SheafCommand.EvaluationOutput.self, from: Data(evaluated.utf8))
        #expect(e.test == report.outcome.test && e.validation == report.outcome.validation)
        #expect(e.interests == nil && !evaluated.contains("\"interests\""), "SASRec has no interests to describe")
        // Every test target follows 8 behaviours: one bucket of the default 50, 100, 200, equal to the
        // whole test; buckets that end at 7 and 8 leave the empty ones out.
        #expect(e.testByHistory == [SheafCommand.HistoryBucketOutput(from: 0, to: 50, users: 12, metrics: e.test)])
        let cut = try sheaf("evaluate", store, "--model", s.file("model"), "--json", "--history-buckets", "7,8").standardOutput
        let c = try JSONDecoder().decode(SheafCommand.EvaluationOutput.self, from: Data(cut.utf8))
        #expect(c.testByHistory == [SheafCommand.HistoryBucketOutput(from: 8, to: 8, users: 12, metrics: e.test)])
        let none = try sheaf("evaluate", store, "--model", s.file("model"), "--json", "--history-buckets", "").standardOutput
        #expect(try JSONDecoder().decode(SheafCommand.EvaluationOutput.self, from: Data(none.utf8)).testByHistory == nil)
        #expect {
            try sheaf("evaluate", store, "--model", s.file("model"), "--matching")
        } throws: { error in
            SheafCommand.message(for: error) == "--matching describes a HyMiRec model's interests; \(s.file("model")) holds a sasrec model"
        }
        let text = try sheaf("evaluate", store, "--model", s.file("model")).standardOutput
        #expect(text.contains("test by behaviours before the target:") && text.contains("\n0–50              12"))
        for bad in ["100,50", "50,50", "5,-1", "ten", "5,"] {
            #expect {
                try sheaf("evaluate", store, "--model", s.file("model"), "--history-buckets", bad)
            } throws: { error in
                SheafCommand.message(for: error) == "--history-buckets wants strictly increasing counts ≥ 0 separated by commas, not \"\(bad)\""
            }
        }

        // User 100 walks 10, 11, …: its last item is 10 + 8 mod 8 = 10, so the next is 11.
        let rec = try sheaf("recommend", store, "--model", s.file("model"), "--user", "100", "-k", "3", "--json").standardOutput
        struct Row: Codable { var item: UInt64; var score: Float; var title: String?; var seen: Bool }
        let rows = try JSONDecoder().decode([Row].self, from: Data(rec.utf8))
        #expect(rows.count == 3 && rows[0].item == 11 && rows[0].seen)
        #expect(rows[0].score >= rows[1].score && rows[1].score >= rows[2].score)

        // The model directory carries its vocabulary: recommending reads one history. A behaviour on an
        // item added after training is left out (with a note), and the rest gives the same answer.
        try writeBehaviours([BehaviorRecord(user: 100, item: 999, timestamp: 1_000, label: 4)], format: .csv, to: s.file("late.csv"))
        try sheaf("behaviors", "load", store, "--input", s.file("late.csv"))
        let late = try sheaf("recommend", store, "--model", s.file("model"), "--user", "100", "-k", "3", "--json")
        #expect(late.standardError.contains("1 of the user's 10 behaviours are on items the model does not know; left out"))
        #expect(try JSONDecoder().decode([Row].self, from: Data(late.standardOutput.utf8)).map(\.item) == rows.map(\.item))
        // Without its vocabulary file, or with another one, the directory is refused.
        let items = try IDFile.read(path: s.file("model/items.npy"))
        #expect(items == (10...17).map(UInt64.init))
        try NPYArray.write(ids: items.dropLast() + [18], to: s.file("model/items.npy"))
        #expect(throws: ModelError.corruptCheckpoint(path: s.file("model/items.npy"), reason: "the ids do not match the model's item count and checksum")) {
            try sheaf("recommend", store, "--model", s.file("model"), "--user", "100")
        }
        try FileManager.default.removeItem(atPath: s.file("model/items.npy"))
        #expect(throws: ModelError.self) { try sheaf("recommend", store, "--model", s.file("model"), "--user", "100") }
    }

    /// On a terminal, each epoch shows a progress line with its steps, rate and running loss.
    @Test func aTerminalSeesStepsAndLoss() throws {
        let s = Scratch()
        let store = try cycleStore(s)
        let out = CommandOutput(capture: true, asTerminal: true)
        try CommandOutput.$current.withValue(out) {
            var c = try SheafCommand.parseAsRoot(["train", store, "--output", s.file("m"), "--epochs", "2"] + tiny)
            try c.run()
        }
        let err = out.standardError
        #expect(err.contains("epoch 1: 5/5 steps") && err.contains("epoch 2: 5/5 steps"), "\(err)")
        #expect(err.contains(" loss "))
        #expect(err.contains("epoch 2: loss "))  // the per-epoch summary line
    }

    @Test func resumeContinuesWhereTheRunStopped() throws {
        let s = Scratch()
        let store = try cycleStore(s)
        try sheaf(["train", store, "--output", s.file("a"), "--epochs", "2"] + tiny)
        try sheaf(["train", store, "--output", s.file("b"), "--epochs", "1"] + tiny)
        let resumed = try sheaf(["train", store, "--output", s.file("b"), "--epochs", "2", "--resume"] + tiny)
        #expect(resumed.standardError.contains("resuming after epoch 1"))
        let a = try SafeTensors.read(path: s.file("a/last.safetensors"))
        let b = try SafeTensors.read(path: s.file("b/last.safetensors"))
        #expect(try a.floats("items").values == b.floats("items").values)
        #expect(a.metadata["sheaf.logs"] == nil || a.metadata["sheaf.epochs_done"] == b.metadata["sheaf.epochs_done"])
    }

    /// A directory that holds a run is not started over unless asked (--resume or --overwrite), and
    /// only one training writes a directory at a time; a refused or failed start leaves nothing behind.
    @Test func aModelDirectoryHoldsOneRun() throws {
        let s = Scratch()
        let store = try cycleStore(s)
        let dir = s.file("m")
        try sheaf(["train", store, "--output", dir, "--epochs", "1"] + tiny)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        #expect(files == ["items.npy", "last.safetensors", "metrics.json", "model.safetensors"])  // no .lock left
        func contents() throws -> [Data] { try files.map { try Data(contentsOf: URL(fileURLWithPath: dir + "/" + $0)) } }
        let before = try contents()
        #expect(throws: ModelError.runExists(directory: dir, files: ["model.safetensors", "last.safetensors", "items.npy", "metrics.json"])) {
            try sheaf(["train", store, "--output", dir, "--epochs", "2"] + tiny)
        }
        #expect(try contents() == before)
        // A run of another process holds the directory (this process's claim stands in for it).
        let claim = try RunDirectory(claiming: dir, start: .resume)
        #expect(throws: ModelError.runDirectoryInUse(directory: dir, process: getpid())) {
            try sheaf(["train", store, "--output", dir, "--epochs", "2", "--resume"] + tiny)
        }
        #expect(throws: ModelError.runDirectoryInUse(directory: dir, process: getpid())) {
            try sheaf(["train", store, "--output", dir, "--epochs", "2", "--overwrite"] + tiny)
        }
        #expect(try contents() == before)
        claim.release()
        // --overwrite deletes the run and trains a new one: the same as a run in a new directory.
        try sheaf(["train", store, "--output", dir, "--epochs", "2", "--overwrite"] + tiny)
        try sheaf(["train", store, "--output", s.file("fresh"), "--epochs", "2"] + tiny)
        let a = try SafeTensors.read(path: dir + "/last.safetensors"), b = try SafeTensors.read(path: s.file("fresh/last.safetensors"))
        #expect(a.metadata["sheaf.epochs_done"] == "2" && b.metadata["sheaf.epochs_done"] == "2")
        #expect(try a.floats("items").values == b.floats("items").values)
        do {
            try sheaf(["train", store, "--output", dir, "--resume", "--overwrite"] + tiny)
            Issue.record("--resume with --overwrite was accepted")
        } catch {
            #expect(SheafCommand.message(for: error) == "--resume continues the run in DIR, --overwrite deletes it: give one")
        }
        // Refused starts in a new directory leave no directory.
        let empty = s.file("empty")
        try sheaf("init", empty, "--dim", "4")
        #expect(throws: ModelError.noHistories) { try sheaf(["train", empty, "--output", s.file("new/m"), "--epochs", "1"] + tiny) }
        #expect(!FileManager.default.fileExists(atPath: s.file("new")))
        #expect(throws: CLIError("nothing to resume: \(s.file("m2"))/last.safetensors does not exist")) {
            try sheaf(["train", store, "--output", s.file("m2"), "--epochs", "1", "--resume"] + tiny)
        }
        #expect(!FileManager.default.fileExists(atPath: s.file("m2")))
    }

    @Test func badInput() throws {
        let s = Scratch()
        let store = try cycleStore(s)
        // A store without histories.
        let empty = s.file("empty")
        try sheaf("init", empty, "--dim", "4")
        #expect(throws: ModelError.noHistories) { try sheaf(["train", empty, "--output", s.file("m0"), "--epochs", "1"] + tiny) }
        // Nothing to resume.
        #expect(throws: CLIError("nothing to resume: \(s.file("m1"))/last.safetensors does not exist")) {
            try sheaf(["train", store, "--output", s.file("m1"), "--epochs", "1", "--resume"] + tiny)
        }
        try sheaf(["train", store, "--output", s.file("m"), "--epochs", "1"] + tiny)
        // An unknown user.
        #expect(throws: ModelError.unknownUser(5)) { try sheaf("recommend", store, "--model", s.file("m"), "--user", "5") }
        // Another store's model: same dimension, other items.
        let other = s.file("other")
        try sheaf("init", other, "--dim", "4")
        try writeBehaviours([BehaviorRecord(user: 1, item: 99, timestamp: 1, label: 1)], format: .csv, to: s.file("o.csv"))
        try sheaf("behaviors", "load", other, "--input", s.file("o.csv"))
        #expect(throws: ModelError.storeMismatch("the model was trained on 8 items with other ids; this store's histories hold 1")) {
            try sheaf("evaluate", other, "--model", s.file("m"))
        }
        // A corrupt checkpoint, and a directory without one.
        try Data("not a checkpoint".utf8).write(to: URL(fileURLWithPath: s.file("m/model.safetensors")))
        #expect {
            try sheaf("evaluate", store, "--model", s.file("m"))
        } throws: { error in
            guard case ModelError.corruptCheckpoint(let path, _) = error else { return false }
            return path == s.file("m") + "/model.safetensors"
        }
        #expect {
            try sheaf("recommend", store, "--model", s.file("nowhere"), "--user", "100")
        } throws: { error in
            if case ModelError.corruptCheckpoint = error { return true }
            return false
        }
        #expect(!FileManager.default.fileExists(atPath: s.file("nowhere")))  // reading creates no directory
        // Bad options.
        #expect(throws: (any Error).self) { try sheaf(["train", store, "--output", s.file("x"), "--hidden", "15"]) }
        #expect(throws: (any Error).self) { try sheaf(["train", store, "--output", s.file("x"), "--schedule", "linear"]) }
    }
}
