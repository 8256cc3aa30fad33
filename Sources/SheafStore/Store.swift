import Foundation
import Glibc
import SheafCodebook
import Synchronization

/// Options for opening or creating a store. Every field has a default that suits a serving process.
public struct StoreOptions: Sendable {
    /// Initial map size in bytes. The map grows automatically (doubling) when a write needs more room.
    public var mapSize: Int = 256 << 20
    /// Ceiling for automatic growth. A write that needs more fails with `StoreError.mapFull`, leaving the store unchanged.
    public var maxMapSize: Int = 1 << 40
    /// Concurrent read transactions allowed across all processes (64 bytes of `lock.mdb` each, allocated
    /// when the lock file is created).
    public var maxReaders: Int = 1024
    /// Open for reading only (serving processes). Writes throw `StoreError.readOnly`.
    public var readOnly: Bool = false
    /// Read without the lock file (LMDB's `MDB_NOLOCK`; only with `readOnly`): for a store you cannot
    /// write (another user's, on read-only media, a backup) and **that no process writes meanwhile**.
    /// Readers then take no reader slot, so a concurrent writer may reuse pages they are reading and
    /// they can see torn data; nothing detects it. Run `verify` afterwards if in doubt.
    public var withoutLock: Bool = false
    /// Create the store when the directory holds none (needs a dimension).
    public var createIfMissing: Bool = true
    /// Fsync on every commit. `false` trades durability of the last commits after an OS crash for write speed.
    public var durable: Bool = true
    /// Behaviours per history segment, for a new store. Larger segments compress better; smaller ones make
    /// appends (which rewrite the open tail segment) and tail reads cheaper.
    public var historySegmentCapacity: Int = 128
    /// Side-feature values per behaviour, for a new store.
    public var sideFeatureWidth: Int = 0
    /// zstd level for history segments.
    public var compressionLevel: Int32 = 3

    public init() {}
}

/// An open Sheaf store: one LMDB environment directory with the tables `meta`, `codebooks`, `titles`,
/// `items`, `histories` and `profiles`.
///
/// A `Store` is thread-safe. Reads run concurrently with each other and with one writer:
/// ```swift
/// let store = try Store(path: "/data/sheaf", dimension: 384)
/// try store.write { txn in try txn.putItems(ids: ids, codes: codes, magnitudes: alphas) }
/// let embeddings = try store.read { txn in try txn.decodeHistory(user: 42, .last(100)) }
/// ```
public final class Store: @unchecked Sendable {
    // @unchecked Sendable: immutable after init except `codebookCache` (a Mutex) and the
    // environment, which synchronises itself.

    /// The store's directory.
    public let path: String
    /// Embedding dimension D.
    public let dimension: Int
    /// Side-feature values per behaviour.
    public let sideFeatureWidth: Int
    /// Behaviours per history segment.
    public let historySegmentCapacity: Int
    /// Whether the store was opened read-only.
    public let isReadOnly: Bool
    /// When the store was created (Unix seconds).
    public let createdAt: Int64
    /// The schema the store is written in (`StoreMetadata.schemaVersion` once open; older only inside
    /// `Store.migrate`).
    let schemaVersion: Int
    /// Whether every record ends with a checksum trailer (`RecordChecksum`): schema ≥ 3.
    let recordsHaveChecksums: Bool

    let env: LMDBEnvironment
    /// This process's claim on the data file, released when the store goes. Declared after `env`:
    /// Swift destroys stored properties in declaration order, so the environment is closed before
    /// another `Store` may claim the file.
    private let claim: OpenFileClaim
    let tables: Tables
    let options: StoreOptions
    /// Decoded codebooks, by id. Codebooks are immutable once committed, so entries never go stale.
    let codebookCache = Mutex<[UInt16: Codebook]>([:])
    private let decompressors = Mutex<[ZstdDecompressor]>([])
    /// The history-segment compressor; used only inside write transactions, which are serialised.
    let compressor: ZstdCompressor?

    /// The store's tables, with the layout of their keys. What their values hold is in `Records/`.
    struct Tables {
        /// The header (`StoreMetadata`) under key 0.
        var meta: Table<UInt64>
        /// `CodebookRecord`s by codebook id.
        var codebooks: Table<UInt64>
        /// `ItemRecord`s by item id.
        var items: Table<UInt64>
        /// `HistorySegment`s by (user, segment number).
        var histories: Table<SegmentKey>
        /// `Profile` records by user id.
        var profiles: Table<UInt64>
        /// `TitleRecord`s by item id.
        var titles: Table<UInt64>

        static let names = ["meta", "codebooks", "items", "histories", "profiles", "titles"]

