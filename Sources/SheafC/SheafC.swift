import CSheafAPI
import Foundation
import SheafCodebook
import SheafModels
import SheafQuantizer
import SheafStore
import Synchronization

// The C API of sheaf.h (Sources/CSheafAPI/include), implemented with @_cdecl. Every entry point
// validates its arguments, turns every thrown error into an error code and a per-thread message,
// and never traps on bad input. Stores are kept in a registry of integer handles (never reused),
// so a closed or made-up handle is an error, not a dangling pointer.

// MARK: - Handles and errors

/// Values the C API hands out as integer handles: counted from 1, never reused, so a closed or
/// made-up handle is found missing instead of dangling.
final class HandleRegistry<Value: Sendable>: Sendable {
    private let state = Mutex<(next: UInt64, values: [UInt64: Value])>((next: 1, values: [:]))
    /// The message for a handle that is not there.
    private let missing: @Sendable (UInt64) -> String

    init(missing: @escaping @Sendable (UInt64) -> String) { self.missing = missing }

    func insert(_ value: Value) -> UInt64 {
        state.withLock { s in
            let handle = s.next
            s.next += 1
            s.values[handle] = value
            return handle
        }
    }

    /// The value of `handle`; SHEAF_E_BAD_HANDLE when it is not there.
    func value(_ handle: UInt64) throws -> Value {
        guard let v = state.withLock({ $0.values[handle] }) else { throw APIError(code: SHEAF_E_BAD_HANDLE, message: missing(handle)) }
        return v
    }

    /// Forgets `handle`; SHEAF_E_BAD_HANDLE when it is not there.
    func remove(_ handle: UInt64) throws {
        guard state.withLock({ $0.values.removeValue(forKey: handle) }) != nil else {
            throw APIError(code: SHEAF_E_BAD_HANDLE, message: missing(handle))
        }
    }
}

/// An open handle: its store, and whether it may write.
struct OpenStore: Sendable {
    let store: Store
    let writable: Bool
}

/// The open stores, by handle.
private let stores = HandleRegistry<OpenStore> { "handle \($0) is not open (never opened, or closed)" }

/// The stores opened through the API, by their data file (device, inode): every handle on one store
/// shares one `Store`, since LMDB allows one environment per file per process. Held weakly: the
/// store closes with its last handle.
private struct FileID: Hashable {
    let device: UInt64
    let inode: UInt64
}

private struct WeakStore: @unchecked Sendable {  // a weak reference to a Sendable class
    weak var store: Store?
}

private let openFiles = Mutex<[FileID: WeakStore]>([:])

/// A failed call: its code and message.
struct APIError: Error {
    let code: Int32
    let message: String
}

/// Runs `body`, returning SHEAF_OK, or recording its error for this thread and returning its code.
private func api(_ body: () throws -> Void) -> Int32 {
    do {
        try body()
        return SHEAF_OK
    } catch let e as APIError {
        sheaf_set_last_error(e.code, e.message)
        return e.code
    } catch let e as StoreError {
        let code: Int32
        switch e {
        case .missingItems: code = SHEAF_E_MISSING_ITEMS
        case .bufferTooSmall: code = SHEAF_E_BUFFER_TOO_SMALL
        case .readOnly: code = SHEAF_E_READ_ONLY
        case .invalidBehavior: code = SHEAF_E_INVALID_ARGUMENT
        default: code = SHEAF_E_STORE
        }
        sheaf_set_last_error(code, e.description)
        return code
    } catch {
        sheaf_set_last_error(SHEAF_E_STORE, "\(error)")
        return SHEAF_E_STORE
    }
}

private func invalid(_ message: String) -> APIError { APIError(code: SHEAF_E_INVALID_ARGUMENT, message: message) }

private func store(_ handle: sheaf_handle) throws -> Store { try stores.value(handle).store }

/// The store of a handle that may write; SHEAF_E_READ_ONLY otherwise.
private func writableStore(_ handle: sheaf_handle) throws -> Store {
    let h = try stores.value(handle)
    guard h.writable else { throw APIError(code: SHEAF_E_READ_ONLY, message: "handle \(handle) was opened read-only") }
    return h.store
}

