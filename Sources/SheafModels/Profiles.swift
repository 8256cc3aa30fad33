import Foundation
import SheafCodebook
import SheafNN
import SheafQuantizer
import SheafStore

/// What `ProfileBuilder.build` did.
public struct ProfileBuildReport: Codable, Sendable {
    /// Users considered (with at least one behaviour under the cut).
    public var users: Int = 0
    /// Profiles written in this run.
    public var built: Int = 0
    /// Users whose stored profile was already current (same model, codebook and behaviour count).
    public var current: Int = 0
    /// Behaviours summarised by the profiles written.
    public var behaviors: Int = 0
    /// Stored bytes of the profiles written (records, headers and checksums included).
    public var bytes: Int = 0
    public var seconds: Double = 0
}

/// Computes and stores CHIME profiles: every user's h_t (from the behaviours the cut keeps), their
/// ICM codes, and the code histogram, written in one write transaction per batch of users.
///
/// Building is resumable and incremental: a user whose stored profile has the same model version,
/// codebook version and behaviour count is skipped, so a run stopped part-way continues where it
/// stopped, and a run after new behaviours rebuilds only the users who have them.
public struct ProfileBuilder {
    public let model: CHIME
    public let modelVersion: UInt32
    public let icm: InterestCodebook
    public let threads: Int

    public init(model: CHIME, modelVersion: UInt32, icm: InterestCodebook, threads: Int = Tape.defaultThreads) throws(ModelError) {
        guard icm.modelVersion == modelVersion else {
            throw .invalidConfiguration("the ICM codebook was trained for model \(icm.modelVersion), not \(modelVersion)")
        }
        guard icm.codebook.dimension == model.configuration.width else {
            throw .storeMismatch("the ICM codebook is \(icm.codebook.dimension)-dimensional, the model's h_t \(model.configuration.width)")
        }
        self.model = model
        self.modelVersion = modelVersion
        self.icm = icm
        self.threads = threads
    }

    /// Trains an ICM codebook on the h_t of `users` (L2-normalised, the training users' whole cut histories).
    public static func trainCodebook(
        model: CHIME, modelVersion: UInt32, data: SequenceDataset, users: [Int], content: ContentTable,
        configuration: QuantizerConfiguration, threads: Int = Tape.defaultThreads, progress: ((String) -> Void)? = nil
    ) throws -> InterestCodebook {
        let reps = model.representations(of: users, in: data, content: content, threads: threads)
        let vectors = reps.flatMap { $0 }
        let count = vectors.count / model.configuration.width
        return try InterestCodebook.train(
            vectors, count: count, dimension: model.configuration.width, configuration: configuration, modelVersion: modelVersion,
            progress: progress)
    }

    /// The histogram of one user's h_t rows.
    func histogram(_ reps: [Float], encoder: ResidualEncoder) throws -> CodeHistogram {
        let (codes, _) = try encoder.encode(reps, count: reps.count / model.configuration.width)
        return CodeHistogram(codes: codes, levels: icm.codebook.levels, modelVersion: modelVersion, codebookVersion: icm.version)
    }

    /// Builds the profiles of `users` (indices into `data.users`; `data` already cut) in `store`.
    /// - Parameters:
    ///   - content: the content table (N + 1 rows) of `data`'s vocabulary.
    ///   - usersPerTransaction: users computed and written per write transaction.
    ///   - progress: called after each batch with (users done, users in all).
    public func build(
        users: [Int], in data: SequenceDataset, content: ContentTable, store: Store, usersPerTransaction: Int = 256,
        progress: ((Int, Int) -> Void)? = nil
    ) throws -> ProfileBuildReport {
        let started = DispatchTime.now().uptimeNanoseconds
        var report = ProfileBuildReport()
        let encoder = ResidualEncoder(codebook: icm.codebook, threads: threads)
        let version = icm.version
        var start = 0
        while start < users.count {
            let batch = Array(users[start..<min(users.count, start + max(1, usersPerTransaction))])
            start += batch.count
            let pending = try store.read { txn in
                try batch.filter { u in
                    let s = data.users[u]
                    guard let stored = try txn.profile(user: s.user),
                        let h = try? CodeHistogram(stored, user: s.user)
                    else { return true }
                    return !(h.modelVersion == modelVersion && h.codebookVersion == version && h.behaviors == s.count)
                }
            }
            report.users += batch.count
            report.current += batch.count - pending.count
            if !pending.isEmpty {
                let reps = model.representations(of: pending, in: data, content: content, threads: threads)
                let profiles = try zip(pending, reps).map { u, r in (data.users[u].user, try histogram(r, encoder: encoder).profile) }
                try store.write { txn in
                    for (user, profile) in profiles { try txn.putProfile(profile, user: user) }
                }
                report.built += profiles.count
                report.behaviors += pending.reduce(0) { $0 + data.users[$1].count }
                report.bytes += profiles.reduce(0) { $0 + $1.1.storedSize }
            }
            progress?(start, users.count)
        }
        report.seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        return report
    }
}

