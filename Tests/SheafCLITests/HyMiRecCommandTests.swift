import Foundation
import SheafFormats
import SheafModels
import SheafStore
import Testing

@testable import SheafCLI

/// `sheaf train --model hymirec`, then `evaluate` and `recommend` (with `--per-interest`) on a tiny
/// store with codes, the library call for a user's interests, and the refusals.
@Suite struct HyMiRecCommandTests {
    /// A store with a codebook, 40 coded items (ids 0…39, titled) and 30 users of 24 behaviours.
    func store(_ s: Scratch) throws -> (store: String, embeddings: String) {
        let (store, emb) = try preparedStore(s, dimension: 16, items: 40)
        try (0..<40).map { "\($0)\titem \($0)" }.joined(separator: "\n").write(toFile: s.file("titles.tsv"), atomically: true, encoding: .utf8)
        try sheaf("items", "load", store, "--input", emb, "--titles", s.file("titles.tsv"))
        try writeBehaviours(behaviourRows(users: 30, perUser: 24, items: 40, seed: 5), format: .csv, to: s.file("b.csv"))
        try sheaf("behaviors", "load", store, "--input", s.file("b.csv"))
        return (store, emb)
    }

    let tiny = [
        "--model", "hymirec", "--hidden", "16", "--heads", "2", "--inner", "32", "--layers", "1", "--lightweight-width", "16",
        "--coarse-queries", "2", "--interests", "2", "--window", "2", "--recent", "6", "--negatives", "8", "--batch-size", "64",
        "--lr", "0.003", "--seed", "3", "--threads", "2",
    ]

    struct Row: Codable { var item: UInt64; var score: Float; var title: String?; var seen: Bool }

    @Test func trainEvaluateRecommend() throws {
        let s = Scratch()
        let (store, _) = try store(s)
        try sheaf(["train", store, "--output", s.file("m"), "--epochs", "2"] + tiny)
        let report = try JSONDecoder().decode(TrainingReport.self, from: Data(contentsOf: URL(fileURLWithPath: s.file("m/metrics.json"))))
        #expect(report.model == "hymirec" && report.content == "codes (code-space input layer)")
        // 24 behaviours: 22 train, so 21 training cuts per user.
        #expect(report.users == 30 && report.trainingExamples == 30 * 21 && report.testExamples == 30)
        #expect(report.outcome.epochs.count == 2 && report.outcome.epochs.allSatisfy { $0.trainingLoss.isFinite })
        let evaluated = try sheaf("evaluate", store, "--model", s.file("m"), "--json").standardOutput
        let e = try JSONDecoder().decode(SheafCommand.EvaluationOutput.self, from: Data(evaluated.utf8))
        #expect(e.test == report.outcome.test && e.validation == report.outcome.validation)
        // How the two interests are used on test: every target and top item comes from one of them.
        let u = try #require(e.interests)
        #expect(u.interests == 2 && u.examples == 30 && u.top == 10 && u.alone.count == 2)
        #expect(abs(u.targetShare.reduce(0, +) - 1) < 1e-12 && abs(u.topShare.reduce(0, +) - 1) < 1e-12)
        #expect(u.meanPairwiseCosine.map { (-1...1).contains($0) } == true)
        let text = try sheaf("evaluate", store, "--model", s.file("m")).standardOutput
        #expect(text.contains("interests on test (s = 2, 30 users") && text.contains("max over interests: Recall@10"))
        #expect(e.matching == nil && !evaluated.contains("\"matching\""), "--matching is opt-in")
        // --matching: the two rules on the 630 training windows (2 targets each but the last cut's 1).
        let matched = try sheaf("evaluate", store, "--model", s.file("m"), "--json", "--matching").standardOutput
        let m = try #require(try JSONDecoder().decode(SheafCommand.EvaluationOutput.self, from: Data(matched.utf8)).matching)
        #expect(m.examples == 30 * 21 && m.targets == 30 * (20 * 2 + 1) && m.differing <= m.examples && m.targetsMoved <= m.targets)
        #expect(try sheaf("evaluate", store, "--model", s.file("m"), "--matching").standardOutput
            .contains("matching on 630 training windows: greedy would send targets of \(m.differing) "))

