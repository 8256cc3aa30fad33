#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CSheafNN

extension Tape {
    /// How `b` lines up with `a` in a binary operation: the same shape, or b's shape is a's last
    /// dimension (`[D]` against `[..., D]`, e.g. a bias) and b repeats over a's rows.
    private func broadcastsOverRows(_ a: Tensor, _ b: Tensor, _ op: String) -> Bool {
        if a.shape == b.shape { return false }
        precondition(b.rank == 1 && b.shape[0] == a.lastDimension, "\(op): shapes \(a.shape) and \(b.shape) do not broadcast")
        return true
    }

    /// a + b, with b of a's shape or of shape [a.lastDimension] (added to every row).
    public func add(_ a: Tensor, _ b: Tensor) -> Tensor {
        let rowwise = broadcastsOverRows(a, b, "add")
        let n = a.count, d = b.count
        let threads = self.threads
        var out = unfilledFloats(n)
        a.values.withUnsafeBufferPointer { pa in
            b.values.withUnsafeBufferPointer { pb in
                out.withUnsafeMutableBufferPointer { o in
                    if rowwise {
                        Parallel.forEachChunk(a.rows, chunk: Kernel.rowChunk(width: d), threads: threads) { r in
                            sheaf_add_rows(pa.baseAddress! + r.lowerBound * d, pb.baseAddress!, o.baseAddress! + r.lowerBound * d, r.count, d)
                        }
                    } else {
                        Parallel.forEachChunk(n, chunk: Kernel.elementChunk, threads: threads) { r in
                            let i = r.lowerBound
                            sheaf_add_rows(pa.baseAddress! + i, pb.baseAddress! + i, o.baseAddress! + i, 1, r.count)
                        }
                    }
                }
            }
        }
        return record(shape: a.shape, values: out, inputs: [a, b]) { g in
            if a.requiresGrad { a.accumulateGrad(adding: g, threads: threads) }
            if b.requiresGrad {
                if rowwise {
                    b.accumulateGrad(overRows: a.rows, chunk: Kernel.rowChunk(width: d) * 4, threads: threads) { r, db, accumulate in
                        if !accumulate { db.initialize(repeating: 0, count: d) }
                        sheaf_column_sums(g.baseAddress! + r.lowerBound * d, nil, r.count, d, db)
                    }
                } else {
                    b.accumulateGrad(adding: g, threads: threads)
                }
            }
        }
    }

    /// a ⊙ b (element-wise), with b of a's shape or of shape [a.lastDimension].
    public func mul(_ a: Tensor, _ b: Tensor) -> Tensor {
        let rowwise = broadcastsOverRows(a, b, "mul")
        let n = a.count, d = b.count
        let threads = self.threads
        /// y (+)= x ⊙ b over chunks: rows of d against b's one row, or runs at the same offsets.
        func timesB(
            _ x: UnsafeBufferPointer<Float>, _ pb: UnsafeBufferPointer<Float>, _ y: UnsafeMutableBufferPointer<Float>, accumulate: Bool
        ) {
            if rowwise {
                Parallel.forEachChunk(a.rows, chunk: Kernel.rowChunk(width: d), threads: threads) { r in
                    let o = r.lowerBound * d
                    sheaf_mul_rows(x.baseAddress! + o, pb.baseAddress!, y.baseAddress! + o, r.count, d, accumulate ? 1 : 0)
                }
            } else {
                Parallel.forEachChunk(n, chunk: Kernel.elementChunk, threads: threads) { r in
                    let i = r.lowerBound
                    sheaf_mul_rows(x.baseAddress! + i, pb.baseAddress! + i, y.baseAddress! + i, 1, r.count, accumulate ? 1 : 0)
                }
            }
        }
        var out = unfilledFloats(n)
        a.values.withUnsafeBufferPointer { pa in
            b.values.withUnsafeBufferPointer { pb in
                out.withUnsafeMutableBufferPointer { o in timesB(pa, pb, o, accumulate: false) }
            }
        }
        return record(shape: a.shape, values: out, inputs: [a, b]) { g in
            if a.requiresGrad {
                b.values.withUnsafeBufferPointer { pb in
                    a.writeOrAccumulateGrad { da, fresh in timesB(g, pb, da, accumulate: !fresh) }
                }
            }
            if b.requiresGrad {
                a.values.withUnsafeBufferPointer { pa in
                    if rowwise {
                        b.accumulateGrad(overRows: a.rows, chunk: Kernel.rowChunk(width: d) * 4, threads: threads) { r, db, accumulate in
                            if !accumulate { db.initialize(repeating: 0, count: d) }
                            sheaf_column_sums(g.baseAddress! + r.lowerBound * d, pa.baseAddress! + r.lowerBound * d, r.count, d, db)
                        }
                    } else {
                        b.writeOrAccumulateGrad { db, fresh in
                            Parallel.forEachChunk(n, chunk: Kernel.elementChunk, threads: threads) { r in
                                let i = r.lowerBound
                                sheaf_mul_rows(g.baseAddress! + i, pa.baseAddress! + i, db.baseAddress! + i, 1, r.count, fresh ? 0 : 1)
                            }
                        }
                    }
                }
            }
        }
    }

