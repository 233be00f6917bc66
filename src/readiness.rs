//! Readiness: a latch released when discovery has synced, and a flag raised when the
//! gateway starts draining. `/readyz` is 200 only between the two.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Shared readiness state (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    inner: Arc<Flags>,
}

#[derive(Debug, Default)]
struct Flags {
    synced: AtomicBool,
    draining: AtomicBool,
}

impl Readiness {
    /// Not synced, not draining.
    pub fn new() -> Self {
        Self::default()
    }

    /// Discovery has completed its first full sync.
    pub fn set_synced(&self) {
        self.inner.synced.store(true, Ordering::Release);
    }

    /// Shutdown has begun.
    pub fn set_draining(&self) {
        self.inner.draining.store(true, Ordering::Release);
    }

    /// Ready to take traffic.
    pub fn is_ready(&self) -> bool {
        self.inner.synced.load(Ordering::Acquire) && !self.inner.draining.load(Ordering::Acquire)
    }
}
