import CSheafDecode

// MARK: - Decode

extension Codebook {
    /// The instruction set the decode kernel uses on this machine: "avx2+fma+f16c" or "portable".
    public static var decodeInstructionSet: String {
        sheaf_decode_isa() == 2 ? "avx2+fma+f16c" : "portable"
    }

    /// Rows decoded per chunk by `decodePacked` (codes and magnitudes of one chunk live in scratch).
    static let decodeChunkRows = 256

    /// Reconstructs `count` embeddings: output[i] = Σ_l magnitudes[i][l] · centroids[l][codes[i][l]].
    ///
    /// Runs the C kernel (AVX2+FMA when the CPU has it, a compiler-vectorised portable loop otherwise).
    ///
    /// - Parameters:
    ///   - codes: count × levels codes, row-major; every code must be < `codesPerLevel`
    ///     (checked: a violation stops the program, since the kernel would read out of bounds).
    ///   - magnitudes: count × levels magnitudes α, row-major (pass 1s for euclidean codebooks).
    ///   - count: number of rows.
    ///   - output: count × dimension floats, row-major; overwritten. Must not overlap the inputs.
    ///   - streaming: write with non-temporal stores (where rows are aligned), for large outputs
    ///     that will not be read again soon enough to be worth keeping in cache.
    ///   - precision: which centroid table to read (`.float16` reads half the bytes; see `CentroidPrecision`).
    public func decode(
        codes: UnsafePointer<UInt32>, magnitudes: UnsafePointer<Float>, count: Int,
        into output: UnsafeMutablePointer<Float>, streaming: Bool = false, precision: CentroidPrecision = .float32
    ) {
        decode(codes: codes, magnitudes: magnitudes, count: count, into: output, streaming: streaming, precision: precision, bias: nil)
    }

    /// `decode` adding `bias` (D floats) to every row, in the kernel (projected decodes).
    func decode(
        codes: UnsafePointer<UInt32>, magnitudes: UnsafePointer<Float>, count: Int,
        into output: UnsafeMutablePointer<Float>, streaming: Bool, precision: CentroidPrecision, bias: UnsafePointer<Float>?
    ) {
        precondition(count >= 0, "count must not be negative")
        // The kernel indexes centroid rows with the codes unchecked, so check them here: L compares
        // per row against L × D multiply-adds, a negligible cost.
        let total = count * levels
        let limit = UInt32(codesPerLevel)
        var largest: UInt32 = 0
        // safe: `codes` holds count × levels values (documented contract).
        for i in 0..<total { largest = Swift.max(largest, codes[i]) }
        precondition(largest < limit, "a code is ≥ codesPerLevel (\(codesPerLevel))")
        decodeUnchecked(
            codes: codes, magnitudes: magnitudes, count: count, into: output, streaming: streaming,
            half: precision == .float16 ? halfCentroids : nil, bias: bias)
    }

    /// `decode` without the code check. The caller guarantees every code is < `codesPerLevel`.
    /// Reads `half` when given, the float32 centroids otherwise.
    private func decodeUnchecked(
        codes: UnsafePointer<UInt32>, magnitudes: UnsafePointer<Float>, count: Int,
        into output: UnsafeMutablePointer<Float>, streaming: Bool, half: HalfCentroids?, bias: UnsafePointer<Float>?
    ) {
        guard count > 0 else { return }
        if let half {
            half.values.withUnsafeBufferPointer { c in
                half.levelScales.withUnsafeBufferPointer { s in
                    // safe: as below; `values` holds levels × K × D halves and `levelScales` one per level.
                    sheaf_decode_f16_bias(
                        c.baseAddress!, s.baseAddress!, levels, codesPerLevel, dimension, codes, magnitudes, count,
                        bias, output, streaming ? 1 : 0)
                }
            }
            return
        }
        centroids.withUnsafeBufferPointer { c in
            // safe: `centroids` holds levels × K × D floats (checked in `init`), levels is 1...16 and
            // every code is < K (the caller's guarantee), so each centroid row read is in bounds;
            // codes/magnitudes hold count × levels values and output count × D (documented contract).
            // bias: nil, or D floats (the caller's contract).
            sheaf_decode_f32_bias(
                c.baseAddress!, levels, codesPerLevel, dimension, codes, magnitudes, count, bias, output,
                streaming ? 1 : 0)
        }
    }

