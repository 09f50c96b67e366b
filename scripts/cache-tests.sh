#!/usr/bin/env bash
# Run the community HTTP cache test suite (http-tests/cache-tests, the npm
# package http-cache-tests 0.4.5) against inverso, all on 127.0.0.1, and print
# a summary beside the results the package ships for nginx, Squid and Varnish.
#
#   scripts/cache-tests.sh [--out DIR] [--keep]
#   scripts/cache-tests.sh --id TEST-ID [--out DIR] [--keep]
#
# Options:
#   --id TEST-ID  run that one test only, with the suite's dump of every
#                 request and response, and its result (no summary)
#   --out DIR     save the output there: results.json (the suite's raw
#                 results for inverso) and summary.txt, or TEST-ID.txt with
#                 --id; default: a new temp dir, printed at the end
#   --keep        keep the work dir (package, configs, logs) and print it
#
# Environment:
#   BENCH_SKIP_BUILD  1 = use the existing target/release/inverso
#
# Needs node (14.8 or newer), npm (8 or newer) and access to the npm
# registry: the package is fetched with `npm pack` (its SHA-256 checked
# against the one pinned below) and its two run-time dependencies
# (node-fetch 2, liquidjs 9) installed into the work dir; nothing is
# installed outside it (npm's own cache aside).
#
# What runs:
#   - the suite's origin server (server/server.mjs), patched in the work dir
#     to listen on 127.0.0.1 only (it listens on every interface as shipped);
#   - inverso in front of it: bind 127.0.0.1, cache_size 64MiB, persistence
#     and the log file off (its access log goes to the work dir);
#   - the suite's command-line client (cli.mjs) against inverso; the full run
#     takes about 15 s.
# Both servers listen on ports checked free, below the kernel's ephemeral
# range, and are stopped by PID when the script exits (trap EXIT).
#
# The summary (scripts/cache-tests-summary.mjs) counts the tests per result
# (✅ pass, ⛔️ fail, ⚠️ optional fail, Y/N for 'check' tests, 🔹 setup fail,
# ⁉️ harness fail, ⚪️ dependency fail, ↻ retry, - untested) for inverso and
# the package's nginx, Squid and Varnish results, then lists every test
# inverso fails (⛔️, 🔹, ⁉️ or ↻) with the others' results and inverso's
# failure message. Browser-only tests, never run against a proxy, are left
# out. The package's results are from its authors' runs of those proxies'
# Ubuntu packages of the time (nginx 1.18, Squid 4.13, Varnish 6.4).
#
# Reading the results: where a test expects a revalidation that the cache did
# not send (or sent with another validator), the origin answers status 999
# ("304 Not Generated"); a few tests send a malformed response or close the
# connection on purpose. Messages of such tests can name a 502 (or the 999),
# and inverso's log can show its one target taken down by passive health;
# with a single target it is still tried, so later tests are not hit.
#
# Exit status: 0 when the suite ran, whatever its results; 1 when it could
# not run; 2 on a usage error.
set -euo pipefail

readonly PKG_NAME=http-cache-tests
readonly PKG_VERSION=0.4.5
readonly PKG_SHA256=bde099a69b357a8779a797573906ff2b4c1912c394d1908dc4fbe78ac79de1fb
readonly SUITE_TIMEOUT=300 # seconds; bounds a suite run that hangs

usage() { echo "usage: $0 [--id TEST-ID] [--out DIR] [--keep]" >&2; }

