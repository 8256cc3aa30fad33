import SheafCodebook

/// The fixed-seed generator of the store tests (SheafCodebook's SplitMix64) and its helpers.
typealias TestRandom = SplitMix64

extension SplitMix64 {
    /// A uniform Int in `range` (must not be empty).
    mutating func int(in range: Range<Int>) -> Int { Int.random(in: range, using: &self) }

    /// A uniform Int in `range`.
    mutating func int(in range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }

    /// True with probability `p`.
    mutating func bool(_ p: Double = 0.5) -> Bool { Double(next() >> 11) * 0x1p-53 < p }
}
