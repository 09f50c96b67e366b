#!/usr/bin/env bash
# Run the community HTTP cache test suite (http-tests/cache-tests, the npm
# package http-cache-tests 0.4.5) against inverso, and in the same run against
# this machine's nginx (proxy_cache) and HAProxy (its cache), all on
# 127.0.0.1, and print a summary of the three beside the results the package
# ships for nginx 1.18, Squid and Varnish.
#
#   scripts/cache-tests.sh [--only PROXIES] [--out DIR] [--keep]
#   scripts/cache-tests.sh --id TEST-ID [--only PROXIES] [--out DIR] [--keep]
#
# Options:
#   --only PROXIES  run the suite through these only: a comma-separated list
#                   from inverso, nginx, haproxy that names inverso; e.g.
#                   `--only inverso` for a quick run (default: all three)
#   --id TEST-ID    run that one test only, through each proxy, with the
#                   suite's dump of every request and response, and its
#                   result (no summary)
#   --out DIR       save the output there: PROXY.json (the suite's raw
#                   results through each proxy: inverso.json, nginx.json,
#                   haproxy.json) and summary.txt, or TEST-ID.PROXY.txt with
#                   --id; default: a new temp dir, printed at the end
#   --keep          keep the work dir (package, configs, logs) and print it
#
# Environment:
#   BENCH_SKIP_BUILD  1 = use the existing target/release/inverso
#
# Needs node (14.8 or newer), npm (8 or newer) and access to the npm
# registry: the package is fetched with `npm pack` (its SHA-256 checked
# against the one pinned below) and its two run-time dependencies
# (node-fetch 2, liquidjs 9) installed into the work dir; nothing is
# installed outside it (npm's own cache aside). nginx and HAProxy are the
# machine's own (`nginx` and `haproxy` on the PATH); if one is missing, its
# column is left out with a note. This script installs neither.
#
# What runs:
#   - the suite's origin server (server/server.mjs), patched in the work dir
#     to listen on 127.0.0.1 only (it listens on every interface as shipped);
#     one origin serves every proxy's run (each test has its own UUID);
#   - one proxy at a time in front of it, each started for its run and
#     stopped after it, in this order:
#       inverso: bind 127.0.0.1, cache_size 64MiB, persistence and the log
#         file off (its access log goes to the work dir);
#       nginx: configured as the package's docker image does it
#         (docker/nginx/nginx.conf: proxy_cache_path ... keys_zone=my-cache:8m
#         max_size=1000m inactive=600m; proxy_pass; proxy_cache my-cache;
#         proxy_cache_revalidate on), inside the http settings of Debian's
#         stock nginx.conf that the image runs with (sendfile, tcp_nopush,
#         gzip on, worker_connections 2048 as its entrypoint sets); its
#         cache, temp dirs, pid file and logs in the work dir; not a daemon.
#         Run as root, its workers switch to nginx's default unprivileged
#         user (as in scripts/bench.sh), so the work dir is made traversable
#         (mode 711);
#       HAProxy: its built-in cache (a `cache` section, total-max-size 64
#         (MB), max-object-size 1 MB, max-age 3600, process-vary at its
#         default, off; `http-request cache-use` and `http-response
#         cache-store`), foreground (-db); its log in the work dir;
#   - the suite's command-line client (cli.mjs) through each proxy in turn;
#     a full run takes about 15 s per proxy.
# Every server listens on a port checked free, below the kernel's ephemeral
# range, and is stopped by the PID the script started (trap EXIT). If nginx
# or HAProxy does not start or its suite run fails, its column is left out
# with a note; if inverso's does, the script fails.
#
# The summary (scripts/cache-tests-summary.mjs) counts the tests per result
# (✅ pass, ⛔️ fail, ⚠️ optional fail, Y/N for 'check' tests, 🔹 setup fail,
# ⁉️ harness fail, ⚪️ dependency fail, ↻ retry, - untested) for inverso,
# nginx and HAProxy (this run) and the package's results for nginx 1.18,
# Squid and Varnish (columns nginx-1.18*, squid*, varnish*: from its
# authors' runs of those proxies' Ubuntu packages of the time, nginx 1.18,
# Squid 4.13, Varnish 6.4, not from this run), then lists every test inverso
# fails (⛔️, 🔹, ⁉️ or ↻) with every column's result and inverso's failure
# message. The shipped nginx 1.18 column stays beside the live one as a
# check on this setup. Browser-only tests, never run against a proxy, are
# left out.
#
# Reading the results: where a test expects a revalidation that the cache did
# not send (or sent with another validator), the origin answers status 999
# ("304 Not Generated"); a few tests send a malformed response or close the
# connection on purpose. Messages of such tests can name a 502 (or the 999),
# and inverso's log can show its one target taken down by passive health;
# with a single target it is still tried, so later tests are not hit.
#
# Exit status: 0 when the suite ran through inverso, whatever its results; 1
# when it could not run; 2 on a usage error.
set -euo pipefail

