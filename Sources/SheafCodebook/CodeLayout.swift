/// The bit-packed layout of one item's code tuple.
///
/// Fields are written least-significant-bit first into consecutive bits, as faiss's `BitstringWriter`
/// packs them: first the L codes at log2(K) bits each, then the L magnitudes at 0, 8, 16 or 32 bits each.
/// The total is rounded up to whole bytes. L = 3, K = 4096, 8-bit magnitudes: 36 + 24 = 60 bits → 8 bytes.
public struct CodeLayout: Sendable, Equatable, CustomStringConvertible {
    /// The most levels a codebook may have.
    public static let maxLevels = 16
    /// The most bytes one packed code can take (16 levels × (16 + 32) bits).
    public static let maxByteCount = maxLevels * (16 + 32) / 8

    /// Number of levels L.
    public let levels: Int
    /// Bits per code, log2(K).
    public let codeBits: Int
    /// How magnitudes are stored.
    public let magnitudeEncoding: MagnitudeEncoding

    public init(levels: Int, codeBits: Int, magnitudeEncoding: MagnitudeEncoding) {
        precondition(levels >= 1 && levels <= Self.maxLevels, "levels must be in 1...\(Self.maxLevels)")
        precondition(codeBits >= 1 && codeBits <= 16, "code bits must be in 1...16")
        self.levels = levels
        self.codeBits = codeBits
        self.magnitudeEncoding = magnitudeEncoding
    }

    /// Bits of codes plus magnitudes.
    public var bitCount: Int { levels * (codeBits + magnitudeEncoding.bits) }
    /// Bytes of one packed code tuple.
    public var byteCount: Int { (bitCount + 7) >> 3 }

    public var description: String {
        "\(levels)×\(codeBits)-bit codes + \(levels)×\(magnitudeEncoding) magnitudes = \(byteCount) bytes"
    }
}

// MARK: - Bit I/O

/// Writes LSB-first bit fields into a zeroed byte buffer.
@usableFromInline
struct BitWriter {
    @usableFromInline let base: UnsafeMutablePointer<UInt8>
    @usableFromInline var bitPosition: Int = 0

    @inlinable init(_ base: UnsafeMutablePointer<UInt8>) { self.base = base }

    /// Appends the low `width` bits of `value` (width ≤ 32). The buffer must be zeroed and large enough.
    @inlinable mutating func write(_ value: UInt32, width: Int) {
        var v = UInt64(value) & ((1 &<< UInt64(width)) &- 1)
        var remaining = width
        while remaining > 0 {
            let byteIndex = bitPosition &>> 3
            let offset = bitPosition & 7
            let take = Swift.min(8 &- offset, remaining)
            base[byteIndex] |= UInt8(truncatingIfNeeded: (v & ((1 &<< UInt64(take)) &- 1)) &<< UInt64(offset))
            v = v &>> UInt64(take)
            remaining &-= take
            bitPosition &+= take
        }
    }
}

/// Reads LSB-first bit fields from a byte buffer.
@usableFromInline
struct BitReader {
    @usableFromInline let base: UnsafePointer<UInt8>
    @usableFromInline var bitPosition: Int = 0

    @inlinable init(_ base: UnsafePointer<UInt8>) { self.base = base }

    /// Reads the next `width` bits (width ≤ 32).
    @inlinable mutating func read(width: Int) -> UInt32 {
        var v: UInt64 = 0
        var got = 0
        while got < width {
            let byteIndex = bitPosition &>> 3
            let offset = bitPosition & 7
            let take = Swift.min(8 &- offset, width &- got)
            let bits = (UInt64(base[byteIndex]) &>> UInt64(offset)) & ((1 &<< UInt64(take)) &- 1)
            v |= bits &<< UInt64(got)
            got &+= take
            bitPosition &+= take
        }
        return UInt32(truncatingIfNeeded: v)
    }
}

// MARK: - Magnitudes

extension Codebook {
    /// The stored bit pattern of magnitude `alpha` at `level` (the value after quantization is
    /// what `decodeMagnitude` returns). 8-bit magnitudes are clamped into the level's range.
    @inlinable
    public func encodeMagnitude(_ alpha: Float, level: Int) -> UInt32 {
        switch magnitudeEncoding {
        case .none: return 0
        case .uint8:
            let r = magnitudeRanges[level]
            let step = r.step
            guard step > 0 else { return 0 }
            let q = ((alpha - r.lower) / step).rounded()
            return UInt32(Swift.max(0, Swift.min(255, q)))
        case .float16: return UInt32(Float16(alpha).bitPattern)
        case .float32: return alpha.bitPattern
        }
    }

