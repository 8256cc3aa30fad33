import Foundation
import SheafFormats
import SheafNN
import SheafRandom

/// A model directory: `model.safetensors` (the best epoch's parameters, with the model configuration
/// in the metadata), `items.npy` (the item ids of its vocabulary, int64, ascending: row i − 1 is dense
/// index i), `last.safetensors` (the last epoch's parameters, the optimizer's moments and the run's
/// progress, for resuming) and `metrics.json` (written by the caller). Files are replaced atomically.
///
/// Metadata keys (all strings): `sheaf.model` ("sasrec", "hymirec"), `sheaf.model_configuration` and
/// `sheaf.training_configuration` (JSON), `sheaf.items` (N), `sheaf.items_checksum` (of the item ids,
/// to refuse another store's model), `sheaf.content_dimension`, and in `last.safetensors`
/// `sheaf.epochs_done`, `sheaf.optimizer_steps`, `sheaf.logs`, `sheaf.best_epoch`, `sheaf.best_ndcg`,
/// `sheaf.best_validation`. A model that reads content embeddings also holds its frozen content
/// (row 0 zeros): `content_table` [N + 1, D] for float32 rows, or for the store's codes
/// `content_codes` and `content_magnitudes` [N + 1, L] and `content_centroids` [L·K, D].
public struct CheckpointStore: Sendable {
    public let directory: String
    public var modelPath: String { directory + "/model.safetensors" }
    public var lastPath: String { directory + "/last.safetensors" }
    public var itemsPath: String { directory + "/items.npy" }

    /// A directory to read from, or to write to (created by the first save, so reading a missing
    /// directory creates nothing).
    public init(directory: String) throws {
        self.directory = directory
    }

    /// Creates the directory (and its parents) if needed, before a save.
    static func prepare(_ directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    /// The checksum of a vocabulary's item ids (SplitMix64's mix chained over them), in hex.
    public static func checksum(_ vocabulary: ItemVocabulary) -> String {
        var h: UInt64 = 0x5EAF_5EAF
        for id in vocabulary.ids { h = SplitMix64.mix(h ^ id) }
        return String(h, radix: 16)
    }

    func metadata<Model>(_ trainer: Trainer<Model>) throws -> [String: String] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let m = trainer.model
        return [
            "sheaf.model": Model.kind,
            "sheaf.model_configuration": String(decoding: try encoder.encode(m.configuration), as: UTF8.self),
            "sheaf.training_configuration": String(decoding: try encoder.encode(trainer.configuration), as: UTF8.self),
            "sheaf.items": String(m.itemCount),
            "sheaf.items_checksum": Self.checksum(trainer.data.vocabulary),
            "sheaf.content_dimension": String(m.contentDimension),
        ]
    }

    func contentTensors(_ model: some SequentialRecommender) -> [(name: String, tensor: Tensor)] {
        model.content?.checkpointTensors ?? []
    }

    /// Writes the best epoch's parameters (the model's current values) as `model.safetensors`.
    func saveBest<Model>(_ trainer: Trainer<Model>) throws {
        var meta = try metadata(trainer)
        if let best = trainer.best {
            meta["sheaf.best_epoch"] = String(best.epoch)
            meta["sheaf.best_validation"] = String(decoding: try JSONEncoder().encode(best.validation), as: UTF8.self)
        }
        try Self.prepare(directory)
        try NPYArray.write(ids: trainer.data.vocabulary.ids, to: itemsPath)
        try Checkpoint.save(trainer.model.namedParameters + contentTensors(trainer.model), metadata: meta, to: modelPath)
    }

    /// The model's vocabulary (`items.npy`), checked against the checksum in `model.safetensors`: what
    /// a caller needs to apply the model to one user's history without reading every history.
    /// - Throws: `ModelError.corruptCheckpoint` (missing or unreadable file, or ids that do not match).
    public func vocabulary() throws -> ItemVocabulary {
        let ids: [UInt64]
        do { ids = try IDFile.read(path: itemsPath) } catch { throw ModelError.corruptCheckpoint(path: itemsPath, reason: "\(error)") }
        let vocabulary = ItemVocabulary(ids: ids)
        let meta: [String: String]
        do { meta = try SafeTensors.read(path: modelPath).metadata } catch {
            throw ModelError.corruptCheckpoint(path: modelPath, reason: "\(error)")
        }
        guard vocabulary.ids == ids, meta["sheaf.items"] == String(ids.count), meta["sheaf.items_checksum"] == Self.checksum(vocabulary) else {
            throw ModelError.corruptCheckpoint(path: itemsPath, reason: "the ids do not match the model's item count and checksum")
        }
        return vocabulary
    }

