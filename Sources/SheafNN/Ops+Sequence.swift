#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CSheafNN
import SheafRandom
import SheafLinearAlgebra

extension Tape {
    /// Mean of the rows of each sequence of x [B, T, D] whose `mask` entry ([B·T], true = a real
    /// token) is set: the result is [B, D]. A sequence with no real token pools to zeros.
    public func maskedMeanPool(_ x: Tensor, mask: [Bool]) -> Tensor {
        precondition(x.rank == 3 && mask.count == x.shape[0] * x.shape[1], "maskedMeanPool: x \(x.shape), mask of \(mask.count)")
        let (b, t, d) = (x.shape[0], x.shape[1], x.shape[2])
        var weight = [Float](repeating: 0, count: b)
        for bi in 0..<b {
            let n = (0..<t).reduce(0) { $0 + (mask[bi * t + $1] ? 1 : 0) }
            weight[bi] = n > 0 ? 1 / Float(n) : 0
        }
        var out = [Float](repeating: 0, count: b * d)
        for bi in 0..<b {
            for ti in 0..<t where mask[bi * t + ti] {
                let s = (bi * t + ti) * d
                for j in 0..<d { out[bi * d + j] += x.values[s + j] }
            }
            for j in 0..<d { out[bi * d + j] *= weight[bi] }
        }
        return record(shape: [b, d], values: out, inputs: [x]) { g in
            x.accumulateGrad { dx in
                for bi in 0..<b {
                    for ti in 0..<t where mask[bi * t + ti] {
                        let s = (bi * t + ti) * d
                        for j in 0..<d { dx[s + j] += g[bi * d + j] * weight[bi] }
                    }
                }
            }
        }
    }

    /// Each row over the last dimension divided by its L2 norm (rows with norm below `epsilon` are
    /// divided by `epsilon`, as torch's `normalize` does).
    public func l2Normalize(_ x: Tensor, epsilon: Float = 1e-12) -> Tensor {
        let d = x.lastDimension, rows = x.rows
        var out = x.values
        var norms = [Float](repeating: 0, count: rows)
        for r in 0..<rows {
            var ss: Float = 0
            for j in 0..<d { ss += out[r * d + j] * out[r * d + j] }
            let n = max(ss.squareRoot(), epsilon)
            norms[r] = n
            for j in 0..<d { out[r * d + j] /= n }
        }
        return record(shape: x.shape, values: out, inputs: [x]) { [out, norms] g in
            x.accumulateGrad { dx in
                for r in 0..<rows {
                    let o = r * d, n = norms[r]
                    if n > epsilon {
                        // (g − y·(y·g)) / ‖x‖
                        var dot: Float = 0
                        for j in 0..<d { dot += out[o + j] * g[o + j] }
                        for j in 0..<d { dx[o + j] += (g[o + j] - out[o + j] * dot) / n }
                    } else {
                        for j in 0..<d { dx[o + j] += g[o + j] / n }
                    }
                }
            }
        }
    }

    /// Inverted dropout: each value is zeroed with probability `probability` and the rest scaled by
    /// 1 / (1 − probability); a no-op when `probability` is 0.
    ///
    /// The mask comes from one draw of the tape's seeded generator (`DropoutMask`): fixed runs of values
    /// (`Kernel.elementChunk`) each make their factors from that draw and their start, on the tape's
    /// threads, so the mask depends on the seed and the shape only, never on the thread count. Nothing
    /// is stored: the backward pass makes the same factors again.
    public func dropout(_ x: Tensor, probability: Float) -> Tensor {
        precondition(probability >= 0 && probability < 1, "dropout probability \(probability) outside [0, 1)")
        guard probability > 0 else { return x }
        let mask = DropoutMask(base: random.next(), probability: probability)
        let chunk = Kernel.elementChunk
        var out = unfilledFloats(x.count)
        x.values.withUnsafeBufferPointer { xs in
            out.withUnsafeMutableBufferPointer { o in
                Parallel.forEachChunk(x.count, chunk: chunk, threads: threads) { r in
                    mask.scale(r, xs.baseAddress! + r.lowerBound, into: o.baseAddress! + r.lowerBound, accumulating: false)
                }
            }
        }
        return record(shape: x.shape, values: out, inputs: [x]) { [threads] g in
            x.accumulateGrad { dx in
                Parallel.forEachChunk(dx.count, chunk: chunk, threads: threads) { r in
                    mask.scale(r, g.baseAddress! + r.lowerBound, into: dx.baseAddress! + r.lowerBound, accumulating: true)
                }
            }
        }
    }

