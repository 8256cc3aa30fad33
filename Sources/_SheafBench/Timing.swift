import Foundation

/// Monotonic time in nanoseconds.
@inline(__always)
public func monotonicNanoseconds() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

/// Keeps `value` alive so the optimiser cannot drop the work that produced it.
@inline(never)
public func blackHole<T>(_ value: T) { withExtendedLifetime(value) {} }

/// The p-th quantile (0...1) of `sorted` (ascending), by nearest rank: the element at index
/// (count − 1) × p, rounded by `rule` (`.towardZero` takes the lower neighbour); 0 when empty.
public func quantile(
    ofSorted sorted: [Double], _ p: Double, rounding rule: FloatingPointRoundingRule = .toNearestOrAwayFromZero
) -> Double {
    guard !sorted.isEmpty else { return 0 }
    return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded(rule)))]
}

/// Latency samples of one path, in microseconds.
public struct LatencySamples: Sendable {
    public private(set) var microseconds: [Double] = []
    /// How `quantile(_:)` rounds a fractional rank (see `quantile(ofSorted:_:rounding:)`).
    public let rounding: FloatingPointRoundingRule

    public init(rounding: FloatingPointRoundingRule = .toNearestOrAwayFromZero) { self.rounding = rounding }

    public mutating func add(nanoseconds: UInt64) { microseconds.append(Double(nanoseconds) / 1000) }

    /// The p-th quantile (0...1), nearest rank on the sorted samples; 0 when empty.
    public func quantile(_ p: Double) -> Double { _SheafBench.quantile(ofSorted: microseconds.sorted(), p, rounding: rounding) }

    public var p50: Double { quantile(0.5) }
    public var p99: Double { quantile(0.99) }
    public var count: Int { microseconds.count }
}

/// Times `body` repeatedly until at least `minimumSeconds` have passed and at least `minimumRuns`
/// runs were made; returns the best (smallest) seconds of one run. The best run is the usual
/// estimate on a shared, noisy machine: noise only ever adds time.
public func bestSeconds(minimumRuns: Int = 3, minimumSeconds: Double = 0.2, _ body: () throws -> Void) rethrows -> Double {
    var best = Double.infinity
    var runs = 0
    let start = monotonicNanoseconds()
    while runs < minimumRuns || Double(monotonicNanoseconds() - start) / 1e9 < minimumSeconds {
        let t0 = monotonicNanoseconds()
        try body()
        let t1 = monotonicNanoseconds()
        best = min(best, Double(t1 - t0) / 1e9)
        runs += 1
    }
    return best
}

/// A 64-byte-aligned float buffer whose pages are touched at allocation (so that page faults are
/// not measured later). Owned: freed on deinit.
public final class AlignedFloats: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>

    public init(count: Int, value: Float = 0) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * 4, alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: max(1, count))
        pointer.initialize(repeating: value, count: count)
    }

    deinit { pointer.deallocate() }

    public var byteCount: Int { count * 4 }
    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }
}
