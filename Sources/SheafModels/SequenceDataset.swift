import SheafStore

/// Dense indices for the items that appear in a store's histories: 1…N in ascending item-id order,
/// and 0 for padding (the convention of RecBole, whose models reserve row 0 of their item tables).
public struct ItemVocabulary: Sendable, Equatable {
    /// The item ids, ascending: `ids[i - 1]` has index i.
    public let ids: [UInt64]
    private let indices: [UInt64: Int32]

    /// A vocabulary over `ids` (sorted and deduplicated here).
    public init(ids: some Sequence<UInt64>) {
        let sorted = Array(Set(ids)).sorted()
        self.ids = sorted
        var map: [UInt64: Int32] = [:]
        map.reserveCapacity(sorted.count)
        for (i, id) in sorted.enumerated() { map[id] = Int32(i + 1) }
        indices = map
    }

    /// Items N (padding excluded).
    public var count: Int { ids.count }

    /// The dense index of `id` (1…N), or nil when the id is not in the vocabulary.
    public func index(of id: UInt64) -> Int32? { indices[id] }

    /// The item id of dense index `index` (1…N).
    public func id(at index: Int32) -> UInt64 { ids[Int(index) - 1] }

    public static func == (a: ItemVocabulary, b: ItemVocabulary) -> Bool { a.ids == b.ids }
}

/// One user's behaviours in the store's order (time order; equal timestamps in their load's order,
/// which for `sheaf behaviors load` is the input file's; ties between two loads merged by item id).
public struct UserSequence: Sendable, Equatable {
    public let user: UInt64
    /// Dense item indices (1…N).
    public var items: [Int32]
    public var timestamps: [Int64]
    public var labels: [Float]
    /// Action codes, one per behaviour.
    public var actions: [UInt16]
    /// Side features, count × the dataset's `sideFeatureWidth`, row-major.
    public var sideFeatures: [Float]

    public init(
        user: UInt64, items: [Int32], timestamps: [Int64], labels: [Float], actions: [UInt16]? = nil, sideFeatures: [Float] = []
    ) {
        precondition(timestamps.count == items.count && labels.count == items.count, "one timestamp and label per behaviour")
        self.user = user
        self.items = items
        self.timestamps = timestamps
        self.labels = labels
        self.actions = actions ?? [UInt16](repeating: 0, count: items.count)
        self.sideFeatures = sideFeatures
        precondition(self.actions.count == items.count, "one action per behaviour")
    }

    public var count: Int { items.count }
}

/// Every user's history read out of a store, with items as dense indices.
///
/// Reading is part of what a model costs, so it goes through the store's own read path: users are
/// listed with `forEachUser`, then read a batch at a time, one read transaction per batch.
public struct SequenceDataset: Sendable {
    /// Users in ascending id order, each with at least one behaviour.
    public let users: [UserSequence]
    public let vocabulary: ItemVocabulary
    /// Side-feature values per behaviour (the store's; usually 0).
    public let sideFeatureWidth: Int
    /// Behaviours read.
    public var behaviorCount: Int { users.reduce(0) { $0 + $1.count } }

    public init(users: [UserSequence], vocabulary: ItemVocabulary, sideFeatureWidth: Int = 0) {
        for u in users { precondition(u.sideFeatures.count == u.count * sideFeatureWidth, "side features of user \(u.user)") }
        self.users = users
        self.vocabulary = vocabulary
        self.sideFeatureWidth = sideFeatureWidth
    }

    /// Reads every history of `store`.
    ///
    /// - Parameters:
    ///   - usersPerTransaction: users read in one read transaction.
    ///   - progress: called after each batch with (users read, users in all).
    /// - Throws: `ModelError.noHistories` when the store has none; the store's errors when a segment is damaged.
    public static func load(
        from store: Store, usersPerTransaction: Int = 512, progress: ((Int, Int) -> Void)? = nil
    ) throws -> SequenceDataset {
        precondition(usersPerTransaction > 0, "usersPerTransaction must be positive")
        var userIDs: [UInt64] = []
        try store.read { txn in try txn.forEachUser { userIDs.append($0); return true } }
        guard !userIDs.isEmpty else { throw ModelError.noHistories }
        var histories: [(UInt64, History)] = []
        histories.reserveCapacity(userIDs.count)
        var start = 0
        while start < userIDs.count {
            let batch = userIDs[start..<min(userIDs.count, start + usersPerTransaction)]
            try store.read { txn in
                for u in batch {
                    if let h = try txn.history(user: u), !h.isEmpty { histories.append((u, h)) }
                }
            }
            start += batch.count
            progress?(start, userIDs.count)
        }
        let vocabulary = ItemVocabulary(ids: histories.lazy.flatMap(\.1.itemIDs))
        let users = histories.map { u, h in
            UserSequence(
                user: u, items: h.itemIDs.map { vocabulary.index(of: $0)! }, timestamps: h.timestamps, labels: h.labels,
                actions: h.actions, sideFeatures: h.sideFeatures)
        }
        return SequenceDataset(users: users, vocabulary: vocabulary, sideFeatureWidth: store.sideFeatureWidth)
    }

    /// The position of `user` in `users`, or nil.
    public func userIndex(of user: UInt64) -> Int? {
        var lo = 0, hi = users.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if users[mid].user < user { lo = mid + 1 } else { hi = mid }
        }
        return lo < users.count && users[lo].user == user ? lo : nil
    }
}

/// Which part of each history a model may see: all of it, the behaviours before a time, or each
/// user's leading fraction (the rest being an evaluation window that must not leak into training).
public enum HistoryCut: Sendable, Equatable, Codable {
    case all
    /// Behaviours with a timestamp < t.
    case before(Int64)
    /// Each user's first ⌊f · n⌋ behaviours (0 < f ≤ 1).
    case leadingFraction(Double)

    /// How many of a sequence's behaviours (a prefix) the cut keeps.
    public func kept(_ s: UserSequence) -> Int {
        switch self {
        case .all: return s.count
        case .before(let t):
            var lo = 0, hi = s.count  // timestamps are non-decreasing: the first index with timestamp ≥ t
            while lo < hi {
                let mid = (lo + hi) / 2
                if s.timestamps[mid] < t { lo = mid + 1 } else { hi = mid }
            }
            return lo
        case .leadingFraction(let f):
            precondition(f > 0 && f <= 1, "leading fraction \(f) outside (0, 1]")
            return Int((f * Double(s.count)).rounded(.down))
        }
    }
}

extension UserSequence {
    /// The first `n` behaviours.
    public func prefix(_ n: Int) -> UserSequence {
        UserSequence(
            user: user, items: Array(items[..<n]), timestamps: Array(timestamps[..<n]), labels: Array(labels[..<n]),
            actions: Array(actions[..<n]), sideFeatures: Array(sideFeatures[..<(n * (count == 0 ? 0 : sideFeatures.count / count))]))
    }
}

extension SequenceDataset {
    /// Every history cut by `cut`; users left with no behaviour are dropped. The vocabulary stays.
    public func cut(_ cut: HistoryCut) -> SequenceDataset {
        if cut == .all { return self }
        let kept = users.compactMap { u -> UserSequence? in
            let n = cut.kept(u)
            return n > 0 ? u.prefix(n) : nil
        }
        return SequenceDataset(users: kept, vocabulary: vocabulary, sideFeatureWidth: sideFeatureWidth)
    }
}
