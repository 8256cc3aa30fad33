#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CSheafNN

extension Tape {
    /// Softmax over the last dimension (max-subtracted, so large logits do not overflow).
    public func softmax(_ a: Tensor) -> Tensor {
        let d = a.lastDimension, rows = a.rows
        let threads = self.threads
        var out = unfilledFloats(a.count)
        a.values.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { y in
                Parallel.forEachChunk(rows, chunk: Kernel.rowChunk(width: d), threads: threads) { r in
                    sheaf_softmax_rows(x.baseAddress! + r.lowerBound * d, y.baseAddress! + r.lowerBound * d, r.count, d, 1, 0, nil)
                }
            }
        }
        return record(shape: a.shape, values: out, inputs: [a]) { [out] g in
            // dx = y ⊙ (g − Σ_j g_j y_j), per row.
            out.withUnsafeBufferPointer { y in
                a.writeOrAccumulateGrad { da, fresh in
                    Parallel.forEachChunk(rows, chunk: Kernel.rowChunk(width: d), threads: threads) { r in
                        let o = r.lowerBound * d
                        sheaf_softmax_backward_rows(y.baseAddress! + o, g.baseAddress! + o, da.baseAddress! + o, r.count, d, 1, fresh ? 0 : 1)
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
        let threads = self.threads
        let chunk = Kernel.rowChunk(width: d)
        var out = unfilledFloats(x.count)
        var xhat = unfilledFloats(x.count)
        var invStd = unfilledFloats(rows)
        x.values.withUnsafeBufferPointer { px in
            gamma.values.withUnsafeBufferPointer { pg in
                beta.values.withUnsafeBufferPointer { pb in
                    out.withUnsafeMutableBufferPointer { y in
                        xhat.withUnsafeMutableBufferPointer { h in
                            invStd.withUnsafeMutableBufferPointer { s in
                                Parallel.forEachChunk(rows, chunk: chunk, threads: threads) { r in
                                    let o = r.lowerBound * d
                                    sheaf_layernorm_forward(
                                        px.baseAddress! + o, pg.baseAddress!, pb.baseAddress!, y.baseAddress! + o, h.baseAddress! + o,
                                        s.baseAddress! + r.lowerBound, r.count, d, epsilon)
                                }
                            }
                        }
                    }
                }
            }
        }
        return record(shape: x.shape, values: out, inputs: [x, gamma, beta]) { [xhat, invStd] g in
            xhat.withUnsafeBufferPointer { h in
                if gamma.requiresGrad {
                    gamma.accumulateGrad(overRows: rows, chunk: chunk * 4, threads: threads) { r, dg, accumulate in
                        if !accumulate { dg.initialize(repeating: 0, count: d) }
                        sheaf_column_sums(g.baseAddress! + r.lowerBound * d, h.baseAddress! + r.lowerBound * d, r.count, d, dg)
                    }
                }
                if beta.requiresGrad {
                    beta.accumulateGrad(overRows: rows, chunk: chunk * 4, threads: threads) { r, db, accumulate in
                        if !accumulate { db.initialize(repeating: 0, count: d) }
                        sheaf_column_sums(g.baseAddress! + r.lowerBound * d, nil, r.count, d, db)
                    }
                }
                if x.requiresGrad {
                    // dx = inv/D · (D·ĝ − Σĝ − x̂ · Σ(ĝ ⊙ x̂)), ĝ = g ⊙ γ.
                    gamma.values.withUnsafeBufferPointer { gm in
                        invStd.withUnsafeBufferPointer { s in
                            x.writeOrAccumulateGrad { dx, fresh in
                                Parallel.forEachChunk(rows, chunk: chunk, threads: threads) { r in
                                    let o = r.lowerBound * d
                                    sheaf_layernorm_backward(
                                        g.baseAddress! + o, gm.baseAddress!, h.baseAddress! + o, s.baseAddress! + r.lowerBound,
                                        dx.baseAddress! + o, r.count, d, fresh ? 0 : 1)
                                }
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
        let threads = self.threads
        let chunk = Kernel.rowChunk(width: d)
        var out = unfilledFloats(x.count)
        var invRMS = unfilledFloats(rows)
        x.values.withUnsafeBufferPointer { px in
            gamma.values.withUnsafeBufferPointer { pg in
                out.withUnsafeMutableBufferPointer { y in
                    invRMS.withUnsafeMutableBufferPointer { s in
                        Parallel.forEachChunk(rows, chunk: chunk, threads: threads) { r in
                            let o = r.lowerBound * d
                            sheaf_rmsnorm_forward(
                                px.baseAddress! + o, pg.baseAddress!, y.baseAddress! + o, s.baseAddress! + r.lowerBound, r.count, d, epsilon)
                        }
                    }
                }
            }
        }
        return record(shape: x.shape, values: out, inputs: [x, gamma]) { [invRMS] g in
            x.values.withUnsafeBufferPointer { px in
                invRMS.withUnsafeBufferPointer { s in
                    if gamma.requiresGrad {
                        // dγ[j] = Σ_r g[r][j] · x̂[r][j], x̂ = x · inv made per chunk.
                        gamma.accumulateGrad(overRows: rows, chunk: chunk * 4, threads: threads) { r, dg, accumulate in
                            if !accumulate { dg.initialize(repeating: 0, count: d) }
                            var xhat = unfilledFloats(r.count * d)
                            xhat.withUnsafeMutableBufferPointer { h in
                                for (k, row) in r.enumerated() {
                                    sheaf_axpy(s[row], px.baseAddress! + row * d, h.baseAddress! + k * d, d, 0)
                                }
                                sheaf_column_sums(g.baseAddress! + r.lowerBound * d, h.baseAddress!, r.count, d, dg)
                            }
                        }
                    }
                    if x.requiresGrad {
                        gamma.values.withUnsafeBufferPointer { gm in
                            x.writeOrAccumulateGrad { dx, fresh in
                                Parallel.forEachChunk(rows, chunk: chunk, threads: threads) { r in
                                    let o = r.lowerBound * d
                                    sheaf_rmsnorm_backward(
                                        g.baseAddress! + o, gm.baseAddress!, px.baseAddress! + o, s.baseAddress! + r.lowerBound,
                                        dx.baseAddress! + o, r.count, d, fresh ? 0 : 1)
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