/// Sets *count to what a read needs and returns SHEAF_E_BUFFER_TOO_SMALL saying so ("the history
/// holds 12 behaviours; the buffers hold 10").
private func tooSmall(_ what: String, _ needed: Int, _ unit: String, capacity: Int64, count: UnsafeMutablePointer<Int64>) -> APIError {
    count.pointee = Int64(needed)
    return APIError(code: SHEAF_E_BUFFER_TOO_SMALL, message: "\(what) \(needed) \(unit); the buffers hold \(capacity)")
}

private func noHistory(_ user: UInt64) -> APIError { APIError(code: SHEAF_E_NOT_FOUND, message: "user \(user) has no history") }

/// A history decoded by `decode` into `capacity` rows of `width` floats at `rows` (the decode checks
/// the size before writing): a too-small buffer is SHEAF_E_BUFFER_TOO_SMALL with *count the
/// behaviours needed, no history SHEAF_E_NOT_FOUND.
private func decodedHistory(
    user: UInt64, into rows: UnsafeMutablePointer<Float>, capacity: Int64, width: Int, count: UnsafeMutablePointer<Int64>,
    _ decode: (UnsafeMutableBufferPointer<Float>) throws -> History?
) throws -> History {
    let h: History?
    do {
        h = try decode(UnsafeMutableBufferPointer(start: rows, count: try floats(capacity, width: width)))
    } catch StoreError.bufferTooSmall(let needed, _) {
        throw tooSmall("the history holds", needed / width, "behaviours", capacity: capacity, count: count)
    }
    guard let h else { throw noHistory(user) }
    return h
}

/// `count` rows of `width` floats as an Int, refusing what would overflow (a buffer that large cannot exist).
private func floats(_ count: Int64, width: Int) throws -> Int {
    guard count >= 0 else { throw invalid("a count of \(count) is negative") }
    guard width == 0 || count <= Int64(Int.max / width) else { throw invalid("\(count) rows of \(width) floats cannot be addressed") }
    return Int(count) * width
}

private func required<T>(_ p: UnsafeMutablePointer<T>?, _ name: String) throws -> UnsafeMutablePointer<T> {
    guard let p else { throw invalid("\(name) is NULL") }
    return p
}

/// The preamble of every read into caller-sized buffers: `count` (where the behaviours or entries
/// written, or needed, go) must not be NULL, and `capacity` not negative.
private func sizedRead(_ count: UnsafeMutablePointer<Int64>?, capacity: Int64) throws -> UnsafeMutablePointer<Int64> {
    let count = try required(count, "count")
    guard capacity >= 0 else { throw invalid("capacity \(capacity) is negative") }
    return count
}

// MARK: - Versions

/// The library version (static storage).
private let libraryVersion: StaticString = "0.19.0"

@_cdecl("sheaf_library_version")
public func sheafLibraryVersion() -> UnsafePointer<CChar> {
    UnsafeRawPointer(libraryVersion.utf8Start).assumingMemoryBound(to: CChar.self)
}

@_cdecl("sheaf_api_version")
public func sheafAPIVersion() -> Int32 { SHEAF_API_VERSION }

@_cdecl("sheaf_store_format_version")
public func sheafStoreFormatVersion() -> Int32 { Int32(StoreMetadata.schemaVersion) }

// MARK: - Open and close

