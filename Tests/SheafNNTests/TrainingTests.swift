#if canImport(Glibc)
    import Glibc
#endif
import SheafNN
import SheafRandom
import Testing

@Suite struct OptimizerTests {
    /// One AdamW step by hand: with bias correction the first update moves each weight by
    /// lr · (sign(g) · |g| / (|g| + ε) + λ·w) ≈ lr · (sign(g) + λ·w).
    @Test func adamWFirstStep() {
        let w = Tensor.parameter(shape: [3], values: [1, -2, 0.5])
        let b = Tensor.parameter(shape: [1], values: [3])
        let opt = AdamW(decayed: [w], undecayed: [b], configuration: .init(weightDecay: 0.1))
        let tape = Tape()
        // L = Σ w ⊙ [2, -4, 0] + 5·b → ∂L/∂w = [2, -4, 0], ∂L/∂b = 5.
        tape.backward(tape.add(
            tape.sum(tape.mul(w, Tensor(shape: [3], values: [2, -4, 0]))), tape.scale(tape.sum(b), 5)))
        opt.step(learningRate: 0.01)
        let e: Float = 1e-8
        #expect(abs(w.values[0] - (1 - 0.01 * (2 / (2 + e) + 0.1 * 1))) <= 1e-6)
        #expect(abs(w.values[1] - (-2 - 0.01 * (-4 / (4 + e) + 0.1 * -2))) <= 1e-6)
        #expect(abs(w.values[2] - (0.5 - 0.01 * (0 + 0.1 * 0.5))) <= 1e-6)
        #expect(abs(b.values[0] - (3 - 0.01 * 1)) <= 1e-6, "no weight decay on undecayed parameters")
        #expect(opt.stepCount == 1)
        opt.zeroGrad()
        #expect(w.grad == nil && b.grad == nil)
    }

    @Test func clippingScalesToTheNorm() {
        let a = Tensor.parameter(shape: [2], values: [0, 0]), b = Tensor.parameter(shape: [1], values: [0])
        let tape = Tape()
        tape.backward(tape.add(tape.sum(tape.mul(a, Tensor(shape: [2], values: [3, 0]))), tape.scale(tape.sum(b), 4)))
        #expect(clipGradientNorm([a, b], maxNorm: 1) == 5)
        #expect(abs(a.grad![0] - 0.6) <= 1e-6 && abs(b.grad![0] - 0.8) <= 1e-6)
        #expect(abs(clipGradientNorm([a, b], maxNorm: 2) - 1) <= 1e-6)
        #expect(abs(a.grad![0] - 0.6) <= 1e-6, "below the limit nothing changes")
    }

    @Test func allocatorSettingsApplyOnGlibc() {
        #if canImport(Glibc)
        // glibc's mallopt takes the settings; under AddressSanitizer (`tools/test --sanitize address`),
        // whose allocator replaces glibc's, it refuses them, and the call must say so.
        let underASan = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "__asan_init") != nil
        #expect(Memory.retainFreedBuffers() == !underASan)
        #endif
    }

    @Test func warmupThenCosine() {
        let s = WarmupCosineSchedule(peak: 1, warmupSteps: 4, totalSteps: 14, minimum: 0.1)
        #expect(s.learningRate(at: 0) == 0.25)
        #expect(s.learningRate(at: 3) == 1)
        #expect(abs(s.learningRate(at: 4) - 1) <= 1e-6)
        #expect(abs(s.learningRate(at: 9) - 0.55) <= 1e-6)  // halfway: (1 + 0.1) / 2
        #expect(abs(s.learningRate(at: 14) - 0.1) <= 1e-6)
        #expect(s.learningRate(at: 100) == 0.1)
    }
}

/// A one-layer transformer classifier memorises a tiny padded dataset.
@Suite struct TinyTransformerTests {
    struct Model {
        let width = 8, heads = 2, vocabulary = 6, length = 5, classes = 3
        var tokens, positions, wq, wk, wv, wo, w1, w2, wc: Tensor
        var bq, bk, bv, bo, b1, b2, bc, g1, beta1, g2, beta2: Tensor

