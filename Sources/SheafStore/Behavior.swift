/// One user behaviour: an interaction with an item at a time.
public struct Behavior: Sendable, Equatable, Hashable {
    /// The item interacted with.
    public var item: UInt64
    /// When, in the caller's unit (typically Unix seconds or milliseconds). Histories are kept in time order.
    public var timestamp: Int64
    /// The kind of interaction (click, like, purchase…), as a small code.
    public var action: UInt16
    /// The label or rating (for example 0/1, or a 1–5 star rating).
    public var label: Float
    /// Optional side features; exactly `sideFeatureWidth` values of the store (usually none).
    public var sideFeatures: [Float]

    /// The timestamps a store keeps: −2^62 … 2^62 − 1, in the caller's unit. Seconds, milliseconds,
    /// microseconds and nanoseconds since 1970 all fit for centuries (nanoseconds until 2116); Int64's
    /// extremes, which overflow on any arithmetic, are refused (`StoreError.invalidBehavior`).
    public static let timestampRange: ClosedRange<Int64> = (-(1 << 62))...((1 << 62) - 1)

    public init(item: UInt64, timestamp: Int64, action: UInt16 = 0, label: Float = 0, sideFeatures: [Float] = []) {
        self.item = item
        self.timestamp = timestamp
        self.action = action
        self.label = label
        self.sideFeatures = sideFeatures
    }
}

/// A user's behaviours in time order, stored column by column.
public struct History: Sendable, Equatable {
    /// Item ids, one per behaviour.
    public var itemIDs: [UInt64] = []
    /// Timestamps, non-decreasing.
    public var timestamps: [Int64] = []
    /// Action codes.
    public var actions: [UInt16] = []
    /// Labels or ratings.
    public var labels: [Float] = []
    /// Side features, row-major, count × `sideFeatureWidth`.
    public var sideFeatures: [Float] = []
    /// Side-feature values per behaviour.
    public let sideFeatureWidth: Int

    public init(sideFeatureWidth: Int = 0) {
        self.sideFeatureWidth = sideFeatureWidth
    }

    /// Creates a history from behaviours (which must already be in time order).
    public init(_ behaviors: [Behavior], sideFeatureWidth: Int = 0) {
        self.sideFeatureWidth = sideFeatureWidth
        reserveCapacity(behaviors.count)
        for b in behaviors { append(b) }
    }

    /// Number of behaviours.
    public var count: Int { itemIDs.count }
    public var isEmpty: Bool { itemIDs.isEmpty }

    /// The behaviour at `index`.
    public subscript(index: Int) -> Behavior {
        Behavior(
            item: itemIDs[index], timestamp: timestamps[index], action: actions[index], label: labels[index],
            sideFeatures: sideFeatureWidth == 0
                ? [] : Array(sideFeatures[(index * sideFeatureWidth)..<((index + 1) * sideFeatureWidth)]))
    }

    /// All behaviours, in time order.
    public var behaviors: [Behavior] { (0..<count).map { self[$0] } }

    public mutating func reserveCapacity(_ n: Int) {
        itemIDs.reserveCapacity(n)
        timestamps.reserveCapacity(n)
        actions.reserveCapacity(n)
        labels.reserveCapacity(n)
        sideFeatures.reserveCapacity(n * sideFeatureWidth)
    }

    /// Appends one behaviour (its side features must have `sideFeatureWidth` values).
    public mutating func append(_ b: Behavior) {
        precondition(b.sideFeatures.count == sideFeatureWidth, "side features must have sideFeatureWidth values")
        itemIDs.append(b.item)
        timestamps.append(b.timestamp)
        actions.append(b.action)
        labels.append(b.label)
        sideFeatures.append(contentsOf: b.sideFeatures)
    }

    /// Appends the behaviours `range` of `other`.
    public mutating func append(contentsOf other: History, range: Range<Int>? = nil) {
        precondition(other.sideFeatureWidth == sideFeatureWidth, "side-feature widths differ")
        let r = range ?? 0..<other.count
        itemIDs.append(contentsOf: other.itemIDs[r])
        timestamps.append(contentsOf: other.timestamps[r])
        actions.append(contentsOf: other.actions[r])
        labels.append(contentsOf: other.labels[r])
        if sideFeatureWidth > 0 {
            sideFeatures.append(
                contentsOf: other.sideFeatures[(r.lowerBound * sideFeatureWidth)..<(r.upperBound * sideFeatureWidth)])
        }
    }
}