/// What a ranking service opens once and calls per request: a user's profile as (code, count)
/// arrays, read from the store without touching the history, and checked against the model.
public struct ProfileReader: Sendable {
    public let modelVersion: UInt32
    public let codebookVersion: UInt32
    public let levels: Int
    public let codesPerLevel: Int
    /// The ICM codebook the profiles were made with (for `decodedMean`).
    public let codebook: InterestCodebook

    /// The versions of a model directory (its `model.safetensors` and `icm.safetensors`).
    /// - Throws: `ModelError.corruptCheckpoint`; `.invalidConfiguration` when no profiles were built.
    public init(modelDirectory: String) throws {
        let meta = try CHIMECheckpoint(directory: modelDirectory).metadata()
        guard let version = meta["sheaf.model_version"].flatMap(UInt32.init) else {
            throw ModelError.corruptCheckpoint(path: modelDirectory + "/model.safetensors", reason: "no readable sheaf.model_version")
        }
        guard let icm = try InterestCodebook.load(from: modelDirectory) else {
            throw ModelError.invalidConfiguration("\(modelDirectory) has no ICM codebook yet: run `sheaf profiles build`")
        }
        self.init(modelVersion: version, codebook: icm)
    }

    public init(modelVersion: UInt32, codebook: InterestCodebook) {
        self.modelVersion = modelVersion
        codebookVersion = codebook.version
        levels = codebook.codebook.levels
        codesPerLevel = codebook.codebook.codesPerLevel
        self.codebook = codebook
    }

    /// The profile as one unit vector in CHIME's space (`InterestCodebook.decodedMean`); its dot
    /// product with `CHIME.itemKeys` rows is CHIME's score of those items for the user.
    public func decodedMean(_ histogram: CodeHistogram) -> [Float] { codebook.decodedMean(of: histogram) }

    /// The user's histogram, or nil when the store holds no profile for them.
    /// - Throws: `ModelError.profileMismatch` (made by another model or ICM codebook), `.corruptProfile`.
    public func histogram(user: UInt64, in txn: ReadTransaction) throws -> CodeHistogram? {
        guard let stored = try txn.profile(user: user) else { return nil }
        guard stored.modelVersion == modelVersion else {
            throw ModelError.profileMismatch(user: user, reason: "made by model \(stored.modelVersion), this is model \(modelVersion)")
        }
        let h = try CodeHistogram(stored, user: user)
        guard h.codebookVersion == codebookVersion else {
            throw ModelError.profileMismatch(user: user, reason: "made with ICM codebook \(h.codebookVersion), this model's is \(codebookVersion)")
        }
        for e in h.entries where e.level >= levels || e.code >= codesPerLevel {
            throw ModelError.corruptProfile(user: user, reason: "entry (\(e.level), \(e.code)) outside \(levels) levels × \(codesPerLevel) codes")
        }
        return h
    }

    /// The histograms of several users, read in one read transaction (nil where none is stored).
    public func histograms(users: [UInt64], store: Store) throws -> [CodeHistogram?] {
        try store.read { txn in try users.map { try histogram(user: $0, in: txn) } }
    }
}
