import SheafRandom
import Testing

/// SplitMix64 against reference outputs (computed by an independent Python transcription of
/// Vigna's splitmix64.c; seed 1234567 is the commonly published test vector), and the float helpers'
/// ranges.
@Suite struct SplitMix64Tests {
    @Test func knownOutputs() {
        var a = SplitMix64(seed: 1_234_567)
        #expect((0..<5).map { _ in a.next() } == [
            0x599E_D017_FB08_FC85, 0x2C73_F084_5854_0FA5, 0x883E_BCE5_A3F2_7C77, 0x3FBE_F740_E917_7B3F,
            0xE3B8_3467_08CB_5ECD,
        ])
        var b = SplitMix64(seed: 0)
        #expect((0..<3).map { _ in b.next() } == [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F])
    }

    @Test func mixIsTheFinaliser() {
        #expect(SplitMix64.mix(0) == 0)
        #expect(SplitMix64.mix(1) == 0x5692_161D_100B_05E5)
        #expect(SplitMix64.mix(42) == 0xA759_EA27_D472_7622)
        // next() is mix of the state advanced by the golden-ratio increment.
        var g = SplitMix64(seed: 99)
        let value = g.next()
        #expect(value == SplitMix64.mix(99 &+ 0x9E37_79B9_7F4A_7C15))
        #expect(g.state == 99 &+ 0x9E37_79B9_7F4A_7C15)
    }

    @Test func sameSeedSameSequence() {
        var a = SplitMix64(seed: 5), b = SplitMix64(seed: 5), c = SplitMix64(seed: 6)
        let x = (0..<100).map { _ in a.next() }
        #expect(x == (0..<100).map { _ in b.next() })
        #expect(x != (0..<100).map { _ in c.next() })
    }

    @Test func floatsStayInRange() {
        var g = SplitMix64(seed: 7)
        // The top 24 bits over 2^24 (from the Python reference).
        #expect([g.nextFloat(), g.nextFloat(), g.nextFloat()] == [0.389_829_695_224_761_96, 0.016_788_244_247_436_523, 0.900_760_650_634_765_6])
        let unit = (0..<100_000).map { _ in g.nextFloat() }
        #expect(unit.min()! >= 0 && unit.max()! < 1)
        #expect(unit.min()! < 0.001 && unit.max()! > 0.999)
        for range: ClosedRange<Float> in [-1...1, 0.5...2.5, -3 ... -2, 4...4] {
            let values = (0..<10_000).map { _ in g.float(in: range) }
            #expect(values.allSatisfy { range.contains($0) }, "\(range): \(values.min()!) … \(values.max()!)")
        }
    }

    @Test func samplingWithoutReplacement() {
        // Partial Fisher–Yates on the same generator (Python reference).
        var a = SplitMix64(seed: 3)
        var elements = Array(0..<10)
        a.partialShuffle(&elements, count: 4)
        #expect(elements == [3, 4, 0, 2, 1, 5, 6, 7, 8, 9])

        var b = SplitMix64(seed: 9)
        #expect(b.sortedSample(5, of: 20) == [0, 4, 5, 8, 9])

        // Asking for every row draws nothing.
        var c = SplitMix64(seed: 11)
        #expect(c.sortedSample(7, of: 7) == Array(0..<7))
        #expect(c.sortedSample(9, of: 7) == Array(0..<7))
        #expect(c.state == 11)

        var d = SplitMix64(seed: 12)
        let sample = d.sortedSample(300, of: 1000)
        #expect(sample.count == 300 && Set(sample).count == 300 && sample == sample.sorted())
        #expect(sample.allSatisfy { (0..<1000).contains($0) })
    }

    /// Normal deviates: mean and spread of 100,000 draws, two draws consumed per deviate, and the same
    /// sequence from the same seed.
    @Test func normalDeviates() {
        var rng = SplitMix64(seed: 5)
        let xs = (0..<100_000).map { _ in rng.normal(mean: 1, standardDeviation: 0.02) }
        let mean = xs.reduce(0, +) / Double(xs.count)
        let sd = (xs.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(xs.count - 1)).squareRoot()
        #expect(abs(mean - 1) < 0.0005 && abs(sd - 0.02) < 0.0005)
        #expect(xs.allSatisfy { $0.isFinite })
        var a = SplitMix64(seed: 6), b = SplitMix64(seed: 6)
        _ = a.normal()
        _ = b.next(); _ = b.next()
        #expect(a.state == b.state)
        var c = SplitMix64(seed: 6), d = SplitMix64(seed: 6)
        #expect((0..<10).map { _ in c.normal() } == (0..<10).map { _ in d.normal() })
    }
}
