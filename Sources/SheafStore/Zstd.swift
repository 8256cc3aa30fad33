// Owned wrappers over libzstd. This is the only file in Sheaf that calls `ZSTD_*` functions.
//
// Style: every raw zstd pointer is owned by exactly one `final class`, which creates it in `init`
// and frees it in `deinit`; the pointer never escapes the class.

import CZstd

/// An error reported by libzstd (or a decompressed-size mismatch detected by the wrapper).
struct ZstdError: Error, Equatable, CustomStringConvertible {
    /// The zstd error code (`ZSTD_ErrorCode` of `zstd_errors.h`, for example 20 = corruption detected,
    /// 22 = checksum wrong, 72 = source size wrong), or `ZstdError.sizeMismatchCode` (-1) when the data
    /// decompressed fine but not to the expected number of bytes.
    let code: Int
    /// A human-readable message (`ZSTD_getErrorName` for zstd errors).
    let message: String

    init(code: Int, message: String) {
        self.code = code
        self.message = message
    }

    /// Builds the error for a `size_t` result of a zstd call, or returns nil when it is not an error.
    init?(result: Int) {
        guard ZSTD_isError(result) != 0 else { return nil }
        // zstd encodes error `e` as `(size_t)-e`; this is exactly what `ZSTD_getErrorCode` computes
        // (that function lives in zstd_errors.h, which the CZstd shim does not include).
        self.code = Int(bitPattern: 0 &- UInt(bitPattern: result))
        self.message = String(cString: ZSTD_getErrorName(result))
    }

    /// Not a zstd code: the frame decompressed (or declares) a size other than the expected one.
    static let sizeMismatchCode = -1
    /// `ZSTD_error_corruption_detected`.
    static let corruptionDetectedCode = 20
    /// `ZSTD_error_checksum_wrong`: the frame's content checksum does not match the decompressed data.
    static let checksumWrongCode = 22
    /// `ZSTD_error_dstSize_tooSmall`.
    static let dstSizeTooSmallCode = 70
    /// `ZSTD_error_srcSize_wrong`: for decompression, typically a truncated frame.
    static let srcSizeWrongCode = 72

    /// The content checksum of the frame did not match.
    var isChecksumError: Bool { code == Self.checksumWrongCode }
    /// The input ended before the frame did (a truncated frame).
    var isTruncatedInput: Bool { code == Self.srcSizeWrongCode }
    /// The frame holds a different number of bytes than expected.
    var isSizeMismatch: Bool { code == Self.sizeMismatchCode }

    static func sizeMismatch(expected: Int, actual: String) -> ZstdError {
        ZstdError(code: sizeMismatchCode, message: "decompressed size mismatch: expected \(expected) bytes, got \(actual)")
    }

    var description: String { "zstd error \(code): \(message)" }
}

/// A zstd compression context (`ZSTD_CCtx`) with fixed parameters.
///
/// Reusing one compressor across many calls avoids re-allocating zstd's working memory.
///
/// Thread safety: NOT thread-safe. One instance belongs to one thread (or one transaction) at a time;
/// never call `compress` on the same instance concurrently. It is marked `@unchecked Sendable` only so
/// that an owner (a store, a pool, a transaction) may hand an instance to another thread: a zstd
/// context has no thread affinity, it only must not be used by two threads at once. Ensuring that
/// exclusivity is the owner's job.
final class ZstdCompressor: @unchecked Sendable {
    private let cctx: OpaquePointer
    /// The compression level (zstd levels, 1…22; 3 is zstd's default).
    let level: Int32
    /// Whether frames carry a 32-bit content checksum.
    let checksum: Bool

