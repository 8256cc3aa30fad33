import SheafNN
import SheafRandom
import Testing

/// Every operation's backward pass against central finite differences, on small random shapes.
@Suite struct GradientTests {
    func expectGood(_ c: GradientCheck, _ what: String, minimum: Int, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(c.compared >= minimum, "\(what): only \(c.compared) components compared", sourceLocation: sourceLocation)
        #expect(c.worst <= 1, "\(what): \(c.worstAt)", sourceLocation: sourceLocation)
    }

    @Test func matmul() {
        var rng = SplitMix64(seed: 1)
        let x = rng.tensor([2, 3, 4]), w = rng.tensor([4, 5]), wt = rng.tensor([5, 4])
        expectGood(checkGradients([x, w]) { t, v in t.matmul(v[0], v[1]) }, "x·W", minimum: 44)
        expectGood(checkGradients([x, wt]) { t, v in t.matmul(v[0], v[1], transposeB: true) }, "x·Wᵀ", minimum: 44)
    }

    /// Both matmul gradients written fresh by the first use and accumulated by the second.
    @Test func matmulUsedTwice() {
        var rng = SplitMix64(seed: 8)
        let x = rng.tensor([3, 4]), w = rng.tensor([4, 4])
        expectGood(checkGradients([x, w]) { t, v in t.add(t.matmul(v[0], v[1]), t.matmul(v[0], v[1], transposeB: true)) }, "x·W + x·Wᵀ", minimum: 28)
        let a = rng.tensor([2, 3, 3])
        expectGood(checkGradients([a]) { t, v in t.batchedMatmul(v[0], v[0]) }, "a·a", minimum: 18)
    }

    @Test func batchedMatmul() {
        var rng = SplitMix64(seed: 2)
        let a = rng.tensor([2, 3, 4]), b = rng.tensor([2, 4, 5]), bt = rng.tensor([2, 5, 4])
        expectGood(checkGradients([a, b]) { t, v in t.batchedMatmul(v[0], v[1]) }, "a·b", minimum: 64)
        expectGood(checkGradients([a, bt]) { t, v in t.batchedMatmul(v[0], v[1], transposeB: true) }, "a·bᵀ", minimum: 64)
    }

    @Test func addMulScale() {
        var rng = SplitMix64(seed: 3)
        let a = rng.tensor([3, 4]), b = rng.tensor([3, 4]), bias = rng.tensor([4])
        expectGood(checkGradients([a, b]) { t, v in t.add(v[0], v[1]) }, "a + b", minimum: 24)
        expectGood(checkGradients([a, bias]) { t, v in t.add(v[0], v[1]) }, "a + bias", minimum: 16)
        expectGood(checkGradients([a, b]) { t, v in t.mul(v[0], v[1]) }, "a ⊙ b", minimum: 24)
        expectGood(checkGradients([a, bias]) { t, v in t.mul(v[0], v[1]) }, "a ⊙ row", minimum: 16)
        expectGood(checkGradients([a]) { t, v in t.scale(v[0], -2.5) }, "scale", minimum: 12)
        expectGood(checkGradients([a]) { t, v in t.mean(v[0]) }, "mean", minimum: 12)
    }

    @Test func activations() {
        var rng = SplitMix64(seed: 4)
        let a = rng.tensor([3, 5], true, -3, 3)
        expectGood(checkGradients([a]) { t, v in t.gelu(v[0]) }, "gelu", minimum: 15)
        expectGood(checkGradients([a]) { t, v in t.silu(v[0]) }, "silu", minimum: 15)
        expectGood(checkGradients([a]) { t, v in t.softmax(v[0]) }, "softmax", minimum: 15)
    }

    @Test func normalisations() {
        var rng = SplitMix64(seed: 5)
        let x = rng.tensor([3, 6], true, -2, 2), gamma = rng.tensor([6], true, 0.5, 1.5), beta = rng.tensor([6])
        expectGood(checkGradients([x, gamma, beta]) { t, v in t.layerNorm(v[0], gamma: v[1], beta: v[2]) }, "layerNorm", minimum: 30)
        expectGood(checkGradients([x, gamma]) { t, v in t.rmsNorm(v[0], gamma: v[1]) }, "rmsNorm", minimum: 24)
    }

