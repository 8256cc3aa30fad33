import Foundation
import SheafCodebook
import SheafRandom

extension SplitMix64 {
    /// `count` floats uniform in `range`.
    mutating func floats(_ count: Int, in range: ClosedRange<Float>) -> [Float] {
        (0..<count).map { _ in float(in: range) }
    }

    /// `count` codes uniform in 0..<k.
    mutating func codes(_ count: Int, below k: Int) -> [UInt32] {
        (0..<count).map { _ in UInt32(next() % UInt64(k)) }
    }
}

/// Makes a cosine codebook with float32 magnitudes and random centroids in [-1, 1].
func randomCodebook(
    dimension: Int, levels: Int, codesPerLevel: Int, rng: inout SplitMix64
) throws -> Codebook {
    try Codebook(
        id: 1, dimension: dimension, levels: levels, codesPerLevel: codesPerLevel, metric: .cosine,
        magnitudeEncoding: .float32,
        centroids: rng.floats(levels * codesPerLevel * dimension, in: -1...1))
}

/// A codebook of the given shape and encoding (zero centroids; random 8-bit ranges when needed).
func layoutCodebook(
    levels: Int, codesPerLevel: Int, encoding: MagnitudeEncoding, rng: inout SplitMix64
) throws -> Codebook {
    var ranges: [MagnitudeRange] = []
    if encoding == .uint8 {
        ranges = (0..<levels).map { _ in
            MagnitudeRange(lower: rng.float(in: -1...0), upper: rng.float(in: 0.5...2))
        }
    }
    return try Codebook(
        id: 7, dimension: 1, levels: levels, codesPerLevel: codesPerLevel,
        metric: encoding == .none ? .euclidean : .cosine, magnitudeEncoding: encoding,
        magnitudeRanges: ranges, centroids: [Float](repeating: 0, count: levels * codesPerLevel))
}

/// An output buffer of `count` floats placed `misalignBytes` past a 64-byte boundary, with
/// sentinel floats on both sides to catch writes outside it.
final class GuardedOutput {
    static let guardFloats = 16
    static let sentinel = Float(bitPattern: 0x7FC0_BEEF)  // a NaN payload no kernel produces
    let raw: UnsafeMutableRawPointer
    let count: Int
    let pointer: UnsafeMutablePointer<Float>
    let totalBytes: Int

    init(count: Int, misalignBytes: Int) {
        precondition(misalignBytes % 4 == 0)
        self.count = count
        totalBytes = (count + 2 * Self.guardFloats) * 4 + 64
        raw = UnsafeMutableRawPointer.allocate(byteCount: totalBytes, alignment: 64)
        raw.initializeMemory(as: UInt32.self, repeating: Self.sentinel.bitPattern, count: totalBytes / 4)
        pointer = (raw + Self.guardFloats * 4 + misalignBytes).assumingMemoryBound(to: Float.self)
    }

    deinit { raw.deallocate() }

    /// Whether every float outside the output window still holds the sentinel.
    var guardsIntact: Bool {
        let all = raw.assumingMemoryBound(to: UInt32.self)
        let start = (UnsafeMutableRawPointer(pointer) - raw) / 4
        for i in 0..<(totalBytes / 4) where i < start || i >= start + count {
            if all[i] != Self.sentinel.bitPattern { return false }
        }
        return true
    }

    var values: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
}

/// Largest violation of |a − b| ≤ tolerance · (1 + scale), as a ratio (≤ 1 passes); `scale` is
/// per element (e.g. Σ_l |α_l c_l[d]|, the size of the terms that were summed).
func worstError(_ a: [Float], _ b: [Float], scale: [Float], tolerance: Float = 1e-5) -> Float {
    precondition(a.count == b.count && b.count == scale.count)
    var worst: Float = 0
    for i in a.indices {
        let e = abs(a[i] - b[i]) / (tolerance * (1 + scale[i]))
        if !(e <= worst) { worst = e.isNaN ? .infinity : e }
    }
    return worst
}

/// Σ_l |α_l · c_l[b_l][d]| per output element: the scale of a decode's rounding error.
func termScale(_ cb: Codebook, codes: [UInt32], magnitudes: [Float], count: Int) -> [Float] {
    let L = cb.levels
    let K = cb.codesPerLevel
    let D = cb.dimension
    var out = [Float](repeating: 0, count: count * D)
    for i in 0..<count {
        for d in 0..<D {
            var s: Float = 0
            for l in 0..<L {
                s += abs(magnitudes[i * L + l] * cb.centroids[(l * K + Int(codes[i * L + l])) * D + d])
            }
            out[i * D + d] = s
        }
    }
    return out
}

/// `body`'s result on a new thread (to see what a kernel's path selection gives there).
func isaOnAnotherThread(_ body: @escaping @Sendable () -> Int32) -> Int32 {
    // Unchecked: written before `signal()`, read after `wait()`.
    final class Result: @unchecked Sendable { var value: Int32 = 0 }
    let result = Result()
    let done = DispatchSemaphore(value: 0)
    Thread {
        result.value = body()
        done.signal()
    }.start()
    done.wait()
    return result.value
}
