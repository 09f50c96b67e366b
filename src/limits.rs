//! The process limits that can stop the proxy short of `max_connections`:
//! each connection holds a thread and up to two descriptors (its own and
//! a backend's). Said at start-up, as nginx says "worker_connections
//! exceed open file resource limit", rather than found out under load.

use std::path::Path;

/// Threads and descriptors the process needs besides its connections
/// (main, logger, timer, checkers, admin; listeners, files, pooled
/// backend connections).
const SPARE: u64 = 64;

/// What the limits allow, as far as they can be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Threads: the lower of RLIMIT_NPROC (which binds only users other
    /// than root) and the cgroup's `pids.max` (a container's pids limit,
    /// systemd's `TasksMax`); `None` when neither limits them.
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

    /// Warnings for the limits that `max_connections` would run into.
    pub fn shortfalls(&self, max_connections: usize) -> Vec<String> {
        let wanted = max_connections as u64;
        let mut said = Vec::new();
        if let Some(threads) = self.threads.filter(|&n| n < wanted + SPARE) {
            said.push(format!(
                "max_connections = {max_connections}, but this process may run at most {threads} \
                 threads (RLIMIT_NPROC, the cgroup's pids.max, systemd's TasksMax), one per \
                 connection: past about {} connections new ones get 503; raise the limit or \
                 lower max_connections",
                threads.saturating_sub(SPARE)
            ));
        }
        if let Some(fds) = self.descriptors.filter(|&n| n < 2 * wanted + SPARE) {
            said.push(format!(
                "max_connections = {max_connections}, but this process may open at most {fds} \
                 descriptors (RLIMIT_NOFILE, `ulimit -n`, systemd's LimitNOFILE), up to two per \
                 connection: past about {} busy connections requests fail; raise the limit or \
                 lower max_connections",
                fds.saturating_sub(SPARE) / 2
            ));
        }
        said
    }
}

/// A resource limit's soft value; `None` when unlimited or unreadable.
fn rlimit(resource: libc::__rlimit_resource_t) -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to a properly sized struct.
    let read = unsafe { libc::getrlimit(resource, &mut limit) } == 0;
    (read && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
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
        assert!(roomy.shortfalls(10_000).is_empty());
        let unlimited = Limits {
            threads: None,
            descriptors: None,
        };
        assert!(unlimited.shortfalls(1_000_000).is_empty());
        let tight = Limits {
            threads: Some(4915),
            descriptors: Some(1024),
        };
        let said = tight.shortfalls(10_000);
        assert_eq!(said.len(), 2, "{said:?}");
        assert!(said[0].contains("4915 threads") && said[0].contains("about 4851"));
        assert!(said[1].contains("1024 descriptors") && said[1].contains("about 480"));
    }
}