    @Test func embeddingScatterAdd() {
        var rng = SplitMix64(seed: 6)
        let table = rng.tensor([5, 3])
        expectGood(checkGradients([table]) { t, v in t.embedding(v[0], ids: [4, 1, 4, 0, 4]) }, "embedding", minimum: 15)
        // Row 4 is used three times, row 2 never.
        table.zeroGrad()
        let tape = Tape()
        tape.backward(tape.sum(tape.embedding(table, ids: [4, 1, 4, 0, 4])))
        #expect(table.grad! == [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 3, 3, 3])
    }

    /// A tensor used twice gets the sum of both gradients: d/dx Σ (x ⊙ x + x) = 2x + 1.
    @Test func reuseAccumulates() {
        var rng = SplitMix64(seed: 7)
        let x = rng.tensor([4])
        let tape = Tape()
        tape.backward(tape.sum(tape.add(tape.mul(x, x), x)))
        for i in 0..<4 { #expect(abs(x.grad![i] - (2 * x.values[i] + 1)) <= 1e-6) }
        expectGood(checkGradients([x]) { t, v in t.mul(t.add(v[0], v[0]), t.gelu(v[0])) }, "reused", minimum: 4)
    }
}

/// Forward values against plain definitions.
@Suite struct ForwardTests {
    @Test func matmulMatchesLoops() {
        var rng = SplitMix64(seed: 10)
        let x = rng.tensor([3, 4], false), w = rng.tensor([4, 2], false)
        let y = Tape().matmul(x, w)
        #expect(y.shape == [3, 2])
        for i in 0..<3 {
            for j in 0..<2 {
                var s: Float = 0
                for k in 0..<4 { s += x.values[i * 4 + k] * w.values[k * 2 + j] }
                #expect(abs(y.values[i * 2 + j] - s) <= 1e-5)
            }
        }
    }

    @Test func knownValues() {
        let t = Tape(recording: false)
        let g = t.gelu(Tensor(shape: [3], values: [1, -1, 0])).values
        #expect(abs(g[0] - 0.841_344_7) <= 1e-6 && abs(g[1] + 0.158_655_3) <= 1e-6 && g[2] == 0)
        let s = t.silu(Tensor(shape: [1], values: [2])).values[0]
        #expect(abs(s - 1.761_594_2) <= 1e-6)
        // Softmax survives large logits and sums to 1.
        let p = t.softmax(Tensor(shape: [2, 3], values: [1000, 1001, 1002, -5, 0, 5])).values
        #expect(abs(p[0] + p[1] + p[2] - 1) <= 1e-6 && abs(p[2] - 0.665_240_9) <= 1e-6)
        // Layer norm: zero mean, unit variance before γ/β.
        let n = t.layerNorm(
            Tensor(shape: [1, 4], values: [1, 2, 3, 4]), gamma: Tensor(shape: [4], values: [1, 1, 1, 1]),
            beta: Tensor(zeros: [4]), epsilon: 0).values
        #expect(abs(n.reduce(0, +)) <= 1e-6)
        #expect(abs(n.map { $0 * $0 }.reduce(0, +) / 4 - 1) <= 1e-5)
    }

    @Test func inferenceTapeRecordsNothing() {
        var rng = SplitMix64(seed: 11)
        let w = rng.tensor([4, 4])
        let t = Tape(recording: false)
        let y = t.gelu(t.matmul(rng.tensor([2, 4], false), w))
        #expect(t.nodeCount == 0)
        #expect(!y.requiresGrad)
        let r = Tape()
        _ = r.gelu(r.matmul(rng.tensor([2, 4], false), w))
        #expect(r.nodeCount == 2)
        r.reset()
        #expect(r.nodeCount == 0)
    }
}