@_cdecl("sheaf_open")
public func sheafOpen(_ path: UnsafePointer<CChar>?, _ flags: Int32, _ out: UnsafeMutablePointer<sheaf_handle>?) -> Int32 {
    api {
        guard let path else { throw invalid("path is NULL") }
        let out = try required(out, "out")
        guard flags == SHEAF_OPEN_READ_ONLY || flags == SHEAF_OPEN_READ_WRITE else { throw invalid("unknown flags \(flags)") }
        let directory = String(cString: path)
        let writable = flags == SHEAF_OPEN_READ_WRITE
        let opened: Store = try openFiles.withLock { files in
            var st = stat()
            let id = stat(directory + "/data.mdb", &st) == 0 ? FileID(device: UInt64(st.st_dev), inode: UInt64(st.st_ino)) : nil
            // A store this process has open already is shared; read-write needs it opened read-write.
            if let id, let existing = files[id]?.store {
                guard !writable || !existing.isReadOnly else {
                    throw APIError(
                        code: SHEAF_E_STORE,
                        message: "the store at \(directory) is already open read-only in this process; LMDB allows one environment "
                            + "per file per process, so it cannot be reopened read-write: close its handles first, or open it "
                            + "read-write first (a read-write handle serves reads too)")
                }
                return existing
            }
            var options = StoreOptions()
            options.readOnly = !writable
            options.createIfMissing = false
            let store = try Store(path: directory, options: options)
            if let id { files[id] = WeakStore(store: store) }
            files = files.filter { $0.value.store != nil }
            return store
        }
        out.pointee = stores.insert(OpenStore(store: opened, writable: writable))
    }
}

@_cdecl("sheaf_close")
public func sheafClose(_ handle: sheaf_handle) -> Int32 {
    api {
        // The store closes when the last reference goes: a call running on another thread keeps it open until it returns.
        try stores.remove(handle)
    }
}

@_cdecl("sheaf_dimension")
public func sheafDimension(_ handle: sheaf_handle, _ out: UnsafeMutablePointer<Int64>?) -> Int32 {
    api {
        let out = try required(out, "out")
        out.pointee = Int64(try store(handle).dimension)
    }
}

// MARK: - Histories

@_cdecl("sheaf_history_length")
public func sheafHistoryLength(_ handle: sheaf_handle, _ user: UInt64, _ out: UnsafeMutablePointer<Int64>?) -> Int32 {
    api {
        let out = try required(out, "out")
        let n = try store(handle).read { try $0.historyCount(user: user) }
        guard n > 0 else { throw noHistory(user) }
        out.pointee = Int64(n)
    }
}

/// Where a read writes: the caller's buffers (any may be nil), `capacity` behaviours each.
private struct Outputs {
    let itemIDs: UnsafeMutablePointer<UInt64>?
    let timestamps: UnsafeMutablePointer<Int64>?
    let labels: UnsafeMutablePointer<Float>?
    let embeddings: UnsafeMutablePointer<Float>?

    /// Writes `h`'s columns from row `row` on (the embeddings are decoded in place beforehand).
    func write(_ h: History, at row: Int) {
        func copy<T>(_ column: [T], _ to: UnsafeMutablePointer<T>?) {
            guard let to, !column.isEmpty else { return }
            // safe: the caller checked that the buffers hold row + h.count values.
            column.withUnsafeBufferPointer { (to + row).update(from: $0.baseAddress!, count: column.count) }
        }
        copy(h.itemIDs, itemIDs)
        copy(h.timestamps, timestamps)
        copy(h.labels, labels)
    }
}

@_cdecl("sheaf_read_history")
public func sheafReadHistory(
    _ handle: sheaf_handle, _ user: UInt64, _ capacity: Int64, _ itemIDs: UnsafeMutablePointer<UInt64>?,
    _ timestamps: UnsafeMutablePointer<Int64>?, _ labels: UnsafeMutablePointer<Float>?, _ embeddings: UnsafeMutablePointer<Float>?,
    _ count: UnsafeMutablePointer<Int64>?
) -> Int32 {
    api {
        let count = try sizedRead(count, capacity: capacity)
        let s = try store(handle)
        let d = s.dimension
        let out = Outputs(itemIDs: itemIDs, timestamps: timestamps, labels: labels, embeddings: embeddings)
        try s.read { txn in
            // One pass: the decode checks the buffer before writing, and a too-small one reports the size.
            let h: History
            if let embeddings {
                h = try decodedHistory(user: user, into: embeddings, capacity: capacity, width: d, count: count) {
                    try txn.decodeHistory(user: user, into: $0)?.0
                }
            } else {
                guard let plain = try txn.history(user: user) else { throw noHistory(user) }
                guard plain.count <= capacity else { throw tooSmall("the history holds", plain.count, "behaviours", capacity: capacity, count: count) }
                h = plain
            }
            out.write(h, at: 0)
            count.pointee = Int64(h.count)
        }
    }
}

