//! `state_file`: the drain and maintenance states set through the admin
//! listener survive a restart, a damaged file never stops a start, and a
//! state that cannot be saved is still in force (and said so).

mod support;

use inverso::Config;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::*;

/// A proxy in front of `targets` with an admin listener and `state`.
fn proxy_keeping(targets: &[SocketAddr], state: &Path) -> Proxy {
    proxy_keeping_with(targets, state, |_| {})
}

fn proxy_keeping_with(
    targets: &[SocketAddr],
    state: &Path,
    tweak: impl FnOnce(&mut Config),
) -> Proxy {
    let state = state.to_path_buf();
    start_proxy(targets, move |c| {
        c.admin_port = Some(0);
        c.state_file = Some(state);
        tweak(c);
    })
}

/// Reloads `proxy` with `targets` and `state`, as [`proxy_keeping`] made it.
fn reload_keeping(proxy: &Proxy, targets: &[SocketAddr], state: &Path) {
    let mut next = Config::with_targets(targets.iter().copied().map(target).collect());
    next.log_to_stdout = false;
    next.cache_size = 0;
    next.path_to_persistence = None;
    next.admin_port = Some(0);
    next.state_file = Some(state.to_path_buf());
    proxy.handle().control().reload(next).unwrap();
}

/// Sets `target`'s state; returns the reply's body.
#[track_caller]
fn set_state(proxy: &Proxy, target: impl std::fmt::Display, state: &str) -> String {
    let response = proxy.admin("PUT", &format!("/targets/{target}"), state);
    let body = response.body_str();
    assert_eq!(response.status, 200, "{body}");
    assert!(
        body.contains(&format!("\"admin_state\":\"{state}\"")),
        "{body}"
    );
    body
}

/// The `admin_state` `GET /targets/<target>` reports.
#[track_caller]
fn state_of(proxy: &Proxy, target: impl std::fmt::Display) -> String {
    let response = proxy.admin("GET", &format!("/targets/{target}"), "");
    let body = response.body_str();
    assert_eq!(response.status, 200, "{body}");
    let (_, rest) = body.split_once("\"admin_state\":\"").expect("admin_state");
    rest.split('"').next().unwrap().to_string()
}

/// What `/status` says of `target`.
fn status_of(proxy: &Proxy, target: SocketAddr) -> String {
    let status = proxy.admin("GET", "/status", "").body_str();
    let at = status
        .find(&format!("\"name\":\"{target}\""))
        .unwrap_or_else(|| panic!("{target} not in {status}"));
    status[at..].split('}').next().unwrap().to_string()
}

/// Which backend answered each of `n` GETs.
fn answers(proxy: &Proxy, n: usize) -> HashMap<String, usize> {
    let mut tally = HashMap::new();
    for _ in 0..n {
        let response = proxy.connect().get("/");
        assert_eq!(response.status, 200);
        let backend = response.header("x-backend").unwrap_or("-").to_string();
        *tally.entry(backend).or_default() += 1;
    }
    tally
}

fn stop(mut proxy: Proxy) {
    assert!(proxy.shutdown(Duration::from_secs(1)));
}

/// The lines of the file that name targets (not its header or comments).
fn listed(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn state_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("state")
}

#[test]
fn a_target_put_in_maintenance_is_still_there_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_path(&dir);
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    let first = proxy_keeping(&[a.addr, b.addr], &state);
    let reply = set_state(&first, a.addr, "maint");
    assert!(reply.contains("\"saved\":true"), "{reply}");
    assert_eq!(listed(&state), [format!("{} maint", a.addr)]);
    stop(first);

    let second = proxy_keeping(&[a.addr, b.addr], &state);
    assert_eq!(state_of(&second, a.addr), "maint");
    assert!(status_of(&second, a.addr).contains("\"admin_state\":\"maint\""));
    assert!(status_of(&second, b.addr).contains("\"admin_state\":\"ready\""));
    assert_eq!(answers(&second, 6), HashMap::from([("b".to_string(), 6)]));
    assert_eq!(a.requests(), 0);
}