    /// s · a.
    public func scale(_ a: Tensor, _ s: Float) -> Tensor {
        let n = a.count
        let threads = self.threads
        var out = unfilledFloats(n)
        a.values.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { y in
                Parallel.forEachChunk(n, chunk: Kernel.elementChunk, threads: threads) { r in
                    sheaf_axpy(s, x.baseAddress! + r.lowerBound, y.baseAddress! + r.lowerBound, r.count, 0)
                }
            }
        }
        return record(shape: a.shape, values: out, inputs: [a]) { g in
            a.writeOrAccumulateGrad { da, fresh in
                Parallel.forEachChunk(n, chunk: Kernel.elementChunk, threads: threads) { r in
                    sheaf_axpy(s, g.baseAddress! + r.lowerBound, da.baseAddress! + r.lowerBound, r.count, fresh ? 0 : 1)
                }
            }
        }
    }

    /// GELU, the exact form: x · Φ(x) = x/2 · (1 + erf(x/√2)). erf is evaluated by a rational
    /// approximation within 5·10⁻⁷ of libm's `erff` (`sheaf_erf`), vectorised.
    public func gelu(_ a: Tensor) -> Tensor {
        let n = a.count
        let threads = self.threads
        // Φ(x) is kept for the backward pass: d/dx = Φ(x) + x · φ(x).
        var cdf = unfilledFloats(n)
        var out = unfilledFloats(n)
        a.values.withUnsafeBufferPointer { x in
            cdf.withUnsafeMutableBufferPointer { c in
                out.withUnsafeMutableBufferPointer { y in
                    Parallel.forEachChunk(n, chunk: Kernel.elementChunk, threads: threads) { r in
                        let i = r.lowerBound
                        sheaf_gelu_forward(x.baseAddress! + i, y.baseAddress! + i, c.baseAddress! + i, r.count)
                    }
                }
            }
        }
        return record(shape: a.shape, values: out, inputs: [a]) { [cdf] g in
            a.values.withUnsafeBufferPointer { x in
                cdf.withUnsafeBufferPointer { c in
                    a.writeOrAccumulateGrad { da, fresh in
                        Parallel.forEachChunk(n, chunk: Kernel.elementChunk, threads: threads) { r in
                            let i = r.lowerBound
                            sheaf_gelu_backward(
                                x.baseAddress! + i, c.baseAddress! + i, g.baseAddress! + i, da.baseAddress! + i, r.count, fresh ? 0 : 1)
                        }
                    }
                }
            }
        }
    }

    /// SiLU: x · σ(x).
    public func silu(_ a: Tensor) -> Tensor {
        let n = a.count
        let threads = self.threads
        var out = unfilledFloats(n)
        a.values.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { y in
                Parallel.forEachChunk(n, chunk: Kernel.elementChunk, threads: threads) { r in
                    sheaf_silu_forward(x.baseAddress! + r.lowerBound, y.baseAddress! + r.lowerBound, r.count)
                }
            }
        }
        return record(shape: a.shape, values: out, inputs: [a]) { g in
            a.values.withUnsafeBufferPointer { x in
                a.writeOrAccumulateGrad { da, fresh in
                    Parallel.forEachChunk(n, chunk: Kernel.elementChunk, threads: threads) { r in
                        let i = r.lowerBound
                        sheaf_silu_backward(x.baseAddress! + i, g.baseAddress! + i, da.baseAddress! + i, r.count, fresh ? 0 : 1)
                    }
                }
            }
        }
    }

    /// Sum of all values, as a scalar tensor.
    public func sum(_ a: Tensor) -> Tensor {
        var total: Float = 0
        for v in a.values { total += v }
        return record(shape: [], values: [total], inputs: [a]) { g in
            a.accumulateGrad { da in for i in 0..<da.count { da[i] += g[0] } }
        }
    }

    /// Mean of all values, as a scalar tensor.
    public func mean(_ a: Tensor) -> Tensor {
        precondition(a.count > 0, "mean of an empty tensor")
        return scale(sum(a), 1 / Float(a.count))
    }
}
