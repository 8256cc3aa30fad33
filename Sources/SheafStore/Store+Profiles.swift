// MARK: - Profiles

extension ReadTransaction {
    /// The profile of `user`, or `nil` when none is stored.
    /// - Throws: `StoreError.corruptRecord` when the record is damaged.
    public func profile(user: UInt64) throws -> Profile? {
        guard let bytes = try get(store.tables.profiles, id: user) else { return nil }
        do { return try Profile.decode(bytes) } catch {
            throw StoreError.corruptRecord(table: "profiles", key: "\(user)", reason: error.reason)
        }
    }
}

extension WriteTransaction {
    /// Stores (or replaces) the profile of `user`.
    public func putProfile(_ profile: Profile, user: UInt64) throws {
        guard profile.bytes.count <= Int(UInt32.max) else { throw StoreError.invalidArgument("profile too large") }
        try profile.encode().withUnsafeBytes { try put(store.tables.profiles, id: user, $0) }
    }

    /// Deletes the profile of `user`; returns whether one existed.
    @discardableResult
    public func deleteProfile(user: UInt64) throws -> Bool {
        try delete(store.tables.profiles, id: user)
    }
}
