import SheafNN
import SheafStore

/// One user's whole history in a trained model's vocabulary: what serving a single request reads
/// (one user's behaviours, not every history).
public struct OneUserSequence: Sendable {
    /// A dataset of that one user (index 0), in the model's vocabulary.
    public let data: SequenceDataset
    /// Behaviours on items the model does not know (added to the store after training): left out.
    public let unknownItems: Int

    /// Reads `user`'s history in `transaction`.
    /// - Throws: `ModelError.unknownUser` (no history), `.storeMismatch` (none of the user's items is
    ///   in the vocabulary), and the store's errors.
    public init(user: UInt64, in transaction: ReadTransaction, vocabulary: ItemVocabulary) throws {
        guard let history = try transaction.history(user: user), !history.isEmpty else { throw ModelError.unknownUser(user) }
        let known = history.itemIDs.indices.filter { vocabulary.index(of: history.itemIDs[$0]) != nil }
        guard !known.isEmpty else { throw ModelError.storeMismatch("none of user \(user)'s items is in the model's vocabulary") }
        let sequence = UserSequence(
            user: user, items: known.map { vocabulary.index(of: history.itemIDs[$0])! }, timestamps: known.map { history.timestamps[$0] },
            labels: known.map { history.labels[$0] })
        data = SequenceDataset(users: [sequence], vocabulary: vocabulary)
        unknownItems = history.count - known.count
    }

    public var sequence: UserSequence { data.users[0] }
}

extension SequentialRecommender {
    /// Every item's score after `user`'s whole history (read in one read transaction): N + 1 scores,
    /// index 0 (padding) included.
    public func scores(user: UInt64, in store: Store, vocabulary: ItemVocabulary, threads: Int = 1) throws -> (
        scores: [Float], sequence: OneUserSequence
    ) {
        let one = try store.read { try OneUserSequence(user: user, in: $0, vocabulary: vocabulary) }
        return (scoresAfterHistory(of: [0], in: one.data, threads: threads), one)
    }
}

extension HyMiRec {
    /// The s interests of `user` after their whole history, each L2-normalised (`configuration.width`
    /// floats), read in one read transaction: what a retrieval service indexes against the item keys
    /// (`itemKeys`).
    /// - Throws: `ModelError.unknownUser`, `.storeMismatch`, and the store's errors.
    public func interests(of user: UInt64, in store: Store, vocabulary: ItemVocabulary, threads: Int = 1) throws -> [[Float]] {
        interests(after: try store.read { try OneUserSequence(user: user, in: $0, vocabulary: vocabulary) }, threads: threads)
    }

    /// The s interests after a history already read, each L2-normalised.
    public func interests(after one: OneUserSequence, threads: Int = 1) -> [[Float]] {
        let flat = interests(HyMiRecBatch([(user: 0, cut: one.sequence.count)], in: one.data, configuration: configuration), threads: threads)
        let d = configuration.width
        return (0..<configuration.interests).map { Array(flat[($0 * d)..<(($0 + 1) * d)]) }
    }

    /// Every item's key (projected content, L2-normalised): (N + 1) × width floats, row 0 padding.
    public func itemKeys(threads: Int = 1) -> [Float] { itemKeys(Tape(recording: false, threads: threads)).values }
}