        // User 1's top items, and each interest's: an item's score is its best interest's.
        let rec = try sheaf("recommend", store, "--model", s.file("m"), "--user", "1", "-k", "5", "--json").standardOutput
        let rows = try JSONDecoder().decode([Row].self, from: Data(rec.utf8))
        #expect(rows.count == 5 && zip(rows, rows.dropFirst()).allSatisfy { $0.score >= $1.score })
        #expect(rows.allSatisfy { $0.title == "item \($0.item)" })
        let per = try sheaf("recommend", store, "--model", s.file("m"), "--user", "1", "-k", "5", "--per-interest", "--json").standardOutput
        let interests = try JSONDecoder().decode([[Row]].self, from: Data(per.utf8))
        #expect(interests.count == 2 && interests.allSatisfy { $0.count == 5 })
        let best = interests.flatMap { $0 }.max { $0.score < $1.score }!
        #expect(best.item == rows[0].item && abs(best.score - rows[0].score) < 1e-5)

        // The library call: the s interests of a user, unit vectors of the refined width, the same as
        // the model's scores need.
        let checkpoints = try CheckpointStore(directory: s.file("m"))
        let model = try checkpoints.load(HyMiRec.self, for: nil)
        let opened = try Store(path: store)
        let r = try model.interests(of: 1, in: opened, vocabulary: try checkpoints.vocabulary())
        #expect(r.count == 2 && r.allSatisfy { $0.count == 16 && abs($0.reduce(0) { $0 + $1 * $1 } - 1) < 1e-4 })
        #expect(throws: ModelError.unknownUser(2)) { try model.interests(of: 2, in: opened, vocabulary: try checkpoints.vocabulary()) }
    }

    /// The float32 embeddings instead of the codes, and the ablation flags, are the same command.
    @Test func floatContentAndAblations() throws {
        let s = Scratch()
        let (store, emb) = try store(s)
        try sheaf(["train", store, "--output", s.file("f"), "--epochs", "1", "--embeddings", emb, "--no-lightweight", "--matching", "greedy", "--item-ids"] + tiny)
        let report = try JSONDecoder().decode(TrainingReport.self, from: Data(contentsOf: URL(fileURLWithPath: s.file("f/metrics.json"))))
        #expect(report.content == "float32 \(emb)")
        let meta = try SafeTensors.read(path: s.file("f/model.safetensors")).metadata
        let c = try JSONDecoder().decode(HyMiRecConfiguration.self, from: Data(meta["sheaf.model_configuration"]!.utf8))
        #expect(!c.lightweight && c.matching == .greedy && c.itemIDs && c.interests == 2 && c.window == 2)
        #expect(meta["sheaf.model"] == "hymirec")
    }

    @Test func badInput() throws {
        let s = Scratch()
        let (store, _) = try store(s)
        try sheaf(["train", store, "--output", s.file("m"), "--epochs", "1"] + tiny)
        // Resuming a HyMiRec run as SASRec names both.
        #expect(throws: ModelError.corruptCheckpoint(path: s.file("m/last.safetensors"), reason: "a hymirec checkpoint, not sasrec")) {
            try sheaf("train", store, "--output", s.file("m"), "--epochs", "2", "--resume", "--hidden", "16")
        }
        // --per-interest needs HyMiRec.
        try sheaf("train", store, "--output", s.file("sasrec"), "--epochs", "1", "--hidden", "16", "--max-length", "6")
        #expect(throws: CLIError("--per-interest needs a HyMiRec model; \(s.file("sasrec")) holds SASRec")) {
            try sheaf("recommend", store, "--model", s.file("sasrec"), "--user", "1", "--per-interest")
        }
        // SASRec's --content means nothing to HyMiRec; zero interests are refused.
        #expect(throws: (any Error).self) { try sheaf(["train", store, "--output", s.file("x"), "--content"] + tiny) }
        #expect(throws: (any Error).self) { try sheaf(["train", store, "--output", s.file("x")] + tiny + ["--interests", "0"]) }
        #expect(!FileManager.default.fileExists(atPath: s.file("x")))
        // A store without codes for an item of the histories.
        let bare = s.file("bare")
        try sheaf("init", bare, "--dim", "16")
        try writeBehaviours([BehaviorRecord(user: 1, item: 7, timestamp: 1, label: 1)], format: .csv, to: s.file("o.csv"))
        try sheaf("behaviors", "load", bare, "--input", s.file("o.csv"))
        #expect(throws: (any Error).self) { try sheaf(["train", bare, "--output", s.file("y"), "--epochs", "1"] + tiny) }
        #expect(!FileManager.default.fileExists(atPath: s.file("y")))
    }
}