#[test]
fn drain_is_kept_too_and_ready_takes_the_target_out_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_path(&dir);
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    let first = proxy_keeping_with(&[a.addr, b.addr], &state, |c| {
        c.targets[1].name = "app-b.internal:8080".into();
    });
    set_state(&first, a.addr, "drain");
    // By the name `/status` shows, whichever id the PUT used.
    set_state(&first, b.addr, "maint");
    assert_eq!(
        listed(&state),
        [
            format!("{} drain", a.addr),
            "app-b.internal:8080 maint".to_string()
        ]
    );
    stop(first);

    let second = proxy_keeping_with(&[a.addr, b.addr], &state, |c| {
        c.targets[1].name = "app-b.internal:8080".into();
    });
    assert_eq!(state_of(&second, a.addr), "drain");
    assert_eq!(state_of(&second, b.addr), "maint");
    set_state(&second, a.addr, "ready");
    set_state(&second, "app-b.internal:8080", "ready");
    assert!(listed(&state).is_empty(), "{:?}", listed(&state));
    stop(second);

    let third = proxy_keeping(&[a.addr, b.addr], &state);
    assert_eq!(state_of(&third, a.addr), "ready");
    let served = answers(&third, 6);
    assert_eq!(
        served,
        HashMap::from([("a".to_string(), 3), ("b".to_string(), 3)])
    );
}

/// A file with garbage, a line cut short, a target the configuration no
/// longer has, and one good line between them.
fn damaged_file(path: &Path, a: SocketAddr, b: SocketAddr) {
    let mut bytes = b"inverso-state 1\n\x00\x01\xff\xfe garbage\n".to_vec();
    bytes.extend_from_slice(format!("{a} maint\n").as_bytes());
    bytes.extend_from_slice(b"gone.internal:80 drain\n\x1b[2J\n");
    bytes.extend_from_slice(format!("{b} mai").as_bytes());
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_damaged_file_does_not_stop_the_start_and_its_good_lines_apply() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_path(&dir);
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    damaged_file(&state, a.addr, b.addr);
    let proxy = proxy_keeping(&[a.addr, b.addr], &state);
    assert_eq!(state_of(&proxy, a.addr), "maint");
    assert_eq!(state_of(&proxy, b.addr), "ready");
    assert_eq!(answers(&proxy, 4), HashMap::from([("b".to_string(), 4)]));
    // The file is left as it was until the next change.
    assert!(std::fs::read(&state).unwrap().ends_with(b" mai"));
}

#[test]
fn check_says_what_the_state_file_would_apply_and_what_it_skips() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b): (SocketAddr, SocketAddr) = (
        "127.0.0.1:9001".parse().unwrap(),
        "127.0.0.1:9002".parse().unwrap(),
    );
    std::fs::write(
        dir.path().join("proxy.conf"),
        format!("targets = {a}, {b}\ncache_size = 0\nstate_file = state\n"),
    )
    .unwrap();
    let check = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_inverso"))
            .args(["check", "--config", "proxy.conf"])
            .current_dir(dir.path())
            .env("RUST_LOG", "error")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8(out.stdout).unwrap()
    };
    let stdout = check();
    assert!(stdout.contains("state_file = state "), "{stdout}");
    assert!(
        stdout.contains("# state_file state: none yet: every target starts as configured\n"),
        "{stdout}"
    );
    damaged_file(&dir.path().join("state"), a, b);
    let stdout = check();
    for said in [
        format!("# state_file state:3: {a} -> maint\n"),
        "# warning: state_file state:2: not UTF-8 text: skipped".to_string(),
        "# warning: state_file state:4: no target is named `gone.internal:80`".to_string(),
        "# warning: state_file state:5: expected `<target> <state>` or `<target> weight=<N> configured=<N>`, found `\\u{1b}[2J`"
            .to_string(),
        "# warning: state_file state:6: unknown target state `mai`".to_string(),
    ] {
        assert!(stdout.contains(&said), "{said}\n{stdout}");
    }
    // `check` reads the file, and writes nothing.
    assert!(std::fs::read(dir.path().join("state"))
        .unwrap()
        .ends_with(b" mai"));
}

#[test]
fn a_file_over_a_mebibyte_is_read_up_to_the_limit_and_the_proxy_starts() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_path(&dir);
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    let mut bytes = format!("inverso-state 1\n{} maint\n", a.addr).into_bytes();
    while bytes.len() <= 1024 * 1024 {
        bytes.extend_from_slice(b"# a comment that pads the file past its limit\n");
    }
    bytes.extend_from_slice(format!("{} maint\n", b.addr).as_bytes());
    std::fs::write(&state, bytes).unwrap();
    let proxy = proxy_keeping(&[a.addr, b.addr], &state);
    assert_eq!(state_of(&proxy, a.addr), "maint");
    // Past the limit: not read.
    assert_eq!(state_of(&proxy, b.addr), "ready");
    assert_eq!(answers(&proxy, 3), HashMap::from([("b".to_string(), 3)]));
}

