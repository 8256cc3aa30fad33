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

extension Tensor: CustomStringConvertible {
    public var description: String {
        let head = values.prefix(6).map { "\($0)" }.joined(separator: ", ")
        return "Tensor(shape: \(shape), values: [\(head)\(count > 6 ? ", …" : "")]\(requiresGrad ? ", requiresGrad" : ""))"
    }
}