TEST_ID='' OUT='' KEEP=0
while (($# > 0)); do
  case $1 in
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    --id | --out)
      if (($# < 2)) || [[ -z $2 ]]; then
        usage
        exit 2
      fi
      if [[ $1 == --id ]]; then TEST_ID=$2; else OUT=$2; fi
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

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
readonly SCRIPT_DIR REPO_ROOT
readonly INVERSO_BIN=$REPO_ROOT/target/release/inverso

log() { printf '[cache-tests %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# ---------------------------------------------------------------- processes

TMP=''
PIDS=() # every process we started, stopped by PID on exit

alive() {
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ $state != Z* ]] # a zombie has exited; it only waits to be reaped
}

# Stop one process we started: TERM, wait (bounded), then KILL.
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    log "pid $pid ignored SIGTERM for 10s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$? i
  trap - EXIT INT TERM
  # Newest first: inverso before the origin behind it.
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
  if [[ -n $TMP && -d $TMP ]]; then
    if ((KEEP)); then
      log "work dir kept: $TMP"
    else
      rm -rf "$TMP"
    fi
  fi
  exit "$status"
}

# pick_port VAR: sets VAR to a port that can be bound on 127.0.0.1, drawn
# below the kernel's ephemeral range so that no outgoing connection takes it
# between the check and the server's bind.
USED_PORTS=' '
pick_port() {
  local _lo _hi _port _i
  read -r _lo _ </proc/sys/net/ipv4/ip_local_port_range
  _hi=$((_lo - 1)) _lo=$((_lo > 20000 ? 10000 : 2000))
  for ((_i = 0; _i < 200; _i++)); do
    _port=$((_lo + RANDOM % (_hi - _lo)))
    [[ $USED_PORTS == *" $_port "* ]] && continue
    if node -e '
      const s = require("net").createServer()
      s.on("error", () => process.exit(1))
      s.listen(Number(process.argv[1]), "127.0.0.1", () => s.close())' "$_port" 2>/dev/null; then
      USED_PORTS+="$_port "
      printf -v "$1" '%s' "$_port"
      return 0
    fi
  done
  die "no free port found"
}

# Wait (bounded) until PID accepts connections on PORT. Fails if it died.
wait_listening() {
  local pid=$1 port=$2 i
  for ((i = 0; i < 100; i++)); do
    alive "$pid" || return 1
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
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
  for t in tar sha256sum sed ps; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found"
  done
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

ORIGIN_PORT='' PROXY_PORT=''
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

start_inverso() {
  local pid conf=$TMP/inverso.conf i line=''
  pick_port PROXY_PORT
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
    >"$TMP/inverso.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  # Answers: a GET through it to the origin comes back 200.
  for ((i = 0; i < 100; i++)); do
    alive "$pid" || break
    line=$(status_line "$PROXY_PORT" /index.html)
    [[ $line == 'HTTP/1.1 200 '* ]] && break
    sleep 0.1
  done
  if [[ $line != 'HTTP/1.1 200 '* ]]; then
    tail -n 20 "$TMP/inverso.log" >&2
    if alive "$pid"; then
      die "inverso did not answer 200 within 10s (last answer: '${line:-none}')"
    fi
    die "inverso exited"
  fi
  log "inverso on 127.0.0.1:$PROXY_PORT, pid $pid"
}

# run_cli ID: the suite's client against inverso; ID empty = every test.
run_cli() {
  (cd "$PKG" && exec timeout "$SUITE_TIMEOUT" env -u npm_config_id \
    npm_config_base="http://127.0.0.1:$PROXY_PORT" npm_package_config_id="$1" \
    node --no-warnings cli.mjs)
}

# The default output dir is made only once there is something to save.
make_out() {
  [[ -n $OUT ]] || OUT=$(mktemp -d "${TMPDIR:-/tmp}/inverso-cache-tests-out.XXXXXX")
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
  start_inverso

  if [[ -n $TEST_ID ]]; then
    log "running $TEST_ID"
    make_out
    local out=$OUT/$TEST_ID.txt
    run_cli "$TEST_ID" >"$out" 2>&1 || die "the suite's client failed (exit $?); see $out"
    cat "$out"
    log "output saved in $out"
    return 0
  fi

  log "running the suite (about 15 s)"
  local status=0
  run_cli '' >"$TMP/results.json" 2>"$TMP/cli.err" || status=$?
  # cli.mjs prints its errors and still exits 0: the results must parse.
  if ((status != 0)) || ! node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))
    process.exit(r && typeof r === "object" && Object.keys(r).length > 0 ? 0 : 1)' \
    "$TMP/results.json" 2>/dev/null; then
    head -c 2000 "$TMP/cli.err" >&2 || true
    head -c 2000 "$TMP/results.json" >&2 || true
    ((status == 124)) && die "the suite did not finish within ${SUITE_TIMEOUT}s"
    die "the suite's client failed (exit $status) or wrote no results"
  fi
  [[ -s $TMP/cli.err ]] && log "the suite's client wrote to stderr: $(head -c 500 "$TMP/cli.err")"
  make_out
  cp "$TMP/results.json" "$OUT/results.json"
  node "$SCRIPT_DIR/cache-tests-summary.mjs" "$PKG" "$OUT/results.json" | tee "$OUT/summary.txt"
  log "inverso's raw results and this summary: $OUT/results.json, $OUT/summary.txt"
}

main
