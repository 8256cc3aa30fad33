#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Tape {
    /// Softmax over the last dimension (max-subtracted, so large logits do not overflow).
    public func softmax(_ a: Tensor) -> Tensor {
        let d = a.lastDimension, rows = a.rows
        var out = a.values
        out.withUnsafeMutableBufferPointer { y in
            for r in 0..<rows {
                let row = UnsafeMutableBufferPointer(rebasing: y[(r * d)..<((r + 1) * d)])
                var m = -Float.infinity
                for v in row { m = max(m, v) }
                var z: Float = 0
                for j in 0..<d {
                    row[j] = expf(row[j] - m)
                    z += row[j]
                }
                let inv = 1 / z
                for j in 0..<d { row[j] *= inv }
            }
        }
        return record(shape: a.shape, values: out, inputs: [a]) { [out] g in
            // dx = y ⊙ (g − Σ_j g_j y_j), per row.
            out.withUnsafeBufferPointer { y in
                a.accumulateGrad { da in
                    for r in 0..<rows {
                        let o = r * d
                        var dot: Float = 0
                        for j in 0..<d { dot += g[o + j] * y[o + j] }
                        for j in 0..<d { da[o + j] += y[o + j] * (g[o + j] - dot) }
                    }
                }
            }
        }
    }

    /// Layer normalisation over the last dimension: (x − μ) / √(σ² + ε) · γ + β, with γ and β of
    /// shape [D].
    public func layerNorm(_ x: Tensor, gamma: Tensor, beta: Tensor, epsilon: Float = 1e-5) -> Tensor {
        let d = x.lastDimension, rows = x.rows
        precondition(gamma.shape == [d] && beta.shape == [d], "layerNorm: γ \(gamma.shape), β \(beta.shape) for x \(x.shape)")
        var out = unfilledFloats(x.count)
        var xhat = unfilledFloats(x.count)
        var invStd = unfilledFloats(rows)
        x.values.withUnsafeBufferPointer { px in
            for r in 0..<rows {
                let o = r * d
                var mu: Float = 0
                for j in 0..<d { mu += px[o + j] }
                mu /= Float(d)
                var v: Float = 0
                for j in 0..<d {
                    let c = px[o + j] - mu
                    v += c * c
                }
                let inv = 1 / (v / Float(d) + epsilon).squareRoot()
                invStd[r] = inv
                for j in 0..<d {
                    let h = (px[o + j] - mu) * inv
                    xhat[o + j] = h
                    out[o + j] = h * gamma.values[j] + beta.values[j]
                }
            }
        }
        return record(shape: x.shape, values: out, inputs: [x, gamma, beta]) { [xhat, invStd] g in
            if gamma.requiresGrad {
                gamma.accumulateGrad { dg in for i in 0..<(rows * d) { dg[i % d] += g[i] * xhat[i] } }
            }
            if beta.requiresGrad {
                beta.accumulateGrad { db in for i in 0..<(rows * d) { db[i % d] += g[i] } }
            }
            if x.requiresGrad {
                // dx = inv/D · (D·ĝ − Σĝ − x̂ · Σ(ĝ ⊙ x̂)), ĝ = g ⊙ γ.
                gamma.values.withUnsafeBufferPointer { gm in
                    x.accumulateGrad { dx in
                        for r in 0..<rows {
                            let o = r * d
                            var s1: Float = 0, s2: Float = 0
                            for j in 0..<d {
                                let gh = g[o + j] * gm[j]
                                s1 += gh
                                s2 += gh * xhat[o + j]
                            }
                            let k = invStd[r] / Float(d)
                            for j in 0..<d {
                                let gh = g[o + j] * gm[j]
                                dx[o + j] += k * (Float(d) * gh - s1 - xhat[o + j] * s2)
                            }
                        }
                    }
                }
            }
        }
    }

    /// RMS normalisation over the last dimension: x / √(mean(x²) + ε) · γ, γ of shape [D].
    public func rmsNorm(_ x: Tensor, gamma: Tensor, epsilon: Float = 1e-6) -> Tensor {
        let d = x.lastDimension, rows = x.rows
        precondition(gamma.shape == [d], "rmsNorm: γ \(gamma.shape) for x \(x.shape)")
        var out = unfilledFloats(x.count)
        var invRMS = unfilledFloats(rows)
        x.values.withUnsafeBufferPointer { px in
            for r in 0..<rows {
                let o = r * d
                var ss: Float = 0
                for j in 0..<d { ss += px[o + j] * px[o + j] }
                let inv = 1 / (ss / Float(d) + epsilon).squareRoot()
                invRMS[r] = inv
                for j in 0..<d { out[o + j] = px[o + j] * inv * gamma.values[j] }
            }
        }
        return record(shape: x.shape, values: out, inputs: [x, gamma]) { [invRMS] g in
            x.values.withUnsafeBufferPointer { px in
                if gamma.requiresGrad {
                    gamma.accumulateGrad { dg in
                        for i in 0..<(rows * d) { dg[i % d] += g[i] * px[i] * invRMS[i / d] }
                    }
                }
                if x.requiresGrad {
                    // x̂ = x·inv; dx = inv · (ĝ − x̂ · mean(ĝ ⊙ x̂)), ĝ = g ⊙ γ.
                    gamma.values.withUnsafeBufferPointer { gm in
                        x.accumulateGrad { dx in
                            for r in 0..<rows {
                                let o = r * d, inv = invRMS[r]
                                var s: Float = 0
                                for j in 0..<d { s += g[o + j] * gm[j] * px[o + j] * inv }
                                s /= Float(d)
                                for j in 0..<d { dx[o + j] += inv * (g[o + j] * gm[j] - px[o + j] * inv * s) }
                            }
                        }
                    }
                }
            }
        }
    }
}
