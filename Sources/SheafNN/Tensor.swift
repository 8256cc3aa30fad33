import CSheafNN

/// A float32 tensor: contiguous row-major values with a shape, and (for tensors that take part in
/// training) the gradient of the last `Tape.backward` with respect to them.
///
/// Tensors are reference types so that a tape can record them and later accumulate their gradients.
/// Operations never change their inputs; they make new tensors through a `Tape`.
public final class Tensor: @unchecked Sendable {
    /// The extent of each dimension; the last one varies fastest. `[]` is a scalar.
    public let shape: [Int]
    /// shape.product values, row-major.
    public internal(set) var values: [Float]
    /// ∂loss/∂self after `Tape.backward`, same count as `values`; nil until a gradient reaches it.
    public internal(set) var grad: [Float]?
    /// Whether gradients flow into this tensor (parameters, and results of operations on them).
    public let requiresGrad: Bool

    /// A tensor holding `values` (count must equal the shape's product; every extent ≥ 0).
    public init(shape: [Int], values: [Float], requiresGrad: Bool = false) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative extent in shape \(shape)")
        precondition(values.count == Tensor.count(of: shape), "shape \(shape) needs \(Tensor.count(of: shape)) values, got \(values.count)")
        self.shape = shape
        self.values = values
        self.requiresGrad = requiresGrad
    }

    /// A tensor of zeros.
    public convenience init(zeros shape: [Int], requiresGrad: Bool = false) {
        self.init(shape: shape, values: [Float](repeating: 0, count: Tensor.count(of: shape)), requiresGrad: requiresGrad)
    }

    /// A trainable leaf: gradients accumulate into it on `backward`.
    public static func parameter(shape: [Int], values: [Float]) -> Tensor {
        Tensor(shape: shape, values: values, requiresGrad: true)
    }

    /// A scalar.
    public convenience init(scalar: Float) {
        self.init(shape: [], values: [scalar])
    }

    /// Number of values.
    public var count: Int { values.count }
    /// Number of dimensions.
    public var rank: Int { shape.count }
    /// The last extent (1 for a scalar).
    public var lastDimension: Int { shape.last ?? 1 }
    /// Number of rows when seen as a matrix of `lastDimension` columns.
    public var rows: Int { lastDimension == 0 ? 0 : count / lastDimension }

    /// The single value of a one-value tensor.
    public var scalar: Float {
        precondition(count == 1, "scalar of a tensor of shape \(shape)")
        return values[0]
    }

    /// The product of the extents (1 for `[]`).
    public static func count(of shape: [Int]) -> Int { shape.reduce(1, *) }

    /// Clears the gradient (the optimizer does this between steps).
    public func zeroGrad() { grad = nil }

    /// Adds `g` (count values) into the gradient, allocating it at zero first.
    func accumulateGrad(_ body: (UnsafeMutableBufferPointer<Float>) -> Void) {
        if grad == nil { grad = [Float](repeating: 0, count: count) }
        grad!.withUnsafeMutableBufferPointer { body($0) }
    }

    /// Adds a gradient contribution that `body` computes in one pass: when the tensor has no
    /// gradient yet, `body` gets an uninitialised buffer and `fresh == true` and must write every
    /// element (e.g. `sgemm` with beta 0); otherwise it gets the gradient and must add into it.
    func writeOrAccumulateGrad(_ body: (UnsafeMutableBufferPointer<Float>, _ fresh: Bool) -> Void) {
        if grad == nil {
            grad = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                body(buffer, true)
                initialized = count
            }
        } else {
            grad!.withUnsafeMutableBufferPointer { body($0, false) }
        }
    }

    /// Adds a whole contribution computed elsewhere: a tensor without a gradient takes the array
    /// itself (no copy); otherwise it is added element-wise.
    func accumulateGrad(taking contribution: [Float], threads: Int) {
        precondition(contribution.count == count, "gradient of \(contribution.count) values for shape \(shape)")
        if grad == nil {
            grad = contribution
        } else {
            contribution.withUnsafeBufferPointer { accumulateGrad(adding: $0, threads: threads) }
        }
    }

    /// Adds `g` (count values) into the gradient; a tensor without one gets a copy of `g`.
    func accumulateGrad(adding g: UnsafeBufferPointer<Float>, threads: Int) {
        precondition(g.count == count, "gradient of \(g.count) values for shape \(shape)")
        writeOrAccumulateGrad { dx, fresh in
            Parallel.forEachChunk(count, chunk: Kernel.elementChunk, threads: threads) { r in
                sheaf_axpy(1, g.baseAddress! + r.lowerBound, dx.baseAddress! + r.lowerBound, r.count, fresh ? 0 : 1)
            }
        }
    }

    /// Adds into the gradient a sum over chunks of `rows` rows (a reduction such as Xᵀ·dY or a
    /// bias gradient). `body(rows, out, accumulate)` computes one chunk's sum into `out` (count
    /// values; added into when `accumulate`, overwritten otherwise). With more than one chunk each
    /// chunk writes its own partial sum and the partials are added in chunk order, so the result
    /// does not depend on `threads`.
    func accumulateGrad(
        overRows rows: Int, chunk: Int, threads: Int,
        _ body: (_ rows: Range<Int>, _ out: UnsafeMutablePointer<Float>, _ accumulate: Bool) -> Void
    ) {
        let chunks = (rows + chunk - 1) / chunk
        if chunks <= 1 {
            writeOrAccumulateGrad { g, fresh in
                if rows == 0 {
                    if fresh { g.initialize(repeating: 0) }
                } else {
                    body(0..<rows, g.baseAddress!, !fresh)
                }
            }
            return
        }
        let size = count
        var partials = unfilledFloats(chunks * size)
        partials.withUnsafeMutableBufferPointer { p in
            Parallel.forEachChunk(rows, chunk: chunk, threads: threads) { r in
                body(r, p.baseAddress! + (r.lowerBound / chunk) * size, false)
            }
        }
        partials.withUnsafeBufferPointer { p in
            writeOrAccumulateGrad { g, fresh in
                sheaf_axpy(1, p.baseAddress!, g.baseAddress!, size, fresh ? 0 : 1)
                for c in 1..<chunks { sheaf_axpy(1, p.baseAddress! + c * size, g.baseAddress!, size, 1) }
            }
        }
    }

    /// Replaces the values (same count), e.g. when loading weights or in an optimizer step.
    public func assign(_ newValues: [Float]) {
        precondition(newValues.count == count, "assign: \(newValues.count) values for shape \(shape)")
        values = newValues
    }

    /// Updates the values in place.
    public func updateValues(_ body: (UnsafeMutableBufferPointer<Float>) -> Void) {
        values.withUnsafeMutableBufferPointer { body($0) }
    }
}

