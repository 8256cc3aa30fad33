internal import CLMDB
import Foundation
import Glibc
import Synchronization

/// Owns one `MDB_env` and everything that must be coordinated around it: the pool of reusable
/// read transactions, the lock that keeps readers out while the map is resized, and map growth.
///
/// This is the only type that begins, commits, resets or aborts LMDB transactions. It throws only
/// `LMDBError`s: at `maxMapSize` a full map is `LMDBError.mapFull`, a commit that failed on a full
/// disk is `LMDBError.diskFull`; the store maps them to its own errors.
final class LMDBEnvironment: @unchecked Sendable {
    // @unchecked Sendable: `handle` is only used through LMDB calls that are thread-safe for an
    // environment opened with MDB_NOTLS; mutable state lives in `Mutex`es or behind `mapLock`.

    struct Configuration {
        var mapSize: Int
        var maxMapSize: Int
        var maxReaders: Int
        var maxDatabases: Int
        var readOnly: Bool
        var noSync: Bool
        /// `MDB_NOLOCK`: no lock file, no reader table. Only safe while no process writes the store.
        var noLock: Bool = false
    }

    let handle: OpaquePointer
    let path: String
    let configuration: Configuration
    /// Readers hold it shared for the life of a transaction; a map resize holds it exclusively,
    /// because LMDB must not remap while any transaction of this process is live.
    private let mapLock = ReadWriteLock()
    /// Reset read transactions waiting to be renewed (each keeps its reader slot under MDB_NOTLS).
    private let idleReaders = Mutex<[TransactionHandle]>([])
    /// One writer at a time in this process (LMDB serialises across processes by itself).
    private let writerLock = NSLock()
    private static let maxIdleReaders = 64
    /// Number of map growths performed by this process (for tests and stats).
    let growthCount = Atomic<Int>(0)

    /// Opens (creating files if needed and allowed) the environment in directory `path`.
    /// - Throws: `LMDBError` from `mdb_env_open`; the half-open handle is closed first.
    init(path: String, configuration: Configuration) throws(LMDBError) {
        if !configuration.noLock { try Self.reserveLockFile(in: path, maxReaders: configuration.maxReaders) }
        var env: OpaquePointer?
        try check(mdb_env_create(&env))
        guard let env else { throw LMDBError(code: ENOMEM) }
        do {
            try check(mdb_env_set_maxreaders(env, UInt32(configuration.maxReaders)))
            try check(mdb_env_set_maxdbs(env, MDB_dbi(configuration.maxDatabases)))
            try check(mdb_env_set_mapsize(env, configuration.mapSize))
            var flags = UInt32(MDB_NOTLS) | UInt32(MDB_NORDAHEAD)
            if configuration.readOnly { flags |= UInt32(MDB_RDONLY) }
            if configuration.noSync { flags |= UInt32(MDB_NOSYNC) }
            if configuration.noLock { flags |= UInt32(MDB_NOLOCK) }
            try check(mdb_env_open(env, path, flags, 0o644))
            // Free reader slots left by processes that died inside a read transaction.
            var dead: Int32 = 0
            try check(mdb_reader_check(env, &dead))
        } catch {
            mdb_env_close(env)
            throw error
        }
        self.handle = env
        self.path = path
        self.configuration = configuration
    }

    /// Bytes of the lock file LMDB makes for `maxReaders` reader slots: one 64-byte cache line per
    /// slot plus two header lines (`sizeof(MDB_txninfo)` with one slot inside it, liblmdb 0.9.x).
    static func lockFileSize(maxReaders: Int) -> Int { 64 * maxReaders + 128 }