    /// Writes the last epoch's parameters, the optimizer's moments and the run's progress.
    func saveLast<Model>(_ trainer: Trainer<Model>) throws {
        var meta = try metadata(trainer)
        let state = trainer.optimizer.state
        meta["sheaf.epochs_done"] = String(trainer.epochsDone)
        meta["sheaf.optimizer_steps"] = String(state.stepCount)
        meta["sheaf.logs"] = String(decoding: try JSONEncoder().encode(trainer.logs), as: UTF8.self)
        if let best = trainer.best {
            meta["sheaf.best_epoch"] = String(best.epoch)
            meta["sheaf.best_ndcg"] = String(best.ndcg)
            meta["sheaf.best_validation"] = String(decoding: try JSONEncoder().encode(best.validation), as: UTF8.self)
        }
        try Self.prepare(directory)
        try Checkpoint.save(trainer.model.namedParameters + Self.momentTensors(trainer.optimizer), metadata: meta, to: lastPath)
    }

    /// The model configuration and item count a checkpoint file declares, checked against `data`.
    static func header<Model: SequentialRecommender>(_: Model.Type, _ file: SafeTensors, data: SequenceDataset?) throws
        -> (Model.Configuration, Int, Int)
    {
        func corrupt(_ why: String) -> ModelError { .corruptCheckpoint(path: file.path, reason: why) }
        guard let kind = file.metadata["sheaf.model"] else { throw corrupt("not a Sheaf model checkpoint (no sheaf.model)") }
        guard kind == Model.kind else { throw corrupt("a \(kind) checkpoint, not \(Model.kind)") }
        guard let json = file.metadata["sheaf.model_configuration"], let config = Self.configuration(Model.self, json) else {
            throw corrupt("no readable sheaf.model_configuration")
        }
        guard let items = file.metadata["sheaf.items"].flatMap(Int.init), items >= 1,
            let contentDimension = file.metadata["sheaf.content_dimension"].flatMap(Int.init), contentDimension >= 0
        else { throw corrupt("no readable sheaf.items / sheaf.content_dimension") }
        if let data {
            guard items == data.vocabulary.count, file.metadata["sheaf.items_checksum"] == checksum(data.vocabulary) else {
                throw ModelError.storeMismatch(
                    "the model was trained on \(items) items with other ids; this store's histories hold \(data.vocabulary.count)")
            }
        }
        return (config, items, contentDimension)
    }

    /// A model configuration from its JSON, fields the JSON lacks (added after it was written) taking
    /// their earlier behaviour (`Model.fieldsAddedLater`) or today's defaults; nil when the JSON is
    /// not an object or a field has the wrong type.
    static func configuration<Model: SequentialRecommender>(_: Model.Type, _ json: String) -> Model.Configuration? {
        guard let stored = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
            let defaults = try? JSONSerialization.jsonObject(with: JSONEncoder().encode(Model.Configuration())) as? [String: Any],
            let merged = try? JSONSerialization.data(
                withJSONObject: defaults.merging(Model.fieldsAddedLater) { _, earlier in earlier }.merging(stored) { _, new in new })
        else { return nil }
        return try? JSONDecoder().decode(Model.Configuration.self, from: merged)
    }

    /// Which model `model.safetensors` holds (its `sheaf.model`: "sasrec", "hymirec").
    /// - Throws: `ModelError.corruptCheckpoint` (missing or unreadable file, or no `sheaf.model`).
    public func kind() throws -> String {
        let file: SafeTensors
        do { file = try SafeTensors.read(path: modelPath) } catch {
            throw ModelError.corruptCheckpoint(path: modelPath, reason: "\(error)")
        }
        guard let kind = file.metadata["sheaf.model"] else {
            throw ModelError.corruptCheckpoint(path: modelPath, reason: "not a Sheaf model checkpoint (no sheaf.model)")
        }
        return kind
    }

    /// The best SASRec model of this directory (`model.safetensors`), checked against the store's data.
    public func loadModel(for data: SequenceDataset?) throws -> SASRec { try load(SASRec.self, for: data) }

