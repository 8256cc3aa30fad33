import SheafRandom

/// Short spellings used by the store tests, on SheafRandom's SplitMix64 (their fixed-seed generator).
extension SplitMix64 {
    /// Uniform in [lo, hi).
    mutating func float(_ lo: Float, _ hi: Float) -> Float { lo + (hi - lo) * nextFloat() }

    /// Uniform in 0..<n.
    mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }

    /// A uniform Int in `range` (must not be empty).
    mutating func int(in range: Range<Int>) -> Int { Int.random(in: range, using: &self) }

    /// A uniform Int in `range`.
    mutating func int(in range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }

    /// True with probability `p`.
    mutating func bool(_ p: Double = 0.5) -> Bool { Double(next() >> 11) * 0x1p-53 < p }
}
