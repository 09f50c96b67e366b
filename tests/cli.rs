//! The `inverso` binary: `check` on good and bad configurations, and the
//! precedence of flags, environment and file.

#[path = "support/mmdb.rs"]
mod mmdb;

use std::path::Path;
use std::process::{Command, Output};

/// Runs `inverso args...` in `dir` with no `INVERSO_*` variables except
/// those in `env`.
fn inverso(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = command(dir, args);
    command.envs(env.iter().copied());
    command.output().unwrap()
}

/// `inverso args...` to run in `dir`, without the test's own `INVERSO_*`.
fn command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_inverso"));
    command.args(args).current_dir(dir).env("RUST_LOG", "error");
    for (name, _) in std::env::vars() {
        if name.starts_with("INVERSO_") {
            command.env_remove(name);
        }
    }
    command
}

/// Writes `proxy.conf` with `text` into a new directory.
fn conf(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("proxy.conf"), text).unwrap();
    dir
}

fn check(text: &str) -> (Option<i32>, String, String) {
    check_in(conf(text).path())
}

/// `inverso check` of the `proxy.conf` in `dir`: its exit code, stdout
/// and stderr.
fn check_in(dir: &Path) -> (Option<i32>, String, String) {
    let out = inverso(dir, &["check", "--config", "proxy.conf"], &[]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const GOOD: &str =
    "# a sample\nport = 9000\n\ntargets = 127.0.0.1:9001, 127.0.0.1:9002\ncache_size = 1MiB\n";

#[test]
fn check_accepts_a_good_config_and_prints_the_effective_settings() {
    let (code, stdout, stderr) = check(GOOD);
    assert_eq!(code, Some(0), "stderr: {stderr}");
    let port = stdout
        .lines()
        .find(|l| l.starts_with("port ="))
        .expect("no port line");
    assert!(port.starts_with("port = 9000 "), "{port}");
    assert!(port.contains("proxy.conf:2"), "{port}");
    assert!(stdout.contains("127.0.0.1:9001"), "{stdout}");
    assert!(stdout.contains("127.0.0.1:9002"), "{stdout}");
    let timeout = stdout
        .lines()
        .find(|l| l.starts_with("connection_timeout ="))
        .expect("no connection_timeout line");
    assert!(timeout.contains("default"), "{timeout}");
}

#[test]
fn check_shows_balance_uri_hash_and_the_weights_it_takes() {
    let (code, stdout, stderr) = check(
        "targets = 127.0.0.1:9001 weight=3, 127.0.0.1:9002\nbalance = uri_hash\n\
         path_to_persistence =\n",
    );
    assert_eq!(code, Some(0), "stderr: {stderr}");
    let balance = stdout
        .lines()
        .find(|l| l.starts_with("balance ="))
        .expect("no balance line");
    assert!(balance.starts_with("balance = uri_hash "), "{balance}");
    assert!(balance.contains("proxy.conf:2"), "{balance}");
    assert!(stdout.contains("127.0.0.1:9001 (weight 3)"), "{stdout}");
}

#[test]
fn check_shows_balance_hash_with_its_hash_on_and_refuses_either_alone() {
    let (code, stdout, stderr) = check(
        "targets = 127.0.0.1:9001 weight=3, 127.0.0.1:9002\nbalance = hash\n\
         hash_on = cookie:sid\npath_to_persistence =\n",
    );
    assert_eq!(code, Some(0), "stderr: {stderr}");
    let line = |key: &str| {
        let start = format!("{key} = ");
        let found = stdout.lines().find(|l| l.starts_with(&start));
        found.unwrap_or_else(|| panic!("no {key} line in {stdout}"))
    };
    assert!(line("balance").starts_with("balance = hash "), "{stdout}");
    assert!(line("balance").contains("proxy.conf:2"), "{stdout}");
    assert!(
        line("hash_on").starts_with("hash_on = cookie:sid "),
        "{stdout}"
    );
    assert!(line("hash_on").contains("proxy.conf:3"), "{stdout}");
    assert!(stdout.contains("127.0.0.1:9001 (weight 3)"), "{stdout}");

    assert_rejected(
        "targets = 127.0.0.1:9001\nbalance = hash\n",
        Some(2),
        &["balance: hash needs hash_on"],
    );
    assert_rejected(
        "targets = 127.0.0.1:9001\nbalance = uri_hash\nhash_on = query:user\n",
        Some(3),
        &["hash_on: is set (query:user)", "balance = uri_hash"],
    );
    assert_rejected(
        "targets = 127.0.0.1:9001\nbalance = hash\nhash_on = header:X Tenant\n",
        Some(3),
        &["hash_on", "not a header field name"],
    );
}

/// Asserts `check` fails with exit code 2 and a message located at `line`
/// of the file that mentions every one of `words`.
fn assert_rejected(text: &str, line: Option<usize>, words: &[&str]) {
    let (code, stdout, stderr) = check(text);
    assert_eq!(code, Some(2), "stdout: {stdout}\nstderr: {stderr}");
    let place = match line {
        Some(n) => format!("proxy.conf:{n}: "),
        None => "proxy.conf".to_string(),
    };
    assert!(stderr.contains(&place), "no {place:?} in {stderr:?}");
    for word in words {
        assert!(stderr.contains(word), "no {word:?} in {stderr:?}");
    }
}

#[test]
fn check_rejects_an_unknown_key_with_a_suggestion() {
    assert_rejected(
        "port = 9000\ntagrets = 127.0.0.1:9001\n",
        Some(2),
        &["tagrets", "did you mean", "targets"],
    );
}

#[test]
fn check_prints_a_log_format_template_and_a_line_it_writes() {
    let (code, stdout, stderr) = check(
        "targets = 127.0.0.1:9001\nlog_format = $remote_addr [$time_local] \"$request\" \
         $status rt=$request_time \"$http_x_trace\"\n",
    );
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert!(
        stdout.contains(
            "\n# log_format template: $remote_addr [$time_local] \"$request\" $status \
             rt=$request_time \"$http_x_trace\"\n"
        ),
        "{stdout}"
    );
    let example = stdout
        .lines()
        .find_map(|l| l.strip_prefix("# a line looks like:"))
        .expect("no example line");
    let example = example.trim_start();
    assert!(example.starts_with("203.0.113.7 ["), "{example}");
    assert!(example.contains("] \"GET /"), "{example}");
    assert!(example.ends_with(" 200 rt=0.012 \"-\""), "{example}");
}

#[test]
fn check_rejects_an_unknown_log_variable_with_a_suggestion() {
    assert_rejected(
        "targets = 127.0.0.1:9001\nlog_format = $remote_addr $stauts\n",
        Some(2),
        &[
            "log_format",
            "unknown variable `$stauts`",
            "did you mean `$status`",
        ],
    );
}

#[test]
fn check_rejects_a_bad_value() {
    assert_rejected(
        "targets = 127.0.0.1:9001\n\nport = eighty\n",
        Some(3),
        &["port", "eighty"],
    );
    assert_rejected(
        "targets = 127.0.0.1:9001\nconnection_timeout = 5 fortnights\n",
        Some(2),
        &["connection_timeout"],
    );
    assert_rejected(
        "targets = 127.0.0.1:9001\nport = 70000\n",
        Some(2),
        &["port"],
    );
}

#[test]
fn check_prints_a_unix_target_and_refuses_a_bad_one_at_its_line() {
    // No socket need be there: a backend may start after the proxy.
    let (code, stdout, stderr) =
        check("port = 9000\ntargets = unix:/run/app.sock max_conns=4, 127.0.0.1:9001\n");
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert!(
        stdout
            .contains("# target unix:/run/app.sock -> unix:/run/app.sock (weight 1, max_conns 4)"),
        "{stdout}"
    );
    assert_rejected(
        "port = 9000\ntargets = 127.0.0.1:9001, unix:\n",
        Some(2),
        &["targets", "unix:", "no path"],
    );
    let long = format!("/{}", "s".repeat(200));
    assert_rejected(
        &format!("# a socket too deep\ntargets = unix:{long}\n"),
        Some(2),
        &["targets", "bytes", "at most"],
    );
}

#[test]
fn check_rejects_a_duplicate_key() {
    assert_rejected(
        "targets = 127.0.0.1:9001\nport = 1\n# again\nport = 2\n",
        Some(4),
        &["duplicate", "port"],
    );
}

/// `include` lines read more files from the directory of the file that
/// names them; `check` says which, in order, and each key's own line.
#[test]
fn check_reads_included_files_and_names_each_key_s_file_and_line() {
    let dir = conf("port = 9000\ninclude = conf.d/*.conf\ninclude = secret.conf\n");
    let sites = dir.path().join("conf.d");
    std::fs::create_dir(&sites).unwrap();
    std::fs::write(sites.join("b-api.conf"), "route./api = api\n").unwrap();
    std::fs::write(
        sites.join("a-pools.conf"),
        "targets = 127.0.0.1:9001\npool.api = 127.0.0.1:9002\n",
    )
    .unwrap();
    // Neither a hidden file nor a directory is a configuration file.
    std::fs::write(sites.join(".a-pools.conf.swp"), "nonsense\n").unwrap();
    std::fs::create_dir(sites.join("old.conf")).unwrap();
    std::fs::write(
        dir.path().join("secret.conf"),
        "secure_link_secret = s3cret\n",
    )
    .unwrap();
    let (code, stdout, stderr) = check_in(dir.path());
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "# included, in order: conf.d/a-pools.conf, conf.d/b-api.conf, secret.conf\n"
        ),
        "{stdout}"
    );
    let line_of = |key: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_default()
    };
    assert!(
        line_of("targets = ").ends_with("# conf.d/a-pools.conf:1"),
        "{stdout}"
    );
    assert!(
        line_of("pool.api = ").ends_with("# conf.d/a-pools.conf:2"),
        "{stdout}"
    );
    assert!(
        line_of("route./api = ").ends_with("# conf.d/b-api.conf:1"),
        "{stdout}"
    );
    assert!(
        line_of("secure_link_secret = (secret)").ends_with("# secret.conf:1"),
        "{stdout}"
    );
    assert!(!stdout.contains("s3cret"), "{stdout}");

    // A mistake in an included file is reported at its own line.
    std::fs::write(
        sites.join("b-api.conf"),
        "route./api = api\nroute./api = api\n",
    )
    .unwrap();
    let (code, _, stderr) = check_in(dir.path());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "conf.d/b-api.conf:2: route./api: a second route for /api (first set on line 1)"
        ),
        "{stderr}"
    );
    // A file named without a wildcard must be there.
    std::fs::remove_file(dir.path().join("secret.conf")).unwrap();
    let (code, _, stderr) = check_in(dir.path());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("proxy.conf:3: include secret.conf: cannot read secret.conf"),
        "{stderr}"
    );
}

