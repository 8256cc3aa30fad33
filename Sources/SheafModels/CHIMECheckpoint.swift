import Foundation
import SheafCodebook
import SheafFormats
import SheafNN
import SheafRandom
import SheafStore

/// Helpers of the content a model reads (`ContentTable` holds it: the store's codes, or float32 rows).
public enum ItemContent {
    /// The content table a model reads: [N + 1, D], row 0 zeros (padding), row i the content of dense
    /// item i (`rows` holds items 1…N). Frozen: it never gets a gradient.
    public static func table(_ rows: [Float], dimension: Int) -> Tensor {
        precondition(dimension > 0 && rows.count % dimension == 0, "content rows must be whole rows of \(dimension)")
        return Tensor(shape: [rows.count / dimension + 1, dimension], values: [Float](repeating: 0, count: dimension) + rows)
    }

    /// A fingerprint of a codebook's centroids and settings ("id/hex"), so that a model is never
    /// applied to content decoded by another codebook.
    public static func fingerprint(_ codebook: Codebook) -> String {
        var h = SplitMix64.mix(UInt64(codebook.levels) << 32 ^ UInt64(codebook.codesPerLevel) ^ UInt64(codebook.dimension) << 48)
        for v in codebook.centroids { h = SplitMix64.mix(h ^ UInt64(v.bitPattern)) }
        for r in codebook.magnitudeRanges { h = SplitMix64.mix(h ^ UInt64(r.lower.bitPattern) ^ UInt64(r.upper.bitPattern) << 32) }
        return "\(codebook.id)/\(String(h, radix: 16))"
    }
}

/// A trained CHIME model on disk: `DIR/model.safetensors` holds the best epoch's parameters, and its
/// metadata everything needed to apply it safely to a store.
///
/// Metadata keys (strings): `sheaf.model` ("chime"), `sheaf.chime_configuration` and
/// `sheaf.training_configuration` (JSON), `sheaf.content_dimension`, `sheaf.side_feature_width`,
/// `sheaf.items` and `sheaf.items_checksum` (the ID table's items; 0 without item ids),
/// `sheaf.codebook` (the fingerprint of the active codebook whose decoded codes it was trained on),
/// `sheaf.history_cut` (JSON), `sheaf.held_out_fraction`, `sheaf.best_epoch` and
/// `sheaf.model_version` (a 32-bit fingerprint of the parameters, which tags every profile it makes).
public struct CHIMECheckpoint: Sendable {
    public let directory: String
    public var modelPath: String { directory + "/model.safetensors" }

    public init(directory: String) throws {
        self.directory = directory
        // Created by the first save: reading a missing directory creates nothing.
    }

    /// A 32-bit fingerprint of the parameter values (the profiles' model version).
    public static func version(of model: CHIME) -> UInt32 {
        var h: UInt64 = 0xC41E
        for (name, t) in model.namedParameters {
            for byte in name.utf8 { h = SplitMix64.mix(h ^ UInt64(byte)) }
            for v in t.values { h = SplitMix64.mix(h ^ UInt64(v.bitPattern)) }
        }
        return UInt32(truncatingIfNeeded: h ^ (h >> 32))
    }

