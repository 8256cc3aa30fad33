/// What can go wrong when training, loading or applying a model.
public enum ModelError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The store holds no behaviour histories to train or evaluate on.
    case noHistories
    /// The user has no history in the store (or too short a one for the request).
    case unknownUser(UInt64)
    /// A checkpoint was trained on another store's items (a different vocabulary) or dimension.
    case storeMismatch(String)
    /// A checkpoint file or its configuration cannot be used.
    case corruptCheckpoint(path: String, reason: String)
    /// A configuration value is out of range.
    case invalidConfiguration(String)
    /// A stored profile cannot be read.
    case corruptProfile(user: UInt64, reason: String)
    /// A stored profile was made by another model or ICM codebook than the one given.
    case profileMismatch(user: UInt64, reason: String)
    /// Another process is training into this model directory (`RunDirectory`); its process id when
    /// it could be read.
    case runDirectoryInUse(directory: String, process: Int32?)
    /// A new run was asked for in a directory that holds one (these of `RunDirectory.runFiles`).
    case runExists(directory: String, files: [String])

    public var description: String {
        switch self {
        case .noHistories:
            "the store holds no behaviour histories; load some with `sheaf behaviors load`"
        case .unknownUser(let u): "user \(u) has no history in the store"
        case .storeMismatch(let why): "the model does not fit this store: \(why)"
        case .corruptCheckpoint(let path, let reason): "checkpoint \(path) cannot be used: \(reason)"
        case .invalidConfiguration(let why): "invalid configuration: \(why)"
        case .corruptProfile(let user, let reason): "the profile of user \(user) cannot be read: \(reason)"
        case .profileMismatch(let user, let reason): "the profile of user \(user) does not fit this model: \(reason)"
        case .runDirectoryInUse(let directory, let process):
            "\(directory) is being written by another training run\(process.map { " (process \($0))" } ?? ""); wait for it to end, or train into another directory"
        case .runExists(let directory, let files):
            "\(directory) already holds a run (\(files.joined(separator: ", "))): --resume continues it, --overwrite deletes it and starts again"
        }
    }
}
