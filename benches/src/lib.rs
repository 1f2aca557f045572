//! Criterion benches for otr4 live in `benches/benches/`; this library holds what they and
//! the `scenario` and `primitives` binaries share.

use std::time::Duration;

/// CPU time (user + system) the calling thread has used: unlike wall-clock time it does
/// not grow while other processes hold the CPU, so it holds on a loaded machine (as
/// `openssl speed`, which divides by CPU time too). Falls back to wall-clock time where
/// the thread clock is not available.
pub fn thread_cpu_time() -> Duration {
    #[cfg(unix)]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        let secs = u64::try_from(t.tv_sec).unwrap_or(0);
        let nanos = u32::try_from(t.tv_nsec).unwrap_or(0);
        Duration::new(secs, nanos)
    }
    #[cfg(not(unix))]
    {
        use std::sync::OnceLock;
        use std::time::Instant;
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed()
    }
}
