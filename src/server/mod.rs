//! The listener, the accept loop and the worker pool.
//!
//! Each client connection is served start to end by one OS thread, but
//! threads are reused: idle workers wait in `accept` on the shared
//! listener, and the one that gets a connection serves it itself, first
//! spawning a new worker if it was the last one accepting (leader and
//! followers). Workers unused for a minute retire. Spawning a thread per
//! connection would cost a mmap/munmap of its stack and the TLB shootdowns
//! that go with it: about 140 µs of CPU per connection on our benchmark
//! machine. Accepting in the worker instead of handing sockets over from an
//! acceptor thread spares a wake-up per connection.
//!
//! Shutdown: a flag, `shutdown(SHUT_RD)` on the listener to wake every
//! blocked `accept`, then closing the connections that sit idle between
//! requests; connections that are mid-request finish it (within a grace
//! period) and close.
//!
//! Reload: the settings live in one [`Shared`](crate::proxy::Shared)
//! generation behind [`Current`]; a reload builds the next generation and
//! swaps it in. Each request takes the generation in force when it begins,
//! so requests in flight finish on the old settings and no connection is
//! dropped.
//!
//! # Layout
//! - `start`: [`Server::start`] and its kin: from a `Config` to a
//!   running server.
//! - `listener`: binding the listeners, and the options accepted sockets
//!   inherit.
//! - `workers`: the worker threads that accept and serve, and how many
//!   stay.
//! - `admission`: a connection's slot under the connection limits, or its
//!   503.
//! - `connection`: serving one accepted connection (TLS handshake, PROXY
//!   header, then `proxy::serve`).
//! - `handle`: [`ServerHandle`]: addresses, stopping, shutdown.
//! - `reload`: [`Control`]: reopening the log, reloading, looking targets'
//!   names up again.
//! - `limiters`: the rate limiters a generation of settings gets.
//! - here: `Inner`, the state every thread of the server shares.

mod admission;
mod connection;
mod handle;
mod limiters;
mod listener;
mod reload;
mod start;
mod workers;

pub use handle::{ServerHandle, StopTrigger};
pub use reload::{Control, ReloadError, Reloaded};
pub use start::{Server, StartError};

use crate::access_log::LogSender;
use crate::metrics::Metrics;
use crate::proxy::{ConnWatch, Current, Inherited, Phase};
use crate::upstream::health::Checker;
use crate::upstream::resolve::{self, Resolver};
use crossbeam_channel::Sender;
use parking_lot::{Condvar, Mutex};
use reload::IdleClose;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::Instant;

struct Inner {
    /// The settings in force.
    current: Arc<Current>,
    /// The active health checkers of the generation in force: one per
    /// pool that has them.
    checker: Mutex<Vec<Checker>>,
    /// The thread that looks targets' names up again (`resolve_interval`).
    resolver: Mutex<Option<Resolver>>,
    /// The ACME client's thread (`acme_domains`), which a reload that
    /// changes its settings starts anew.
    acme: Mutex<Option<crate::acme::AcmeThread>>,
    /// What asks the thread that closes idle connections after a reload
    /// shortened their timeout (see `Control::close_idle_after`); dropped,
    /// it stops the thread.
    idle_closer: Mutex<Option<Sender<IdleClose>>>,
    /// Names that did not resolve, each said once a minute at most.
    lookup_failures: Mutex<resolve::Failures>,
    /// What every generation shares.
    shutting_down: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    log: LogSender,
    connections: Arc<Mutex<Connections>>,
    /// Signalled whenever a connection ends.
    drained: Condvar,
    next_id: AtomicU64,
    /// What accepted sockets come with (see `set_inherited_options`).
    inherited: Inherited,
    /// The addresses plain HTTP is actually served on, `port`'s first (a
    /// reload keeps them).
    listening: Vec<SocketAddr>,
}

/// What the client connections are doing, counted for the admin
/// listener (`/stub_status`, `/metrics`): a handle on the server's
/// registry of them, which every generation of the settings shares.
#[derive(Clone)]
pub struct Census(Arc<Mutex<Connections>>);

/// How many client connections do what, as nginx's `stub_status` counts
/// them (see [`Phase`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Phases {
    pub reading: usize,
    pub writing: usize,
    pub waiting: usize,
}

impl Phases {
    /// Every open connection.
    pub fn active(&self) -> usize {
        self.reading + self.writing + self.waiting
    }
}

impl Census {
    /// A count of the open connections by what each is doing: the
    /// registry's lock is held for one glance at each.
    pub fn phases(&self) -> Phases {
        let mut phases = Phases::default();
        for conn in self.0.lock().live.values() {
            match conn.phase() {
                Phase::Reading => phases.reading += 1,
                Phase::Writing => phases.writing += 1,
                Phase::Waiting => phases.waiting += 1,
            }
        }
        phases
    }
}

/// The live client connections, so shutdown can reach them, and how many
/// each client address holds.
#[derive(Default)]
struct Connections {
    live: HashMap<u64, Arc<ConnWatch>>,
    /// By [`ratelimit::counted_as`](crate::ratelimit::counted_as): an IPv6 client's /64.
    per_client: HashMap<IpAddr, usize>,
    /// Connections being refused (see [`Refusing`](admission::Refusing)).
    refusing: usize,
}

impl Inner {
    fn close_idle(&self) {
        for conn in self.connections.lock().live.values() {
            conn.close_if_idle();
        }
    }

    fn any_busy(&self) -> bool {
        self.connections.lock().live.values().any(|c| c.is_busy())
    }

    fn close_all(&self) {
        for conn in self.connections.lock().live.values() {
            conn.close();
        }
    }

    fn wait_drained(&self, deadline: Instant) -> bool {
        let mut connections = self.connections.lock();
        let busy = |c: &Connections| !c.live.is_empty() || c.refusing > 0;
        while busy(&connections) {
            if self
                .drained
                .wait_until(&mut connections, deadline)
                .timed_out()
            {
                return !busy(&connections);
            }
        }
        true
    }
}
