//! The dashboard's process holds one big, long-lived view of the run and
//! does little in parallel. glibc's allocator gives each thread that
//! contends an arena of its own, and the runtime's worker threads each end
//! up holding memory in theirs: the same dashboard measured anywhere from
//! 97 to 129 MB over a 10,000-task run, and 75 MB every time with one arena
//! (`cargo bench --bench dashboard -- rss`). The engine keeps the default:
//! its workers allocate in parallel.

/// For a process that draws a dashboard; call it first, before any thread
/// starts, so that no other arena is ever made.
pub fn one_arena_for_the_dashboard() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is thread-safe
    // and takes effect for arenas created after the call.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
