extension Tape {
    /// Rows `ids` of `table` ([vocabulary, D]): the result is [ids.count, D]. The gradient
    /// scatter-adds into the table's rows (a repeated id receives the sum).
    public func embedding(_ table: Tensor, ids: [Int]) -> Tensor {
        precondition(table.rank == 2, "embedding: table shape \(table.shape)")
        let v = table.shape[0], d = table.shape[1]
        for id in ids { precondition(id >= 0 && id < v, "embedding: id \(id) outside 0..<\(v)") }
        var out = unfilledFloats(ids.count * d)
        table.values.withUnsafeBufferPointer { t in
            out.withUnsafeMutableBufferPointer { o in
                for (r, id) in ids.enumerated() {
                    _ = UnsafeMutableBufferPointer(rebasing: o[(r * d)..<((r + 1) * d)])
                        .update(fromContentsOf: UnsafeBufferPointer(rebasing: t[(id * d)..<((id + 1) * d)]))
                }
            }
        }
        return record(shape: [ids.count, d], values: out, inputs: [table]) { g in
            table.accumulateGrad { dt in
                for (r, id) in ids.enumerated() {
                    for j in 0..<d { dt[id * d + j] += g[r * d + j] }
                }
            }
        }
    }
}