/// `{$NAME}` in a value: read from the environment the process was
/// started with, shown expanded by `check`, a secret still hidden.
#[test]
fn check_expands_environment_variables_in_values_and_hides_a_secret_s() {
    let dir = conf(
        "port = 9000\ntargets = {$APP_HOST}:9001, {$APP_HOST}:{$APP_PORT_2:9002}\n\
         secure_link_secret = {$LINK_SECRET}\n",
    );
    let run = |env: &[(&str, &str)]| {
        let mut command = command(dir.path(), &["check", "--config", "proxy.conf"]);
        for name in ["APP_HOST", "APP_PORT_2", "LINK_SECRET"] {
            command.env_remove(name);
        }
        let out = command.envs(env.iter().copied()).output().unwrap();
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    let env = [("APP_HOST", "127.0.0.1"), ("LINK_SECRET", "from-the-env")];
    let (code, stdout, stderr) = run(&env);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let line_of = |key: &str| {
        (stdout.lines())
            .find(|l| l.starts_with(key))
            .unwrap_or_default()
    };
    let targets = line_of("targets = ");
    assert!(
        targets.starts_with("targets = 127.0.0.1:9001, 127.0.0.1:9002 "),
        "{stdout}"
    );
    assert!(targets.ends_with("# proxy.conf:2"), "{stdout}");
    assert!(
        line_of("secure_link_secret = (secret)").ends_with("# proxy.conf:3"),
        "{stdout}"
    );
    assert!(!stdout.contains("from-the-env"), "{stdout}");

    let (code, _, stderr) = run(&env[1..]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("proxy.conf:2: environment variable APP_HOST is not set"),
        "{stderr}"
    );
}

/// A list of addresses read from a file: `check` says how many blocks it
/// holds in all, and a bad line is refused at its file's line.
#[test]
fn check_counts_the_blocks_a_list_file_holds_and_names_a_bad_line() {
    let dir = conf(
        "targets = 127.0.0.1:9001\ndeny_from = 203.0.113.9, file:drop.txt\n\
         pool.api = 127.0.0.1:9002\npool.api.allow_from = file:drop.txt\n",
    );
    let list = dir.path().join("drop.txt");
    std::fs::write(&list, "; DROP\n192.0.2.0/24 ; SBL1\n2001:db8::/32\n").unwrap();
    let (code, stdout, stderr) = check_in(dir.path());
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("\n# deny_from: 3 blocks in all\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\n# pool.api.allow_from: 2 blocks in all\n"),
        "{stdout}"
    );
    std::fs::write(&list, "192.0.2.0/24\nexample.com\n").unwrap();
    let (code, _, stderr) = check_in(dir.path());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("proxy.conf:2: deny_from: drop.txt:2: `example.com` is not an address"),
        "{stderr}"
    );
}

#[test]
fn check_rejects_a_config_without_targets() {
    assert_rejected("port = 9000\n", None, &["targets"]);
    assert_rejected("port = 9000\ntargets =\n", None, &["targets"]);
}

#[test]
fn a_file_too_large_to_be_a_configuration_is_refused() {
    // /dev/zero, or a log file given by mistake, is not read to the end.
    let mut text = String::from("targets = 127.0.0.1:9001\n");
    text.push_str(&"# padding\n".repeat(1_700_000));
    let (code, _, stderr) = check(&text);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("not a configuration file"), "{stderr}");
}

#[test]
fn thousands_of_routes_and_a_country_s_blocks_are_taken_and_more_routes_refused() {
    // A map of hosts to pools, as HAProxy's map files hold, and a block
    // list past the old 1 MiB cap on the file.
    let mut text = String::from("targets = 127.0.0.1:9001\npool.api = 127.0.0.1:9002\n");
    for i in 0..10_000 {
        text.push_str(&format!("route.shop{i}.example.com/api/ = api\n"));
    }
    let blocks: Vec<String> = (0..70_000u32)
        .map(|i| format!("{}.{}.{}.0/24", 1 + i / 65_536, i / 256 % 256, i % 256))
        .collect();
    text.push_str(&format!("deny_from = {}\n", blocks.join(", ")));
    assert!(text.len() > 1 << 20);
    let (code, stdout, stderr) = check(&text);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("shop9999.example.com/api/"), "{stdout}");
    text.push_str("route.one-too-many.example.com/ = api\n");
    let line = text.lines().count();
    assert_rejected(&text, Some(line), &["more than 10000 routes"]);
}

#[test]
fn check_rejects_a_line_without_equals() {
    assert_rejected("targets = 127.0.0.1:9001\nport 9000\n", Some(2), &[]);
}

/// The `port = ...` line of `check`'s output.
fn port_line(stdout: &str) -> String {
    stdout
        .lines()
        .find(|l| l.starts_with("port ="))
        .unwrap_or_else(|| panic!("no port line in {stdout}"))
        .to_string()
}

#[test]
fn flag_beats_environment_beats_file() {
    let dir = conf(GOOD);
    let args = ["check", "--config", "proxy.conf"];

    let out = inverso(dir.path(), &args, &[]);
    assert_eq!(out.status.code(), Some(0));
    let line = port_line(&String::from_utf8_lossy(&out.stdout));
    assert!(line.starts_with("port = 9000 "), "{line}");

    let out = inverso(dir.path(), &args, &[("INVERSO_PORT", "9100")]);
    assert_eq!(out.status.code(), Some(0));
    let line = port_line(&String::from_utf8_lossy(&out.stdout));
    assert!(line.starts_with("port = 9100 "), "{line}");
    assert!(line.contains("INVERSO_PORT"), "{line}");

    let mut with_flag = args.to_vec();
    with_flag.extend(["--port", "9200"]);
    let out = inverso(dir.path(), &with_flag, &[("INVERSO_PORT", "9100")]);
    assert_eq!(out.status.code(), Some(0));
    let line = port_line(&String::from_utf8_lossy(&out.stdout));
    assert!(line.starts_with("port = 9200 "), "{line}");
    assert!(line.contains("--port"), "{line}");
}

#[test]
fn a_bad_environment_value_is_reported_with_its_variable() {
    let dir = conf(GOOD);
    let out = inverso(
        dir.path(),
        &["check", "--config", "proxy.conf"],
        &[("INVERSO_PORT", "nope")],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("INVERSO_PORT"), "{stderr}");
}