    /// Creates `lock.mdb` at its full size with its blocks allocated, when there is none yet.
    ///
    /// LMDB sizes a new lock file with `ftruncate` (a sparse file) and maps it; on a full disk the first
    /// write through the map then kills the process with SIGBUS. Allocating the blocks first
    /// (`posix_fallocate`) turns that into `ENOSPC` here. An existing lock file is left as it is (other
    /// processes may have it mapped), and nothing is done when the directory is not writable (LMDB then
    /// reports the permission problem itself).
    private static func reserveLockFile(in directory: String, maxReaders: Int) throws(LMDBError) {
        let path = directory + "/lock.mdb"
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }  // it exists, or the directory is not ours to write: LMDB takes over
        defer { close(fd) }
        let rc = posix_fallocate(fd, 0, off_t(lockFileSize(maxReaders: maxReaders)))
        if rc == 0 { return }
        unlink(path)
        if rc == ENOSPC || rc == EDQUOT { throw LMDBError(code: ENOSPC) }
        // fallocate unsupported here (EOPNOTSUPP…): leave the file to LMDB as before.
    }

    deinit {
        for txn in idleReaders.withLock({ $0 }) { mdb_txn_abort(txn.pointer) }
        mdb_env_close(handle)
    }

    /// The current map size in bytes.
    var mapSize: Int {
        var info = MDB_envinfo()
        mdb_env_info(handle, &info)
        return info.me_mapsize
    }

    // MARK: - Read transactions

    /// Runs `body` inside a read-only snapshot. The transaction comes from a pool of reset handles
    /// (`mdb_txn_renew`), so opening one per request costs about one reader-table update.
    func withReadTransaction<R>(_ body: (LMDBTransaction) throws -> R) throws -> R {
        while true {
            mapLock.lockShared()
            let txn: OpaquePointer
            do {
                txn = try acquireReader()
            } catch LMDBError.mapResized {
                mapLock.unlock()
                try adoptResizedMap()
                continue
            } catch {
                mapLock.unlock()
                throw error
            }
            defer {
                mdb_txn_reset(txn)
                releaseReader(txn)
                mapLock.unlock()
            }
            return try body(LMDBTransaction(handle: txn))
        }
    }

    private func acquireReader() throws(LMDBError) -> OpaquePointer {
        if let txn = idleReaders.withLock({ $0.popLast() })?.pointer {
            let rc = mdb_txn_renew(txn)
            if rc == 0 { return txn }
            mdb_txn_abort(txn)
            throw LMDBError(code: rc)
        }
        var txn: OpaquePointer?
        try check(mdb_txn_begin(handle, nil, UInt32(MDB_RDONLY), &txn))
        return txn!
    }

    private func releaseReader(_ txn: OpaquePointer) {
        let kept = idleReaders.withLock { idle -> Bool in
            guard idle.count < Self.maxIdleReaders else { return false }
            idle.append(TransactionHandle(pointer: txn))
            return true
        }
        if !kept { mdb_txn_abort(txn) }
    }

    // MARK: - Write transactions

    /// Outcome of one attempt at a write transaction.
    private enum WriteAttempt<R> {
        case committed(R)
        /// The map filled up: grow it and run again.
        case mapFull
        /// Another process grew the map: adopt its size and run again.
        case mapResized
    }

    /// Runs `body` in a write transaction and commits it. When LMDB reports a full map (from any
    /// put or from the commit), the transaction is aborted, the map is grown, and `body` runs again,
    /// so `body` must have no effects outside the transaction.
    ///
    /// - Parameter body: gets the transaction and a flag it must set when an LMDB call threw
    ///   `LMDBError.mapFull`, so that growth happens even if the caller wrapped that error in another.
    /// - Throws: `LMDBError.mapFull` when the map cannot grow past `maxMapSize`, `LMDBError.diskFull`
    ///   when the commit failed on a full disk; otherwise whatever `body` or the commit threw. The
    ///   transaction is aborted on every throw.
    func withWriteTransaction<R>(_ body: (LMDBTransaction, inout Bool) throws -> R) throws -> R {
        precondition(!configuration.readOnly, "write transaction on a read-only environment")
        writerLock.lock()
        defer { writerLock.unlock() }
        while true {
            switch try attemptWrite(body) {
            case .committed(let result): return result
            case .mapFull: try growMap()
            case .mapResized: try adoptResizedMap()
            }
        }
    }

    private func attemptWrite<R>(_ body: (LMDBTransaction, inout Bool) throws -> R) throws -> WriteAttempt<R> {
        mapLock.lockShared()
        defer { mapLock.unlock() }
        var txnOut: OpaquePointer?
        let rc = mdb_txn_begin(handle, nil, 0, &txnOut)
        if rc == MDB_MAP_RESIZED { return .mapResized }
        try check(rc)
        let txn = txnOut!
        var hitMapFull = false
        let result: R
        do {
            result = try body(LMDBTransaction(handle: txn), &hitMapFull)
        } catch {
            mdb_txn_abort(txn)
            if hitMapFull || LMDBError.mapFull ~= error { return .mapFull }
            throw error
        }
        if hitMapFull {
            mdb_txn_abort(txn)
            return .mapFull
        }
        // mdb_txn_commit frees the transaction whatever its outcome: never abort it after this.
        let commit = mdb_txn_commit(txn)
        if commit == MDB_MAP_FULL { return .mapFull }
        if commit == EIO || commit == ENOSPC, diskIsFull() { throw LMDBError.diskFull }
        try check(commit)
        return .committed(result)
    }

    /// Whether the filesystem holding the environment has (almost) no space left. LMDB reports a
    /// short write as `EIO`, so a commit failing with EIO on a full disk is reported as disk full.
    private func diskIsFull() -> Bool {
        var st = statvfs()
        guard statvfs(path, &st) == 0 else { return false }
        return Int(st.f_bavail) * Int(st.f_frsize) < 1 << 20
    }

    // MARK: - Map size

    /// Doubles the map (at least +64 MiB), up to `maxMapSize`.
    /// - Throws: `LMDBError.mapFull` when the map is already at `maxMapSize`.
    private func growMap() throws(LMDBError) {
        mapLock.lockExclusive()
        defer { mapLock.unlock() }
        let current = mapSize
        guard current < configuration.maxMapSize else {
            throw LMDBError.mapFull
        }
        let target = min(configuration.maxMapSize, max(current * 2, current + 64 << 20))
        try check(mdb_env_set_mapsize(handle, target))
        growthCount.add(1, ordering: .relaxed)
    }

    /// Adopts a map size set by another process (`MDB_MAP_RESIZED`).
    private func adoptResizedMap() throws(LMDBError) {
        mapLock.lockExclusive()
        defer { mapLock.unlock() }
        try check(mdb_env_set_mapsize(handle, 0))
    }

    // MARK: - Maintenance

    /// Flushes buffers to disk (meaningful with `noSync`).
    func sync(force: Bool = true) throws(LMDBError) {
        try check(mdb_env_sync(handle, force ? 1 : 0))
    }

    /// Clears reader slots of dead processes; returns how many were cleared.
    func clearStaleReaders() throws(LMDBError) -> Int {
        var dead: Int32 = 0
        try check(mdb_reader_check(handle, &dead))
        return Int(dead)
    }
}