@_cdecl("sheaf_read_histories")
public func sheafReadHistories(
    _ handle: sheaf_handle, _ users: UnsafePointer<UInt64>?, _ userCount: Int64, _ capacity: Int64, _ offsets: UnsafeMutablePointer<Int64>?,
    _ itemIDs: UnsafeMutablePointer<UInt64>?, _ timestamps: UnsafeMutablePointer<Int64>?, _ labels: UnsafeMutablePointer<Float>?,
    _ embeddings: UnsafeMutablePointer<Float>?, _ count: UnsafeMutablePointer<Int64>?
) -> Int32 {
    api {
        let count = try sizedRead(count, capacity: capacity)
        let offsets = try required(offsets, "offsets")
        guard userCount >= 0 else { throw invalid("user_count \(userCount) is negative") }
        guard userCount == 0 || users != nil else { throw invalid("users is NULL") }
        let s = try store(handle)
        let ids = (0..<Int(userCount)).map { users![$0] }
        let out = Outputs(itemIDs: itemIDs, timestamps: timestamps, labels: labels, embeddings: embeddings)
        let d = s.dimension
        try s.read { txn in
            // Lengths first (headers only), so a too-small buffer costs no decode and writes nothing.
            let lengths = try ids.map { try txn.historyCount(user: $0) }
            let total = lengths.reduce(0, +)
            guard total <= capacity else { throw tooSmall("the histories hold", total, "behaviours", capacity: capacity, count: count) }
            var row = 0
            offsets[0] = 0
            for (u, user) in ids.enumerated() {
                if lengths[u] > 0 {
                    let h: History?
                    if let embeddings {
                        // Decoded straight into the caller's buffer, after the rows already written.
                        let rest = UnsafeMutableBufferPointer(start: embeddings + row * d, count: try floats(capacity - Int64(row), width: d))
                        h = try txn.decodeHistory(user: user, into: rest)?.0
                    } else {
                        h = try txn.history(user: user)
                    }
                    guard let h else { throw APIError(code: SHEAF_E_STORE, message: "user \(user)'s history vanished") }
                    out.write(h, at: row)
                    row += h.count
                }
                offsets[u + 1] = Int64(row)
            }
            count.pointee = Int64(row)
        }
    }
}

// MARK: - Items

@_cdecl("sheaf_read_items")
public func sheafReadItems(
    _ handle: sheaf_handle, _ ids: UnsafePointer<UInt64>?, _ count: Int64, _ embeddings: UnsafeMutablePointer<Float>?
) -> Int32 {
    api {
        guard count >= 0 else { throw invalid("count \(count) is negative") }
        guard count == 0 || ids != nil else { throw invalid("ids is NULL") }
        let embeddings = try required(embeddings, "embeddings")
        let s = try store(handle)
        let list = UnsafeBufferPointer(start: ids, count: Int(count))
        try s.read { txn in
            _ = try txn.decodeItems(list, into: UnsafeMutableBufferPointer(start: embeddings, count: try floats(count, width: s.dimension)))
        }
    }
}

// MARK: - Statistics

@_cdecl("sheaf_read_statistics")
public func sheafReadStatistics(_ handle: sheaf_handle, _ out: UnsafeMutablePointer<sheaf_statistics>?, _ size: Int) -> Int32 {
    api {
        let out = try required(out, "out")
        guard size >= 0 else { throw invalid("size \(size) is negative") }
        let st = try store(handle).read { try $0.statistics() }
        var full = sheaf_statistics(
            dimension: Int64(st.dimension), items: Int64(st.items), titles: Int64(st.titles), users: Int64(st.users),
            behaviours: Int64(st.behaviors), segments: Int64(st.segments), history_bytes: Int64(st.historyBytes),
            max_history_bytes: Int64(st.maxHistoryBytes), max_history_behaviours: Int64(st.maxHistoryBehaviors),
            profiles: Int64(st.profiles), profile_bytes: Int64(st.profileBytes), codebooks: Int64(st.codebooks.count))
        // safe: the caller's struct holds `size` bytes; no more than ours are copied.
        withUnsafeBytes(of: &full) { UnsafeMutableRawPointer(out).copyMemory(from: $0.baseAddress!, byteCount: min(size, $0.count)) }
    }
}

