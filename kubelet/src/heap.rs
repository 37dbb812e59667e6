//! Gives freed heap memory back to the kernel.
//!
//! glibc's malloc keeps the pages of freed chunks resident: after a burst
//! (110 pods starting at once, each sync with its gRPC buffers and specs)
//! about 6 MiB of the heap stays in RSS while free, for as long as the
//! process runs. Go's runtime scavenger returns such memory for the Go
//! kubelet; berth asks glibc to do the same (`malloc_trim`, which releases
//! free pages anywhere in every arena, not just at the top) on a slow
//! timer. One trim of a 20 MiB heap takes well under a millisecond.

use std::time::{Duration, Instant};

/// How often freed memory is returned.
pub const TRIM_PERIOD: Duration = Duration::from_secs(10);

/// Returns freed memory every `period`, for ever.
pub async fn trim_periodically(period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let began = Instant::now();
        let released = trim();
        tracing::trace!(released, took = ?began.elapsed(), "heap trimmed");
    }
}

/// Returns the heap's free pages to the kernel; true if any were.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn trim() -> bool {
    // SAFETY: malloc_trim takes the allocator's own locks and only
    // releases memory that no allocation uses.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Other allocators return memory on their own.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() -> bool {
    false
}
