//! The process limits that can stop the proxy short of `max_connections`:
//! each connection holds a thread and up to two descriptors (its own and
//! a backend's). Said at start-up, as nginx says "worker_connections
//! exceed open file resource limit", rather than found out under load.

use std::path::Path;

/// Threads and descriptors the process needs besides its connections and
/// its targets' (main, signals, logger, timer, admin, the worker waiting
/// for the next connection; standard streams, listeners, files).
const SPARE: u64 = 16;

/// What the limits allow, as far as they can be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Threads: the lower of RLIMIT_NPROC (the user's threads, which binds
    /// only users other than root) and the `pids.max` of the process's own
    /// cgroup (a container's pids limit, systemd's `TasksMax`; one set on
    /// a parent is not seen); `None` when neither limits them. Others'
    /// threads count against both: the room may be less.
    pub threads: Option<u64>,
    /// Open descriptors (RLIMIT_NOFILE).
    pub descriptors: Option<u64>,
}

impl Limits {
    pub fn of_this_process() -> Limits {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let nproc = rlimit(libc::RLIMIT_NPROC).filter(|_| !root);
        let pids = cgroup_pids_max();
        Limits {
            threads: [nproc, pids].into_iter().flatten().min(),
            descriptors: rlimit(libc::RLIMIT_NOFILE),
        }
    }

    /// Warnings for the limits that `max_connections` would run into,
    /// with `targets` (a health checker and its probe each) and `pooled`
    /// idle backend connections besides.
    pub fn shortfalls(&self, max_connections: usize, targets: usize, pooled: usize) -> Vec<String> {
        let wanted = max_connections as u64;
        let spare_threads = SPARE + targets as u64;
        let spare_fds = descriptors_wanted(0, targets, pooled);
        let room_threads = self.threads.map(|n| n.saturating_sub(spare_threads));
        let room_fds = self.descriptors.map(|n| n.saturating_sub(spare_fds) / 2);
        let mut said = Vec::new();
        if let (Some(threads), Some(room)) = (self.threads, room_threads.filter(|&r| r < wanted)) {
            said.push(format!(
                "max_connections = {max_connections}, but at most {threads} threads may run \
                 (RLIMIT_NPROC for this user, the cgroup's pids.max, systemd's TasksMax), one \
                 per connection: past as few as {room} connections new ones may get 503; raise \
                 the limit or lower max_connections"
            ));
        }
        if let (Some(fds), Some(room)) = (self.descriptors, room_fds.filter(|&r| r < wanted)) {
            said.push(format!(
                "max_connections = {max_connections}, but this process may open at most {fds} \
                 descriptors (RLIMIT_NOFILE, `ulimit -n`, systemd's LimitNOFILE), up to two per \
                 connection (a worker waiting for one holds one too) and up to {pooled} for idle \
                 backend connections: past as few as {room} busy connections requests may fail; \
                 raise the limit or lower max_connections"
            ));
        }
        said
    }
}

/// What `getrlimit` takes: glibc has a type of its own for it.
#[cfg(target_env = "gnu")]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type Resource = libc::c_int;

/// Raises the soft limit on open descriptors to what [`Limits::shortfalls`]
/// asks for, as far as the hard limit allows (as HAProxy sizes its own
/// from `maxconn`, and Go programs raise theirs): systems commonly give
/// 1,024 with a far higher hard limit.
pub fn raise_descriptor_limit(max_connections: usize, targets: usize, pooled: usize) {
    let wanted = descriptors_wanted(max_connections, targets, pooled);
    let Some(mut limit) = get_rlimit(libc::RLIMIT_NOFILE) else {
        return;
    };
    if limit.rlim_cur == libc::RLIM_INFINITY || limit.rlim_cur >= wanted {
        return;
    }
    limit.rlim_cur = wanted.min(limit.rlim_max);
    // SAFETY: a valid rlimit, its soft value within the hard one. Failure
    // leaves the limit as it was, which the warnings then describe.
    let _ = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
}

/// Descriptors for `max_connections` (two each) and for `targets` (a probe
/// each) and `pooled` idle backend connections besides.
fn descriptors_wanted(max_connections: usize, targets: usize, pooled: usize) -> u64 {
    2 * max_connections as u64 + SPARE + (targets + pooled) as u64
}

/// A resource limit, soft and hard; `None` when unreadable.
fn get_rlimit(resource: Resource) -> Option<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to a properly sized struct.
    (unsafe { libc::getrlimit(resource, &mut limit) } == 0).then_some(limit)
}

/// A resource limit's soft value; `None` when unlimited or unreadable.
fn rlimit(resource: Resource) -> Option<u64> {
    get_rlimit(resource)
        .map(|limit| limit.rlim_cur)
        .filter(|&soft| soft != libc::RLIM_INFINITY)
}

/// The `pids.max` of this process's cgroup (v2, or v1's pids controller).
fn cgroup_pids_max() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    cgroups.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let dir = match controllers {
            "" => Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/')),
            c if c.split(',').any(|c| c == "pids") => {
                Path::new("/sys/fs/cgroup/pids").join(path.trim_start_matches('/'))
            }
            _ => return None,
        };
        std::fs::read_to_string(dir.join("pids.max"))
            .ok()?
            .trim()
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_below_what_max_connections_needs_are_said() {
        let roomy = Limits {
            threads: Some(20_000),
            descriptors: Some(65_536),
        };
        assert!(roomy.shortfalls(10_000, 2, 256).is_empty());
        let unlimited = Limits {
            threads: None,
            descriptors: None,
        };
        assert!(unlimited.shortfalls(1_000_000, 2, 256).is_empty());
        let tight = Limits {
            threads: Some(4915),
            descriptors: Some(1024),
        };
        let said = tight.shortfalls(10_000, 2, 256);
        assert_eq!(said.len(), 2, "{said:?}");
        assert!(said[0].contains("4915 threads") && said[0].contains("as few as 4897 "));
        assert!(said[1].contains("1024 descriptors") && said[1].contains("as few as 375 "));
        // Room for every connection, not for the pooled ones besides.
        let pooled = Limits {
            threads: None,
            descriptors: Some(2 * 1000 + 16 + 2 + 100),
        };
        assert!(pooled.shortfalls(1000, 2, 100).is_empty());
        assert_eq!(pooled.shortfalls(1000, 2, 102).len(), 1);
    }
}