readonly PKG_NAME=http-cache-tests
readonly PKG_VERSION=0.4.5
readonly PKG_SHA256=bde099a69b357a8779a797573906ff2b4c1912c394d1908dc4fbe78ac79de1fb
readonly SUITE_TIMEOUT=300 # seconds; bounds a suite run that hangs

usage() { echo "usage: $0 [--id TEST-ID] [--only PROXIES] [--out DIR] [--keep]" >&2; }

TEST_ID='' OUT='' KEEP=0 ONLY=''
while (($# > 0)); do
  case $1 in
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    --id | --out | --only)
      if (($# < 2)) || [[ -z $2 ]]; then
        usage
        exit 2
      fi
      case $1 in
        --id) TEST_ID=$2 ;;
        --out) OUT=$2 ;;
        --only) ONLY=$2 ;;
      esac
      shift 2
      ;;
    --keep)
      KEEP=1
      shift
      ;;
    *)
      usage
      exit 2
      ;;
  esac
done
readonly TEST_ID KEEP

# The proxies to run the suite through, in this order; inverso first.
PROXIES=(inverso nginx haproxy)
if [[ -n $ONLY ]]; then
  declare -A want=()
  IFS=, read -r -a only_list <<<"$ONLY"
  for p in "${only_list[@]}"; do
    case $p in
      inverso | nginx | haproxy) want[$p]=1 ;;
      *)
        echo "$0: --only: unknown proxy '$p' (inverso, nginx, haproxy)" >&2
        exit 2
        ;;
    esac
  done
  if [[ -z ${want[inverso]:-} ]]; then
    echo "$0: --only must name inverso (the summary lists inverso's failures)" >&2
    exit 2
  fi
  sel=()
  for p in "${PROXIES[@]}"; do [[ -n ${want[$p]:-} ]] && sel+=("$p"); done
  PROXIES=("${sel[@]}")
  unset want only_list sel p
fi

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
readonly SCRIPT_DIR REPO_ROOT
readonly INVERSO_BIN=$REPO_ROOT/target/release/inverso

log() { printf '[cache-tests %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

NOTES=() # lines for the summary: proxies left out, and why
note() {
  log "note: $*"
  NOTES+=("note: $*")
}

# ---------------------------------------------------------------- processes

TMP=''
# shellcheck source=scripts/procs.sh
source "$SCRIPT_DIR/procs.sh"

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  stop_all
  if [[ -n $TMP && -d $TMP ]]; then
    if ((KEEP)); then
      log "work dir kept: $TMP"
    else
      rm -rf "$TMP"
    fi
  fi
  exit "$status"
}

# status_line PORT PATH: the status line of a GET on 127.0.0.1:PORT, or
# nothing.
status_line() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1"
    printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$2" "$1" >&3
    IFS= read -r -t 5 line <&3
    printf '%s' "${line%$'\r'}"
  ) 2>/dev/null || true
}

# ---------------------------------------------------------------- steps

check_tools() {
  local t
  for t in node npm; do
    command -v "$t" >/dev/null 2>&1 ||
      die "$t not found: this script needs node (14.8 or newer) and npm (8 or newer); install them first"
  done
  node -e 'const [a, b] = process.versions.node.split(".").map(Number)
    process.exit(a > 14 || (a === 14 && b >= 8) ? 0 : 1)' ||
    die "node $(node --version) is too old: the suite needs 14.8 or newer"
  # npm 8: `npm pkg` and `npm install --omit=dev` (npm 6 has neither).
  local npm_version
  npm_version=$(npm --version 2>/dev/null) || die "npm does not run"
  ((${npm_version%%.*} >= 8)) || die "npm $npm_version is too old: this script needs npm 8 or newer"
  for t in tar sha256sum sed ps timeout python3; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found"
  done
  # nginx and HAProxy are optional: a missing one is left out, with a note.
  local keep=() p
  for p in "${PROXIES[@]}"; do
    if [[ $p != inverso ]] && ! command -v "$p" >/dev/null 2>&1; then
      note "$p is not installed: no $p column"
      continue
    fi
    keep+=("$p")
  done
  PROXIES=("${keep[@]}")
}