// MARK: - Profiles

@_cdecl("sheaf_read_profile")
public func sheafReadProfile(
    _ handle: sheaf_handle, _ user: UInt64, _ capacity: Int64, _ levels: UnsafeMutablePointer<Int32>?, _ codes: UnsafeMutablePointer<Int32>?,
    _ counts: UnsafeMutablePointer<Int32>?, _ count: UnsafeMutablePointer<Int64>?, _ modelVersion: UnsafeMutablePointer<UInt32>?,
    _ behaviours: UnsafeMutablePointer<Int64>?
) -> Int32 {
    api {
        let count = try sizedRead(count, capacity: capacity)
        guard capacity == 0 || (levels != nil && codes != nil && counts != nil) else { throw invalid("levels, codes or counts is NULL") }
        guard let stored = try store(handle).read({ try $0.profile(user: user) }) else {
            throw APIError(code: SHEAF_E_NOT_FOUND, message: "user \(user) has no profile")
        }
        let histogram: CodeHistogram
        do { histogram = try CodeHistogram(stored, user: user) } catch { throw APIError(code: SHEAF_E_STORE, message: "\(error)") }
        let entries = histogram.entries
        guard entries.count <= capacity else { throw tooSmall("the profile holds", entries.count, "entries", capacity: capacity, count: count) }
        for (i, e) in entries.enumerated() {
            levels![i] = Int32(e.level)
            codes![i] = Int32(e.code)
            counts![i] = Int32(clamping: e.count)
        }
        count.pointee = Int64(entries.count)
        modelVersion?.pointee = histogram.modelVersion
        behaviours?.pointee = Int64(histogram.behaviors)
    }
}

// MARK: - Projections

/// The projections created through the C API, by handle.
private let projections = HandleRegistry<LinearProjection> { "projection \($0) does not exist (never created, or destroyed)" }

@_cdecl("sheaf_projection_create")
public func sheafProjectionCreate(
    _ handle: sheaf_handle, _ weight: UnsafePointer<Float>?, _ outputWidth: Int64, _ bias: UnsafePointer<Float>?,
    _ out: UnsafeMutablePointer<sheaf_projection>?
) -> Int32 {
    api {
        let out = try required(out, "out")
        guard let weight else { throw invalid("weight is NULL") }
        guard outputWidth >= 1, outputWidth <= 1 << 20 else { throw invalid("output_width \(outputWidth) is outside 1...1048576") }
        let d = try store(handle).dimension, h = Int(outputWidth)
        let p: LinearProjection
        do {
            p = try LinearProjection(
                weight: Array(UnsafeBufferPointer(start: weight, count: d * h)), inputDimension: d, outputDimension: h,
                bias: bias.map { Array(UnsafeBufferPointer(start: $0, count: h)) })
        } catch { throw invalid("\(error)") }
        out.pointee = projections.insert(p)
    }
}

@_cdecl("sheaf_projection_destroy")
public func sheafProjectionDestroy(_ projection: sheaf_projection) -> Int32 {
    api {
        try projections.remove(projection)
    }
}

@_cdecl("sheaf_read_history_projected")
public func sheafReadHistoryProjected(
    _ handle: sheaf_handle, _ projection: sheaf_projection, _ user: UInt64, _ capacity: Int64, _ itemIDs: UnsafeMutablePointer<UInt64>?,
    _ rows: UnsafeMutablePointer<Float>?, _ count: UnsafeMutablePointer<Int64>?
) -> Int32 {
    api {
        let count = try sizedRead(count, capacity: capacity)
        let rows = try required(rows, "rows")
        let p = try projections.value(projection)
        try store(handle).read { txn in
            let history = try decodedHistory(user: user, into: rows, capacity: capacity, width: p.outputDimension, count: count) {
                try txn.decodeHistory(user: user, through: p, into: $0)?.0
            }
            Outputs(itemIDs: itemIDs, timestamps: nil, labels: nil, embeddings: nil).write(history, at: 0)
            count.pointee = Int64(history.count)
        }
    }
}

