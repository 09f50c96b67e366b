# shellcheck shell=bash
# Process and port helpers shared by scripts/bench.sh and
# scripts/cache-tests.sh; sourced, not run. The sourcing script defines
# log and die, and stops what it started with stop_all (from its EXIT trap).
# Every process it starts goes into PIDS, and is only ever stopped by that
# PID.

PIDS=() # every process we started, stopped by PID on exit

alive() {
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ $state != Z* ]] # a zombie has exited; it only waits to be reaped
}

forget_pid() {
  local keep=() p
  for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  PIDS=("${keep[@]+"${keep[@]}"}")
}

# Stop one process we started: TERM, wait (bounded), then KILL. nginx's
# workers (and cache manager and loader) are its children; if the master has
# to be killed they would be orphaned, so they are collected first and
# killed by PID too.
stop_pid() {
  local pid=$1 children i
  children=$(ps -o pid= --ppid "$pid" 2>/dev/null || true)
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
  for i in $children; do
    if alive "$i"; then kill -KILL "$i" 2>/dev/null || true; fi
  done
  forget_pid "$pid"
}

# Newest first: a proxy before the servers behind it.
stop_all() {
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
}

# A port is free if we can bind it on 127.0.0.1. Ports are drawn below the
# kernel's ephemeral range, so that no outgoing connection (wrk, proxies)
# takes them between the check and our server's bind.
USED_PORTS=" "
# pick_port VAR: sets VAR to a free port. (Functions that start things return
# through a named variable, not $(...): a subshell would lose PIDS and
# USED_PORTS, and would be the parent of what it started.)
pick_port() {
  local _lo _hi _port _i
  read -r _lo _ </proc/sys/net/ipv4/ip_local_port_range
  _hi=$((_lo - 1)) _lo=$((_lo > 20000 ? 10000 : 2000))
  for ((_i = 0; _i < 200; _i++)); do
    _port=$((_lo + RANDOM % (_hi - _lo)))
    [[ $USED_PORTS == *" $_port "* ]] && continue
    if python3 -c 'import socket,sys; socket.socket().bind(("127.0.0.1", int(sys.argv[1])))' \
      "$_port" 2>/dev/null; then
      USED_PORTS+="$_port "
      printf -v "$1" '%s' "$_port"
      return 0
    fi
  done
  die "no free port found"
}

# Wait (bounded) until PID listens on PORT. Fails if the process died.
wait_listening() {
  local pid=$1 port=$2 i
  for ((i = 0; i < 100; i++)); do
    alive "$pid" || return 1
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}
