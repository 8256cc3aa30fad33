/// The cosine of two float32 rows of `count` values, accumulated in Double; 0 when either is zero.
public func cosine(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count: Int) -> Double {
    var dot = 0.0, a = 0.0, b = 0.0
    for t in 0..<count {
        let u = Double(x[t]), v = Double(y[t])
        dot += u * v
        a += u * u
        b += v * v
    }
    return (a > 0 && b > 0) ? dot / (a.squareRoot() * b.squareRoot()) : 0
}

/// The sum of the row cosines of two `rows × dimension` float32 buffers, row by row (see `cosine`).
public func rowCosineSum(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, rows: Int, dimension: Int) -> Double {
    var sum = 0.0
    for r in 0..<rows { sum += cosine(x + r * dimension, y + r * dimension, count: dimension) }
    return sum
}
