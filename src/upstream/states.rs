//! What a target's state carries over to the next generation of its pool
//! (a reload, a re-resolution), and the operator's drain and maintenance
//! set through the admin listener.

use super::admin_state::AdminState;
use super::health::{Agent, Health};
use super::idle::IdleConns;
use super::{TargetStats, Upstream, Upstreams};
use crate::config::{Config, Endpoint};
use std::net::SocketAddr;
use std::sync::Arc;

impl Upstreams {
    /// Takes over the counters and health of the targets `old` shares
    /// with us (by name), so a reload does not reset them, and a target
    /// that was down stays down; the health goes on under our settings.
    /// A name now at another address is another server: its health
    /// starts afresh, and only its counters and the operator's state
    /// (drain, maint) go on. With `keep_idle` (a re-resolution, whose
    /// settings are those of `old`), a target at the address it was at
    /// keeps its idle connections too.
    ///
    /// The address of a name that came to give several, or came back to
    /// one, is renamed (`app:8000` is now `app:8000@10.0.0.5:8000`, see
    /// [`Target::at`]) but is the same target: found by the name as
    /// written and the address, it keeps all of that, and answers to its
    /// former sticky id too. An address new to a name starts afresh,
    /// `ready`, unless every address the name had was in one other state:
    /// a name put in maintenance stays there as its replicas come and go.
    ///
    /// A target whose `down` was written or taken out since takes what
    /// the word now says (maintenance, or ready), whatever the operator
    /// set; one whose word is as it was keeps the state it had. So with
    /// the weight given at run time (through the admin listener, by an
    /// agent): kept while the target's `weight=` is as it was, the file's
    /// once it was edited, as HAProxy's `server-state-file` keeps
    /// `srv_uweight` only while `srv_iweight` is the configuration's. An
    /// address new to a name has the weight every address of the name
    /// had, if they had one.
    ///
    /// [`Target::at`]: crate::config::Target::at
    pub fn keep_state_of(&mut self, old: &[&Upstream], keep_idle: bool) {
        let mut flipped = Vec::new();
        for (i, target) in self.targets.iter_mut().enumerate() {
            let passive = target.health.passive();
            let same_name = old.iter().find(|o| o.name == target.name);
            let renamed = || {
                old.iter()
                    .find(|o| o.written == target.written && o.addr == target.addr)
            };
            if let Some(same) = same_name.filter(|o| o.addr != target.addr) {
                target.stats = same.stats.clone();
                target.health = Arc::new(Health::sharing_admin_of(&same.health, passive));
            } else if let Some(same) = same_name.or_else(renamed) {
                target.stats = same.stats.clone();
                // Renamed first: what the new settings announce names it
                // as it is now.
                if same.name != target.name {
                    same.health.rename(target.name.clone());
                }
                same.health.set_passive(passive);
                target.health = same.health.clone();
                target.former_sticky_id = match same.name == target.name {
                    true => same.former_sticky_id.clone(),
                    false => Some(same.sticky_id.clone()),
                };
                if keep_idle {
                    target.idle = same.idle.clone();
                }
            } else {
                if let Some(state) = state_of_every(old, &target.written) {
                    target.health.set_admin_state(state);
                }
                let weight = weight_of_every(old, &target.written, target.weight);
                target.health.admin().set_weight(weight);
            }
            let was = (same_name.or_else(renamed))
                .or_else(|| old.iter().find(|o| o.written == target.written));
            if was.is_some_and(|was| was.down != target.down) {
                flipped.push(i);
            }
            if was.is_some_and(|was| was.weight != target.weight) {
                target.health.admin().reset_weight();
            }
            // Counters kept: the requests of the generation before, those
            // waiting included, count against this one's limit from now on.
            target.stats.waiting.set_limit(target.max_conns);
        }
        for i in flipped {
            let target = &self.targets[i];
            let state = match target.down {
                true => AdminState::Maint,
                false => AdminState::Ready,
            };
            self.set_admin_state(target, state);
        }
    }

