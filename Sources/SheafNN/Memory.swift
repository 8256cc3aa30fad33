import CSheafNN

/// Process-wide allocator settings for training loops.
public enum Memory {
    /// Asks glibc's malloc to serve large blocks from its heap and to keep freed memory, instead of
    /// mapping fresh pages for every large array and returning them on free. A training step
    /// allocates and frees the same activation sizes every step; without this, about half of a small
    /// model's step time went to page faults and zeroing new pages (`perf`: 48% in the kernel).
    ///
    /// Process-wide and permanent (`M_MMAP_THRESHOLD` 1 GiB, `M_TRIM_THRESHOLD` 2 GiB), so a trainer
    /// calls it once; a library never does it on a service's behalf. Returns whether the settings
    /// were applied (false off glibc).
    @discardableResult
    public static func retainFreedBuffers() -> Bool {
        sheaf_retain_freed_buffers() == 1
    }
}