    /// Mean cross-entropy of `logits` [N, C] against class indices `targets` (N of them), as a scalar.
    public func crossEntropy(_ logits: Tensor, targets: [Int]) -> Tensor {
        precondition(logits.rank == 2 && targets.count == logits.shape[0], "crossEntropy: logits \(logits.shape), \(targets.count) targets")
        let (n, c) = (logits.shape[0], logits.shape[1])
        for t in targets { precondition(t >= 0 && t < c, "crossEntropy: target \(t) outside 0..<\(c)") }
        var probabilities = logits.values
        var loss: Double = 0
        for r in 0..<n {
            let o = r * c
            var m = -Float.infinity
            for j in 0..<c { m = max(m, probabilities[o + j]) }
            var z: Float = 0
            for j in 0..<c {
                probabilities[o + j] = expf(probabilities[o + j] - m)
                z += probabilities[o + j]
            }
            loss += Double(logf(z) + m - logits.values[o + targets[r]])
            for j in 0..<c { probabilities[o + j] /= z }
        }
        return record(shape: [], values: [Float(loss / Double(n))], inputs: [logits]) { [probabilities] g in
            let k = g[0] / Float(n)
            logits.accumulateGrad { dl in
                for r in 0..<n {
                    for j in 0..<c { dl[r * c + j] += k * (probabilities[r * c + j] - (j == targets[r] ? 1 : 0)) }
                }
            }
        }
    }

    /// InfoNCE with in-batch negatives: row i of `queries` [N, D] should match row i of `keys`
    /// [N, D] against the other rows; logits are dot products divided by `temperature`.
    public func infoNCE(queries: Tensor, keys: Tensor, temperature: Float) -> Tensor {
        precondition(temperature > 0, "infoNCE temperature must be positive")
        precondition(queries.rank == 2 && queries.shape == keys.shape, "infoNCE: queries \(queries.shape), keys \(keys.shape)")
        let logits = scale(matmul(queries, keys, transposeB: true), 1 / temperature)
        return crossEntropy(logits, targets: Array(0..<queries.shape[0]))
    }