    /// Sets `target`'s administrative state; returns the one it replaced.
    /// Into maintenance, its idle connections are closed (those in use are
    /// when their request ends, see [`Upstream::checkin`]). Every request
    /// waiting for a slot is woken to choose again: the targets it may
    /// wait for have changed.
    pub fn set_admin_state(&self, target: &Upstream, state: AdminState) -> AdminState {
        let pool = self.targets.iter().map(|t| &*t.stats);
        set_admin_state(&target.health, &target.idle, pool, state)
    }

    /// What each target's agent is asked, with what it needs to set its
    /// state from the agent's thread as [`Upstreams::set_admin_state`]
    /// does; a target without one has what its agent said before let go.
    pub fn agents(&self, config: &Config) -> Vec<Agent> {
        let weighs = config.balance.weighs_as_it_picks();
        let pool: Arc<[Arc<TargetStats>]> = self.targets.iter().map(|t| t.stats.clone()).collect();
        let mut agents = Vec::new();
        for (index, t) in self.targets.iter().enumerate() {
            let own_ip = match &t.addr {
                Endpoint::Tcp(addr) => Some(addr.ip()),
                Endpoint::Unix(_) => None,
            };
            let Some((check, ip)) = (t.agent.as_ref()).and_then(|a| Some((a, a.addr.or(own_ip)?)))
            else {
                t.health.agent_gone();
                continue;
            };
            agents.push(Agent {
                name: t.written.clone(),
                addr: SocketAddr::new(ip, check.port),
                interval: check.interval,
                send: check.send.clone(),
                health: t.health.clone(),
                configured_weight: t.weight,
                weighs,
                idle: t.idle.clone(),
                pool: pool.clone(),
                index,
            });
        }
        agents
    }
}

/// Sets a target's administrative state; returns the one it replaced.
/// `pool`: the counters of every target of its pool, whose waiting
/// requests are woken.
pub(super) fn set_admin_state<'a>(
    health: &Health,
    idle: &IdleConns,
    pool: impl Iterator<Item = &'a TargetStats>,
    state: AdminState,
) -> AdminState {
    let was = health.set_admin_state(state);
    // After the store: a connection given back meanwhile either is in
    // the pool for this clear, or its giver sees the new state.
    if state == AdminState::Maint {
        idle.clear();
    }
    for stats in pool {
        stats.waiting.wake_all();
    }
    was
}

/// The administrative state every target of `targets` written as
/// `written` is in, if there are some and they agree.
fn state_of_every(targets: &[&Upstream], written: &str) -> Option<AdminState> {
    let mut states = (targets.iter())
        .filter(|t| *t.written == *written)
        .map(|t| t.health.admin_state());
    let first = states.next()?;
    states.all(|s| s == first).then_some(first)
}

/// The weight every target of `targets` written as `written` was given
/// at run time over a configured weight of `configured`, if there are
/// some and they agree.
fn weight_of_every(targets: &[&Upstream], written: &str, configured: u32) -> Option<u32> {
    let mut weights = (targets.iter())
        .filter(|t| *t.written == *written)
        .map(|t| {
            (t.weight == configured)
                .then(|| t.health.admin().weight())
                .flatten()
        });
    let first = weights.next()??;
    weights.all(|w| w == Some(first)).then_some(first)
}

#[cfg(test)]
mod tests {
    use super::super::sticky;
    use super::super::test_support::all;
    use super::*;
    use crate::config::{Config, Endpoint, Found, Target};
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    fn found(addrs: &[SocketAddr]) -> Vec<Found> {
        addrs.iter().map(|&a| a.into()).collect()
    }