build_inverso() {
  if [[ ${BENCH_SKIP_BUILD:-} == 1 ]]; then
    log "BENCH_SKIP_BUILD=1: using the existing target/release/inverso"
  else
    command -v cargo >/dev/null 2>&1 || die "cargo not found (install the Rust toolchain)"
    log "cargo build --release"
    if ! (cd "$REPO_ROOT" && cargo build --release) >"$TMP/build.log" 2>&1; then
      tail -n 20 "$TMP/build.log" >&2
      die "inverso did not build"
    fi
  fi
  [[ -x $INVERSO_BIN ]] || die "no inverso binary at target/release/inverso"
}

# The package, unpacked into $TMP/package, with its dependencies and the
# origin patched to listen on 127.0.0.1.
PKG=''
fetch_suite() {
  local tgz=$TMP/$PKG_NAME-$PKG_VERSION.tgz got
  log "fetching $PKG_NAME@$PKG_VERSION from the npm registry"
  if ! (cd "$TMP" && npm pack --silent --loglevel=error "$PKG_NAME@$PKG_VERSION") \
    >"$TMP/npm.log" 2>&1; then
    cat "$TMP/npm.log" >&2
    die "npm pack $PKG_NAME@$PKG_VERSION failed (this needs access to the npm registry)"
  fi
  [[ -f $tgz ]] || die "npm pack left no $tgz"
  got=$(sha256sum "$tgz" | awk '{ print $1 }')
  [[ $got == "$PKG_SHA256" ]] ||
    die "$PKG_NAME-$PKG_VERSION.tgz has SHA-256 $got, expected $PKG_SHA256"
  tar -xzf "$tgz" -C "$TMP"
  PKG=$TMP/package
  [[ -f $PKG/cli.mjs && -f $PKG/server/server.mjs ]] || die "the package has no cli.mjs or server/server.mjs"

  # As shipped, the origin listens on every interface; ours listens on
  # 127.0.0.1 only. The patch must apply, and leave no other listen().
  local server=$PKG/server/server.mjs
  sed -i "s/^server\.listen(port)\$/server.listen(port, '127.0.0.1')/" "$server"
  if ! grep -qx "server.listen(port, '127.0.0.1')" "$server" ||
    [[ $(grep -c 'listen(' "$server") != 1 ]]; then
    grep -n 'listen(' "$server" >&2 || true
    die "could not patch server/server.mjs to listen on 127.0.0.1 only; refusing to start it"
  fi

  log "installing its dependencies (node-fetch 2, liquidjs 9) into the work dir"
  # The package also lists npm 6 as a dependency, which nothing in it
  # imports: it is dropped rather than installed.
  if ! (cd "$PKG" && npm pkg delete dependencies.npm &&
    npm install --omit=dev --no-audit --no-fund --loglevel=error node-fetch@2 liquidjs@9) \
    >>"$TMP/npm.log" 2>&1; then
    cat "$TMP/npm.log" >&2
    die "npm install failed (this needs access to the npm registry)"
  fi
}

ORIGIN_PORT=''
start_origin() {
  local pid
  pick_port ORIGIN_PORT
  # server.mjs serves files from its working directory, so it runs in the
  # package dir. npm_config_* would override npm_package_config_*: unset.
  (cd "$PKG" && exec env -u npm_config_protocol -u npm_config_keyfile -u npm_config_certfile \
    npm_config_port="$ORIGIN_PORT" npm_package_config_protocol=http \
    npm_config_pidfile="$TMP/origin.pid" node server/server.mjs) >"$TMP/origin.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  if ! wait_listening "$pid" "$ORIGIN_PORT"; then
    cat "$TMP/origin.log" >&2
    die "the suite's origin server did not start"
  fi
  log "origin (server/server.mjs) on 127.0.0.1:$ORIGIN_PORT, pid $pid"
}

# Each start_PROXY starts that proxy on 127.0.0.1:$PROXY_PORT in front of the
# origin, sets PROXY_PID, and writes its config and logs under $TMP/PROXY.
# Returns 1 (after logging why) if it would not start.
PROXY_PORT='' PROXY_PID=''

start_inverso() {
  local dir=$TMP/inverso conf=$TMP/inverso/inverso.conf
  cat >"$conf" <<EOF
# written by scripts/cache-tests.sh
bind = 127.0.0.1
port = $PROXY_PORT
targets = 127.0.0.1:$ORIGIN_PORT
cache_size = 64MiB
path_to_persistence =
path_to_log =
EOF
  # INVERSO_<KEY> variables would override the file: drop any that are set.
  local unset_env=() v
  for v in $(compgen -e); do [[ $v == INVERSO_* ]] && unset_env+=(-u "$v"); done
  env "${unset_env[@]}" RUST_LOG=warn "$INVERSO_BIN" --config "$conf" \
    >"$dir/inverso.log" 2>&1 &
  PROXY_PID=$!
  PIDS+=("$PROXY_PID")
}