/// An array of `count` floats whose values are arbitrary, for outputs that are written in full
/// before they are read (skips zero-filling, which showed up in profiles). Float is a trivial type,
/// so any bit pattern is a valid value.
@inline(__always)
func unfilledFloats(_ count: Int) -> [Float] {
    [Float](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
}

/// Work sizes for splitting operations into chunks. They depend on shapes only (never on the
/// thread count), which is what keeps results identical on any number of threads.
enum Kernel {
    /// Elements per chunk of an element-wise operation (64 KiB of floats).
    static let elementChunk = 16_384

    /// Rows per chunk for a row-wise operation on rows of `width` values.
    static func rowChunk(width: Int) -> Int { max(1, elementChunk / max(1, width)) }

    /// Rows per `sgemm` call when an m × k by k × n product is split by rows: about 2²⁰
    /// multiply-adds per call, in multiples of 16 rows, and at least 256 rows, because every call
    /// packs all of W again (with 16-row calls `sheaf embed` took a third longer on MiniLM's 384 × 1536 layers).
    static func gemmRowChunk(k: Int, n: Int) -> Int {
        let rows = (1 << 20) / max(1, k * n)
        return max(256, (rows + 15) / 16 * 16)
    }

    /// Rows per partial sum when a product reduces over rows (Xᵀ·dY): the same blocks.
    static func gemmReductionChunk(k: Int, n: Int) -> Int { gemmRowChunk(k: k, n: n) }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let head = values.prefix(6).map { "\($0)" }.joined(separator: ", ")
        return "Tensor(shape: \(shape), values: [\(head)\(count > 6 ? ", …" : "")]\(requiresGrad ? ", requiresGrad" : ""))"
    }
}