        init() {
            var r = SplitMix64(seed: 31)
            func p(_ shape: [Int], _ s: Float = 0.5) -> Tensor { Tensor.parameter(shape: shape, values: r.floats(Tensor.count(of: shape), -s, s)) }
            func z(_ n: Int) -> Tensor { Tensor.parameter(shape: [n], values: [Float](repeating: 0, count: n)) }
            func one(_ n: Int) -> Tensor { Tensor.parameter(shape: [n], values: [Float](repeating: 1, count: n)) }
            tokens = p([6, 8]); positions = p([5, 8])
            wq = p([8, 8]); wk = p([8, 8]); wv = p([8, 8]); wo = p([8, 8]); w1 = p([8, 16]); w2 = p([16, 8]); wc = p([8, 3])
            bq = z(8); bk = z(8); bv = z(8); bo = z(8); b1 = z(16); b2 = z(8); bc = z(3)
            g1 = one(8); beta1 = z(8); g2 = one(8); beta2 = z(8)
        }

        var matrices: [Tensor] { [tokens, positions, wq, wk, wv, wo, w1, w2, wc] }
        var vectors: [Tensor] { [bq, bk, bv, bo, b1, b2, bc, g1, beta1, g2, beta2] }

        func logits(_ t: Tape, _ batch: [[Int]]) -> Tensor {
            let b = batch.count
            let ids = batch.flatMap { $0 + [Int](repeating: 0, count: length - $0.count) }
            let mask = batch.flatMap { s in (0..<length).map { $0 < s.count } }
            let pos = t.embedding(positions, ids: (0..<b).flatMap { _ in Array(0..<length) })
            let x = t.reshape(t.add(t.embedding(tokens, ids: ids), pos), [b, length, width])
            let q = t.add(t.matmul(x, wq), bq), k = t.add(t.matmul(x, wk), bk), v = t.add(t.matmul(x, wv), bv)
            let a = t.add(t.matmul(t.attention(q, k, v, heads: heads, keyMask: mask), wo), bo)
            let h = t.layerNorm(t.add(x, a), gamma: g1, beta: beta1)
            let f = t.add(t.matmul(t.gelu(t.add(t.matmul(h, w1), b1)), w2), b2)
            let h2 = t.layerNorm(t.add(h, f), gamma: g2, beta: beta2)
            return t.add(t.matmul(t.maskedMeanPool(h2, mask: mask), wc), bc)
        }
    }

    @Test func overfitsATinyDataset() {
        let model = Model()
        let batch = [[1, 2, 3], [3, 2, 1], [4, 4], [5, 1, 2, 3, 4], [2], [1, 5, 5, 5]]
        let labels = [0, 1, 2, 0, 1, 2]
        let opt = AdamW(decayed: model.matrices, undecayed: model.vectors, configuration: .init(weightDecay: 0.01))
        let schedule = WarmupCosineSchedule(peak: 0.02, warmupSteps: 10, totalSteps: 300, minimum: 0.001)
        var first: Float = 0, last: Float = 0
        for step in 0..<300 {
            let tape = Tape()
            let loss = tape.crossEntropy(model.logits(tape, batch), targets: labels)
            if step == 0 { first = loss.scalar }
            last = loss.scalar
            opt.zeroGrad()
            tape.backward(loss)
            clipGradientNorm(opt.parameters, maxNorm: 1)
            opt.step(learningRate: schedule.learningRate(at: step))
        }
        #expect(first > 0.8, "the untrained loss should be near log 3, got \(first)")
        #expect(last < 0.02, "loss after 300 steps: \(last)")
        let predictions = model.logits(Tape(recording: false), batch)
        for (i, label) in labels.enumerated() {
            let row = Array(predictions.values[(i * 3)..<(i * 3 + 3)])
            #expect(row.firstIndex(of: row.max()!) == label)
        }
    }
}
