// MARK: - Key layouts

/// Keys are big-endian so that LMDB's byte order sorts them numerically (and `WriteOptions.append`
/// works for ascending ids). Item, user, codebook and profile ids are 8-byte keys; history segments
/// are 12-byte keys, user id then segment number, so a user's segments are adjacent and in order.
extension UInt64: TableKey {
    @inline(__always)
    func withKeyBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        var be = bigEndian
        return try withUnsafeBytes(of: &be) { (b) throws(E) -> R in try body(b) }
    }

    /// An 8-byte big-endian id.
    init?(keyBytes bytes: UnsafeRawBufferPointer) {
        guard bytes.count == 8 else { return nil }
        self.init(bigEndian: bytes.loadUnaligned(as: UInt64.self))
    }
}

/// The key of one history segment: the user, then the segment's number (0, 1, 2… in time order).
struct SegmentKey: TableKey, Equatable {
    var user: UInt64
    var segment: UInt32

    init(user: UInt64, segment: UInt32) {
        self.user = user
        self.segment = segment
    }

    @inline(__always)
    func withKeyBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        var key: (UInt64, UInt32) = (user.bigEndian, segment.bigEndian)
        return try withUnsafeBytes(of: &key) { (b) throws(E) -> R in try body(UnsafeRawBufferPointer(rebasing: b[0..<12])) }
    }

    /// A 12-byte key: big-endian user id, then big-endian segment number.
    init?(keyBytes bytes: UnsafeRawBufferPointer) {
        guard bytes.count == 12 else { return nil }
        user = UInt64(bigEndian: bytes.loadUnaligned(as: UInt64.self))
        segment = UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
    }

    /// "user/segment", as errors and `verify` name segments.
    var description: String { "\(user)/\(segment)" }
}

/// The key of the store header in table `meta`.
let metaKey: UInt64 = 0