    /// The magnitude a stored bit pattern stands for.
    @inlinable
    public func decodeMagnitude(_ bits: UInt32, level: Int) -> Float {
        switch magnitudeEncoding {
        case .none: return 1
        case .uint8:
            let r = magnitudeRanges[level]
            return r.lower + Float(bits) * r.step
        case .float16: return Float(Float16(bitPattern: UInt16(truncatingIfNeeded: bits)))
        case .float32: return Float(bitPattern: bits)
        }
    }

    /// The magnitude `alpha` becomes after a store/load round trip. Encoders take the next level's
    /// residual against this value so that quantization errors do not compound.
    @inlinable
    public func quantizedMagnitude(_ alpha: Float, level: Int) -> Float {
        decodeMagnitude(encodeMagnitude(alpha, level: level), level: level)
    }
}

// MARK: - Packing

extension Codebook {
    /// Packs `count` code tuples into `count × bytesPerItem` bytes.
    ///
    /// - Parameters:
    ///   - codes: count × L codes, each < K.
    ///   - magnitudes: count × L magnitudes α; ignored (may be empty) for `.none`.
    ///   - output: at least count × `bytesPerItem` bytes; overwritten.
    /// - Throws: `CodebookError.codeOutOfRange` or `.nonFiniteMagnitude`; nothing is written then.
    public func pack(
        codes: UnsafeBufferPointer<UInt32>, magnitudes: UnsafeBufferPointer<Float>, count: Int,
        into output: UnsafeMutableRawBufferPointer
    ) throws {
        let L = levels
        precondition(codes.count >= count * L, "codes must hold count × levels values")
        precondition(magnitudeEncoding == .none || magnitudes.count >= count * L, "magnitudes must hold count × levels values")
        precondition(output.count >= count * bytesPerItem, "output must hold count × bytesPerItem bytes")
        try validate(codes: codes, magnitudes: magnitudes, count: count)
        let size = bytesPerItem
        let base = output.baseAddress!.assumingMemoryBound(to: UInt8.self)
        base.update(repeating: 0, count: count * size)
        let codeBits = layout.codeBits
        let magBits = magnitudeEncoding.bits
        for row in 0..<count {
            var writer = BitWriter(base + row * size)
            for l in 0..<L { writer.write(codes[row * L + l], width: codeBits) }
            if magBits > 0 {
                for l in 0..<L { writer.write(encodeMagnitude(magnitudes[row * L + l], level: l), width: magBits) }
            }
        }
    }

    /// Checks that every code is < K and every magnitude finite.
    /// - Throws: the first `CodebookError.codeOutOfRange` or `.nonFiniteMagnitude` found.
    public func validate(codes: UnsafeBufferPointer<UInt32>, magnitudes: UnsafeBufferPointer<Float>, count: Int) throws {
        let L = levels
        let K = UInt32(codesPerLevel)
        for i in 0..<(count * L) where codes[i] >= K {
            throw CodebookError.codeOutOfRange(row: i / L, level: i % L, code: codes[i], codesPerLevel: codesPerLevel)
        }
        if magnitudeEncoding != .none {
            for i in 0..<(count * L) where !magnitudes[i].isFinite {
                throw CodebookError.nonFiniteMagnitude(row: i / L, level: i % L)
            }
        }
    }

    /// Unpacks `count` packed code tuples into codes and dequantized magnitudes.
    ///
    /// - Parameters:
    ///   - packed: count × `bytesPerItem` bytes.
    ///   - codes: receives count × L codes.
    ///   - magnitudes: receives count × L magnitudes (1 for `.none`).
    @inlinable
    public func unpack(
        _ packed: UnsafeRawBufferPointer, count: Int,
        codes: UnsafeMutablePointer<UInt32>, magnitudes: UnsafeMutablePointer<Float>
    ) {
        let size = bytesPerItem
        precondition(packed.count >= count * size, "packed must hold count × bytesPerItem bytes")
        let base = packed.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let L = levels
        let codeBits = layout.codeBits
        let magBits = magnitudeEncoding.bits
        for row in 0..<count {
            var reader = BitReader(base + row &* size)
            let o = row &* L
            for l in 0..<L { codes[o &+ l] = reader.read(width: codeBits) }
            if magBits > 0 {
                for l in 0..<L { magnitudes[o &+ l] = decodeMagnitude(reader.read(width: magBits), level: l) }
            } else {
                for l in 0..<L { magnitudes[o &+ l] = 1 }
            }
        }
    }

    /// Whether a packed code's codes are all < K (always true when K = 2^codeBits, as Sheaf requires).
    /// Kept as the single place that says why unpacked codes are safe to use as centroid row indices.
    @inlinable public var unpackedCodesAreInRange: Bool { codesPerLevel == 1 << layout.codeBits }
}
