//! The proxy's memory: glibc's allocator, tuned for a long-lived process
//! that relays the odd very large message between many small ones.
//!
//! Left alone, glibc keeps what a burst allocated: it raises its mmap
//! threshold each time a large block is freed (after which a 10 MB output is
//! carved from the heap for good), gives every thread an arena of its own,
//! and returns freed heap pages only from the top of a heap. The proxy would
//! then sit at the high-water mark of the largest output it ever relayed.

/// Fixed allocator settings; call before any thread starts.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called before any thread starts.
    unsafe {
        // Large messages stay in mmap'd blocks that go back to the system as
        // soon as they are relayed.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1024 * 1024);
        // The relay, recorder and writer share two arenas.
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Gives free heap pages back to the system, wherever they are in the heap.
/// For a quiet moment after a burst (the recorder calls it once it has been
/// idle with nothing left to write): it walks every arena, which costs
/// around a millisecond, so it is never on the relay's path.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim is thread-safe and only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}