        /// Opens (or, with `create`, creates) every table; `nil` when one is missing.
        static func open(in env: LMDBEnvironment, create: Bool) throws(LMDBError) -> Tables? {
            guard let h = try env.openTableHandles(names, create: create) else { return nil }
            return Tables(
                meta: Table(name: names[0], handle: h[0]), codebooks: Table(name: names[1], handle: h[1]),
                items: Table(name: names[2], handle: h[2]), histories: Table(name: names[3], handle: h[3]),
                profiles: Table(name: names[4], handle: h[4]), titles: Table(name: names[5], handle: h[5]))
        }
    }

    /// Opens the store at `path`, creating it when allowed and missing.
    ///
    /// - Parameters:
    ///   - path: the environment directory.
    ///   - dimension: the embedding dimension the caller expects; required to create a store. When the
    ///     store exists and this differs from its dimension, opening fails.
    /// - Throws: `StoreError.storeMissing`, `.notAStore`, `.needsMigration` (an older schema: see
    ///   `Store.migrate`), `.schemaVersionMismatch` (a newer one), `.dimensionMismatch`, `.permissionDenied`
    ///   (naming the file), `.diskFull`, `.invalidArgument`, or an `LMDBError`.
    public convenience init(path: String, dimension: Int? = nil, options: StoreOptions = StoreOptions()) throws {
        try self.init(path: path, dimension: dimension, options: options, migrating: false)
    }

