import SheafCodebook

/// Everything that can go wrong in a store operation, apart from raw `LMDBError`s.
///
/// A missing key is never an error: lookups return `nil` (or a per-id missing mark) instead.
public enum StoreError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No store exists at the path (and it was not to be created).
    case storeMissing(path: String)
    /// The path holds an LMDB environment, or a directory, that is not a Sheaf store.
    case notAStore(path: String)
    /// The store was written with a schema this version of Sheaf does not read.
    case schemaVersionMismatch(found: Int, supported: Int)
    /// The store was written with an older schema that this build upgrades with `Store.migrate`
    /// (`sheaf migrate PATH`); until then it is not opened.
    case needsMigration(path: String, found: Int, current: Int)
    /// `Store.migrate` found damage in the old store and changed nothing; the reason lists it.
    case migrationRefused(path: String, reason: String)
    /// The embedding dimension asked for (or given) differs from the store's.
    case dimensionMismatch(stored: Int, requested: Int)
    /// A write was attempted on a store opened read-only.
    case readOnly
    /// An argument is invalid; the message says which and why.
    case invalidArgument(String)
    /// A stored record is damaged: bad version byte, bad checksum, or truncated bytes.
    case corruptRecord(table: String, key: String, reason: String)
    /// No codebook with this id is stored.
    case unknownCodebook(UInt16)
    /// A different codebook is already stored under this id (codebooks are immutable).
    case codebookExists(UInt16)
    /// The store has no active codebook, and the operation needs one.
    case noActiveCodebook
    /// An item's codes belong to another codebook than the one required.
    case codebookMismatch(item: UInt64, expected: UInt16, found: UInt16)
    /// An item's codes or magnitudes are invalid (code ≥ K, NaN or infinite magnitude).
    case invalidItemCodes(item: UInt64, reason: CodebookError)
    /// A behaviour is invalid (wrong side-feature width, NaN label…).
    case invalidBehavior(user: UInt64, index: Int, reason: String)
    /// A behaviour is older than the user's latest stored one by more than the append's `maxLateness`
    /// (0: appends must be in time order).
    case tooLate(user: UInt64, timestamp: Int64, latestStored: Int64, maxLateness: Int64)
    /// Items without codes were asked to be decoded (pass `.zeroFill` to accept them).
    case missingItems([UInt64])
    /// The map reached `StoreOptions.maxMapSize` and cannot grow further.
    case mapFull(limit: Int)
    /// The store cannot be opened as asked: `path` names the file or directory, `reason` what to do.
    case permissionDenied(path: String, reason: String)
    /// The disk is full. Nothing of the failed write was committed.
    case diskFull
    /// A caller's buffer is too small.
    case bufferTooSmall(needed: Int, available: Int)
    /// The store is already open in this process (under this or another path). LMDB allows one
    /// environment per file per process: a second one would break the first one's locks when closed.
    case alreadyOpen(path: String)

    public var description: String {
        switch self {
        case .storeMissing(let p): "no Sheaf store at \(p)"
        case .notAStore(let p): "\(p) is not a Sheaf store"
        case .schemaVersionMismatch(let f, let s): "store schema version \(f) is not supported (this build reads \(s))"
        case .needsMigration(let p, let f, let c):
            "the store at \(p) has schema version \(f); this build reads version \(c), which checksums every record's key and value. "
                + "Upgrade it in place with `sheaf migrate \(p)` (stop its readers and writers first; the upgrade is one transaction)"
        case .migrationRefused(let p, let r): "\(p) was not migrated (nothing changed): \(r)"
        case .dimensionMismatch(let s, let r): "dimension mismatch: the store holds \(s)-d embeddings, got \(r)"
        case .readOnly: "the store is open read-only"
        case .alreadyOpen(let p):
            "the store at \(p) is already open in this process; LMDB allows one environment per file per process "
                + "(a second one breaks the first one's locks when it closes): share the open Store, or close it first"
        case .invalidArgument(let m): "invalid argument: \(m)"
        case .corruptRecord(let t, let k, let r): "corrupt record in table '\(t)' at key \(k): \(r)"
        case .unknownCodebook(let id): "codebook \(id) is not stored"
        case .codebookExists(let id): "another codebook is already stored as id \(id)"
        case .noActiveCodebook: "the store has no active codebook"
        case .codebookMismatch(let i, let e, let f): "item \(i) is coded with codebook \(f), expected \(e)"
        case .invalidItemCodes(let i, let r): "item \(i) has invalid codes: \(r)"
        case .invalidBehavior(let u, let i, let r): "user \(u), behaviour #\(i): \(r)"
        case .tooLate(let u, let t, let l, let m):
            m == 0
                ? "user \(u): behaviour at \(t) is older than the latest stored one (\(l)), and late behaviours are refused (max lateness 0)"
                : "user \(u): behaviour at \(t) is older than the latest stored one (\(l)) by more than the max lateness \(m)"
        case .missingItems(let ids):
            "\(ids.count) item(s) have no codes: \(ids.prefix(10).map(String.init).joined(separator: ", "))\(ids.count > 10 ? ", …" : "")"
        case .mapFull(let limit): "the store reached its maximum map size of \(limit) bytes"
        case .permissionDenied(let p, let r): "permission denied on \(p): \(r)"
        case .diskFull: "the disk is full; the write was rolled back"
        case .bufferTooSmall(let n, let a): "buffer too small: need \(n), have \(a)"
        }
    }
}