#[test]
fn a_state_that_cannot_be_saved_is_in_force_and_the_reply_says_not_saved() {
    let dir = tempfile::tempdir().unwrap();
    // Its directory is a regular file: no write can succeed, even as root.
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, "x").unwrap();
    let state = not_a_dir.join("state");
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    let proxy = proxy_keeping(&[a.addr, b.addr], &state);
    let reply = set_state(&proxy, a.addr, "maint");
    assert!(reply.contains("\"saved\":false"), "{reply}");
    assert!(reply.contains("\"save_error\":\""), "{reply}");
    assert!(reply.contains("\"previous\":\"ready\""), "{reply}");
    assert_eq!(state_of(&proxy, a.addr), "maint");
    assert_eq!(answers(&proxy, 4), HashMap::from([("b".to_string(), 4)]));
    assert_eq!(a.requests(), 0);
}

#[test]
fn the_new_process_of_a_handover_starts_with_the_states_the_old_one_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_path(&dir);
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    let old = proxy_keeping(&[a.addr, b.addr], &state);
    set_state(&old, a.addr, "maint");
    // The new one starts beside the old one, on the same file.
    let new = proxy_keeping(&[a.addr, b.addr], &state);
    assert_eq!(state_of(&new, a.addr), "maint");
    set_state(&new, b.addr, "drain");
    assert_eq!(
        listed(&state),
        [format!("{} maint", a.addr), format!("{} drain", b.addr)]
    );
    // Each writes what it holds: the last write wins.
    set_state(&old, a.addr, "maint");
    assert_eq!(listed(&state), [format!("{} maint", a.addr)]);
    set_state(&new, b.addr, "drain");
    stop(old);
    stop(new);
    let next = proxy_keeping(&[a.addr, b.addr], &state);
    assert_eq!(state_of(&next, a.addr), "maint");
    assert_eq!(state_of(&next, b.addr), "drain");
    // Neither left a temporary file behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["state"]);
}

#[test]
fn a_reload_to_another_state_file_writes_the_states_there() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    let proxy = proxy_keeping(&[a.addr, b.addr], &first);
    set_state(&proxy, a.addr, "maint");
    reload_keeping(&proxy, &[a.addr, b.addr], &second);
    // The state is kept in memory, as by any reload, and written anew.
    assert_eq!(state_of(&proxy, a.addr), "maint");
    assert_eq!(listed(&second), [format!("{} maint", a.addr)]);
    set_state(&proxy, b.addr, "drain");
    assert_eq!(
        listed(&second),
        [format!("{} maint", a.addr), format!("{} drain", b.addr)]
    );
    // The file left is not written any more.
    assert_eq!(listed(&first), [format!("{} maint", a.addr)]);
    stop(proxy);
    let restarted = proxy_keeping(&[a.addr, b.addr], &second);
    assert_eq!(state_of(&restarted, b.addr), "drain");
}

#[test]
fn a_put_sent_on_a_connection_opened_before_a_reload_is_for_the_targets_it_put_in_force() {
    // The PUT names a target the reload added, and the file it writes
    // must list the states of the targets in force, not of those the
    // reload replaced (a restart would lose what was set since).
    let dir = tempfile::tempdir().unwrap();
    let state = state_path(&dir);
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    let proxy = proxy_keeping(&[a.addr], &state);
    let mut early = Client::connect(proxy.handle().admin_addr().expect("admin listener"));
    // Answered once `early` was accepted: the listener takes them in order.
    assert_eq!(proxy.admin("GET", "/status", "").status, 200);
    reload_keeping(&proxy, &[a.addr, b.addr], &state);
    set_state(&proxy, a.addr, "drain");
    let put = format!(
        "PUT /targets/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nmaint",
        b.addr
    );
    early.send(put.as_bytes());
    let response = early.response();
    assert_eq!(response.status, 200, "{}", response.body_str());
    assert_eq!(state_of(&proxy, b.addr), "maint");
    assert_eq!(
        listed(&state),
        [format!("{} drain", a.addr), format!("{} maint", b.addr)]
    );
}