/// A reset read transaction waiting in the pool.
struct TransactionHandle: @unchecked Sendable {
    // @unchecked Sendable: a reset MDB_NOTLS read transaction may be renewed on any thread.
    let pointer: OpaquePointer
}

// MARK: - ReadWriteLock

/// A pthread read-write lock owned by one object.
final class ReadWriteLock: @unchecked Sendable {
    // @unchecked Sendable: the pthread lock is the synchronisation primitive itself.
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>

    init() {
        lock = .allocate(capacity: 1)
        lock.initialize(to: pthread_rwlock_t())
        // Prefer readers: a thread that already reads may take a nested shared lock without
        // deadlocking behind a waiting resize.
        var attr = pthread_rwlockattr_t()
        pthread_rwlockattr_init(&attr)
        pthread_rwlockattr_setkind_np(&attr, Int32(PTHREAD_RWLOCK_PREFER_READER_NP))
        pthread_rwlock_init(lock, &attr)
        pthread_rwlockattr_destroy(&attr)
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    func lockShared() { pthread_rwlock_rdlock(lock) }
    func lockExclusive() { pthread_rwlock_wrlock(lock) }
    func unlock() { pthread_rwlock_unlock(lock) }
}

// MARK: - Named databases

extension LMDBEnvironment {
    /// Opens named databases in one short transaction and commits it, so the handles are valid in
    /// every later transaction. With `create`, missing databases are created (write mode only).
    /// - Returns: the handles (for `Table(name:handle:)`) in the order of `names`, or `nil` when one is
    ///   missing and `create` is false.
    func openTableHandles(_ names: [String], create: Bool) throws(LMDBError) -> [UInt32]? {
        var txnOut: OpaquePointer?
        try check(mdb_txn_begin(handle, nil, configuration.readOnly ? UInt32(MDB_RDONLY) : 0, &txnOut))
        let txn = txnOut!
        var handles: [UInt32] = []
        for name in names {
            var dbi: MDB_dbi = 0
            let rc = mdb_dbi_open(txn, name, create ? UInt32(MDB_CREATE) : 0, &dbi)
            if rc == MDB_NOTFOUND {
                mdb_txn_abort(txn)
                return nil
            }
            if rc != 0 {
                mdb_txn_abort(txn)
                throw LMDBError(code: rc)
            }
            handles.append(dbi)
        }
        try check(mdb_txn_commit(txn))
        return handles
    }
}