    #[test]
    fn the_address_of_a_name_that_comes_to_give_several_is_the_same_target_renamed() {
        let written = Target::new("app:80", "127.0.0.1:1".parse().unwrap());
        let (a, b) = (
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        );
        let generation = |addrs: &[SocketAddr]| {
            let mut config = Config::with_targets(written.at(&found(addrs)));
            config.max_fails = 1;
            Upstreams::new(&config)
        };
        let one = generation(&[a]);
        let alone = &one.targets()[0];
        alone.health.failed(Instant::now(), "test");
        one.set_admin_state(alone, AdminState::Drain);
        alone.health.admin().set_weight(Some(5));

        let mut two = generation(&[a, b]);
        two.keep_state_of(&all(&one), true);
        let (kept, new) = (&two.targets()[0], &two.targets()[1]);
        assert_eq!(&*kept.name, "app:80@127.0.0.1:1");
        assert!(Arc::ptr_eq(&kept.health, &alone.health));
        assert!(Arc::ptr_eq(&kept.stats, &alone.stats));
        assert!(Arc::ptr_eq(&kept.idle, &alone.idle));
        assert!(!kept.health.usable(Instant::now()), "still down");
        assert_eq!(kept.health.admin_state(), AdminState::Drain);
        assert_eq!(
            kept.weight_now(),
            5,
            "the operator's weight, through a new address"
        );
        // Its clients stuck to it under its former name still are.
        assert_eq!(
            kept.former_sticky_id.as_deref(),
            Some(&*sticky::id_of("app:80"))
        );
        // The new address: fresh, in the state the name's addresses shared.
        assert!(new.health.usable(Instant::now()));
        assert_eq!(new.health.admin_state(), AdminState::Drain);
        assert_eq!(new.former_sticky_id, None);

        // A reload keeps all but the idle connections.
        let mut reloaded = generation(&[a, b]);
        reloaded.keep_state_of(&all(&two), false);
        assert!(Arc::ptr_eq(&reloaded.targets()[0].health, &kept.health));
        assert!(!Arc::ptr_eq(&reloaded.targets()[0].idle, &kept.idle));
        assert_eq!(reloaded.targets()[0].weight_now(), 5);
        // Back to one: named as written, the same target still.
        let mut back = generation(&[a]);
        back.keep_state_of(&all(&two), true);
        assert_eq!(&*back.targets()[0].name, "app:80");
        assert!(Arc::ptr_eq(&back.targets()[0].health, &kept.health));
    }

    #[test]
    fn a_weight_given_at_run_time_holds_until_weight_is_edited_and_reaches_a_new_address() {
        let written = Target::new("app:80", "127.0.0.1:1".parse().unwrap());
        let addrs: [SocketAddr; 4] = [1, 2, 3, 4].map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
        let generation = |addrs: &[SocketAddr], weight: u32| {
            let mut targets = written.at(&found(addrs));
            targets.iter_mut().for_each(|t| t.weight = weight);
            Upstreams::new(&Config::with_targets(targets))
        };
        let weights =
            |up: &Upstreams| -> Vec<u32> { up.targets().iter().map(|t| t.weight_now()).collect() };
        let one = generation(&addrs[..2], 2);
        for t in one.targets() {
            t.health.admin().set_weight(Some(7));
        }
        // A reload as written, and a third address: it has the weight
        // the name's addresses all had.
        let mut two = generation(&addrs[..3], 2);
        two.keep_state_of(&all(&one), false);
        assert_eq!(weights(&two), [7, 7, 7]);
        // One address given another: a new one has the configured weight.
        two.targets()[0].health.admin().set_weight(Some(9));
        let mut three = generation(&addrs, 2);
        three.keep_state_of(&all(&two), true);
        assert_eq!(weights(&three), [9, 7, 7, 2]);
        // `weight=` edited: the file's, for every address.
        let mut four = generation(&addrs, 3);
        four.keep_state_of(&all(&three), false);
        assert_eq!(weights(&four), [3, 3, 3, 3]);
        assert!(four
            .targets()
            .iter()
            .all(|t| t.health.admin().weight().is_none()));
    }

