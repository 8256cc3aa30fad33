#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// SplitMix64: a small, fast, seeded generator. Training, sampling and tests use it so that the
/// same seed gives the same result on every machine (unlike `SystemRandomNumberGenerator`).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    /// The generator's whole state.
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    @inlinable
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return Self.mix(state)
    }

    /// SplitMix64's finaliser: `z = (z ^ (z >> 30)) · 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) ·
    /// 0x94D049BB133111EB; z ^ (z >> 31)`, all mod 2^64. A bijective hash of 64 bits, also used on
    /// its own where a documented, portable hash is wanted.
    @inlinable
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z &>> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z &>> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z &>> 31)
    }

    /// A float uniform in [0, 1), with 24 random bits.
    @inlinable
    public mutating func nextFloat() -> Float { Float(next() &>> 40) * (1.0 / Float(1 << 24)) }

    /// A float uniform in `range`.
    @inlinable
    public mutating func float(in range: ClosedRange<Float>) -> Float {
        range.lowerBound + nextFloat() * (range.upperBound - range.lowerBound)
    }

    /// A normal deviate (Box–Muller on two draws of 53 bits; the first uniform is shifted off 0),
    /// computed in Double and the same on every machine with a correctly rounded libm.
    public mutating func normal(mean: Double = 0, standardDeviation: Double = 1) -> Double {
        let u1 = (Double(next() >> 11) + 0.5) * 0x1p-53
        let u2 = Double(next() >> 11) * 0x1p-53
        return mean + standardDeviation * (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
}
