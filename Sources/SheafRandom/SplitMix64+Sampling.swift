// MARK: - Sampling without replacement

extension SplitMix64 {
    /// Moves a uniform random sample of `count` elements to the front of `elements`, in the order
    /// drawn: a partial Fisher–Yates shuffle, where draw i swaps element i with element
    /// i + `next() % (n − i)`. The rest of the array keeps the elements not drawn, in some order.
    ///
    /// - Precondition: 0 ≤ `count` ≤ `elements.count`.
    /// - Complexity: O(`count`) draws and swaps.
    public mutating func partialShuffle<T>(_ elements: inout [T], count: Int) {
        let n = elements.count
        precondition(count >= 0 && count <= n, "cannot draw \(count) of \(n) elements")
        for i in 0..<count { elements.swapAt(i, i + Int(next() % UInt64(n - i))) }
    }

    /// `count` distinct numbers of 0..<n drawn uniformly (`partialShuffle`), in ascending order, so
    /// rows read in that order are read sequentially. All of 0..<n, drawing nothing, when
    /// `count` ≥ n.
    ///
    /// - Complexity: O(n + count · log count).
    public mutating func sortedSample(_ count: Int, of n: Int) -> [Int] {
        precondition(count >= 0 && n >= 0, "sample sizes must not be negative")
        var rows = Array(0..<n)
        guard count < n else { return rows }
        partialShuffle(&rows, count: count)
        rows.removeLast(n - count)
        rows.sort()
        return rows
    }
}