# The package's docker/nginx/nginx.conf (its server block, verbatim but for
# the addresses and paths), in the http settings of Debian's stock nginx.conf
# that the package's image runs it with.
start_nginx() {
  local dir=$TMP/nginx conf=$TMP/nginx/nginx.conf
  # Run as root, the workers run as nginx's default unprivileged user: they
  # must get through the work dir (mktemp -d makes it 0700) to the cache
  # dirs, which the master creates and hands to them.
  if [[ $(id -u) == 0 ]]; then chmod 711 "$TMP"; fi
  cat >"$conf" <<EOF
# written by scripts/cache-tests.sh
daemon off;
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 2048; }
http {
  # Debian's stock nginx.conf
  sendfile on;
  tcp_nopush on;
  types_hash_max_size 2048;
  default_type application/octet-stream;
  access_log $dir/access.log;
  gzip on;
  # everything else nginx writes stays in the work dir
  client_body_temp_path $dir/client_body_temp;
  fastcgi_temp_path $dir/fastcgi_temp;
  uwsgi_temp_path $dir/uwsgi_temp;
  scgi_temp_path $dir/scgi_temp;

  # the package's docker/nginx/nginx.conf
  proxy_cache_path $dir/cache levels=1:2 keys_zone=my-cache:8m max_size=1000m inactive=600m;
  proxy_temp_path $dir/proxy_temp;
  server {
    listen 127.0.0.1:$PROXY_PORT;
    location / {
      proxy_pass http://127.0.0.1:$ORIGIN_PORT;
      proxy_cache my-cache;
      proxy_cache_revalidate on;
    }
  }
}
EOF
  # -e: the error log before the config is read (Debian's build points it
  # into /var/log).
  nginx -p "$dir" -c "$conf" -e "$dir/error.log" >"$dir/stdout.log" 2>&1 &
  PROXY_PID=$!
  PIDS+=("$PROXY_PID")
}

start_haproxy() {
  local dir=$TMP/haproxy conf=$TMP/haproxy/haproxy.cfg
  cat >"$conf" <<EOF
# written by scripts/cache-tests.sh
global
  log stdout format raw local0

defaults
  mode http
  log global
  option httplog
  timeout connect 5s
  timeout client 60s
  timeout server 60s

cache suite
  total-max-size 64      # MB
  max-object-size 1048576 # bytes
  max-age 3600           # seconds

frontend fe
  bind 127.0.0.1:$PROXY_PORT
  default_backend be

backend be
  http-request cache-use suite
  http-response cache-store suite
  server origin 127.0.0.1:$ORIGIN_PORT
EOF
  if ! haproxy -c -q -f "$conf" >"$dir/check.log" 2>&1; then
    cat "$dir/check.log" >&2
    log "haproxy rejects its config"
    return 1
  fi
  haproxy -db -f "$conf" >"$dir/haproxy.log" 2>&1 &
  PROXY_PID=$!
  PIDS+=("$PROXY_PID")
}