    #[test]
    fn each_target_is_under_its_own_max_fails_and_fail_timeout_or_the_keys_across_reloads() {
        let secs = Duration::from_secs;
        let target = |port: u16, max_fails, fail_timeout| Target {
            name: format!("127.0.0.1:{port}"),
            addr: Endpoint::Tcp(SocketAddr::from(([127, 0, 0, 1], port))),
            weight: 1,
            backup: false,
            down: false,
            max_conns: None,
            max_fails,
            fail_timeout,
            tls: None,
            send_proxy: None,
            agent: None,
            check_port: None,
            fastcgi: false,
            record_weight: false,
            record_backup: false,
        };
        let generation = |own: Option<u32>, keys: (u32, u64)| {
            let mut config =
                Config::with_targets(vec![target(1, None, None), target(2, own, Some(secs(60)))]);
            (config.max_fails, config.fail_timeout) = (keys.0, secs(keys.1));
            Upstreams::new(&config)
        };
        let passive = |up: &Upstreams| -> Vec<(u32, Duration)> {
            (up.targets().iter())
                .map(|t| t.health.passive())
                .map(|p| (p.max_fails, p.fail_timeout))
                .collect()
        };
        let first = generation(Some(3), (1, 10));
        assert_eq!(passive(&first), [(1, secs(10)), (3, secs(60))]);
        // Held out under its own max_fails: three failures, not one.
        let now = Instant::now();
        let own = &first.targets()[1].health;
        for i in 0..3 {
            assert!(own.usable(now), "out after {i} failure(s)");
            own.failed(now, "test");
        }
        assert!(!own.usable(now));
        assert!(!own.usable(now + secs(59)));
        assert!(own.usable(now + secs(60)), "out for its own fail_timeout");

        // A reload that changes only the keys: the target with its own
        // options keeps them, and its health (still out).
        let mut keys_only = generation(Some(3), (5, 20));
        keys_only.keep_state_of(&all(&first), false);
        assert_eq!(passive(&keys_only), [(5, secs(20)), (3, secs(60))]);
        assert!(Arc::ptr_eq(&keys_only.targets()[1].health, own));
        assert!(!own.usable(now), "kept out: its settings did not change");

        // A reload that changes its option: in force on the same health,
        // and the mark made under the old one is let go.
        let mut changed = generation(Some(0), (5, 20));
        changed.keep_state_of(&all(&keys_only), false);
        assert_eq!(passive(&changed), [(5, secs(20)), (0, secs(60))]);
        assert!(Arc::ptr_eq(&changed.targets()[1].health, own));
        assert!(own.usable(now));
        for _ in 0..10 {
            own.failed(now, "test");
        }
        assert!(own.usable(now), "max_fails=0: never taken out");
    }

    #[test]
    fn a_target_written_down_is_in_maintenance_until_the_word_is_taken_out() {
        let generation = |down: [bool; 2]| {
            let targets = (1..=2).map(|port| Target {
                down: down[port as usize - 1],
                ..Target::new(format!("127.0.0.1:{port}"), ([127, 0, 0, 1], port).into())
            });
            Upstreams::new(&Config::with_targets(targets.collect()))
        };
        let states = |up: &Upstreams| -> Vec<AdminState> {
            (up.targets().iter())
                .map(|t| t.health.admin_state())
                .collect()
        };
        let first = generation([false, true]);
        assert_eq!(states(&first), [AdminState::Ready, AdminState::Maint]);

        // The operator lets it in; a reload with the word as it was keeps that.
        first.set_admin_state(&first.targets()[1], AdminState::Ready);
        let mut same = generation([false, true]);
        same.keep_state_of(&all(&first), false);
        assert_eq!(states(&same), [AdminState::Ready, AdminState::Ready]);

        // The word written since: in maintenance, whatever the operator
        // set (a drain); the other, its word as it was, stays ready.
        same.set_admin_state(&same.targets()[0], AdminState::Drain);
        let mut written = generation([true, true]);
        written.keep_state_of(&all(&same), false);
        assert_eq!(states(&written), [AdminState::Maint, AdminState::Ready]);

        // Taken out: ready again.
        let mut taken_out = generation([false, true]);
        taken_out.keep_state_of(&all(&written), false);
        assert_eq!(states(&taken_out), [AdminState::Ready, AdminState::Ready]);
    }
}