    /// The best model of this directory (`model.safetensors`), checked against the store's data (nil:
    /// not checked).
    /// - Throws: `ModelError.corruptCheckpoint` (missing, unreadable or inconsistent file, or another
    ///   kind of model), `.storeMismatch` (another store's items).
    public func load<Model: SequentialRecommender>(_: Model.Type, for data: SequenceDataset?) throws -> Model {
        let file: SafeTensors
        do { file = try SafeTensors.read(path: modelPath) } catch {
            throw ModelError.corruptCheckpoint(path: modelPath, reason: "\(error)")
        }
        let (config, items, contentDimension) = try Self.header(Model.self, file, data: data)
        var content: ContentTable?
        if Model.readsContent(config) {
            do { content = try ContentTable.read(from: file, items: items, dimension: contentDimension) } catch {
                throw ModelError.corruptCheckpoint(path: modelPath, reason: "\(error)")
            }
        }
        let model: Model
        do {
            model = try Model(configuration: config, itemCount: items, content: content, seed: 0)
        } catch { throw ModelError.corruptCheckpoint(path: modelPath, reason: "\(error)") }
        do { try Checkpoint.load(model.namedParameters, from: modelPath) } catch {
            throw ModelError.corruptCheckpoint(path: modelPath, reason: "\(error)")
        }
        return model
    }

    /// Whether a run can resume here.
    public var hasLast: Bool { FileManager.default.fileExists(atPath: lastPath) }

    /// Puts the trainer where `last.safetensors` left its run: parameters, optimizer moments, epochs
    /// done, logs, and the best epoch (whose parameters come from `model.safetensors`).
    /// - Throws: `ModelError.corruptCheckpoint`, `.storeMismatch`, or `.invalidConfiguration` when the
    ///   checkpoint's model configuration differs from the trainer's.
    public func resume<Model>(_ trainer: Trainer<Model>) throws {
        func corrupt(_ why: String) -> ModelError { .corruptCheckpoint(path: lastPath, reason: why) }
        let file: SafeTensors
        do { file = try SafeTensors.read(path: lastPath) } catch { throw corrupt("\(error)") }
        let (config, _, _) = try Self.header(Model.self, file, data: trainer.data)
        guard config == trainer.model.configuration else {
            throw ModelError.invalidConfiguration("the run in \(directory) has another model configuration; use a new directory")
        }
        guard let done = file.metadata["sheaf.epochs_done"].flatMap(Int.init), done >= 1,
            let steps = file.metadata["sheaf.optimizer_steps"].flatMap(Int.init),
            let logsJSON = file.metadata["sheaf.logs"],
            let logs = try? JSONDecoder().decode([EpochLog].self, from: Data(logsJSON.utf8)), logs.count == done
        else { throw corrupt("no readable progress (sheaf.epochs_done, sheaf.optimizer_steps, sheaf.logs)") }
        let (first, second): ([[Float]], [[Float]])
        do { (first, second) = try Self.moments(in: file, for: trainer.optimizer) } catch { throw corrupt("\(error)") }
        var best: (Int, Double, [String: Double], [[Float]])?
        if let epoch = file.metadata["sheaf.best_epoch"].flatMap(Int.init),
            let ndcg = file.metadata["sheaf.best_ndcg"].flatMap(Double.init),
            let validation = file.metadata["sheaf.best_validation"].flatMap({ try? JSONDecoder().decode([String: Double].self, from: Data($0.utf8)) })
        {
            let bestModel = try load(Model.self, for: trainer.data)
            best = (epoch, ndcg, validation, bestModel.namedParameters.map(\.tensor.values))
        }
        // Everything is read and checked; now change the trainer.
        do { try Checkpoint.load(trainer.model.namedParameters, from: lastPath) } catch { throw corrupt("\(error)") }
        guard trainer.restore(
            epochsDone: done, logs: logs, optimizer: AdamW.State(stepCount: steps, firstMoments: first, secondMoments: second),
            best: best)
        else { throw corrupt("the optimizer state does not fit the model") }
    }

    /// An optimizer's first and second moments as checkpoint tensors (`optimizer.first.i`, `optimizer.second.i`).
    static func momentTensors(_ optimizer: AdamW) -> [(name: String, tensor: Tensor)] {
        let state = optimizer.state
        return optimizer.parameters.enumerated().flatMap { i, p in
            [
                ("optimizer.first.\(i)", Tensor(shape: p.shape, values: state.firstMoments[i])),
                ("optimizer.second.\(i)", Tensor(shape: p.shape, values: state.secondMoments[i])),
            ]
        }
    }

    /// The moments `momentTensors` wrote, checked against the optimizer's parameter shapes.
    static func moments(in file: SafeTensors, for optimizer: AdamW) throws -> (first: [[Float]], second: [[Float]]) {
        var first: [[Float]] = [], second: [[Float]] = []
        for (i, p) in optimizer.parameters.enumerated() {
            first.append(try file.floats("optimizer.first.\(i)", shape: p.shape).values)
            second.append(try file.floats("optimizer.second.\(i)", shape: p.shape).values)
        }
        return (first, second)
    }
}