    /// Creates a context with the given level and checksum flag.
    /// Traps if zstd cannot allocate a context or rejects the parameters (a programming error).
    init(level: Int32 = 3, checksum: Bool = true) {
        guard let cctx = ZSTD_createCCtx() else { fatalError("ZSTD_createCCtx failed (out of memory)") }
        self.cctx = cctx
        self.level = level
        self.checksum = checksum
        let r1 = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level)
        if let e = ZstdError(result: r1) { fatalError("zstd rejected compression level \(level): \(e)") }
        let r2 = ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, checksum ? 1 : 0)
        if let e = ZstdError(result: r2) { fatalError("zstd rejected checksum flag: \(e)") }
    }

    deinit { ZSTD_freeCCtx(cctx) }

    /// The largest compressed size of `size` input bytes (`ZSTD_compressBound`).
    static func compressBound(_ size: Int) -> Int { ZSTD_compressBound(size) }

    /// Compresses `src` into one zstd frame (with content size, and checksum if enabled) appended to `out`.
    /// `out` keeps its existing contents; on error it is left as it was.
    func compress(_ src: UnsafeRawBufferPointer, appendingTo out: inout [UInt8]) throws(ZstdError) {
        let bound = ZSTD_compressBound(src.count)
        if let e = ZstdError(result: bound) { throw e }  // source too large
        let start = out.count
        out.reserveCapacity(start + bound)
        out.append(contentsOf: repeatElement(0, count: bound))
        let written = out.withUnsafeMutableBytes { dst in
            ZSTD_compress2(cctx, dst.baseAddress! + start, bound, src.baseAddress, src.count)
        }
        if let e = ZstdError(result: written) {
            out.removeLast(bound)
            throw e
        }
        out.removeLast(bound - written)
    }
}

/// A zstd decompression context (`ZSTD_DCtx`).
///
/// Thread safety: NOT thread-safe. One instance belongs to one thread (or one transaction) at a time;
/// never call `decompress` on the same instance concurrently. It is marked `@unchecked Sendable` only so
/// that an owner (a store, a pool, a transaction) may hand an instance to another thread: a zstd
/// context has no thread affinity, it only must not be used by two threads at once. Ensuring that
/// exclusivity is the owner's job.
final class ZstdDecompressor: @unchecked Sendable {
    private let dctx: OpaquePointer

    /// Creates a context. Traps if zstd cannot allocate one (out of memory).
    init() {
        guard let dctx = ZSTD_createDCtx() else { fatalError("ZSTD_createDCtx failed (out of memory)") }
        self.dctx = dctx
    }

    deinit { ZSTD_freeDCtx(dctx) }

    /// Decompresses `src` (one or more complete zstd frames, nothing else) into `out`, whose contents
    /// are replaced by exactly `expectedSize` bytes (its capacity is reused).
    ///
    /// Throws `ZstdError` when the data is not valid zstd, is truncated or empty (`isTruncatedInput`),
    /// fails its content checksum (`isChecksumError`), or does not decompress to exactly `expectedSize`
    /// bytes (`isSizeMismatch`). When the frame header declares its content size (Sheaf's frames always
    /// do), a mismatch is detected before `out` is resized. On error the contents of `out` are unspecified.
    func decompress(_ src: UnsafeRawBufferPointer, expectedSize: Int, into out: inout [UInt8]) throws(ZstdError) {
        precondition(expectedSize >= 0, "expectedSize must not be negative")
        guard let base = src.baseAddress, !src.isEmpty else {
            throw ZstdError(code: ZstdError.srcSizeWrongCode, message: "empty input: no zstd frame")
        }
        // Walks the block headers only: reports a truncated frame as such (`isTruncatedInput`)
        // instead of, say, a checksum error when just the trailing checksum is cut.
        let frameSize = ZSTD_findFrameCompressedSize(base, src.count)
        if let e = ZstdError(result: frameSize) { throw e }
        let declared = ZSTD_getFrameContentSize(base, src.count)
        // UInt64.max = ZSTD_CONTENTSIZE_UNKNOWN, UInt64.max - 1 = ZSTD_CONTENTSIZE_ERROR:
        // let the decompressor itself report the precise problem in those cases.
        if declared < UInt64.max - 1, declared != UInt64(expectedSize) {
            throw ZstdError.sizeMismatch(expected: expectedSize, actual: "a frame declaring \(declared)")
        }
        if out.count != expectedSize {
            out.removeAll(keepingCapacity: true)
            out.append(contentsOf: repeatElement(0, count: expectedSize))
        }
        let dctx = self.dctx
        let produced = out.withUnsafeMutableBytes { dst in
            ZSTD_decompressDCtx(dctx, dst.baseAddress, dst.count, src.baseAddress, src.count)
        }
        if let e = ZstdError(result: produced) {
            if e.code == ZstdError.dstSizeTooSmallCode {
                throw ZstdError.sizeMismatch(expected: expectedSize, actual: "more")
            }
            throw e
        }
        if produced != expectedSize {
            throw ZstdError.sizeMismatch(expected: expectedSize, actual: "\(produced)")
        }
    }
}