    /// Writes the model's current parameters.
    public func save(
        _ model: CHIME, training: TrainingConfiguration, codebook: String, cut: HistoryCut, heldOutFraction: Double,
        vocabulary: ItemVocabulary, bestEpoch: Int
    ) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        func json(_ v: some Encodable) throws -> String { String(decoding: try encoder.encode(v), as: UTF8.self) }
        let meta: [String: String] = [
            "sheaf.model": "chime",
            "sheaf.chime_configuration": try json(model.configuration),
            "sheaf.training_configuration": try json(training),
            "sheaf.content_dimension": String(model.contentDimension),
            "sheaf.side_feature_width": String(model.sideFeatureWidth),
            "sheaf.items": String(model.itemCount),
            "sheaf.items_checksum": model.configuration.itemIDs ? CheckpointStore.checksum(vocabulary) : "",
            "sheaf.codebook": codebook,
            "sheaf.history_cut": try json(cut),
            "sheaf.held_out_fraction": String(heldOutFraction),
            "sheaf.best_epoch": String(bestEpoch),
            "sheaf.model_version": String(Self.version(of: model)),
        ]
        try CheckpointStore.prepare(directory)
        try Checkpoint.save(model.namedParameters, metadata: meta, to: modelPath)
    }

    public var lastPath: String { directory + "/last.safetensors" }
    /// Whether a run can resume here.
    public var hasLast: Bool { FileManager.default.fileExists(atPath: lastPath) }

    /// Writes the run's state after an epoch: the current parameters, the optimizer's moments, the
    /// epochs done, the logs and the best epoch (whose parameters are `model.safetensors`).
    public func saveLast(_ trainer: CHIMETrainer) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let state = trainer.optimizerState
        var meta: [String: String] = [
            "sheaf.model": "chime-run",
            "sheaf.chime_configuration": String(decoding: try encoder.encode(trainer.model.configuration), as: UTF8.self),
            "sheaf.training_configuration": String(decoding: try encoder.encode(trainer.configuration), as: UTF8.self),
            "sheaf.epochs_done": String(trainer.epochsDone), "sheaf.optimizer_steps": String(state.stepCount),
            "sheaf.logs": String(decoding: try encoder.encode(trainer.logs), as: UTF8.self),
        ]
        if let best = trainer.bestEpoch {
            meta["sheaf.best_epoch"] = String(best.epoch)
            meta["sheaf.best_criterion"] = String(best.criterion)
        }
        try CheckpointStore.prepare(directory)
        try Checkpoint.save(trainer.model.namedParameters + CheckpointStore.momentTensors(trainer.optimizer), metadata: meta, to: lastPath)
    }

    /// Continues the run saved here: checks that `last.safetensors` was written with the trainer's
    /// model and training configurations, then restores parameters, optimizer, progress and the
    /// best epoch (from `model.safetensors`). Nothing changes when it throws.
    /// - Throws: `ModelError.corruptCheckpoint`, or `.invalidConfiguration` for another run's settings.
    public func resume(_ trainer: CHIMETrainer) throws {
        func corrupt(_ why: String) -> ModelError { .corruptCheckpoint(path: lastPath, reason: why) }
        let file: SafeTensors
        do { file = try SafeTensors.read(path: lastPath) } catch { throw corrupt("\(error)") }
        let m = file.metadata
        guard m["sheaf.model"] == "chime-run" else { throw corrupt("not a CHIME run checkpoint") }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard m["sheaf.chime_configuration"] == String(decoding: try encoder.encode(trainer.model.configuration), as: UTF8.self) else {
            throw ModelError.invalidConfiguration("the run in \(directory) has another model configuration; use a new directory")
        }
        // Only the epoch budget and the thread count (which changes no result) may differ.
        guard var saved = try? JSONDecoder().decode(TrainingConfiguration.self, from: Data((m["sheaf.training_configuration"] ?? "").utf8))
        else { throw corrupt("no readable sheaf.training_configuration") }
        saved.epochs = trainer.configuration.epochs
        saved.threads = trainer.configuration.threads
        guard saved == trainer.configuration else {
            throw ModelError.invalidConfiguration("the run in \(directory) has other training settings (only --epochs and --threads may change); use a new directory")
        }
        guard let done = m["sheaf.epochs_done"].flatMap(Int.init), done >= 1,
            let steps = m["sheaf.optimizer_steps"].flatMap(Int.init),
            let logs = m["sheaf.logs"].flatMap({ try? JSONDecoder().decode([CHIMEEpochLog].self, from: Data($0.utf8)) })
        else { throw corrupt("no readable progress") }
        let (first, second): ([[Float]], [[Float]])
        do { (first, second) = try CheckpointStore.moments(in: file, for: trainer.optimizer) } catch { throw corrupt("\(error)") }
        var best: (epoch: Int, criterion: Double, values: [[Float]])?
        if let epoch = m["sheaf.best_epoch"].flatMap(Int.init), let criterion = m["sheaf.best_criterion"].flatMap(Double.init) {
            let bestFile: SafeTensors
            do { bestFile = try SafeTensors.read(path: modelPath) } catch {
                throw ModelError.corruptCheckpoint(path: modelPath, reason: "\(error)")
            }
            do {
                best = (epoch, criterion, try trainer.model.namedParameters.map { try bestFile.floats($0.name, shape: $0.tensor.shape).values })
            } catch { throw ModelError.corruptCheckpoint(path: modelPath, reason: "\(error)") }
        }
        let current: [[Float]]
        do { current = try trainer.model.namedParameters.map { try file.floats($0.name, shape: $0.tensor.shape).values } } catch {
            throw corrupt("\(error)")
        }
        guard trainer.restore(
            epochsDone: done, logs: logs, optimizer: AdamW.State(stepCount: steps, firstMoments: first, secondMoments: second), best: best)
        else { throw corrupt("the saved state does not fit the model") }
        for (p, v) in zip(trainer.model.namedParameters, current) { p.tensor.assign(v) }
    }

    /// The checkpoint's metadata, without building the model.
    /// - Throws: `ModelError.corruptCheckpoint` (missing, unreadable, not a CHIME checkpoint).
    public func metadata() throws -> [String: String] {
        let m: [String: String]
        do { m = try SafeTensors.read(path: modelPath).metadata } catch {
            throw ModelError.corruptCheckpoint(path: modelPath, reason: "\(error)")
        }
        guard m["sheaf.model"] == "chime" else {
            throw ModelError.corruptCheckpoint(path: modelPath, reason: "not a Sheaf CHIME checkpoint (sheaf.model is \(m["sheaf.model"] ?? "missing"))")
        }
        return m
    }

    /// What a loaded checkpoint says about itself.
    public struct Header: Sendable {
        public let configuration: CHIMEConfiguration
        public let contentDimension: Int, sideFeatureWidth: Int, itemCount: Int
        public let itemsChecksum: String
        public let codebook: String
        /// The id of that codebook in the store.
        public let codebookID: UInt16
        public let version: UInt32
        /// The histories it was trained on, and the fraction of users held out.
        public let trainingCut: HistoryCut
        public let heldOutFraction: Double
        public let metadata: [String: String]

        /// With item-ID embeddings, the model's table rows are the training vocabulary's: refuse a
        /// vocabulary that differs (items added or gone), which would misalign them.
        /// - Throws: `ModelError.storeMismatch`.
        public func check(_ vocabulary: ItemVocabulary) throws(ModelError) {
            guard configuration.itemIDs else { return }
            guard vocabulary.count == itemCount, CheckpointStore.checksum(vocabulary) == itemsChecksum else {
                throw .storeMismatch(
                    "the model has item-ID embeddings for \(itemCount) items; the store's histories now hold \(vocabulary.count) items with other ids. Retrain, or train without --item-ids")
            }
        }
    }

    /// Reads the model, checked against `store`: its dimension and side features, and the codebook
    /// its content came from (still in the store, unchanged).
    /// - Throws: `ModelError.corruptCheckpoint` (missing, unreadable or inconsistent file),
    ///   `.storeMismatch` (another dimension, side-feature width or codebook).
    public func load(for store: Store) throws -> (CHIME, Header) {
        func corrupt(_ why: String) -> ModelError { .corruptCheckpoint(path: modelPath, reason: why) }
        let file: SafeTensors
        do { file = try SafeTensors.read(path: modelPath) } catch { throw corrupt("\(error)") }
        let m = file.metadata
        guard m["sheaf.model"] == "chime" else { throw corrupt("not a Sheaf CHIME checkpoint (sheaf.model is \(m["sheaf.model"] ?? "missing"))") }
        guard let json = m["sheaf.chime_configuration"],
            let config = try? JSONDecoder().decode(CHIMEConfiguration.self, from: Data(json.utf8))
        else { throw corrupt("no readable sheaf.chime_configuration") }
        guard let dimension = m["sheaf.content_dimension"].flatMap(Int.init), dimension >= 1,
            let side = m["sheaf.side_feature_width"].flatMap(Int.init), side >= 0,
            let items = m["sheaf.items"].flatMap(Int.init), items >= 0,
            let codebook = m["sheaf.codebook"], let version = m["sheaf.model_version"].flatMap(UInt32.init),
            let cutJSON = m["sheaf.history_cut"], let cut = try? JSONDecoder().decode(HistoryCut.self, from: Data(cutJSON.utf8)),
            let heldOut = m["sheaf.held_out_fraction"].flatMap(Double.init)
        else { throw corrupt("no readable dimension, side-feature width, items, codebook, model version, history cut or held-out fraction") }
        guard dimension == store.dimension else {
            throw ModelError.storeMismatch("the model reads \(dimension)-dimensional content; the store holds \(store.dimension)-dimensional embeddings")
        }
        guard side == store.sideFeatureWidth else {
            throw ModelError.storeMismatch("the model reads \(side) side features per behaviour; the store has \(store.sideFeatureWidth)")
        }
        let idText = codebook.split(separator: "/").first.flatMap { UInt16($0) }
        guard let id = idText else { throw corrupt("unreadable sheaf.codebook \(codebook)") }
        guard let stored = try store.read({ try $0.codebook(id) }) else {
            throw ModelError.storeMismatch("the model was trained on content decoded by codebook \(id), which this store does not hold")
        }
        guard ItemContent.fingerprint(stored) == codebook else {
            throw ModelError.storeMismatch("this store's codebook \(id) is not the one the model was trained with (another store?)")
        }
        let model: CHIME
        do {
            model = try CHIME(configuration: config, contentDimension: dimension, sideFeatureWidth: side, itemCount: items, seed: 0)
        } catch { throw corrupt("\(error)") }
        do { try Checkpoint.load(model.namedParameters, from: modelPath) } catch { throw corrupt("\(error)") }
        guard Self.version(of: model) == version else { throw corrupt("the parameters do not match sheaf.model_version (damaged file)") }
        return (
            model,
            Header(
                configuration: config, contentDimension: dimension, sideFeatureWidth: side, itemCount: items,
                itemsChecksum: m["sheaf.items_checksum"] ?? "", codebook: codebook, codebookID: id, version: version,
                trainingCut: cut, heldOutFraction: heldOut, metadata: m)
        )
    }
}