# start_proxy NAME: starts it, and waits (bounded) until a GET through it to
# the origin comes back 200. Returns 1 (after logging why) if it does not.
start_proxy() {
  local name=$1 i line='' log_file
  mkdir -p "$TMP/$name"
  pick_port PROXY_PORT
  PROXY_PID=''
  "start_$name" || return 1
  for ((i = 0; i < 100; i++)); do
    alive "$PROXY_PID" || break
    line=$(status_line "$PROXY_PORT" /index.html)
    [[ $line == 'HTTP/1.1 200 '* ]] && break
    sleep 0.1
  done
  if [[ $line != 'HTTP/1.1 200 '* ]]; then
    for log_file in "$TMP/$name"/*.log; do
      [[ -s $log_file ]] && tail -n 20 "$log_file" >&2
    done
    if alive "$PROXY_PID"; then
      log "$name did not answer 200 within 10s (last answer: '${line:-none}')"
      stop_pid "$PROXY_PID"
    else
      log "$name exited"
      wait "$PROXY_PID" 2>/dev/null || true
      forget_pid "$PROXY_PID"
    fi
    return 1
  fi
  log "$name on 127.0.0.1:$PROXY_PORT, pid $PROXY_PID"
}

# version NAME: the version of that proxy, for the summary.
version() {
  case $1 in
    inverso) git -C "$REPO_ROOT" describe --always --dirty 2>/dev/null || echo '(unknown revision)' ;;
    nginx) nginx -v 2>&1 | sed -n 's|^nginx version: nginx/||p' ;;
    haproxy) haproxy -v 2>/dev/null | awk 'NR == 1 { print $3 }' ;;
  esac
}

# run_cli ID: the suite's client through the running proxy; ID empty = every
# test.
run_cli() {
  (cd "$PKG" && exec timeout "$SUITE_TIMEOUT" env -u npm_config_id \
    npm_config_base="http://127.0.0.1:$PROXY_PORT" npm_package_config_id="$1" \
    node --no-warnings cli.mjs)
}

# The default output dir is made only once there is something to save.
make_out() {
  [[ -n $OUT ]] || OUT=$(mktemp -d "${TMPDIR:-/tmp}/inverso-cache-tests-out.XXXXXX")
}

# run_suite NAME: the whole suite through the running proxy NAME, its raw
# results saved as $OUT/NAME.json. Returns 1 (after logging why) if the
# client failed or wrote no results.
run_suite() {
  local name=$1 status=0 json=$TMP/$1.json err=$TMP/$1/cli.err
  log "running the suite through $name (about 15 s)"
  run_cli '' >"$json" 2>"$err" || status=$?
  # cli.mjs prints its errors and still exits 0: the results must parse.
  if ((status != 0)) || ! node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))
    process.exit(r && typeof r === "object" && Object.keys(r).length > 0 ? 0 : 1)' \
    "$json" 2>/dev/null; then
    head -c 2000 "$err" >&2 || true
    head -c 2000 "$json" >&2 || true
    if ((status == 124)); then
      log "the suite did not finish through $name within ${SUITE_TIMEOUT}s"
    else
      log "the suite's client failed through $name (exit $status) or wrote no results"
    fi
    return 1
  fi
  [[ -s $err ]] && log "the suite's client wrote to stderr ($name): $(head -c 500 "$err")"
  make_out
  cp "$json" "$OUT/$name.json"
}

# run_one NAME: the test $TEST_ID through the running proxy NAME, its dump
# printed and saved as $OUT/$TEST_ID.NAME.txt.
run_one() {
  local name=$1 out status=0
  make_out
  out=$OUT/$TEST_ID.$name.txt
  log "running $TEST_ID through $name"
  run_cli "$TEST_ID" >"$out" 2>&1 || status=$?
  printf '==== %s\n' "$name"
  cat "$out"
  if ((status != 0)); then
    log "the suite's client failed through $name (exit $status); see $out"
    return 1
  fi
  log "output saved in $out"
}

# ---------------------------------------------------------------- main

main() {
  check_tools
  TMP=$(mktemp -d "${TMPDIR:-/tmp}/inverso-cache-tests.XXXXXX")
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  if [[ -n $OUT ]]; then
    mkdir -p "$OUT"
    OUT=$(cd "$OUT" && pwd)
  fi

  build_inverso
  fetch_suite
  if [[ -n $TEST_ID ]] &&
    ! node "$SCRIPT_DIR/cache-tests-summary.mjs" "$PKG" --has-id "$TEST_ID"; then
    die "the suite has no test '$TEST_ID'"
  fi
  start_origin

  # One proxy at a time, each stopped before the next starts.
  local name ran=() args=() versions=()
  for name in "${PROXIES[@]}"; do
    if ! start_proxy "$name"; then
      [[ $name == inverso ]] && die "inverso did not start"
      note "$name did not start: no $name column"
      continue
    fi
    if [[ -n $TEST_ID ]]; then
      if ! run_one "$name"; then
        [[ $name == inverso ]] && die "the suite's client failed through inverso"
      fi
    elif run_suite "$name"; then
      ran+=("$name")
      args+=("$name=$OUT/$name.json")
      versions+=("$name $(version "$name")")
    else
      [[ $name == inverso ]] && die "the suite did not run through inverso"
      note "the suite did not run through $name: no $name column"
    fi
    stop_pid "$PROXY_PID"
  done
  [[ -n $TEST_ID ]] && return 0

  local joined note_args=() n
  joined=$(printf '%s, ' "${versions[@]}")
  note_args=(--note "this run: ${joined%, }")
  for n in "${NOTES[@]+"${NOTES[@]}"}"; do note_args+=(--note "$n"); done
  node "$SCRIPT_DIR/cache-tests-summary.mjs" "$PKG" "${note_args[@]}" "${args[@]}" |
    tee "$OUT/summary.txt"
  log "raw results (${ran[*]/%/.json}) and this summary (summary.txt) in $OUT"
}

main