#[test]
fn a_port_flag_is_read_as_the_file_and_environment_read_the_key() {
    // `+81` and `70000` are refused wherever they are written, with the
    // flag named.
    let dir = conf(GOOD);
    for bad in ["+81", "70000", "nope"] {
        let args = ["check", "--config", "proxy.conf", "--port", bad];
        let out = inverso(dir.path(), &args, &[]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("flag --port"), "{bad}: {stderr}");
        let out = inverso(dir.path(), &args[..3], &[("INVERSO_PORT", bad)]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
    }
}

#[test]
fn environment_values_that_are_not_utf8_are_ours_to_refuse_only_when_ours() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let dir = conf(GOOD);
    let run = |name: &str| {
        Command::new(env!("CARGO_BIN_EXE_inverso"))
            .args(["check", "--config", "proxy.conf"])
            .current_dir(dir.path())
            .env("RUST_LOG", "error")
            .env(name, OsStr::from_bytes(b"\xff\xfe"))
            .output()
            .unwrap()
    };
    // Someone else's variable: none of our business (it used to panic).
    assert_eq!(run("SOMEONE_ELSES").status.code(), Some(0));
    let out = run("INVERSO_PORT");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("INVERSO_PORT: the value is not UTF-8"),
        "{stderr}"
    );
}

#[test]
fn check_without_a_file_does_not_claim_to_have_read_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = inverso(dir.path(), &["check", "--targets", "127.0.0.1:9001"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("# configuration: OK\n"), "{stdout}");
    let (_, stdout, _) = check(GOOD);
    assert!(stdout.starts_with("# proxy.conf: OK\n"), "{stdout}");
}