// MARK: - Writes

@_cdecl("sheaf_append_behaviours")
public func sheafAppendBehaviours(
    _ handle: sheaf_handle, _ count: Int64, _ users: UnsafePointer<UInt64>?, _ items: UnsafePointer<UInt64>?,
    _ timestamps: UnsafePointer<Int64>?, _ labels: UnsafePointer<Float>?, _ actions: UnsafePointer<UInt16>?,
    _ appended: UnsafeMutablePointer<Int64>?
) -> Int32 {
    api {
        guard count >= 0 else { throw invalid("count \(count) is negative") }
        guard count == 0 || (users != nil && items != nil && timestamps != nil) else { throw invalid("users, items or timestamps is NULL") }
        let s = try writableStore(handle)
        guard s.sideFeatureWidth == 0 else {
            throw invalid("this store keeps \(s.sideFeatureWidth) side features per behaviour; the C API does not write side features")
        }
        // Checked row by row first, so an error names the caller's row and nothing is written.
        var byUser: [UInt64: [Behavior]] = [:]
        for i in 0..<Int(count) {
            let t = timestamps![i], label = labels?[i] ?? 0
            guard Behavior.timestampRange.contains(t) else {
                throw invalid("row \(i): timestamp \(t) is outside -2^62 … 2^62 - 1")
            }
            guard label.isFinite else { throw invalid("row \(i): label \(label) is not finite") }
            byUser[users![i], default: []].append(Behavior(item: items![i], timestamp: t, action: actions?[i] ?? 0, label: label))
        }
        let added = try s.write { txn in
            var n = 0
            for user in byUser.keys.sorted() { n += try txn.appendNewBehaviors(byUser[user]!, user: user) }
            return n
        }
        appended?.pointee = Int64(added)
    }
}

@_cdecl("sheaf_put_items")
public func sheafPutItems(_ handle: sheaf_handle, _ count: Int64, _ ids: UnsafePointer<UInt64>?, _ embeddings: UnsafePointer<Float>?) -> Int32 {
    api {
        guard count >= 0 else { throw invalid("count \(count) is negative") }
        guard count == 0 || (ids != nil && embeddings != nil) else { throw invalid("ids or embeddings is NULL") }
        let s = try writableStore(handle)
        let n = Int(count), d = s.dimension
        let idList = Array(UnsafeBufferPointer(start: ids, count: n))
        var seen = Set<UInt64>(minimumCapacity: n)
        for (i, id) in idList.enumerated() where !seen.insert(id).inserted {
            throw invalid("row \(i): item \(id) appears twice in the batch")
        }
        guard let codebook = try s.read({ try $0.activeCodebook() }) else { throw StoreError.noActiveCodebook }
        let rows = UnsafeBufferPointer(start: embeddings, count: try floats(count, width: d))
        for r in 0..<n {
            var zero = true
            for c in 0..<d {
                let v = rows[r * d + c]
                guard v.isFinite else { throw invalid("row \(r): value at column \(c) is \(v) (NaN and infinities are refused)") }
                if v != 0 { zero = false }
            }
            if zero, codebook.metric == .cosine {
                throw invalid("row \(r) is a zero vector: it has no direction and cannot be coded with a cosine codebook")
            }
        }
        guard n > 0 else { return }
        let encoder = ResidualEncoder(
            codebook: codebook, beamWidth: Int(codebook.trainingStats["encode_beam_width"] ?? 1), threads: 1)
        let L = codebook.levels
        var codes = [UInt32](repeating: 0, count: n * L)
        var magnitudes = [Float](repeating: 0, count: n * L)
        try codes.withUnsafeMutableBufferPointer { c in
            try magnitudes.withUnsafeMutableBufferPointer { m in
                try encoder.encode(rows, count: n, codes: c.baseAddress!, magnitudes: m.baseAddress!)
            }
        }
        let packed = try Store.packItems(
            ids: idList, codes: codes, magnitudes: codebook.magnitudeEncoding == .none ? [] : magnitudes, codebook: codebook)
        try s.write { try $0.putPackedItems(ids: idList, packed: packed, codebook: codebook) }
    }
}
