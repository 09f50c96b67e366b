//! A scheduling hint for the threads that serve connections.
//!
//! A worker sleeps and wakes at least once per request (waiting for the
//! client, then for the backend). Under the default policy a thread that
//! wakes may preempt the one running, so under load the CPU switches
//! between half-finished requests. `SCHED_BATCH` keeps the thread's fair
//! share but lets the running thread finish its turn: measured with wrk at
//! 64 connections on 2 cores (interleaved A/B runs, proxied 1 KiB), about
//! +20% requests per second and a quarter less CPU per request.
//!
//! The price: a woken thread waits for the running one, so at high
//! concurrency the slowest requests wait longer (p99 at 256 connections
//! doubled or worse in the same measurement). Hence an option (`worker_scheduling`),
//! off by default.

use std::cell::Cell;

thread_local! {
    /// The policy this thread is under: set only when it must change.
    static BATCH: Cell<bool> = const { Cell::new(false) };
}

/// Puts the calling thread under `SCHED_BATCH` or back under the normal
/// policy (Linux; elsewhere nothing). Returns whether the wanted policy is
/// in force. Costs a system call only when the policy changes.
pub fn set_batch(batch: bool) -> bool {
    if BATCH.get() == batch {
        return true;
    }
    #[cfg(target_os = "linux")]
    {
        let policy = if batch {
            libc::SCHED_BATCH
        } else {
            libc::SCHED_OTHER
        };
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `sched_setscheduler` reads the struct we pass and changes
        // only the calling thread (pid 0); it has no memory effects on us.
        let ok = unsafe { libc::sched_setscheduler(0, policy, &param) == 0 };
        if ok {
            BATCH.set(batch);
        }
        ok
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn the_thread_goes_batch_and_back() {
        let policy = std::thread::spawn(|| {
            assert!(super::set_batch(true));
            // SAFETY: plain queries about the calling thread.
            let batch = unsafe { libc::sched_getscheduler(0) };
            assert!(super::set_batch(false));
            (batch, unsafe { libc::sched_getscheduler(0) })
        })
        .join()
        .unwrap();
        assert_eq!(policy, (libc::SCHED_BATCH, libc::SCHED_OTHER));
    }
}