#[test]
fn check_creates_the_snapshot_directory_or_says_why_it_cannot() {
    let dir = conf("targets = 127.0.0.1:9001\npath_to_persistence = state/cache/snap.bin\n");
    let out = inverso(dir.path(), &["check", "--config", "proxy.conf"], &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(dir.path().join("state/cache").is_dir());
    // Under a regular file, no directory can be made.
    let dir = conf("targets = 127.0.0.1:9001\npath_to_persistence = proxy.conf/snap.bin\n");
    let out = inverso(dir.path(), &["check", "--config", "proxy.conf"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("path_to_persistence"), "{stderr}");
}

#[test]
fn a_missing_explicit_config_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    // However the option is spelled.
    for args in [
        &["check", "--config", "absent.conf"][..],
        &["check", "--config=absent.conf"],
        &["check", "-c", "absent.conf"],
        &["check", "-cabsent.conf"],
        &["check", "-c=absent.conf"],
    ] {
        let out = inverso(dir.path(), args, &[("INVERSO_TARGETS", "127.0.0.1:9001")]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("absent.conf"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_fifo_as_config_or_log_file_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    // Reading the configuration from it would wait for a writer forever.
    let out = inverso(dir.path(), &["check", "--config", "fifo"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a regular file"), "{stderr}");
    // Opening it as the log would wait for a reader forever.
    let out = inverso(
        dir.path(),
        &[
            "check",
            "--targets",
            "127.0.0.1:9001",
            "--set",
            "path_to_log=fifo",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("a FIFO with no reader"), "{stderr}");
}

#[test]
fn targets_from_the_command_line_alone_are_enough() {
    let dir = tempfile::tempdir().unwrap();
    let out = inverso(
        dir.path(),
        &["check", "--targets", "127.0.0.1:9001", "--set", "ttl=5m"],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ttl = stdout.lines().find(|l| l.starts_with("ttl =")).unwrap();
    assert!(ttl.starts_with("ttl = 5m "), "{ttl}");
}

#[test]
fn an_unknown_set_key_is_a_usage_error() {
    let dir = conf(GOOD);
    let out = inverso(
        dir.path(),
        &["check", "--config", "proxy.conf", "--set", "cache_sise=1"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("did you mean"), "{stderr}");
}

#[test]
fn check_lists_the_error_pages_it_found() {
    let dir = conf("targets = 127.0.0.1:9001\nerror_pages = errors\n");
    std::fs::create_dir(dir.path().join("errors")).unwrap();
    std::fs::write(dir.path().join("errors/502.html"), "<h1>502</h1>").unwrap();
    std::fs::write(dir.path().join("errors/503.html"), "<h1>busy</h1>").unwrap();
    let out = inverso(dir.path(), &["check", "--config", "proxy.conf"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let pages: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("error page"))
        .collect();
    assert_eq!(pages.len(), 2, "{stdout}");
    assert!(
        pages[0].contains("502") && pages[0].contains("errors/502.html"),
        "{stdout}"
    );
    assert!(pages[0].contains("12 bytes"), "{stdout}");
    assert!(
        pages[1].contains("503") && pages[1].contains("errors/503.html"),
        "{stdout}"
    );
}

#[test]
fn check_rejects_an_error_pages_directory_it_cannot_use() {
    // Missing.
    let dir = conf("targets = 127.0.0.1:9001\nerror_pages = errors\n");
    let out = inverso(dir.path(), &["check", "--config", "proxy.conf"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("proxy.conf:2: error_pages: errors: "),
        "{stderr}"
    );
    // A page that cannot be read (a directory where the file should be:
    // permissions would not stop a test run as root).
    std::fs::create_dir_all(dir.path().join("errors/504.html")).unwrap();
    let out = inverso(dir.path(), &["check", "--config", "proxy.conf"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("errors/504.html: cannot read"), "{stderr}");
    // A page too large.
    std::fs::remove_dir(dir.path().join("errors/504.html")).unwrap();
    std::fs::write(dir.path().join("errors/502.html"), vec![b'x'; 65537]).unwrap();
    let out = inverso(dir.path(), &["check", "--config", "proxy.conf"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("errors/502.html: larger than 65536 bytes"),
        "{stderr}"
    );
}

#[test]
fn check_prints_each_response_header_key_with_its_line() {
    let (code, stdout, stderr) = check(
        "targets = 127.0.0.1:9001\n\
         response_header.Strict-Transport-Security = max-age=63072000; includeSubDomains\n\
         # hide what the app leaks\n\
         response_header.X-Powered-By =\n",
    );
    assert_eq!(code, Some(0), "stderr: {stderr}");
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("response_header."))
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with(
            "response_header.Strict-Transport-Security = max-age=63072000; includeSubDomains "
        ),
        "{stdout}"
    );
    assert!(
        lines[0].ends_with("# proxy.conf:2 (set on every response)"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("response_header.X-Powered-By = "),
        "{stdout}"
    );
    assert!(
        lines[1].ends_with("# proxy.conf:4 (removed from every response)"),
        "{stdout}"
    );
}

#[test]
fn check_prints_request_header_keys_among_response_header_ones_in_file_order() {
    let (code, stdout, stderr) = check(
        "targets = 127.0.0.1:9001\n\
         request_header.Host = api.internal\n\
         response_header.X-Powered-By =\n\
         request_header.Accept-Encoding =\n",
    );
    assert_eq!(code, Some(0), "stderr: {stderr}");
    let lines: Vec<&str> = stdout.lines().filter(|l| l.contains("_header.")).collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    let expected = [
        (
            "request_header.Host = api.internal ",
            "# proxy.conf:2 (set on every request sent to a backend)",
        ),
        (
            "response_header.X-Powered-By = ",
            "# proxy.conf:3 (removed from every response)",
        ),
        (
            "request_header.Accept-Encoding = ",
            "# proxy.conf:4 (removed from every request sent to a backend)",
        ),
    ];
    for (line, (starts, ends)) in lines.iter().zip(expected) {
        assert!(line.starts_with(starts) && line.ends_with(ends), "{stdout}");
    }
}

#[test]
fn check_says_which_requests_a_conditional_field_key_is_for() {
    let (code, stdout, stderr) = check(
        "targets = 127.0.0.1:9001\n\
         response_header.X-Frame-Options if path_beg /embed/ =\n\
         response_header.X-Frame-Options = DENY\n",
    );
    assert_eq!(code, Some(0), "stderr: {stderr}");
    let lines: Vec<&str> = stdout.lines().filter(|l| l.contains("_header.")).collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with("response_header.X-Frame-Options if path_beg /embed/ = ")
            && lines[0].ends_with(
                "# proxy.conf:2 (removed from every response when its condition is met)"
            ),
        "{stdout}"
    );
    assert!(
        lines[1].ends_with("# proxy.conf:3 (set on every response)"),
        "{stdout}"
    );
}

#[test]
fn check_rejects_a_request_header_key_it_cannot_use() {
    assert_rejected(
        "targets = 127.0.0.1:9001\nrequest_header.Host =\n",
        Some(2),
        &["request_header.Host", "Host may be set but not removed"],
    );
    assert_rejected(
        "targets = 127.0.0.1:9001\nrequest_header.X-Forwarded-For = 1.2.3.4\n",
        Some(2),
        &["request_header.X-Forwarded-For", "neither set nor removed"],
    );
    assert_rejected(
        "targets = 127.0.0.1:9001\nrequst_header.Host = a\n",
        Some(2),
        &["did you mean `request_header.Host`"],
    );
}

#[test]
fn check_rejects_a_response_header_key_it_cannot_use() {
    assert_rejected(
        "targets = 127.0.0.1:9001\nresponse_header.Content-Length = 5\n",
        Some(2),
        &["response_header.Content-Length", "frames the message"],
    );
    assert_rejected(
        "targets = 127.0.0.1:9001\nresponse_headers.X-Frame-Options = DENY\n",
        Some(2),
        &["did you mean `response_header.X-Frame-Options`"],
    );
    // File only: --set cannot give one.
    let dir = conf(GOOD);
    let set = "response_header.X-Frame-Options=DENY";
    let out = inverso(
        dir.path(),
        &["check", "--config", "proxy.conf", "--set", set],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("configuration file only"), "{stderr}");
}

#[test]
fn check_prints_cache_ignore_headers_and_warns_when_no_lifetime_is_set() {
    let recipe = "targets = 127.0.0.1:9001\npath_to_persistence =\ncache_valid = 200 1s\n\
                  cache_ignore_headers = Cache-Control, Expires, Set-Cookie\n";
    let dir = conf(recipe);
    let args = ["check", "--config", "proxy.conf"];
    let out = inverso(dir.path(), &args, &[("RUST_LOG", "warn")]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("cache_ignore_headers ="))
        .expect("no cache_ignore_headers line");
    assert!(
        line.starts_with("cache_ignore_headers = Cache-Control, Expires, Set-Cookie "),
        "{line}"
    );
    assert!(line.contains("proxy.conf:4"), "{line}");
    assert!(!stderr.contains("cache_ignore_headers"), "{stderr}");

    // Without cache_valid: only the fields for this cache give lifetimes.
    let dir = conf(&recipe.replace("cache_valid = 200 1s\n", ""));
    let out = inverso(dir.path(), &args, &[("RUST_LOG", "warn")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    for words in [
        "proxy.conf:3: cache_ignore_headers: Cache-Control is not read",
        "X-Accel-Expires, Surrogate-Control",
        "cache_valid = 200 1s",
    ] {
        assert!(stderr.contains(words), "no {words:?} in {stderr}");
    }
}

#[test]
fn check_rejects_cache_ignore_headers_it_cannot_use() {
    assert_rejected(
        "targets = 127.0.0.1:9001\ncache_valid = 200 1s\ncache_ignore_headers = Cache-Control, Pragma\n",
        Some(3),
        &["cache_ignore_headers", "`Pragma` is not a field the cache reads"],
    );
    assert_rejected(
        "targets = 127.0.0.1:9001\nx_accel_expires = false\nsurrogate_id =\n\
         cache_ignore_headers = Cache-Control, Expires\n",
        Some(4),
        &["nothing would ever be stored"],
    );
}

#[test]
fn check_shows_each_pool_and_the_routes_in_the_order_they_are_tried() {
    let (code, stdout, stderr) = check(
        "targets = 127.0.0.1:9001\n\
         pool.api = 127.0.0.1:9002 weight=2, 127.0.0.1:9003\n\
         pool.api.balance = least_conn\n\
         route./api/ = api rewrite=/\n\
         route.Shop.Example/api/ = default\n\
         route./upload/ = default max_body_size=102400k backend_timeout=600s cache=no\n",
    );
    assert_eq!(code, Some(0), "stderr: {stderr}");
    for line in [
        "pool.api.balance = least_conn",
        "# pool api: balance least_conn",
        "# target 127.0.0.1:9002 -> 127.0.0.1:9002 (weight 2)",
        "# route shop.example/api/ -> default",
        "# route /api/ -> api, its prefix rewritten to /",
        "# route /upload/ -> default, max_body_size=100MiB backend_timeout=10m cache=off in \
         place of its pool's",
    ] {
        assert!(stdout.contains(line), "no {line:?} in {stdout}");
    }
    let key = stdout
        .lines()
        .find(|l| l.starts_with("route./api/ ="))
        .unwrap();
    assert!(key.contains("proxy.conf:4"), "{key}");
    // Host first, whatever the order written.
    let host = stdout.find("# route shop.example").unwrap();
    assert!(host < stdout.find("# route /api/").unwrap(), "{stdout}");
}

#[test]
fn check_shows_each_rewrite_rule_with_its_line_in_the_order_they_are_tried() {
    let (code, stdout, stderr) = check(
        "targets = 127.0.0.1:9001\n\
         rewrite.z-blog = ^/blog/(\\d+)$ /articles?id=$1 permanent\n\
         rewrite.a-v1 = ^/v1/(.*)$ /api/$1\n",
    );
    assert_eq!(code, Some(0), "stderr: {stderr}");
    for line in [
        "rewrite.z-blog = ^/blog/(\\d+)$ /articles?id=$1 permanent # proxy.conf:2",
        "# rewrite z-blog (proxy.conf:2): ^/blog/(\\d+)$ -> /articles?id=$1 permanent: \
         redirect 301, the client's query after its own",
        "# rewrite a-v1 (proxy.conf:3): ^/v1/(.*)$ -> /api/$1: sent on with the new path, \
         the client's query kept",
    ] {
        assert!(stdout.contains(line), "no {line:?} in {stdout}");
    }
    // In the file's order, not by name.
    let first = stdout.find("# rewrite z-blog").unwrap();
    assert!(first < stdout.find("# rewrite a-v1").unwrap(), "{stdout}");
    assert_rejected(
        "targets = 127.0.0.1:9001\nrewrite.x = ^/(a $1\n",
        Some(2),
        &["rewrite.x: the pattern `^/(a` does not compile: unclosed group"],
    );
}

#[test]
fn check_shows_what_a_route_answers_itself() {
    let (code, stdout, stderr) = check(
        "targets = 127.0.0.1:9001\n\
         route./old/ = redirect 301 /new/\n\
         route./healthz = return 200 ok\n\
         route./status.json = return 200 type=application/json {\"ok\": true}\n\
         route./ip = return 200 $remote_addr (costs $$5)\n",
    );
    assert_eq!(code, Some(0), "stderr: {stderr}");
    for line in [
        "# route /old/ -> redirect 301 to /new/",
        "# route /healthz -> return 200 \"ok\"",
        // As written: not rendered, its `$$` still two.
        "# route /ip -> return 200 \"$remote_addr (costs $$5)\"",
        "# route /status.json -> return 200 \"{\\\"ok\\\": true}\" (application/json)",
    ] {
        assert!(stdout.lines().any(|l| l == line), "no {line:?} in {stdout}");
    }
}

#[test]
fn check_shows_each_deny_rule_with_its_line_in_the_order_they_are_tried() {
    let (code, stdout, stderr) = check(
        "targets = 127.0.0.1:9001\n\
         deny.z-bots = if header_reg User-Agent (?i)bot\n\
         deny.a-probes = 444 if path_sub /.git,/.env\n",
    );
    assert_eq!(code, Some(0), "stderr: {stderr}");
    let key = "deny.z-bots = if header_reg User-Agent (?i)bot";
    let key_line = stdout.lines().find(|l| l.starts_with(key));
    assert!(
        key_line.is_some_and(|l| l.ends_with(" # proxy.conf:2")),
        "{stdout}"
    );
    for line in [
        "# deny z-bots (proxy.conf:2): 403 if header_reg user-agent (?i)bot",
        "# deny a-probes (proxy.conf:3): 444 if path_sub /.env,/.git",
    ] {
        assert!(stdout.contains(line), "no {line:?} in {stdout}");
    }
    let first = stdout.find("# deny z-bots").unwrap();
    assert!(first < stdout.find("# deny a-probes").unwrap(), "{stdout}");
}

#[test]
fn check_shows_each_pool_s_health_check_and_refuses_both_kinds_in_one() {
    let (code, stdout, stderr) = check(
        "targets = 127.0.0.1:9001\n\
         health_check_path = /up\n\
         pool.api = 127.0.0.1:9002\n\
         pool.api.health_check_tcp = true\n\
         pool.web = 127.0.0.1:9003\n\
         pool.redis = 127.0.0.1:9004\npool.redis.health_check_tcp = true\n\
         pool.redis.health_check_send = PING\\r\\n\npool.redis.health_check_expect = +PONG\n\
         pool.dns = 127.0.0.1:9005\npool.dns.health_check_udp = true\n\
         pool.dns.health_check_send = \\x00\\x01q\n\
         pool.mail = 127.0.0.1:9006\npool.mail.health_check_tcp = true\n\
         pool.mail.health_check_conversation = expect 220 | send QUIT\\r\\n\n\
         route./api/ = api\n\
         route./web/ = web\nroute./r/ = redis\nroute./d/ = dns\nroute./m/ = mail\n",
    );
    assert_eq!(code, Some(0), "stderr: {stderr}");
    for line in [
        "pool.api.health_check_tcp = true",
        "# pool api: balance round_robin, health_check_tcp\n",
        "# pool web: balance round_robin, health_check_path /up\n",
        "# pool redis: balance round_robin, health_check_tcp sending \"PING\\r\\n\" expecting \
         \"+PONG\"\n",
        "# pool dns: balance round_robin, health_check_udp sending \"\\x00\\x01q\"\n",
        "# pool mail: balance round_robin, health_check_tcp conversing: expect \"220\", send \
         \"QUIT\\r\\n\"\n",
    ] {
        assert!(stdout.contains(line), "no {line:?} in {stdout}");
    }
    assert_rejected(
        "targets = 127.0.0.1:9001\nhealth_check_tcp = true\nhealth_check_path = /up\n",
        Some(2),
        &["health_check_tcp: is true, but health_check_path is set too (/up)"],
    );
}

#[test]
fn check_refuses_a_route_to_a_pool_that_is_not_there() {
    assert_rejected(
        "targets = 127.0.0.1:9001\npool.api = 127.0.0.1:9002\nroute./v1/ = apis\n",
        Some(3),
        &["no pool is named `apis`", "did you mean `api`?"],
    );
}

/// `inverso demo --port 0`, until the banner names the address it got.
struct Demo {
    child: std::process::Child,
    addr: String,
    /// Its HTTPS address, when asked for with [`Demo::start_with_tls`].
    tls_addr: Option<String>,
}

impl Demo {
    fn start() -> Demo {
        Demo::launch(false, &[])
    }

    fn start_with_tls() -> Demo {
        Demo::launch(true, &[])
    }

    /// Waits for the banner's plain address, and with `tls` for its
    /// HTTPS one too; `env`, settings as `INVERSO_<KEY>`.
    fn launch(tls: bool, env: &[(&str, &str)]) -> Demo {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_inverso"))
            .args(["demo", "--port", "0"])
            .envs(env.iter().copied())
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(rest) = line.split("listens on http://").nth(1) {
                    let addr = rest.split(',').next().unwrap_or_default().to_string();
                    let _ = tx.send(addr);
                }
                if let Some(rest) = line.split("curl -ik https://").nth(1) {
                    let addr = rest.split('/').next().unwrap_or_default().to_string();
                    let _ = tx.send(addr);
                }
            }
        });
        let mut said = || {
            rx.recv_timeout(std::time::Duration::from_secs(10))
                .unwrap_or_else(|_| {
                    let _ = child.kill();
                    panic!("the demo did not say where it listens");
                })
        };
        let addr = said();
        let tls_addr = tls.then(&mut said);
        Demo {
            child,
            addr,
            tls_addr,
        }
    }

    /// `GET path` on a connection of its own; the whole answer.
    fn get(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&self.addr).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }
}

impl Demo {
    /// The directory it wrote its site and certificate in.
    fn site(&self) -> std::path::PathBuf {
        let prefix = format!("inverso-demo-{}-", self.child.id());
        let made = std::fs::read_dir(std::env::temp_dir()).unwrap().flatten();
        let mine = made.map(|e| e.path()).find(|p| {
            (p.file_name().and_then(|n| n.to_str())).is_some_and(|n| n.starts_with(&prefix))
        });
        mine.expect("the demo's directory")
    }

    /// Ctrl-C, once.
    fn ctrl_c(&self) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: a signal to the child this test started, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGINT) };
    }

    /// Stops it as Ctrl-C does, so that it removes the directory it
    /// wrote; killed when it has not stopped within 10 s. Whether it
    /// stopped by itself.
    fn interrupt(&mut self) -> bool {
        self.ctrl_c();
        for _ in 0..200 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.interrupt();
        }
    }
}

#[test]
fn the_demo_routes_api_to_a_third_origin_with_its_prefix_rewritten() {
    let demo = Demo::start();
    let routed = demo.get("/api/echo?x=1");
    assert!(routed.starts_with("HTTP/1.1 200"), "{routed}");
    assert!(
        routed.contains("api-1 saw: GET /echo?x=1 HTTP/1.1"),
        "{routed}"
    );
    let targets = demo.get("/");
    assert!(targets.contains("Hello from origin-"), "{targets}");
    let health = demo.get("/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("\r\n\r\nok"), "{health}");
}

#[test]
fn the_demo_serves_a_directory_it_removes_when_it_stops() {
    let mut demo = Demo::start();
    let page = demo.get("/files/");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("Served from a directory"), "{page}");
    let site = demo.site();
    assert!(site.join("www/index.html").is_file(), "{}", site.display());
    assert!(demo.interrupt(), "the demo did not stop on SIGINT");
    assert!(!site.exists(), "{} is left", site.display());
}

#[test]
fn a_second_ctrl_c_while_the_demo_drains_removes_its_directory_too() {
    use std::io::{Read, Write};
    let mut demo = Demo::launch(false, &[("INVERSO_SHUTDOWN_TIMEOUT", "1h")]);
    let site = demo.site();
    // An upload in flight holds the drain: its head read, its body not.
    let mut upload = std::net::TcpStream::connect(&demo.addr).unwrap();
    upload
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    upload
        .write_all(
            b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
    let mut interim = [0u8; 25];
    upload.read_exact(&mut interim).unwrap();
    assert!(interim.starts_with(b"HTTP/1.1 100 Continue"));
    demo.ctrl_c();
    // Draining once it no longer takes connections.
    let refused = || std::net::TcpStream::connect(&demo.addr).is_err();
    assert!((0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        refused()
    }));
    assert!(site.exists(), "removed while the upload goes on");
    demo.ctrl_c();
    let exited = (0..200).find_map(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        demo.child.try_wait().unwrap()
    });
    assert_eq!(exited.and_then(|s| s.code()), Some(1));
    assert!(!site.exists(), "{} is left", site.display());
}

#[test]
fn the_demo_takes_https_with_a_certificate_of_its_own() {
    use std::io::{Read, Write};
    let demo = Demo::start_with_tls();
    let tls_addr = demo
        .tls_addr
        .clone()
        .expect("the demo names its HTTPS port");
    let site = demo.site();
    // Trusted as the demo's own: the file it wrote, out of the files
    // route's reach.
    let pem = std::fs::read(site.join("demo-certificate.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let session = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(&tls_addr).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut stream = rustls::StreamOwned::new(session, tcp);
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    // A close without close_notify ends the read with an error, after the answer.
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nok"), "{answer}");
    // The key is not among the files served.
    let leak = demo.get("/files/../demo-certificate.pem");
    assert!(!leak.starts_with("HTTP/1.1 200"), "{leak}");
}

/// `check` (as a start and a reload) says when a certificate served, or
/// an authority clients' certificates are checked against, has expired,
/// and takes the configuration all the same: nginx serves one too, and a
/// renewal may be on its way.
#[test]
fn check_warns_of_a_certificate_that_has_expired() {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(1999, 1, 1);
    params.not_after = rcgen::date_time_ymd(2000, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    let dir = conf(
        "targets = 127.0.0.1:9001\ntls_port = 8443\ntls_certificates = old.pem\n\
         tls_verify_client = on\ntls_client_ca = old.pem\n",
    );
    let pem = format!("{}{}", cert.pem(), key.serialize_pem());
    std::fs::write(dir.path().join("old.pem"), pem).unwrap();
    let args = ["check", "--config", "proxy.conf"];
    let out = inverso(dir.path(), &args, &[("RUST_LOG", "warn")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("old.pem: the certificate expired at 2000-01-01"),
        "{stderr}"
    );
    assert!(
        stderr.contains("old.pem: an authority expired at 2000-01-01"),
        "{stderr}"
    );
}

/// `check` lists the certificate files a directory of `tls_certificates`
/// gave, in the order they are read: a site dropped there but not served
/// (a hidden or misnamed file) shows at once.
#[test]
fn check_lists_the_certificate_files_of_a_directory() {
    let dir = conf("targets = 127.0.0.1:9001\ntls_port = 8443\ntls_certificates = certs/\n");
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    for (file, name) in [
        ("b.pem", "b.test"),
        ("a.crt", "a.test"),
        (".c.pem", "c.test"),
    ] {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let pem = format!("{}{}", cert.pem(), key.serialize_pem());
        std::fs::write(certs.join(file), pem).unwrap();
    }
    let out = inverso(dir.path(), &["check", "--config", "proxy.conf"], &[]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains("# tls_certificates certs/: 2 certificate files: a.crt, b.pem\n"),
        "{stdout}"
    );
}

/// A stream that ends TLS is said as such, with what it offers in ALPN
/// and the hosts its handshakes name; it needs no `tls_port`. A `udp`
/// one may share a TCP one's port.
#[test]
fn check_says_a_stream_ends_tls_and_what_it_offers() {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let dir = conf(
        "targets = 127.0.0.1:9001\npool.b = 127.0.0.1:9002\ntls_certificates = site.pem\n\
         stream.grpc = default listen=127.0.0.1:8443 tls alpn=h2\n\
         stream.grpc.b.example = b\nstream.raw = b listen=127.0.0.1:9443 tls\n\
         stream.dns = b listen=127.0.0.1:8443 udp responses=1\n",
    );
    let pem = format!("{}{}", cert.pem(), key.serialize_pem());
    std::fs::write(dir.path().join("site.pem"), pem).unwrap();
    let out = inverso(dir.path(), &["check", "--config", "proxy.conf"], &[]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let said = stream_lines(&stdout, 4);
    assert_eq!(
        said,
        [
            "# stream grpc: TLS ended on 127.0.0.1:8443 (ALPN h2), to pool default",
            "#   a handshake naming b.example: to pool b",
            "# stream raw: TLS ended on 127.0.0.1:9443, to pool b",
            "# stream dns: UDP on 127.0.0.1:8443, to pool b",
        ],
        "{stdout}"
    );
}

#[test]
fn check_warns_of_a_sign_in_redirect_to_a_page_that_is_asked_too() {
    let recipe = "targets = 127.0.0.1:9001\npath_to_persistence =\npool.sso = 127.0.0.1:9002\n\
                  auth_request = sso /oauth2/auth\n\
                  auth_request_redirect = /oauth2/start?rd=$request_uri\n";
    let args = ["check", "--config", "proxy.conf"];
    let warning = "proxy.conf:5: auth_request_redirect: `/oauth2/start` is routed to targets";
    let dir = conf(recipe);
    let out = inverso(dir.path(), &args, &[("RUST_LOG", "warn")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    assert!(stderr.contains(warning), "{stderr}");
    assert!(stderr.contains("route./oauth2/start = sso"), "{stderr}");
    // Routed to the service, whose own requests are never asked: no loop.
    let dir = conf(&format!("{recipe}route./oauth2/ = sso\n"));
    let out = inverso(dir.path(), &args, &[("RUST_LOG", "warn")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    assert!(!stderr.contains("in a loop"), "{stderr}");
}

/// A proxy started as systemd starts a `Type=notify` service, from the
/// configuration `text`, and the socket it tells systemd on.
fn under_systemd(text: &str) -> (tempfile::TempDir, std::os::unix::net::UnixDatagram, Reaped) {
    let dir = conf(text);
    let socket = dir.path().join("notify");
    let systemd = std::os::unix::net::UnixDatagram::bind(&socket).unwrap();
    systemd
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let child = Reaped(
        Command::new(env!("CARGO_BIN_EXE_inverso"))
            .args(["--config", "proxy.conf"])
            .current_dir(dir.path())
            .env("RUST_LOG", "off")
            .env("NOTIFY_SOCKET", &socket)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    (dir, systemd, child)
}

fn heard(systemd: &std::os::unix::net::UnixDatagram) -> String {
    let mut buf = [0u8; 1024];
    let n = systemd.recv(&mut buf).expect("no notification came");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Under systemd with `Type=notify`: ready once listening, each reload
/// said as it begins and ends (refused or not), and the shutdown.
#[test]
fn systemd_is_told_when_the_proxy_is_ready_reloads_and_stops() {
    let (dir, systemd, mut child) = under_systemd(
        "port = 0\nbind = 127.0.0.1\ntargets = 127.0.0.1:9001\npath_to_persistence =\n",
    );
    let heard = || heard(&systemd);
    let pid = libc::pid_t::try_from(child.0.id()).unwrap();
    // SAFETY: signals to the child this test started, not yet reaped.
    let signal = |sig| unsafe { libc::kill(pid, sig) };

    let ready = heard();
    assert!(
        ready.starts_with("READY=1\nSTATUS=serving on 127.0.0.1:"),
        "{ready}"
    );
    signal(libc::SIGHUP);
    let reloading = heard();
    let (first, usec) = reloading.split_once('\n').unwrap();
    assert_eq!(first, "RELOADING=1");
    let usec = usec.strip_prefix("MONOTONIC_USEC=").unwrap();
    assert!(usec.parse::<u64>().is_ok_and(|u| u > 0), "{reloading}");
    assert_eq!(heard(), "READY=1\nSTATUS=configuration reloaded");

    std::fs::write(
        dir.path().join("proxy.conf"),
        "targets = 127.0.0.1:9001\nnope = 1\n",
    )
    .unwrap();
    signal(libc::SIGHUP);
    assert!(heard().starts_with("RELOADING=1\n"));
    let refused = heard();
    assert!(
        refused.starts_with("READY=1\nSTATUS=reload refused: "),
        "{refused}"
    );
    assert!(refused.contains("nope"), "{refused}");

    signal(libc::SIGTERM);
    assert_eq!(heard(), "STOPPING=1\nSTATUS=shutting down");
    assert!(child.0.wait().unwrap().success());
}

/// A reload reads the included files again: one added since is read,
/// and a mistake in it refuses the reload at its own line.
#[test]
fn a_reload_reads_the_included_files_again() {
    let (dir, systemd, mut child) = under_systemd(
        "port = 0\nbind = 127.0.0.1\ntargets = 127.0.0.1:9001\npath_to_persistence =\n\
         include = conf.d/*.conf\n",
    );
    let heard = || heard(&systemd);
    let pid = libc::pid_t::try_from(child.0.id()).unwrap();
    // SAFETY: signals to the child this test started, not yet reaped.
    let signal = |sig| unsafe { libc::kill(pid, sig) };
    assert!(heard().starts_with("READY=1\n"));

    let sites = dir.path().join("conf.d");
    std::fs::create_dir(&sites).unwrap();
    std::fs::write(
        sites.join("site.conf"),
        "pool.api = 127.0.0.1:9002\nnope = 1\n",
    )
    .unwrap();
    signal(libc::SIGHUP);
    assert!(heard().starts_with("RELOADING=1\n"));
    let refused = heard();
    assert!(
        refused
            .starts_with("READY=1\nSTATUS=reload refused: conf.d/site.conf:2: unknown key `nope`"),
        "{refused}"
    );
    std::fs::write(sites.join("site.conf"), "pool.api = 127.0.0.1:9002\n").unwrap();
    signal(libc::SIGHUP);
    assert!(heard().starts_with("RELOADING=1\n"));
    assert_eq!(heard(), "READY=1\nSTATUS=configuration reloaded");

    signal(libc::SIGTERM);
    assert_eq!(heard(), "STOPPING=1\nSTATUS=shutting down");
    assert!(child.0.wait().unwrap().success());
}

/// Loading a snapshot asks systemd for more time to start; with the
/// cache off there is none to load, whatever `path_to_persistence` says.
#[test]
fn systemd_is_asked_for_time_only_to_load_a_snapshot() {
    for (cache_size, first) in [
        (
            "1MiB",
            "STATUS=loading the cache snapshot\nEXTEND_TIMEOUT_USEC=",
        ),
        ("0", "READY=1\n"),
    ] {
        let (_dir, systemd, mut child) = under_systemd(&format!(
            "port = 0\nbind = 127.0.0.1\ntargets = 127.0.0.1:9001\n\
             cache_size = {cache_size}\npath_to_persistence = cache.bin\n"
        ));
        let said = heard(&systemd);
        assert!(said.starts_with(first), "cache_size {cache_size}: {said}");
        child.0.kill().unwrap();
        child.0.wait().unwrap();
    }
}

/// A proxy this test started, killed if the test ends before it stopped
/// (an assertion failed): none outlives its test.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn a_log_file_that_cannot_be_opened_is_a_bad_configuration_to_check_and_to_a_run() {
    let dir = conf(
        "bind = 127.0.0.1\nport = 0\ntargets = 127.0.0.1:9\ncache_size = 0\n\
         path_to_persistence =\npath_to_log = logs\n",
    );
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    let checked = inverso(dir.path(), &["check", "--config", "proxy.conf"], &[]);
    let ran = inverso(dir.path(), &["--config", "proxy.conf"], &[]);
    assert_eq!(checked.status.code(), Some(2));
    assert_eq!(ran.status.code(), Some(2), "{ran:?}");
    let said = String::from_utf8_lossy(&ran.stderr);
    assert!(said.contains("cannot open the access log"), "{said}");
}

/// Runs `inverso args...` in `dir`, as [`inverso`], but gives up after
/// `within` (killing it): `None` when it had not finished by then.
fn inverso_within(dir: &Path, args: &[&str], within: std::time::Duration) -> Option<Output> {
    let mut child = command(dir, args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    None
}

#[test]
fn a_snapshot_path_that_is_no_regular_file_is_a_bad_configuration() {
    // Never written over, the cache would never be kept: said at `check`
    // and at start-up, as for `path_to_log`, not at every tick.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dir")).unwrap();
    let made = Command::new("mkfifo")
        .arg(dir.path().join("fifo"))
        .status()
        .unwrap();
    assert!(made.success());
    for path in ["dir", "fifo"] {
        let set = format!("path_to_persistence={path}");
        let args = ["check", "--targets", "127.0.0.1:9001", "--set", &set];
        let out = inverso(dir.path(), &args, &[]);
        assert_eq!(out.status.code(), Some(2), "{path}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("not a regular file"), "{path}: {stderr}");
    }
}

#[test]
fn a_fifo_as_a_users_or_pem_file_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let made = Command::new("mkfifo")
        .arg(dir.path().join("fifo"))
        .status()
        .unwrap();
    assert!(made.success());
    // Each is read at `check` and at every reload (on the thread that
    // handles SIGTERM too): a FIFO nobody writes would block it forever,
    // as a configuration file or an error page would.
    for key in [
        "auth_basic_user_file",
        "admin_auth_basic_user_file",
        "tls_certificates",
        "backend_tls_ca",
        "backend_tls_certificate",
    ] {
        let set = format!("{key}=fifo");
        let args = ["check", "--targets", "127.0.0.1:9001", "--set", &set];
        let out = inverso_within(dir.path(), &args, std::time::Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{key}: `inverso check` still waits on the FIFO"));
        assert_eq!(out.status.code(), Some(2), "{key}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("not a regular file"), "{key}: {stderr}");
    }
}

/// The first `n` lines of `check`'s account of the streams.
fn stream_lines(stdout: &str, n: usize) -> Vec<&str> {
    (stdout.lines())
        .skip_while(|l| !l.starts_with("# stream "))
        .take(n)
        .collect()
}

#[test]
fn check_says_where_each_stream_listens_and_which_pool_takes_which_hello() {
    let (code, stdout, stderr) = check(
        "targets = 127.0.0.1:9001\npool.blog = 127.0.0.1:9002\n\
         stream.https.*.example.com = blog\nstream.https = default listen=8443 proxy_protocol\n\
         stream.https.blog.example.com = blog\nstream.pg = blog listen=127.0.0.1:5432\n\
         stream.https.alpn:acme-tls/1 = default\n",
    );
    assert_eq!(code, Some(0), "{stderr}");
    let said = stream_lines(&stdout, 5);
    assert_eq!(
        said,
        [
            "# stream https: TCP on 0.0.0.0:8443, each connection's PROXY header read first, \
             to pool default",
            "#   a TLS hello offering acme-tls/1 in ALPN: to pool default",
            "#   a TLS hello asking for blog.example.com: to pool blog",
            "#   a TLS hello asking for *.example.com: to pool blog",
            "# stream pg: TCP on 127.0.0.1:5432, to pool blog",
        ],
        "{stdout}"
    );
    // The keys as written, each with its line.
    assert!(
        stdout.contains("stream.https.blog.example.com = blog"),
        "{stdout}"
    );
    // A pool a stream takes is not one nothing sends requests to.
    let dir = conf(
        "targets = 127.0.0.1:9001\npool.blog = 127.0.0.1:9002\npool.idle = 127.0.0.1:9003\n\
         stream.https = default listen=8443\nstream.https.blog.example.com = blog\n",
    );
    let out = inverso(
        dir.path(),
        &["check", "--config", "proxy.conf"],
        &[("RUST_LOG", "warn")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let unsent: Vec<&str> = (stderr.lines())
        .filter(|l| l.contains("no route sends requests to it"))
        .collect();
    assert_eq!(unsent.len(), 1, "{stderr}");
    assert!(unsent[0].contains("pool.idle"), "{stderr}");
}

/// With dns-01, `check` says where each name's record is written, and
/// with which key (not its secret), instead of a port to reach.
#[test]
fn check_says_where_dns_01_records_are_written() {
    let text = "targets = 127.0.0.1:9001\nport = 8080\ntls_port = 8443\n\
                acme_domains = *.shop.test, shop.test\nacme_challenge = dns-01\n\
                acme_dns_server = 127.0.0.1:5353\nacme_dns_zone = shop.test\n\
                acme_dns_key = inverso-acme:c2VjcmV0LXNlY3JldA==\nacme_dns_wait = 1m\n";
    let dir = conf(text);
    let out = inverso(dir.path(), &["check", "--config", "proxy.conf"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = "# acme_domains: each name is proven by a TXT record at \
                    _acme-challenge.<name> in zone shop.test, written by 127.0.0.1:5353 with key \
                    inverso-acme, its validation asked for 60s after";
    assert!(stdout.lines().any(|l| l == expected), "{stdout}");
    assert!(
        stdout.contains("_wildcard.shop.test.pem: no certificate yet"),
        "{stdout}"
    );
    assert!(!stdout.contains("port 80"), "{stdout}");
    assert!(
        !stdout.contains("c2VjcmV0"),
        "the secret is not shown: {stdout}"
    );
    assert!(
        stdout.contains("acme_dns_key = inverso-acme:(secret)"),
        "{stdout}"
    );
}

/// `check` says where each ACME certificate comes from and is kept, that
/// none is kept yet, and that the names' port 80 must reach `port`; with
/// a certificate kept, until when it is valid and when it is renewed.
#[test]
fn check_says_where_the_acme_certificate_comes_from_and_when_it_is_renewed() {
    let text = "targets = 127.0.0.1:9001\nport = 8080\ntls_port = 8443\n\
                acme_domains = shop.test, www.shop.test; blog.test\nacme_state_dir = state\n";
    let dir = conf(text);
    let out = inverso(dir.path(), &["check", "--config", "proxy.conf"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let folder = "state/acme-v02.api.letsencrypt.org_443";
    for (names, file) in [
        ("shop.test, www.shop.test", "shop.test"),
        ("blog.test", "blog.test"),
    ] {
        let expected = format!(
            "# acme_domains {names} from \
             https://acme-v02.api.letsencrypt.org/directory, kept in {folder}/{file}.pem: \
             no certificate yet: one is ordered at start"
        );
        assert!(stdout.lines().any(|l| l == expected), "{stdout}");
    }
    assert!(
        stdout.contains("on its port 80 (http-01): it must reach `port` 8080"),
        "{stdout}"
    );
    // Every plain HTTP listener answers the challenge: `listen`'s too.
    std::fs::write(
        dir.path().join("proxy.conf"),
        format!("{text}listen = 80\n"),
    )
    .unwrap();
    let out = inverso(dir.path(), &["check", "--config", "proxy.conf"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("acme_domains shop.test"), "{stdout}");
    assert!(!stdout.contains("it must reach"), "{stdout}");
    // A certificate kept: 90 days from a day ago, renewed 30 before.
    let key = rcgen::KeyPair::generate().unwrap();
    let names = vec!["shop.test".to_string(), "www.shop.test".to_string()];
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    params.not_before = rcgen::date_time_ymd(2026, 1, 1);
    params.not_after = rcgen::date_time_ymd(2099, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    let kept = dir.path().join(folder);
    std::fs::create_dir_all(&kept).unwrap();
    let pem = format!("{}{}", cert.pem(), key.serialize_pem());
    std::fs::write(kept.join("shop.test.pem"), pem).unwrap();
    let out = inverso(dir.path(), &["check", "--config", "proxy.conf"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let expected = format!(
        "kept in {folder}/shop.test.pem: a certificate valid until 2099-01-01T00:00:00.000Z, \
         renewed from 2074-"
    );
    assert!(stdout.contains(&expected), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "kept in {folder}/blog.test.pem: no certificate yet"
        )),
        "{stdout}"
    );
}

/// `pid_file` holds the process's ID while it runs, and `inverso signal`
/// reloads it, has it reopen its log and stops it through that file
/// (`nginx -s`); the file is gone once it has stopped.
#[test]
fn inverso_signal_reloads_reopens_and_stops_the_process_its_pid_file_names() {
    let (dir, systemd, mut child) = under_systemd(
        "port = 0\nbind = 127.0.0.1\ntargets = 127.0.0.1:9001\npath_to_persistence =\n\
         pid_file = inverso.pid\npath_to_log = access.log\n",
    );
    let heard = || heard(&systemd);
    assert!(heard().starts_with("READY=1\n"));
    let pid_path = dir.path().join("inverso.pid");
    let pid = child.0.id();
    assert_eq!(
        std::fs::read_to_string(&pid_path).unwrap(),
        format!("{pid}\n")
    );
    let signal = |action: &str| {
        let out = inverso(
            dir.path(),
            &["signal", action, "--config", "proxy.conf"],
            &[],
        );
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stderr)
    };

    let (code, stderr) = signal("reload");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stderr, format!("inverso: sent SIGHUP to process {pid}\n"));
    assert!(heard().starts_with("RELOADING=1\n"));
    assert_eq!(heard(), "READY=1\nSTATUS=configuration reloaded");

    // As logrotate does: the file renamed, then the log reopened.
    let log = dir.path().join("access.log");
    std::fs::rename(&log, dir.path().join("access.log.1")).unwrap();
    let (code, stderr) = signal("reopen");
    assert_eq!(code, Some(0), "{stderr}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !log.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(log.exists(), "the access log was not reopened");

    // Only pid_file is read: a file that would not load (a value that is
    // no value, a target's name gone from DNS) does not keep it running.
    std::fs::write(
        dir.path().join("proxy.conf"),
        "targets = 127.0.0.1:9001\npid_file = inverso.pid\nmax_connections = many\n",
    )
    .unwrap();
    let (code, stderr) = signal("stop");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(heard(), "STOPPING=1\nSTATUS=shutting down");
    assert!(child.0.wait().unwrap().success());
    assert!(!pid_path.exists());

    // Nothing runs now: said, as is a file left by a process that died.
    let (code, stderr) = signal("reload");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("is inverso running?"), "{stderr}");
    std::fs::write(&pid_path, format!("{pid}\n")).unwrap();
    let (code, stderr) = signal("stop");
    assert_eq!(code, Some(1));
    assert!(stderr.contains(&format!("no process {pid}")), "{stderr}");
    std::fs::write(&pid_path, "0\n").unwrap();
    let (code, stderr) = signal("stop");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("does not hold a process ID"), "{stderr}");
}

/// Without `pid_file` there is no process to signal: a usage error, and
/// an action that is none is refused by the command line.
#[test]
fn inverso_signal_needs_a_pid_file_and_an_action_it_knows() {
    let dir = conf("targets = 127.0.0.1:9001\n");
    let out = inverso(
        dir.path(),
        &["signal", "reload", "--config", "proxy.conf"],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("proxy.conf: pid_file is not set: no process to signal"),
        "{stderr}"
    );
    let out = inverso(
        dir.path(),
        &["signal", "restart", "--config", "proxy.conf"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("reload, reopen, stop"));
}

/// A pid_file that cannot be written stops the start, as nginx's does.
#[test]
fn a_pid_file_that_cannot_be_written_is_a_configuration_error() {
    let dir = conf(
        "port = 0\nbind = 127.0.0.1\ntargets = 127.0.0.1:9001\npath_to_persistence =\n\
         pid_file = missing/inverso.pid\n",
    );
    let out = inverso(dir.path(), &["--config", "proxy.conf"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot start: cannot write missing/inverso.pid"),
        "{stderr}"
    );
}

#[test]
fn check_shows_a_pools_own_log_and_it_or_a_run_stops_on_one_it_cannot_open() {
    let pools = "pool.shop = 127.0.0.1:9002\nroute./shop/ = shop\n";
    let base = format!("port = 0\ntargets = 127.0.0.1:9001\ncache_size = 0\n{pools}");
    let dir = conf(&format!("{base}pool.shop.path_to_log = shop.log\n"));
    let (code, stdout, stderr) = check_in(dir.path());
    assert_eq!(code, Some(0), "{stderr}");
    let line = (stdout.lines())
        .find(|l| l.starts_with("pool.shop.path_to_log ="))
        .unwrap_or_else(|| panic!("not shown: {stdout}"));
    assert!(
        line.starts_with("pool.shop.path_to_log = shop.log "),
        "{line}"
    );
    assert!(line.contains("proxy.conf:6"), "{line}");
    // Made, as a run makes it.
    assert!(dir.path().join("shop.log").exists());
    let unopenable = format!("{base}pool.shop.path_to_log = missing/shop.log\n");
    std::fs::write(dir.path().join("proxy.conf"), unopenable).unwrap();
    for args in [
        &["check", "--config", "proxy.conf"][..],
        &["--config", "proxy.conf"],
    ] {
        let out = inverso(dir.path(), args, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("pool.shop.path_to_log: cannot open "),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn check_shows_a_pools_own_log_format_and_a_line_its_template_writes() {
    let pools = "pool.shop = 127.0.0.1:9002\nroute./shop/ = shop\n\
                 pool.shop.path_to_log = shop.log\npool.blog = 127.0.0.1:9003\n\
                 route./blog/ = blog\npool.blog.path_to_log = blog.log\n";
    let base = format!("port = 0\ntargets = 127.0.0.1:9001\ncache_size = 0\n{pools}");
    let dir = conf(&format!(
        "{base}pool.shop.log_format = json\npool.blog.log_format = $status $http_x_site\n"
    ));
    let (code, stdout, stderr) = check_in(dir.path());
    assert_eq!(code, Some(0), "{stderr}");
    let shown = |key: &str| {
        (stdout.lines())
            .find(|l| l.starts_with(&format!("{key} =")))
            .unwrap_or_else(|| panic!("{key} not shown: {stdout}"))
            .to_string()
    };
    let shop = shown("pool.shop.log_format");
    assert!(shop.starts_with("pool.shop.log_format = json "), "{shop}");
    assert!(shop.contains("proxy.conf:10"), "{shop}");
    assert!(shown("pool.blog.log_format").contains("proxy.conf:11"));
    assert!(
        stdout.contains("\n# pool blog: log_format template: $status $http_x_site\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\n# pool blog: a line looks like:   200 -\n"),
        "{stdout}"
    );
    // Where it would have nowhere to write: refused, as a run is.
    let nowhere = format!("{base}pool.api = 127.0.0.1:9004\npool.api.log_format = json\n");
    std::fs::write(dir.path().join("proxy.conf"), nowhere).unwrap();
    let (code, _, stderr) = check_in(dir.path());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("proxy.conf:11: pool.api.log_format: the format of the pool's own file"),
        "{stderr}"
    );
}

/// `check` says what `geoip_database` is; a file that is none stops it
/// with exit code 2 at its line, as any bad value.
#[test]
fn check_shows_the_geoip_database_and_refuses_a_file_that_is_none() {
    let mut db = mmdb::Writer::new(6, 28);
    let record = db.data(&mmdb::country_record(Some("DE"), None));
    db.insert("192.0.2.0/24", record);
    let bytes = db.finish("GeoLite2-Country");
    let text = "targets = 127.0.0.1:9001\ngeoip_database = country.mmdb\n\
                deny.geo = if country XX\n";
    let dir = conf(text);
    std::fs::write(dir.path().join("country.mmdb"), &bytes).unwrap();
    let (code, stdout, stderr) = check_in(dir.path());
    assert_eq!(code, Some(0), "stderr: {stderr}");
    let line = "# geoip_database: GeoLite2-Country, built 2023-11-14T22:13:20";
    assert!(stdout.contains(line), "{stdout}");
    assert!(stdout.contains("IPv6 tree of "), "{stdout}");
    std::fs::write(dir.path().join("country.mmdb"), &bytes[..bytes.len() - 20]).unwrap();
    let (code, _, stderr) = check_in(dir.path());
    assert_eq!(code, Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains("proxy.conf:2: geoip_database: country.mmdb: "),
        "{stderr}"
    );
}