    /// Unpacks and decodes `count` packed code tuples.
    ///
    /// - Parameters:
    ///   - packed: count × `bytesPerItem` bytes, as written by `pack`.
    ///   - count: number of rows.
    ///   - output: count × dimension floats, row-major; overwritten.
    ///   - streaming, precision: as in `decode(codes:magnitudes:count:into:streaming:precision:)`.
    public func decodePacked(
        _ packed: UnsafeRawBufferPointer, count: Int, into output: UnsafeMutablePointer<Float>,
        streaming: Bool = false, precision: CentroidPrecision = .float32
    ) {
        decodePacked(packed, count: count, into: output, streaming: streaming, precision: precision, bias: nil)
    }

    /// `decodePacked` adding `bias` (D floats) to every row, in the kernel (projected decodes).
    func decodePacked(
        _ packed: UnsafeRawBufferPointer, count: Int, into output: UnsafeMutablePointer<Float>,
        streaming: Bool, precision: CentroidPrecision, bias: UnsafePointer<Float>?
    ) {
        precondition(count >= 0, "count must not be negative")
        precondition(packed.count >= count * bytesPerItem, "packed must hold count × bytesPerItem bytes")
        guard count > 0 else { return }
        // safe: unpacked codes are read from codeBits-wide fields, so they are < 2^codeBits == K.
        precondition(unpackedCodesAreInRange)
        let L = levels
        let D = dimension
        let size = bytesPerItem
        let chunk = Self.decodeChunkRows
        let half = precision == .float16 ? halfCentroids : nil
        // Scratch of 256 × L ≤ 2048 codes and magnitudes (8 KiB each) plus the 8-bit ranges:
        // small enough for the stack, so no heap allocation per call.
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: chunk * L) { codes in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: chunk * L + 2 * L) { scratch in
                let mags = scratch.baseAddress!
                // safe: scratch holds chunk × L + 2 × L floats; the last 2 × L hold lower and step per level.
                let lower = mags + chunk * L
                let step = lower + L
                if magnitudeEncoding == .uint8 {
                    for l in 0..<L {
                        lower[l] = magnitudeRanges[l].lower
                        step[l] = magnitudeRanges[l].step
                    }
                }
                var row = 0
                while row < count {
                    let rows = Swift.min(chunk, count - row)
                    // The rest of `packed` from this chunk on, so that only the input's last rows
                    // need the byte-wise reader. safe: row < count, and packed holds count × size bytes.
                    let rest = UnsafeRawBufferPointer(rebasing: packed[(row * size)...])
                    // safe: rows ≤ chunk, so rows × L values fit the scratch buffers.
                    unpackChunk(rest, count: rows, codes: codes.baseAddress!, magnitudes: mags, lower: lower, step: step)
                    // safe: codes < K (see above); output holds count × D floats and row + rows ≤ count,
                    // so output + row × D has rows × D floats left (row × D cannot overflow: it is
                    // smaller than the output's float count).
                    decodeUnchecked(
                        codes: codes.baseAddress!, magnitudes: mags, count: rows,
                        into: output + row &* D, streaming: streaming, half: half, bias: bias)
                    row += rows
                }
            }
        }
    }

    /// Unpacks `count` rows exactly as `unpack` does, but reads each field with one unaligned
    /// little-endian 64-bit load (a field is ≤ 32 bits and starts ≤ 7 bits into its first byte,
    /// so one load always covers it). Rows so close to the end of `packed` that a load could run
    /// past it go through `unpack`. `lower`/`step` hold the 8-bit ranges per level (unused otherwise).
    private func unpackChunk(
        _ packed: UnsafeRawBufferPointer, count: Int, codes: UnsafeMutablePointer<UInt32>,
        magnitudes: UnsafeMutablePointer<Float>, lower: UnsafePointer<Float>, step: UnsafePointer<Float>
    ) {
        let size = bytesPerItem
        let L = levels
        let codeBits = layout.codeBits
        let magBits = magnitudeEncoding.bits
        let codeMask = (UInt64(1) << UInt64(codeBits)) - 1
        let magMask = (UInt64(1) << UInt64(magBits)) - 1
        // Row r is read with 8-byte loads only if (r + 1) × size + 7 ≤ packed.count: every field
        // starts before the row's end, so every load then ends inside `packed`.
        let fast = Swift.min(count, Swift.max(0, (packed.count - 7) / size))
        let base = packed.baseAddress!
        @inline(__always) func field(_ row: UnsafeRawPointer, _ bit: Int, _ mask: UInt64) -> UInt32 {
            // safe: see `fast` above; loadUnaligned has no alignment requirement.
            let word = UInt64(littleEndian: row.loadUnaligned(fromByteOffset: bit &>> 3, as: UInt64.self))
            return UInt32(truncatingIfNeeded: (word &>> UInt64(bit & 7)) & mask)
        }
        let magStart = L &* codeBits
        for r in 0..<fast {
            // safe: r < fast ≤ count, so the row lies inside `packed`; o + L ≤ count × L.
            let row = base + r &* size
            let o = r &* L
            for l in 0..<L { codes[o &+ l] = field(row, l &* codeBits, codeMask) }
            switch magnitudeEncoding {
            case .none:
                for l in 0..<L { magnitudes[o &+ l] = 1 }
            case .uint8:
                // Same arithmetic as `decodeMagnitude`, so the values are bit-identical.
                for l in 0..<L {
                    magnitudes[o &+ l] = lower[l] + Float(field(row, magStart &+ l &* 8, magMask)) * step[l]
                }
            case .float16:
                for l in 0..<L {
                    let bits = UInt16(truncatingIfNeeded: field(row, magStart &+ l &* 16, magMask))
                    magnitudes[o &+ l] = Float(Float16(bitPattern: bits))
                }
            case .float32:
                for l in 0..<L { magnitudes[o &+ l] = Float(bitPattern: field(row, magStart &+ l &* 32, magMask)) }
            }
        }
        if fast < count {
            unpack(
                UnsafeRawBufferPointer(rebasing: packed[(fast * size)...]), count: count - fast,
                codes: codes + fast * L, magnitudes: magnitudes + fast * L)
        }
    }

    /// Plain scalar reference decoder: for each row and each dimension, accumulates
    /// α_l · c_l[b_l][d] in `Float`, in level order, starting from 0. Slow and bounds-checked;
    /// kept as the oracle the SIMD kernels are tested against.
    ///
    /// - Parameters:
    ///   - codes: count × levels codes, row-major; each < `codesPerLevel`.
    ///   - magnitudes: count × levels magnitudes α, row-major.
    ///   - output: count × dimension floats, row-major; overwritten.
    ///   - precision: `.float16` accumulates (α_l · scale_l) · half_l[b_l][d] instead, the arithmetic
    ///     of the half-precision kernel.
    public func decodeReference(
        codes: UnsafePointer<UInt32>, magnitudes: UnsafePointer<Float>, count: Int,
        into output: UnsafeMutablePointer<Float>, precision: CentroidPrecision = .float32
    ) {
        let L = levels
        let K = codesPerLevel
        let D = dimension
        let half = precision == .float16 ? halfCentroids : nil
        for i in 0..<count {
            for d in 0..<D {
                var acc: Float = 0
                for l in 0..<L {
                    let code = Int(codes[i * L + l])
                    precondition(code < K, "a code is ≥ codesPerLevel (\(K))")
                    let index = (l * K + code) * D + d
                    if let half {
                        acc += (magnitudes[i * L + l] * half.levelScales[l]) * sheaf_half_to_float_scalar(half.values[index])
                    } else {
                        acc += magnitudes[i * L + l] * centroids[index]
                    }
                }
                output[i * D + d] = acc
            }
        }
    }
}
