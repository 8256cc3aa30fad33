import SheafNN
import SheafRandom
import Testing

@Suite struct SequenceGradientTests {
    func expectGood(_ c: GradientCheck, _ what: String, minimum: Int, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(c.compared >= minimum, "\(what): only \(c.compared) components compared", sourceLocation: sourceLocation)
        #expect(c.worst <= 1, "\(what): \(c.worstAt)", sourceLocation: sourceLocation)
    }

    @Test func reshapeHeadsConcatSlice() {
        var rng = SplitMix64(seed: 20)
        let x = rng.tensor([2, 3, 4]), y = rng.tensor([2, 2, 4])
        expectGood(checkGradients([x]) { t, v in t.reshape(v[0], [6, 4]) }, "reshape", minimum: 24)
        expectGood(checkGradients([x]) { t, v in t.splitHeads(v[0], heads: 2) }, "splitHeads", minimum: 24)
        expectGood(checkGradients([x]) { t, v in t.mergeHeads(t.splitHeads(v[0], heads: 2), heads: 2) }, "merge∘split", minimum: 24)
        expectGood(checkGradients([x, y]) { t, v in t.concatSequence([v[0], v[1], v[0]]) }, "concat", minimum: 40)
        expectGood(checkGradients([x]) { t, v in t.sliceSequence(v[0], 1..<3) }, "slice", minimum: 24)
        // Values: split then merge is the identity; heads land where documented.
        let t = Tape(recording: false)
        #expect(t.mergeHeads(t.splitHeads(x, heads: 2), heads: 2).values == x.values)
        let s = t.splitHeads(x, heads: 2)  // [4, 3, 2]: entry (b=1, h=1), t=2 is x[1, 2, 2..<4]
        #expect(Array(s.values[((1 * 2 + 1) * 3 + 2) * 2..<((1 * 2 + 1) * 3 + 2) * 2 + 2]) == Array(x.values[(1 * 3 + 2) * 4 + 2..<(1 * 3 + 2) * 4 + 4]))
        let c = t.concatSequence([x, y])
        #expect(c.shape == [2, 5, 4])
        #expect(t.sliceSequence(c, 3..<5).values == y.values)
    }

