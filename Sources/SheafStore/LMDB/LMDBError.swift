internal import CLMDB
import Glibc

/// An error code returned by LMDB, with named constants so that `catch LMDBError.mapFull` works.
public struct LMDBError: Error, Equatable, Hashable, CustomStringConvertible {
    /// The raw LMDB (or errno) return code.
    public let code: Int32

    public init(code: Int32) { self.code = code }

    /// LMDB's own message for the code.
    public var description: String { "LMDB error \(code): " + String(cString: mdb_strerror(code)) }

    /// Key/data pair already exists (also: `MDB_APPEND` with unsorted keys).
    public static let keyExist = LMDBError(code: MDB_KEYEXIST)
    /// Key/data pair not found (Sheaf turns this into `nil`; it is never thrown by public APIs).
    public static let notFound = LMDBError(code: MDB_NOTFOUND)
    /// Environment map size reached (Sheaf grows the map and retries).
    public static let mapFull = LMDBError(code: MDB_MAP_FULL)
    /// Another process grew the map (Sheaf adopts the new size and retries).
    public static let mapResized = LMDBError(code: MDB_MAP_RESIZED)
    /// Environment max readers reached.
    public static let readersFull = LMDBError(code: MDB_READERS_FULL)
    /// Transaction has too many dirty pages; commit in smaller chunks.
    public static let transactionFull = LMDBError(code: MDB_TXN_FULL)
    /// Environment max named databases reached.
    public static let databasesFull = LMDBError(code: MDB_DBS_FULL)
    /// File is not a valid LMDB file.
    public static let invalid = LMDBError(code: MDB_INVALID)
    /// Environment version mismatch.
    public static let versionMismatch = LMDBError(code: MDB_VERSION_MISMATCH)
    /// Located page was wrong type: the file is corrupted.
    public static let corrupted = LMDBError(code: MDB_CORRUPTED)
    /// No space left on the device.
    public static let diskFull = LMDBError(code: ENOSPC)

    /// Matches any error that is this LMDB error, so `catch LMDBError.mapFull` works.
    public static func ~= (pattern: LMDBError, value: any Error) -> Bool {
        (value as? LMDBError) == pattern
    }
}

/// Throws the `LMDBError` for a non-zero LMDB return code. Every `mdb_*` result goes through here.
/// The wrapper throws nothing else: the store turns these into `StoreError`s where it means to.
@inline(__always)
func check(_ rc: Int32) throws(LMDBError) {
    if rc != 0 { throw LMDBError(code: rc) }
}