    /// Opens the store; with `migrating`, also one of an older schema whose records have no checksum
    /// trailers (for `Store.migrate` only: reads then take values as they are).
    init(path: String, dimension: Int?, options: StoreOptions, migrating: Bool) throws {
        let fm = FileManager.default
        let dataFile = (path as NSString).appendingPathComponent("data.mdb")
        // Opening holds a process-wide lock until the file is claimed, so two threads opening (or
        // creating) the same store cannot both open an environment on it: the second one waits, then
        // finds it claimed. Opens are rare; the lock is not on any read or write path.
        OpenFileClaim.opening.lock()
        defer { OpenFileClaim.opening.unlock() }
        let existed = fm.fileExists(atPath: dataFile)
        guard !options.withoutLock || options.readOnly else {
            throw StoreError.invalidArgument("withoutLock needs readOnly: a writer must take LMDB's locks")
        }
        if !existed {
            guard !options.readOnly, options.createIfMissing else { throw StoreError.storeMissing(path: path) }
            guard let dimension else {
                throw StoreError.invalidArgument("creating a store needs a dimension")
            }
            guard dimension > 0, dimension <= 1 << 16 else {
                throw StoreError.invalidArgument("dimension \(dimension) is outside 1...65536")
            }
            guard (1...Int(UInt16.max)).contains(options.historySegmentCapacity) else {
                throw StoreError.invalidArgument("history segment capacity must be in 1...65535")
            }
            guard (0...256).contains(options.sideFeatureWidth) else {
                throw StoreError.invalidArgument("side-feature width must be in 0...256")
            }
            try fm.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        guard options.mapSize > 0, options.maxMapSize >= options.mapSize else {
            throw StoreError.invalidArgument("mapSize must be positive and at most maxMapSize")
        }
        if existed, !options.readOnly { try Self.refuseWriteProtected(path: path, dataFile: dataFile) }
        // Claimed before LMDB opens anything: a second environment on an open file must never exist,
        // even briefly (closing it would release the first one's locks).
        let claim = try OpenFileClaim(dataFile: dataFile, path: path)
        let env: LMDBEnvironment
        do {
            env = try LMDBEnvironment(
                path: path,
                configuration: .init(
                    mapSize: options.mapSize, maxMapSize: options.maxMapSize, maxReaders: options.maxReaders,
                    maxDatabases: 16, readOnly: options.readOnly, noSync: !options.durable, noLock: options.withoutLock))
        } catch {
            throw Self.openError(error, path: path, dataFile: dataFile, readOnly: options.readOnly)
        }
        guard let tables = try Tables.open(in: env, create: !options.readOnly) else {
            throw StoreError.notAStore(path: path)
        }

        // Read, or on creation write, the header.
        let (meta, checksummed) = try Self.loadOrCreateMetadata(
            env: env, tables: tables, path: path, existed: existed, dimension: dimension, options: options)
        if !checksummed, !migrating {
            throw StoreError.needsMigration(path: path, found: meta.schemaVersion, current: StoreMetadata.schemaVersion)
        }
        guard meta.schemaVersion == StoreMetadata.schemaVersion || (migrating && !checksummed) else {
            throw StoreError.schemaVersionMismatch(found: meta.schemaVersion, supported: StoreMetadata.schemaVersion)
        }
        if let dimension, dimension != meta.dimension {
            throw StoreError.dimensionMismatch(stored: meta.dimension, requested: dimension)
        }
        self.path = path
        self.env = env
        try claim.confirm()
        self.claim = claim
        self.tables = tables
        self.options = options
        self.dimension = meta.dimension
        self.sideFeatureWidth = meta.sideFeatureWidth
        self.historySegmentCapacity = meta.historySegmentCapacity
        self.isReadOnly = options.readOnly
        self.createdAt = meta.createdAt
        self.schemaVersion = meta.schemaVersion
        self.recordsHaveChecksums = checksummed
        self.compressor = options.readOnly ? nil : ZstdCompressor(level: options.compressionLevel, checksum: true)
    }

    /// Refuses to open for writing a store whose directory or `data.mdb` has no write permission bit at
    /// all (`chmod a-w`): root's writes would otherwise bypass what the owner meant.
    private static func refuseWriteProtected(path: String, dataFile: String) throws {
        for (file, what) in [(path, "directory"), (dataFile, "data.mdb")] {
            var st = stat()
            guard stat(file, &st) == 0, st.st_mode & 0o222 == 0 else { continue }
            let mode = String(st.st_mode & 0o777, radix: 8)
            var reason = "the store's \(what) is write-protected (mode \(mode)), so it is not opened for writing, even by root. "
            reason += "Open it read-only (`--read-only`, StoreOptions.readOnly), or make it writable with `chmod u+w`"
            throw StoreError.permissionDenied(path: file, reason: reason)
        }
    }

    /// What an environment that failed to open reports: a permission or full-disk error as the store's
    /// own, anything else as it is.
    private static func openError(_ error: LMDBError, path: String, dataFile: String, readOnly: Bool) -> any Error {
        let code = error.code
        if code == EACCES || code == EPERM || code == EROFS {
            return permissionError(path: path, dataFile: dataFile, readOnly: readOnly, code: code)
        }
        if code == ENOSPC || code == EDQUOT { return StoreError.diskFull }
        return error
    }

    /// The permission error of an environment that failed to open with `code`, naming the file.
    private static func permissionError(path: String, dataFile: String, readOnly: Bool, code: Int32) -> StoreError {
        let lockFile = (path as NSString).appendingPathComponent("lock.mdb")
        let fm = FileManager.default
        if !fm.isReadableFile(atPath: dataFile) {
            return .permissionDenied(path: dataFile, reason: "cannot read the store's data file. Ask its owner for read access")
        }
        let lockExists = fm.fileExists(atPath: lockFile)
        let lockProblem: Bool = lockExists ? !fm.isWritableFile(atPath: lockFile) : !fm.isWritableFile(atPath: path)
        if lockProblem || code == EROFS {
            var reason: String = code == EROFS ? "the file system is read-only, so " : ""
            reason += "the lock file cannot be " + (lockExists ? "written" : "created")
            reason += ", and LMDB's readers register in it. If no process writes the store meanwhile, read it without "
            reason += "the lock: `--read-only` (StoreOptions.readOnly with withoutLock)"
            if !readOnly { reason += "; writing needs write access to the directory" }
            return .permissionDenied(path: lockFile, reason: reason)
        }
        if readOnly { return .permissionDenied(path: path, reason: "permission denied") }
        return .permissionDenied(path: dataFile, reason: "cannot write the store's data file")
    }

    /// The header, and whether the store's records carry checksum trailers (schema ≥ 3).
    private static func loadOrCreateMetadata(
        env: LMDBEnvironment, tables: Tables, path: String, existed: Bool, dimension: Int?, options: StoreOptions
    ) throws -> (StoreMetadata, Bool) {
        func read(_ txn: LMDBTransaction) throws -> (StoreMetadata, Bool)? {
            guard let value = try txn.get(tables.meta, metaKey) else { return nil }
            if let body = metaKey.withKeyBytes({ RecordChecksum.body(of: value, key: $0) }) {
                do { return (try StoreMetadata.decode(body), true) } catch {
                    throw StoreError.corruptRecord(table: "meta", key: "0", reason: error.reason)
                }
            }
            // No valid trailer: a store from before schema 3, whose records have none, or a damaged header.
            if let legacy = try? StoreMetadata.decode(value), legacy.schemaVersion < 3 { return (legacy, false) }
            throw StoreError.corruptRecord(table: "meta", key: "0", reason: RecordChecksum.failure(valueBytes: value.count))
        }
        if let found = try env.withReadTransaction(read) { return found }
        // No header. A pre-existing file without one is some other LMDB environment.
        guard !existed, !options.readOnly, let dimension else { throw StoreError.notAStore(path: path) }
        let meta = StoreMetadata(
            schemaVersion: StoreMetadata.schemaVersion, dimension: dimension, activeCodebook: 0,
            sideFeatureWidth: options.sideFeatureWidth, historySegmentCapacity: options.historySegmentCapacity,
            createdAt: Int64(Date().timeIntervalSince1970))
        try storeErrors(maxMapSize: options.maxMapSize) {
            try env.withWriteTransaction { txn, mapFull in
                try meta.encode().withUnsafeBytes { try txn.putRecord(tables.meta, metaKey, $0, mapFull: &mapFull) }
            }
        }
        return (meta, true)
    }

    // MARK: - Transactions

    /// Runs `body` in a read-only snapshot of the store.
    ///
    /// Cheap enough to call per request: the LMDB transaction is taken from a pool of reset handles
    /// and renewed (`mdb_txn_renew`), not created. Any number of threads may read at once, also while
    /// a writer writes; each sees the last committed state as of the start of its transaction.
    /// Do not call `write` from inside `body`.
    public func read<R>(_ body: (ReadTransaction) throws -> R) throws -> R {
        try env.withReadTransaction { txn in
            let t = ReadTransaction(txn, store: self)
            defer { t.end() }
            return try body(t)
        }
    }

    /// Runs `body` in a write transaction; commits when it returns, aborts when it throws.
    ///
    /// Writers are serialised. If the map fills up, the transaction is rolled back, the map grows,
    /// and `body` runs again from the start, so `body` must not have effects outside the transaction.
    /// - Throws: `StoreError.readOnly`, `.mapFull` (at `maxMapSize`), `.diskFull`, or what `body` throws.
    public func write<R>(_ body: (WriteTransaction) throws -> R) throws -> R {
        guard !isReadOnly else { throw StoreError.readOnly }
        return try storeErrors(maxMapSize: options.maxMapSize) {
            try env.withWriteTransaction { txn, mapFull in
                let t = WriteTransaction(txn, store: self)
                defer {
                    mapFull = mapFull || t.hitMapFull
                    t.end()
                }
                return try body(t)
            }
        }
    }

    /// Whether commits fsync (`StoreOptions.durable`).
    public var isDurable: Bool { options.durable }

    /// The current map size in bytes (it grows on demand).
    public var mapSize: Int { env.mapSize }
    /// How many times this process grew the map.
    public var mapGrowthCount: Int { env.growthCount.load(ordering: .relaxed) }

    /// Flushes to disk; useful when opened with `durable = false`.
    public func sync() throws { try env.sync() }

    // MARK: - Decompressor pool

    func takeDecompressor() -> ZstdDecompressor {
        decompressors.withLock { $0.popLast() } ?? ZstdDecompressor()
    }

    func returnDecompressor(_ d: ZstdDecompressor) {
        decompressors.withLock { pool in if pool.count < 64 { pool.append(d) } }
    }
}

/// Runs a write and turns the environment's full-map and full-disk errors into the store's: the
/// environment grows the map by itself, so a full map that escapes it is at `maxMapSize`.
func storeErrors<R>(maxMapSize: Int, _ body: () throws -> R) throws -> R {
    do { return try body() } catch LMDBError.diskFull {
        throw StoreError.diskFull
    } catch LMDBError.mapFull {
        throw StoreError.mapFull(limit: maxMapSize)
    }
}

/// The data files (by device and inode) that a `Store` of this process has open: LMDB must not open
/// one twice in a process, since closing the second environment releases the first one's locks.
final class OpenFileClaim: Sendable {
    private struct Identity: Hashable {
        let device: UInt64
        let inode: UInt64
    }

    private static let open = Mutex<Set<Identity>>([])
    /// Held by every `Store` init until its file is claimed.
    static let opening = NSLock()
    private let dataFile: String
    private let path: String
    private let identity = Mutex<Identity?>(nil)

    /// Claims `dataFile` when it exists; throws `StoreError.alreadyOpen` when it is claimed already.
    /// A file that does not exist yet is claimed by `confirm()`, once created.
    init(dataFile: String, path: String) throws {
        self.dataFile = dataFile
        self.path = path
        try take(required: false)
    }

    /// Claims the file now that it exists (a no-op when `init` claimed it).
    func confirm() throws {
        guard identity.withLock({ $0 }) == nil else { return }
        try take(required: true)
    }

    private func take(required: Bool) throws {
        var st = stat()
        guard stat(dataFile, &st) == 0 else {
            if required { throw StoreError.storeMissing(path: path) }
            return
        }
        let id = Identity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        let inserted = Self.open.withLock { $0.insert(id).inserted }
        guard inserted else { throw StoreError.alreadyOpen(path: path) }
        identity.withLock { $0 = id }
    }

    deinit {
        if let id = identity.withLock({ $0 }) { _ = Self.open.withLock { $0.remove(id) } }
    }
}