    @Test func poolingNormalisationDropout() {
        var rng = SplitMix64(seed: 21)
        let x = rng.tensor([3, 4, 5])
        // The third sequence is all padding.
        let mask = [true, true, false, true, true, false, false, false, false, false, false, false]
        expectGood(checkGradients([x]) { t, v in t.maskedMeanPool(v[0], mask: mask) }, "maskedMeanPool", minimum: 60)
        let pooled = Tape(recording: false).maskedMeanPool(x, mask: mask)
        #expect(abs(pooled.values[0] - (x.values[0] + x.values[5] + x.values[15]) / 3) <= 1e-6)
        #expect(pooled.values[10..<15].allSatisfy { $0 == 0 })

        let rows = rng.tensor([4, 6])
        expectGood(checkGradients([rows]) { t, v in t.l2Normalize(v[0]) }, "l2Normalize", minimum: 24)
        let n = Tape(recording: false).l2Normalize(rows).values
        for r in 0..<4 { #expect(abs((0..<6).reduce(Float(0)) { $0 + n[r * 6 + $1] * n[r * 6 + $1] } - 1) <= 1e-5) }

        expectGood(checkGradients([rows]) { t, v in t.dropout(v[0], probability: 0.3) }, "dropout", minimum: 24)
        let ones = Tensor(shape: [10_000], values: [Float](repeating: 1, count: 10_000))
        let dropped = Tape(seed: 3).dropout(ones, probability: 0.3).values
        let zeros = dropped.filter { $0 == 0 }.count
        #expect(zeros > 2_800 && zeros < 3_200, "\(zeros) of 10,000 dropped at p = 0.3")
        #expect(dropped.allSatisfy { $0 == 0 || abs($0 - 1 / 0.7) <= 1e-6 })
        #expect(Tape(seed: 4).dropout(ones, probability: 0.3).values != dropped, "another seed, another mask")
        // Several runs of values (over 16,384 each): the same mask on one thread and on three, at the rate asked.
        let many = Tensor(shape: [50_001], values: [Float](repeating: 1, count: 50_001))
        let one = Tape(seed: 5, threads: 1).dropout(many, probability: 0.5).values
        #expect(one == Tape(seed: 5, threads: 3).dropout(many, probability: 0.5).values)
        let half = one.filter { $0 == 0 }.count
        #expect(half > 24_500 && half < 25_500, "\(half) of 50,001 dropped at p = 0.5")
    }

    @Test func losses() {
        var rng = SplitMix64(seed: 22)
        let logits = rng.tensor([4, 5], true, -2, 2)
        expectGood(checkGradients([logits]) { t, v in t.crossEntropy(v[0], targets: [0, 4, 2, 2]) }, "crossEntropy", minimum: 20)
        let uniform = Tape(recording: false).crossEntropy(Tensor(zeros: [2, 5]), targets: [1, 3])
        #expect(abs(uniform.scalar - 1.609_437_9) <= 1e-5)  // log 5
        let q = rng.tensor([3, 4]), k = rng.tensor([3, 4])
        expectGood(checkGradients([q, k]) { t, v in t.infoNCE(queries: v[0], keys: v[1], temperature: 0.5) }, "infoNCE", minimum: 24)
    }

    /// Dropout on the attention weights: gradients match finite differences under the same mask (the
    /// same tape seed draws the same mask), 0 changes nothing, the mask follows the tape's seed, and the
    /// result is the same on one thread and on three.
    @Test func attentionDropout() {
        var rng = SplitMix64(seed: 29)
        let (b, t, w) = (2, 5, 6)
        let q = rng.tensor([b, t, w]), k = rng.tensor([b, t, w]), v = rng.tensor([b, t, w])
        let mask = [true, true, true, true, true, true, true, true, false, false]
        expectGood(
            checkGradients([q, k, v]) { tp, x in tp.attention(x[0], x[1], x[2], heads: 2, keyMask: mask, causal: true, dropout: 0.4) },
            "attention with dropout", minimum: 150)
        let plain = Tape(recording: false).attention(q, k, v, heads: 2, causal: true).values
        #expect(Tape(recording: false).attention(q, k, v, heads: 2, causal: true, dropout: 0).values == plain)
        let a = Tape(recording: false, seed: 3).attention(q, k, v, heads: 2, causal: true, dropout: 0.5).values
        let again = Tape(recording: false, seed: 3, threads: 1).attention(q, k, v, heads: 2, causal: true, dropout: 0.5).values
        let three = Tape(recording: false, seed: 3, threads: 3).attention(q, k, v, heads: 2, causal: true, dropout: 0.5).values
        let other = Tape(recording: false, seed: 4).attention(q, k, v, heads: 2, causal: true, dropout: 0.5).values
        #expect(a == again && a == three)
        #expect(a != other && a != plain)
    }

    @Test func attention() {
        var rng = SplitMix64(seed: 23)
        let (b, t, w) = (2, 4, 6)
        let q = rng.tensor([b, t, w]), k = rng.tensor([b, t, w]), v = rng.tensor([b, t, w])
        let mask = [true, true, true, true, true, true, false, false]
        expectGood(checkGradients([q, k, v]) { tp, x in tp.attention(x[0], x[1], x[2], heads: 2) }, "attention", minimum: 144)
        expectGood(
            checkGradients([q, k, v]) { tp, x in tp.attention(x[0], x[1], x[2], heads: 3, keyMask: mask, causal: true) },
            "masked causal attention", minimum: 144)

        // Causal: position 0 ignores later positions; padding: padded keys and values change nothing.
        let tape = Tape(recording: false)
        let base = tape.attention(q, k, v, heads: 2, keyMask: mask, causal: true).values
        var v2 = v.values
        for j in 0..<w { v2[(0 * t + 2) * w + j] += 5 }  // sequence 0, position 2
        for j in 0..<w { v2[(1 * t + 3) * w + j] += 5 }  // sequence 1, position 3 (padding)
        let moved = tape.attention(q, k, Tensor(shape: v.shape, values: v2), heads: 2, keyMask: mask, causal: true).values
        for j in 0..<w {
            #expect(moved[j] == base[j], "position 0 saw a later value")
            #expect(moved[w + j] == base[w + j], "position 1 saw a later value")
            #expect(moved[(1 * t + 3) * w + j] == base[(1 * t + 3) * w + j], "a padded value was attended")
        }
        #expect(moved[2 * w] != base[2 * w], "position 2 should see its own value")
        // Without masks, heads = 1 and identical keys: uniform weights, so the output is the mean of v.
        let same = Tensor(shape: [1, 3, 2], values: [1, 1, 1, 1, 1, 1])
        let vals = Tensor(shape: [1, 3, 2], values: [0, 3, 6, 9, 12, 15])
        let out = tape.attention(same, same, vals, heads: 1).values
        #expect(abs(out[0] - 6) <= 1e-5 && abs(out[1] - 9) <= 1e-5 && abs(out[4] - 6) <= 1e-5)
    }

    /// Fewer queries than keys: each query row equals that row of the full attention over the same
    /// keys (padding included), and gradients (with dropout) match finite differences.
    @Test func crossAttention() {
        var rng = SplitMix64(seed: 31)
        let (b, tk, tq, w) = (2, 5, 2, 6)
        let q = rng.tensor([b, tk, w]), k = rng.tensor([b, tk, w]), v = rng.tensor([b, tk, w])
        let mask = [true, true, true, true, true, false, true, true, false, true]
        let tape = Tape(recording: false)
        let full = tape.attention(q, k, v, heads: 2, keyMask: mask).values
        // The last tq query rows of each sequence.
        var lastRows = [Float]()
        for r in 0..<b { lastRows += q.values[((r * tk + tk - tq) * w)..<((r + 1) * tk * w)] }
        let asking = Tensor(shape: [b, tq, w], values: lastRows)
        let cross = tape.attention(asking, k, v, heads: 2, keyMask: mask).values
        #expect(cross.count == b * tq * w)
        for r in 0..<b {
            for p in 0..<tq {
                for j in 0..<w {
                    let want = full[(r * tk + tk - tq + p) * w + j], got = cross[(r * tq + p) * w + j]
                    #expect(abs(want - got) <= 1e-6, "sequence \(r) query \(p) column \(j): \(got) vs \(want)")
                }
            }
        }
        let small = rng.tensor([b, tq, w])
        expectGood(checkGradients([small, k, v]) { tp, x in tp.attention(x[0], x[1], x[2], heads: 2, keyMask: mask) }, "cross-attention", minimum: 130)
        expectGood(
            checkGradients([small, k, v]) { tp, x in tp.attention(x[0], x[1], x[2], heads: 3, keyMask: mask, dropout: 0.3) },
            "cross-attention with dropout", minimum: 100)
    }
}