#[test]
fn a_reload_may_not_make_the_state_file_the_snapshot_still_written() {
    // The file names another snapshot, but `path_to_persistence` waits for
    // a restart: the running one is still written, and may not be the
    // states' file too.
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("cache.bin");
    let a = Backend::echo("a");
    let running = snapshot.clone();
    let proxy = start_proxy(&[a.addr], move |c| {
        c.cache_size = 1 << 20;
        c.path_to_persistence = Some(running);
    });
    let mut next = proxy.config_for(&[a.addr], |c| {
        c.cache_size = 1 << 20;
        c.path_to_persistence = Some(dir.path().join("new.bin"));
        c.state_file = Some(snapshot.clone());
    });
    assert_eq!(next.state_file_shared(), None, "the file alone is fine");
    let refused = proxy.handle().control().reload(next.clone()).unwrap_err();
    assert!(
        refused.to_string().contains("is also path_to_persistence"),
        "{refused}"
    );
    assert!(!snapshot.exists(), "written over by the states");
    // With a file of its own, taken.
    next.state_file = Some(dir.path().join("states"));
    proxy.handle().control().reload(next).unwrap();
}

/// The `weight` `GET /targets/<target>` reports.
#[track_caller]
fn weight_of(proxy: &Proxy, target: impl std::fmt::Display) -> u32 {
    let body = proxy
        .admin("GET", &format!("/targets/{target}"), "")
        .body_str();
    let (_, rest) = body.split_once("\"weight\":").expect("weight");
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap()
}

/// `a` and `b` under `weighted_round_robin`, `a` written `weight=a_weight`.
fn weighing(a: SocketAddr, b: SocketAddr, a_weight: u32) -> impl Fn(&mut Config) {
    move |c| {
        c.balance = inverso::config::Balance::WeightedRoundRobin;
        c.targets = vec![target(a), target(b)];
        c.targets[0].weight = a_weight;
    }
}

#[test]
fn a_weight_given_at_run_time_is_kept_by_restarts_and_reloads_until_weight_is_edited() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_path(&dir);
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    let first = proxy_keeping_with(&[a.addr, b.addr], &state, weighing(a.addr, b.addr, 1));
    let reply = first.admin("PUT", &format!("/targets/{}", a.addr), "weight=3");
    assert!(reply.body_str().contains("\"saved\":true"), "{reply:?}");
    assert_eq!(
        listed(&state),
        [format!("{} weight=3 configured=1", a.addr)]
    );
    stop(first);

    // A restart finds it, and the balancer weighs by it: 3 to 1.
    let second = proxy_keeping_with(&[a.addr, b.addr], &state, weighing(a.addr, b.addr, 1));
    assert_eq!(weight_of(&second, a.addr), 3);
    assert_eq!(
        answers(&second, 8),
        HashMap::from([("a".to_string(), 6), ("b".to_string(), 2)])
    );
    // A reload that leaves `weight=` as it was keeps it.
    let mut same = Config::with_targets(vec![]);
    weighing(a.addr, b.addr, 1)(&mut same);
    (
        same.log_to_stdout,
        same.cache_size,
        same.path_to_persistence,
    ) = (false, 0, None);
    (same.admin_port, same.state_file) = (Some(0), Some(state.clone()));
    second.handle().control().reload(same.clone()).unwrap();
    assert_eq!(weight_of(&second, a.addr), 3);
    // One that edits it puts the file's in force, and the state file
    // no longer lists it.
    let mut edited = same;
    edited.targets[0].weight = 2;
    second.handle().control().reload(edited).unwrap();
    assert_eq!(weight_of(&second, a.addr), 2);
    assert!(listed(&state).is_empty(), "{:?}", listed(&state));
    second.admin("PUT", &format!("/targets/{}", a.addr), "weight=5");
    stop(second);

    // Nor does a restart with `weight=` edited since apply the file's.
    let third = proxy_keeping_with(&[a.addr, b.addr], &state, weighing(a.addr, b.addr, 4));
    assert_eq!(weight_of(&third, a.addr), 4);
    stop(third);
    let fourth = proxy_keeping_with(&[a.addr, b.addr], &state, weighing(a.addr, b.addr, 2));
    assert_eq!(weight_of(&fourth, a.addr), 5);
}
