import CSheafDecode
import Synchronization

/// Which centroid table a decode reads.
public enum CentroidPrecision: String, Sendable, CaseIterable {
    /// The codebook's float32 centroids (the default): the result is Σ_l α_l · c_l[b_l] computed in
    /// float, matching `decodeReference` up to fused multiply-add rounding.
    case float32
    /// A binary16 copy of the centroids with a power-of-two scale per level, built once per codebook
    /// on first use and shared by every copy of the `Codebook` value. The decoder reads half the
    /// centroid bytes, which is what bounds its speed. Each centroid component differs from the float32
    /// one by at most 2⁻¹¹ × the largest |component| of its level (`HalfCentroids.errorBound`).
    case float16
}

/// A binary16 copy of a codebook's centroids: c[l][k][d] ≈ levelScales[l] · Float(values[(l·K + k)·D + d]).
///
/// Each level's scale is the power of two that puts its largest |component| in [2¹⁴, 2¹⁵), far
/// from binary16's limit of 65,504, so no component overflows and the relative step is 2⁻¹¹ of that
/// largest component at worst. Powers of two multiply exactly, so folding the scale into the
/// magnitude costs no precision.
public struct HalfCentroids: Sendable {
    /// levels × K × D binary16 bit patterns, row-major.
    public let values: [UInt16]
    /// One power-of-two scale per level.
    public let levelScales: [Float]
    /// Per level, the largest |c_l[k][d] − scale · half| allowed by the rounding: 2⁻¹¹ × max |c_l|.
    public let errorBound: [Float]

    init(_ codebook: Codebook) {
        let L = codebook.levels
        let perLevel = codebook.codesPerLevel * codebook.dimension
        var values = [UInt16](repeating: 0, count: L * perLevel)
        var scales = [Float](repeating: 1, count: L)
        var bounds = [Float](repeating: 0, count: L)
        codebook.centroids.withUnsafeBufferPointer { c in
            values.withUnsafeMutableBufferPointer { h in
                for l in 0..<L {
                    // safe: l < L, so the level's perLevel values lie inside both buffers.
                    let level = UnsafeBufferPointer(rebasing: c[(l * perLevel)..<((l + 1) * perLevel)])
                    let largest = level.reduce(Float(0)) { Swift.max($0, abs($1)) }
                    let scale = Self.scale(forLargest: largest)
                    scales[l] = scale
                    bounds[l] = largest * 0x1p-11
                    sheaf_float_to_half(level.baseAddress!, 1 / scale, h.baseAddress! + l * perLevel, perLevel)
                }
            }
        }
        self.values = values
        self.levelScales = scales
        self.errorBound = bounds
    }

    /// The power of two s with largest / s in [2¹⁴, 2¹⁵) (1 for an all-zero level), kept within the
    /// normal float range so that 1 / s is exact too.
    static func scale(forLargest largest: Float) -> Float {
        guard largest > 0, largest.isFinite else { return 1 }
        let e = Swift.min(Swift.max(Int(largest.exponent) - 14, -126), 127)
        return Float(sign: .plus, exponent: e, significand: 1)
    }

    /// The float value of element `index` (exact widening), for reference decoders.
    public func value(at index: Int, level: Int) -> Float {
        levelScales[level] * sheaf_half_to_float_scalar(values[index])
    }
}

extension Codebook {
    /// The binary16 copy of the centroids used by `.float16` decodes, built on first use (a pass over
    /// the centroids; 2 bytes per component kept in memory beside the float32 table).
    public var halfCentroids: HalfCentroids { caches.halfCentroids(of: self) }
}
