//! How the threads that serve connections share the CPU: a scheduling
//! policy hint, their priority, and yielding before a read that would
//! block.
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
//!
//! Yielding: most of a worker's CPU goes to going to sleep and being woken
//! (the scheduler and the wake-up, on both sides of every wait), not to
//! HTTP. Under load other threads are runnable, so before a read that would
//! block a worker yields its turn a few times, looking for input in
//! between: when the answer comes while the others run, the thread never
//! slept and nobody had to wake it. Workers yield only while many
//! connections are open, and a thread whose yields did not pay off stops
//! yielding for a while: with few requests, a yield only delays the thread
//! that made it (see [`fill_yielding`]).

use crate::http::conn::Socket;
use crate::http::BufConn;
use std::cell::Cell;
use std::io::{self, Read};
use std::sync::OnceLock;

thread_local! {
    /// The policy this thread is under: set only when it must change.
    static BATCH: Cell<bool> = const { Cell::new(false) };
    /// Per [`Peer`]: reads left before this thread tries yielding again.
    static SKIP: [Cell<u8>; 2] = const { [Cell::new(0), Cell::new(0)] };
}

/// Yields before giving up and blocking on a read. Measured with wrk on
/// 2 cores (interleaved A/B runs, proxied 1 KiB, 64 connections): 3 turns
/// gave +10-20% requests per second; 1 or 2 a little less, 8 no more.
const YIELDS: usize = 3;
/// Reads that block without yielding after yields that did not pay off.
/// Yielding is a bet that the input comes while others run: under load it
/// mostly wins; on a quiet machine it loses, and each loss costs a few
/// switches to threads that had little to do. Measured as above: at one
/// connection, skipping 4 reads after a miss costs nothing measurable,
/// while never skipping added ~25 µs of CPU per request; at 64
/// connections, skipping 4 does as well as never skipping, 16 worse.
const SKIP_AFTER_MISS: u8 = 4;

/// Yielding pays when many more connections compete for the CPU than there
/// are cores; with few, a woken thread finds a core soon anyway, and the
/// yields only push it back in the queue. Measured on 2 cores (1 KiB,
/// exact percentiles, interleaved): yielding at 16 connections raised p99
/// from ~1-3 ms to ~3-12 ms for no more throughput, while at 64 and 256
/// connections it gave +10-20% requests per second and no worse p99, and
/// +15-20% cache hits at 64. Yielding for the backend's answer alone from
/// half as many connections took 11% off the CPU per 64 KiB response at 16
/// connections, and raised 1 KiB p99 there from under 1 ms to 1-3 ms for
/// no more throughput: one threshold for both.
const CONNECTIONS_PER_CORE: usize = 8;

/// Whether `open` client connections are enough for yielding to pay.
pub fn crowded(open: usize) -> bool {
    static CROWD: OnceLock<usize> = OnceLock::new();
    open > *CROWD.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        cores * CONNECTIONS_PER_CORE
    })
}

/// Whom a read waits for. Each keeps its own record: a client thinks
/// between requests far longer than a backend takes to answer.
#[derive(Clone, Copy)]
pub enum Peer {
    Client = 0,
    Backend = 1,
}

/// `conn.fill()`, but when `crowded` (see [`crowded`]),
/// before a read that would block, yields the CPU up to `YIELDS` (3) times,
/// trying again after each turn. After yields that did not pay off, the
/// next reads of this `peer` block without yielding.
pub fn fill_yielding<S: Read + Socket>(
    conn: &mut BufConn<S>,
    peer: Peer,
    crowded: bool,
) -> io::Result<usize> {
    fill_yielding_or(conn, peer, crowded, BufConn::fill)
}

/// [`fill_yielding`], with `block` doing the read that may wait.
pub fn fill_yielding_or<S: Read + Socket>(
    conn: &mut BufConn<S>,
    peer: Peer,
    crowded: bool,
    block: impl FnOnce(&mut BufConn<S>) -> io::Result<usize>,
) -> io::Result<usize> {
    if !crowded {
        return block(conn);
    }
    SKIP.with(|skip| {
        let skip = &skip[peer as usize];
        if skip.get() > 0 {
            skip.set(skip.get() - 1);
            return block(conn);
        }
        // Yield first: callers come here right after sending (a request to
        // the backend, a response to the client), and the answer is almost
        // never there yet (92% of first looks found nothing at 64
        // connections), so looking first costs a `recv` per read for
        // nothing.
        for _ in 0..YIELDS {
            std::thread::yield_now();
            match conn.fill_now() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => return done,
            }
        }
        skip.set(SKIP_AFTER_MISS);
        block(conn)
    })
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

/// Gives the calling thread the nice value `nice` (Linux: this thread
/// only; elsewhere nothing).
///
/// Why a proxy would want a priority above its neighbours: on a machine
/// shared with its backends (or clients), a backend woken by a request
/// then waits for a core while our threads send more, and serves them
/// all in one turn instead of one per wake-up. Measured on 2 cores with
/// wrk and nginx backends (1 KiB, 64 connections): at -10 a request woke
/// a backend 0.10 times instead of 0.50, and wrk 0.24 instead of 0.61.
/// Only against threads of the same scheduling group, though: a backend
/// in a session of its own (the kernel's autogroups) or another cgroup
/// was woken as often as before, whatever that group's weight.
pub fn set_priority(nice: i32) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `gettid` has no preconditions; `setpriority` with
        // PRIO_PROCESS and a thread id changes that thread alone (Linux)
        // and touches no memory of ours.
        let done = unsafe {
            let tid = libc::gettid() as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, nice)
        };
        if done == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = nice;
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::http::conn::tests::loopback_pair;
    use std::io::Write;
    use std::time::Duration;

    fn skip(peer: Peer) -> u8 {
        SKIP.with(|skip| skip[peer as usize].get())
    }

    #[test]
    fn yields_that_see_nothing_are_skipped_for_the_next_reads() {
        std::thread::spawn(|| {
            let (mut near, far) = loopback_pair();
            far.set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            let mut conn = BufConn::new(far, 64);
            let timed_out = fill_yielding(&mut conn, Peer::Backend, true).unwrap_err();
            assert!(crate::http::conn::is_timeout(&timed_out), "{timed_out}");
            assert_eq!(skip(Peer::Backend), SKIP_AFTER_MISS, "a miss");
            assert_eq!(skip(Peer::Client), 0, "each peer keeps its own record");
            for left in (0..SKIP_AFTER_MISS).rev() {
                near.write_all(b"x").unwrap();
                assert_eq!(fill_yielding(&mut conn, Peer::Backend, true).unwrap(), 1);
                assert_eq!(skip(Peer::Backend), left);
            }
            // Input waiting: read at once, no miss.
            near.write_all(b"yz").unwrap();
            assert_eq!(fill_yielding(&mut conn, Peer::Backend, true).unwrap(), 2);
            assert_eq!(skip(Peer::Backend), 0);
            let n = SKIP_AFTER_MISS as usize;
            assert_eq!(&conn.buffered()[n..], b"yz");
        })
        .join()
        .unwrap();
    }

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