    /// Multi-head scaled dot-product attention: q is [B, Tq, H·d], k and v are [B, Tk, H·d]; the
    /// result is [B, Tq, H·d]. Self-attention has Tq = Tk; fewer queries than keys (cross-attention,
    /// e.g. only a sequence's last rows asking) cost Tq·Tk per pair instead of Tk².
    ///
    /// One fused operation: for each (sequence, head) pair, S = Q·Kᵀ (two `sgemm`s read the head's
    /// columns in place, no head split), P = softmax(S/√d) over the allowed keys, O = P·V written
    /// straight into the head's columns of the output. Only P is kept for the backward pass. The
    /// pairs run on the tape's threads, each writing its own slices, so results do not depend on the
    /// thread count.
    ///
    /// - Parameters:
    ///   - keyMask: [B·Tk], true for real tokens; padding keys get no attention weight. nil = all real.
    ///     A query with no allowed key gets uniform weights (its output is padding anyway).
    ///   - causal: position t attends only to positions ≤ t (only with Tq = Tk).
    ///   - dropout: inverted dropout on the attention weights P (each weight zeroed with this
    ///     probability, the rest scaled by 1 / (1 − probability)), as BERT and SASRec apply it; the mask
    ///     is drawn from the tape's seeded generator before the pairs run, so it does not depend on the
    ///     thread count. 0 (the default) draws nothing.
    public func attention(
        _ q: Tensor, _ k: Tensor, _ v: Tensor, heads: Int, keyMask: [Bool]? = nil, causal: Bool = false, dropout: Float = 0
    ) -> Tensor {
        precondition(
            q.rank == 3 && k.rank == 3 && k.shape == v.shape && q.shape[0] == k.shape[0] && q.shape[2] == k.shape[2],
            "attention: q \(q.shape), k \(k.shape), v \(v.shape)")
        let (b, t, tk, width) = (q.shape[0], q.shape[1], k.shape[1], q.shape[2])
        precondition(!causal || t == tk, "attention: causal needs as many queries as keys (\(t), \(tk))")
        precondition(heads > 0 && width % heads == 0, "attention: width \(width) into \(heads) heads")
        if let keyMask { precondition(keyMask.count == b * tk, "attention: key mask of \(keyMask.count) for \(b)×\(tk)") }
        precondition(dropout >= 0 && dropout < 1, "attention dropout \(dropout) outside [0, 1)")
        let d = width / heads, pairs = b * heads, tt = t * tk
        let scale = 1 / Float(d).squareRoot()
        let allowed: [UInt8]? = keyMask.map { $0.map { $0 ? 1 : 0 } }
        let threads = self.threads
        // Dropout of the weights: one run of Tq × Tk factors per (sequence, head) pair, made again by the
        // backward pass (nothing stored).
        let mask: DropoutMask? = dropout > 0 ? DropoutMask(base: random.next(), probability: dropout) : nil
        var probabilities = unfilledFloats(pairs * tt)
        var out = unfilledFloats(q.count)  // every head's columns are written (empty when t or d is 0)
        if t > 0, tk > 0, d > 0 {
            q.values.withUnsafeBufferPointer { pq in
                k.values.withUnsafeBufferPointer { pk in
                    v.values.withUnsafeBufferPointer { pv in
                        probabilities.withUnsafeMutableBufferPointer { pp in
                            out.withUnsafeMutableBufferPointer { po in
                                Parallel.forEach(pairs, threads: threads) { e in
                                    let (bi, head) = (e / heads, (e % heads) * d)
                                    let (base, keyBase) = (bi * t * width + head, bi * tk * width + head)
                                    let p = pp.baseAddress! + e * tt
                                    BLAS.gemm(
                                        m: t, n: tk, k: d, a: pq.baseAddress! + base, lda: width, b: pk.baseAddress! + keyBase,
                                        transposeB: true, ldb: width, c: p)
                                    if let allowed {
                                        allowed.withUnsafeBufferPointer { sheaf_softmax_rows(p, p, t, tk, scale, causal ? 1 : 0, $0.baseAddress! + bi * tk) }
                                    } else {
                                        sheaf_softmax_rows(p, p, t, tk, scale, causal ? 1 : 0, nil)
                                    }
                                    if let mask {
                                        // O = (P ⊙ factors) · V; P itself is kept for the backward pass.
                                        mask.withFactors((e * tt)..<((e + 1) * tt)) { f in
                                            for i in 0..<tt { f[i] *= p[i] }
                                            BLAS.gemm(
                                                m: t, n: d, k: tk, a: f.baseAddress!, b: pv.baseAddress! + keyBase, ldb: width,
                                                c: po.baseAddress! + base, ldc: width)
                                        }
                                    } else {
                                        BLAS.gemm(m: t, n: d, k: tk, a: p, b: pv.baseAddress! + keyBase, ldb: width, c: po.baseAddress! + base, ldc: width)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return record(shape: q.shape, values: out, inputs: [q, k, v]) { [probabilities] g in
            guard t > 0, tk > 0, d > 0 else { return }
            var dq = unfilledFloats(q.count), dk = unfilledFloats(k.count), dv = unfilledFloats(v.count)
            q.values.withUnsafeBufferPointer { pq in
                k.values.withUnsafeBufferPointer { pk in
                    v.values.withUnsafeBufferPointer { pv in
                        probabilities.withUnsafeBufferPointer { pp in
                            dq.withUnsafeMutableBufferPointer { gq in
                                dk.withUnsafeMutableBufferPointer { gk in
                                    dv.withUnsafeMutableBufferPointer { gv in
                                        Parallel.forEach(pairs, threads: threads) { e in
                                            let (bi, head) = (e / heads, (e % heads) * d)
                                            let (base, keyBase) = (bi * t * width + head, bi * tk * width + head)
                                            let p = pp.baseAddress! + e * tt, go = g.baseAddress! + base
                                            withUnsafeTemporaryAllocation(of: Float.self, capacity: tt) { ds in
                                                let s = ds.baseAddress!
                                                // With dropout, O used W = P ⊙ factors: dV = Wᵀ·dO and dP = (dO·Vᵀ) ⊙ factors.
                                                if let mask {
                                                    mask.withFactors((e * tt)..<((e + 1) * tt)) { f in
                                                        // dP first (s), then W in place of the factors for dV.
                                                        BLAS.gemm(
                                                            m: t, n: tk, k: d, a: go, lda: width, b: pv.baseAddress! + keyBase, transposeB: true,
                                                            ldb: width, c: s)
                                                        for i in 0..<tt {
                                                            s[i] *= f[i]
                                                            f[i] *= p[i]
                                                        }
                                                        BLAS.gemm(
                                                            m: tk, n: d, k: t, a: f.baseAddress!, transposeA: true, lda: tk, b: go, ldb: width,
                                                            c: gv.baseAddress! + keyBase, ldc: width)
                                                    }
                                                } else {
                                                    // dV = Pᵀ·dO; dP = dO·Vᵀ
                                                    BLAS.gemm(
                                                        m: tk, n: d, k: t, a: p, transposeA: true, lda: tk, b: go, ldb: width,
                                                        c: gv.baseAddress! + keyBase, ldc: width)
                                                    BLAS.gemm(
                                                        m: t, n: tk, k: d, a: go, lda: width, b: pv.baseAddress! + keyBase, transposeB: true,
                                                        ldb: width, c: s)
                                                }
                                                // dS = P ⊙ (dP − rowsum(dP ⊙ P)) / √d
                                                sheaf_softmax_backward_rows(p, s, s, t, tk, scale, 0)
                                                // dQ = dS·K, dK = dSᵀ·Q
                                                BLAS.gemm(
                                                    m: t, n: d, k: tk, a: s, b: pk.baseAddress! + keyBase, ldb: width, c: gq.baseAddress! + base,
                                                    ldc: width)
                                                BLAS.gemm(
                                                    m: tk, n: d, k: t, a: s, transposeA: true, lda: tk, b: pq.baseAddress! + base, ldb: width,
                                                    c: gk.baseAddress! + keyBase, ldc: width)
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            // Taking (or adding) whole arrays also covers q, k, v being the same tensor.
            if q.requiresGrad { q.accumulateGrad(taking: dq, threads: threads) }
            if k.requiresGrad { k.accumulateGrad(taking: dk, threads: threads) }
            if v.requiresGrad { v.accumulateGrad(taking: dv, threads: threads) }
        }
    }
}

/// A dropout mask that is never stored: the factors (0, or 1 / (1 − probability)) of a run of values
/// starting at index `start` come from a SplitMix64 seeded with mix(base ⊕ start), each 64-bit draw
/// deciding four values, 16 bits each (so the probability applies in steps of 1/65,536: 0.5 and 0.1
/// become 32,768/65,536 and 6,554/65,536). Forward and backward passes make the same runs again.
struct DropoutMask: Sendable {
    let base: UInt64
    let threshold: UInt16
    let keep: Float

    init(base: UInt64, probability: Float) {
        self.base = base
        threshold = UInt16(min(65_535, (Double(probability) * 65_536).rounded()))
        keep = 1 / (1 - probability)
    }

    /// The generator state of the run starting at `start`.
    func state(_ start: Int) -> UInt64 { SplitMix64.mix(base ^ UInt64(start)) }

    /// out[i] = x[i] · factor(run.lowerBound + i) (or += with `accumulating`) for the values of `run`,
    /// making the factors as it goes (the same as `withFactors`).
    func scale(_ run: Range<Int>, _ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, accumulating: Bool) {
        sheaf_dropout_apply(x, out, run.count, state(run.lowerBound), threshold, keep, accumulating ? 1 : 0)
    }

    /// Calls `body` with the factors of `run` in a temporary buffer (which it may overwrite).
    func withFactors<R>(_ run: Range<Int>, _ body: (UnsafeMutableBufferPointer<Float>) -> R) -> R {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: max(1, run.count)) { f in
            sheaf_dropout_factors(f.baseAddress!, run.count, state(run.lowerBound), threshold, keep)
            return body(UnsafeMutableBufferPointer(start: f.baseAddress!, count: run.count))
        }
    }
}
