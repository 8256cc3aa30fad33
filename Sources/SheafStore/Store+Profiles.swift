// MARK: - Profiles

extension ReadTransaction {
    /// The profile of `user`, or `nil` when none is stored.
    /// - Throws: `StoreError.corruptRecord` when the record is damaged.
    public func profile(user: UInt64) throws -> Profile? {
        try record(store.tables.profiles, user, Profile.decode)
    }
}

extension WriteTransaction {
    /// Stores (or replaces) the profile of `user`.
    public func putProfile(_ profile: Profile, user: UInt64) throws {
        guard profile.bytes.count <= Int(UInt32.max) else { throw StoreError.invalidArgument("profile too large") }
        try put(store.tables.profiles, user, profile.encode())
    }

    /// Deletes the profile of `user`; returns whether one existed.
    @discardableResult
    public func deleteProfile(user: UInt64) throws -> Bool {
        try delete(store.tables.profiles, user)
    }
}
