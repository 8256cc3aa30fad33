import Foundation
import SheafNN
import SheafRandom
import Testing

/// The fused and split operations: `linear`, products large enough to be split into row blocks,
/// fused attention against a scalar reference, and bit-identical results on any thread count.
@Suite struct ParallelOperationTests {
    func expectGood(_ c: GradientCheck, _ what: String, minimum: Int, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(c.compared >= minimum, "\(what): only \(c.compared) components compared", sourceLocation: sourceLocation)
        #expect(c.worst <= 1, "\(what): \(c.worstAt)", sourceLocation: sourceLocation)
    }

    @Test func linearIsMatmulPlusBias() {
        var rng = SplitMix64(seed: 50)
        let x = rng.tensor([2, 3, 4]), w = rng.tensor([4, 5]), b = rng.tensor([5])
        expectGood(checkGradients([x, w, b]) { t, v in t.linear(v[0], v[1], bias: v[2]) }, "linear", minimum: 49)
        let t = Tape(recording: false)
        let fused = t.linear(x, w, bias: b).values, composed = t.add(t.matmul(x, w), b).values
        #expect(fused.count == 30)
        for i in 0..<30 { #expect(abs(fused[i] - composed[i]) <= 1e-6) }
        // No inner dimension: the bias alone.
        let empty = t.linear(Tensor(zeros: [3, 0]), Tensor(zeros: [0, 5]), bias: b).values
        #expect(empty == b.values + b.values + b.values)
    }

    /// m = 600 rows of k = n = 64: three `sgemm` row blocks forward and for dX, three partial sums
    /// for dW and db. Checked against Double loops.
    @Test func productsSplitIntoRowBlocks() {
        var rng = SplitMix64(seed: 51)
        let (m, k, n) = (600, 64, 64)
        let x = rng.tensor([m, k]), w = rng.tensor([k, n]), b = rng.tensor([n])
        let weights = Tensor(shape: [m, n], values: rng.floats(m * n))
        let tape = Tape(threads: 2)
        let y = tape.linear(x, w, bias: b)
        let wt = rng.tensor([n, k])
        let z = tape.matmul(x, wt, transposeB: true)
        tape.backward(tape.add(tape.sum(tape.mul(y, weights)), tape.sum(tape.mul(z, weights))))
        var worst = 0.0
        for i in stride(from: 0, to: m, by: 7) {
            for j in 0..<n {
                var e = Double(b.values[j]), f = 0.0
                for l in 0..<k {
                    e += Double(x.values[i * k + l]) * Double(w.values[l * n + j])
                    f += Double(x.values[i * k + l]) * Double(wt.values[j * k + l])
                }
                worst = max(worst, abs(Double(y.values[i * n + j]) - e), abs(Double(z.values[i * n + j]) - f))
            }
        }
        #expect(worst <= 1e-4, "forward \(worst)")
        // dW[l][j] = Σ_i x[i][l] · r[i][j]; db[j] = Σ_i r[i][j]; dWt[j][l] likewise; dx[i][l] = Σ_j r[i][j] (w[l][j] + wt[j][l]).
        for l in stride(from: 0, to: k, by: 5) {
            for j in stride(from: 0, to: n, by: 3) {
                let e = (0..<m).reduce(0.0) { $0 + Double(x.values[$1 * k + l]) * Double(weights.values[$1 * n + j]) }
                #expect(abs(Double(w.grad![l * n + j]) - e) <= 1e-3, "dW[\(l)][\(j)]")
                #expect(abs(Double(wt.grad![j * k + l]) - e) <= 1e-3, "dWᵀ[\(j)][\(l)]")
            }
        }
        for j in 0..<n {
            let e = (0..<m).reduce(0.0) { $0 + Double(weights.values[$1 * n + j]) }
            #expect(abs(Double(b.grad![j]) - e) <= 1e-3, "db[\(j)]")
        }
        for i in stride(from: 0, to: m, by: 11) {
            for l in stride(from: 0, to: k, by: 3) {
                let e = (0..<n).reduce(0.0) { $0 + Double(weights.values[i * n + $1]) * (Double(w.values[l * n + $1]) + Double(wt.values[$1 * k + l])) }
                #expect(abs(Double(x.grad![i * k + l]) - e) <= 1e-4, "dx[\(i)][\(l)]")
            }
        }
    }

    /// Fused attention against a scalar computation from the definition, with padding and causal
    /// masks; and q = k = v (one tensor) gets the sum of all three gradients.
    @Test func fusedAttentionMatchesTheDefinition() {
        var rng = SplitMix64(seed: 52)
        let (b, t, heads, d) = (3, 5, 2, 3)
        let width = heads * d
        let q = rng.tensor([b, t, width]), k = rng.tensor([b, t, width]), v = rng.tensor([b, t, width])
        let mask = [true, true, true, false, false, true, true, true, true, true, false, false, false, false, false]
        for causal in [false, true] {
            let out = Tape(recording: false).attention(q, k, v, heads: heads, keyMask: mask, causal: causal).values
            var worst = 0.0
            for bi in 0..<b {
                for h in 0..<heads {
                    for i in 0..<t {
                        let keys = (0..<t).filter { j in mask[bi * t + j] && (!causal || j <= i) }
                        func at(_ x: Tensor, _ pos: Int, _ c: Int) -> Double { Double(x.values[(bi * t + pos) * width + h * d + c]) }
                        var weights = [Double](repeating: keys.isEmpty ? 1 / Double(t) : 0, count: t)
                        if !keys.isEmpty {
                            let s = keys.map { j in (0..<d).reduce(0.0) { $0 + at(q, i, $1) * at(k, j, $1) } / Double(d).squareRoot() }
                            let m = s.max()!
                            let z = s.map { exp($0 - m) }.reduce(0, +)
                            for (n, j) in keys.enumerated() { weights[j] = exp(s[n] - m) / z }
                        }
                        for c in 0..<d {
                            let e = (0..<t).reduce(0.0) { $0 + weights[$1] * at(v, $1, c) }
                            worst = max(worst, abs(Double(out[(bi * t + i) * width + h * d + c]) - e))
                        }
                    }
                }
            }
            #expect(worst <= 1e-5, "causal \(causal): \(worst)")
        }
        let x = rng.tensor([2, 3, 4])
        expectGood(checkGradients([x]) { tp, v in tp.attention(v[0], v[0], v[0], heads: 2, causal: true) }, "self-attention on one tensor", minimum: 24)
    }

    /// A small transformer step (embedding, linear, fused attention, layer norm, GELU, residuals,
    /// scale, SiLU, products, RMS norm, softmax, cross-entropy, AdamW), large enough that every operation splits into several
    /// chunks, run on 1, 2 and 3 threads: losses, gradients and updated weights are bit-identical.
    @Test func resultsDoNotDependOnTheThreadCount() {
        func run(threads: Int) -> (loss: Float, grads: [[Float]], weights: [[Float]]) {
            var rng = SplitMix64(seed: 53)
            let (batch, length, width, ffn, vocabulary) = (20, 30, 64, 256, 50)
            let table = rng.tensor([vocabulary, width], true, -0.5, 0.5)
            let wq = rng.tensor([width, width], true, -0.2, 0.2), wk = rng.tensor([width, width], true, -0.2, 0.2)
            let wv = rng.tensor([width, width], true, -0.2, 0.2), bq = rng.tensor([width]), bk = rng.tensor([width]), bv = rng.tensor([width])
            let w1 = rng.tensor([width, ffn], true, -0.1, 0.1), c1 = rng.tensor([ffn]), w2 = rng.tensor([ffn, width], true, -0.1, 0.1)
            let gamma = rng.tensor([width], true, 0.5, 1.5), beta = rng.tensor([width]), head = rng.tensor([width, vocabulary], true, -0.1, 0.1)
            let parameters = [table, wq, wk, wv, bq, bk, bv, w1, c1, w2, gamma, beta, head]
            let ids = (0..<(batch * length)).map { _ in Int(rng.next() % UInt64(vocabulary)) }
            let mask = (0..<(batch * length)).map { $0 % length < length - ($0 / length) % 5 }
            let targets = (0..<(batch * length)).map { _ in Int(rng.next() % UInt64(vocabulary)) }

            let tape = Tape(seed: 7, threads: threads)
            let x = tape.reshape(tape.embedding(table, ids: ids), [batch, length, width])
            let a = tape.attention(
                tape.linear(x, wq, bias: bq), tape.linear(x, wk, bias: bk), tape.linear(x, wv, bias: bv), heads: 4, keyMask: mask, causal: true)
            let h = tape.layerNorm(tape.add(x, a), gamma: gamma, beta: beta)
            let f = tape.add(h, tape.matmul(tape.gelu(tape.linear(h, w1, bias: c1)), w2))
            let r = tape.rmsNorm(tape.mul(tape.silu(tape.scale(f, 0.5)), tape.add(f, gamma)), gamma: gamma)
            let p = tape.softmax(tape.matmul(tape.reshape(r, [batch * length, width]), head))
            let loss = tape.crossEntropy(tape.dropout(p, probability: 0.1), targets: targets)
            tape.backward(loss)
            let grads = parameters.map { $0.grad! }
            let optimizer = AdamW(decayed: parameters, threads: threads)
            optimizer.step(learningRate: 1e-3)
            return (loss.scalar, grads, parameters.map(\.values))
        }
        let one = run(threads: 1)
        #expect(one.grads.allSatisfy { g in g.contains { $0 != 0 } }, "every parameter gets a gradient")
        for threads in [2, 3] {
            let other = run(threads: threads)
            #expect(other.loss.bitPattern == one.loss.bitPattern, "\(threads) threads: loss")
            // Counts of values whose bits differ (printing whole arrays would drown the report).
            func differing(_ a: [[Float]], _ b: [[Float]]) -> Int {
                zip(a, b).reduce(0) { n, p in n + zip(p.0, p.1).filter { $0.bitPattern != $1.bitPattern }.count }
            }
            #expect(differing(other.grads, one.grads) == 0, "\(threads) threads: gradients")
            #expect(differing(other.weights, one.weights) == 0, "\(threads) threads: updated weights")
        }
    }
}
