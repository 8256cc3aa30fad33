extension Tape {
    /// The same values under another shape with the same count (a copy; the gradient passes through).
    public func reshape(_ a: Tensor, _ shape: [Int]) -> Tensor {
        precondition(Tensor.count(of: shape) == a.count, "reshape: \(a.shape) has \(a.count) values, \(shape) needs \(Tensor.count(of: shape))")
        let threads = self.threads
        return record(shape: shape, values: a.values, inputs: [a]) { g in
            a.accumulateGrad(adding: g, threads: threads)
        }
    }

    /// [B, T, H·d] → [B·H, T, d]: splits the last dimension into `heads` heads and moves the head
    /// before the sequence, so that each (sequence, head) pair is one batch entry of `batchedMatmul`.
    public func splitHeads(_ x: Tensor, heads: Int) -> Tensor {
        precondition(x.rank == 3 && heads > 0 && x.shape[2] % heads == 0, "splitHeads: \(x.shape) into \(heads) heads")
        let (b, t, width) = (x.shape[0], x.shape[1], x.shape[2])
        let d = width / heads
        var out = unfilledFloats(x.count)
        // out[(bi·H + h), ti, j] = x[bi, ti, h·d + j]
        @inline(__always) func index(_ bi: Int, _ ti: Int, _ h: Int) -> (src: Int, dst: Int) {
            ((bi * t + ti) * width + h * d, ((bi * heads + h) * t + ti) * d)
        }
        x.values.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for bi in 0..<b { for ti in 0..<t { for h in 0..<heads {
                    let (s, o) = index(bi, ti, h)
                    for j in 0..<d { dst[o + j] = src[s + j] }
                } } }
            }
        }
        return record(shape: [b * heads, t, d], values: out, inputs: [x]) { g in
            x.accumulateGrad { dx in
                for bi in 0..<b { for ti in 0..<t { for h in 0..<heads {
                    let (s, o) = index(bi, ti, h)
                    for j in 0..<d { dx[s + j] += g[o + j] }
                } } }
            }
        }
    }

    /// The inverse of `splitHeads`: [B·H, T, d] → [B, T, H·d].
    public func mergeHeads(_ x: Tensor, heads: Int) -> Tensor {
        precondition(x.rank == 3 && heads > 0 && x.shape[0] % heads == 0, "mergeHeads: \(x.shape) from \(heads) heads")
        let (bh, t, d) = (x.shape[0], x.shape[1], x.shape[2])
        let b = bh / heads, width = heads * d
        var out = unfilledFloats(x.count)
        @inline(__always) func index(_ bi: Int, _ ti: Int, _ h: Int) -> (src: Int, dst: Int) {
            (((bi * heads + h) * t + ti) * d, (bi * t + ti) * width + h * d)
        }
        x.values.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for bi in 0..<b { for ti in 0..<t { for h in 0..<heads {
                    let (s, o) = index(bi, ti, h)
                    for j in 0..<d { dst[o + j] = src[s + j] }
                } } }
            }
        }
        return record(shape: [b, t, width], values: out, inputs: [x]) { g in
            x.accumulateGrad { dx in
                for bi in 0..<b { for ti in 0..<t { for h in 0..<heads {
                    let (s, o) = index(bi, ti, h)
                    for j in 0..<d { dx[s + j] += g[o + j] }
                } } }
            }
        }
    }

    /// Concatenates [B, Tᵢ, D] tensors along the sequence (dimension 1).
    public func concatSequence(_ parts: [Tensor]) -> Tensor {
        precondition(!parts.isEmpty, "concatSequence of nothing")
        let b = parts[0].shape[0], d = parts[0].shape[2]
        for p in parts { precondition(p.rank == 3 && p.shape[0] == b && p.shape[2] == d, "concatSequence: \(parts.map(\.shape))") }
        let lengths = parts.map { $0.shape[1] }
        let total = lengths.reduce(0, +)
        var out = [Float](repeating: 0, count: b * total * d)
        var offsets: [Int] = []
        var start = 0
        for l in lengths {
            offsets.append(start)
            start += l
        }
        for (p, part) in parts.enumerated() {
            let l = lengths[p]
            for bi in 0..<b {
                for ti in 0..<l {
                    let s = (bi * l + ti) * d, o = (bi * total + offsets[p] + ti) * d
                    for j in 0..<d { out[o + j] = part.values[s + j] }
                }
            }
        }
        return record(shape: [b, total, d], values: out, inputs: parts) { g in
            for (p, part) in parts.enumerated() where part.requiresGrad {
                let l = lengths[p]
                part.accumulateGrad { dp in
                    for bi in 0..<b {
                        for ti in 0..<l {
                            let s = (bi * l + ti) * d, o = (bi * total + offsets[p] + ti) * d
                            for j in 0..<d { dp[s + j] += g[o + j] }
                        }
                    }
                }
            }
        }
    }

    /// Positions `range` of the sequence (dimension 1) of a [B, T, D] tensor.
    public func sliceSequence(_ x: Tensor, _ range: Range<Int>) -> Tensor {
        precondition(x.rank == 3 && range.lowerBound >= 0 && range.upperBound <= x.shape[1], "sliceSequence: \(range) of \(x.shape)")
        let (b, t, d) = (x.shape[0], x.shape[1], x.shape[2])
        let l = range.count
        var out = [Float](repeating: 0, count: b * l * d)
        for bi in 0..<b {
            for ti in 0..<l {
                let s = (bi * t + range.lowerBound + ti) * d, o = (bi * l + ti) * d
                for j in 0..<d { out[o + j] = x.values[s + j] }
            }
        }
        return record(shape: [b, l, d], values: out, inputs: [x]) { g in
            x.accumulateGrad { dx in
                for bi in 0..<b {
                    for ti in 0..<l {
                        let s = (bi * t + range.lowerBound + ti) * d, o = (bi * l + ti) * d
                        for j in 0..<d { dx[s + j] += g[o + j] }
                    }
                }
            }
        }
    }
}
