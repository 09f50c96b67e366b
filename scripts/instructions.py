#!/usr/bin/env python3
"""User-space instructions inverso spends per request, counted by callgrind
(Python 3.11, standard library only; valgrind from Debian).

    scripts/instructions.py [--binary target/release/inverso] [--requests 2000]
                            [--cases proxied,hit,gzip-hit,miss] [--browser] [--top N]

Requests per second move with the machine by 20-50% from one hour to the
next (see README's Performance); instructions per request do not, so this
tells whether a change made the request path dearer, to the percent, on
any machine. It counts what every thread of the proxy executes in user
space (the access log's writer included), not the kernel's work nor time
spent waiting.

Builds nothing: build first with `cargo build --release`. For each case it
starts an in-process backend (a thread answering HTTP/1.1 with keep-alive,
1 KiB bodies) and the proxy under `valgrind --tool=callgrind` on ports of
127.0.0.1 the system picks, sends warm-up requests on one keep-alive
connection, zeroes the counters (`callgrind_control -z`), sends --requests
more, one at a time, dumps the counters (`callgrind_control -d`) and
divides. Cases:

  proxied   GET relayed to the backend, the cache off
  miss      GET relayed to the backend, with the cache on and the answer
            not storable (`Cache-Control: no-store`)
  hit       GET answered from the cache (a 1 KiB entry)
  gzip-hit  the same, the client taking gzip (`gzip = true`)

Every response is checked (status 200, the body's length); it stops only
the processes it started. Not run by `cargo test` or CI. Two runs of one
binary differ by up to 2-3%: how often a worker finds its next bytes after
a yield rather than blocking (see README's Performance) depends on timing,
under callgrind too. Compare builds with several thousand requests, and
take a difference smaller than that for none.
"""

import argparse
import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

BODY = b"x" * 1024
# What a browser sends besides Host (`--browser`): wrk, as the benchmarks
# run it, sends Host alone.
BROWSER_FIELDS = [
    ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("Accept-Language", "en-US,en;q=0.5"),
    ("Referer", "https://bench.test/index.html"),
    ("Cookie", "session=5f1e2d3c4b5a69788796a5b4c3d2e1f0; theme=dark"),
    ("Sec-Fetch-Dest", "document"),
    ("Sec-Fetch-Mode", "navigate"),
    ("Upgrade-Insecure-Requests", "1"),
]
CASES = ["proxied", "miss", "hit", "gzip-hit"]
# callgrind runs the proxy some 50 times slower: starting, and answering.
START_LIMIT = 60.0
IO_TIMEOUT = 30.0


class Backend(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    cache_control = "max-age=3600"

    def do_GET(self):  # noqa: N802 (the standard library's name)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(BODY)))
        self.send_header("Cache-Control", self.server.cache_control)
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args):
        pass


def start_backend(cache_control):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    server.cache_control = cache_control
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(case, port, backend_port):
    lines = [
        f"port = {port}",
        f"targets = 127.0.0.1:{backend_port}",
        "path_to_persistence =",
        "path_to_log =",
        "connection_timeout = 60s",
        "backend_timeout = 60s",
        "cache_size = 0" if case == "proxied" else "cache_size = 16MiB",
    ]
    if case == "gzip-hit":
        lines += ["gzip = true", "gzip_types = text/plain", "gzip_min_length = 0"]
    return "\n".join(lines) + "\n"


def wait_for_port(port, proc):
    deadline = time.monotonic() + START_LIMIT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the proxy exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"the proxy did not listen on {port} within {START_LIMIT:.0f} s")


class Client:
    """One keep-alive connection sending one request at a time."""

    def __init__(self, port, fields):
        self.port = port
        self.connect()
        extra = "".join(f"{name}: {value}\r\n" for name, value in fields)
        self.request = f"GET /page HTTP/1.1\r\nHost: bench.test\r\n{extra}\r\n".encode()

    def connect(self):
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=IO_TIMEOUT)
        self.buf = b""

    def get(self):
        self.sock.sendall(self.request)
        while b"\r\n\r\n" not in self.buf:
            self.fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status = head.split(b" ", 2)[1]
        if status != b"200":
            sys.exit(f"status {status.decode()}: {head.decode(errors='replace')}")
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            sys.exit(f"no Content-Length: {head.decode(errors='replace')}")
        while len(self.buf) < length:
            self.fill()
        self.buf = self.buf[length:]
        # After `keepalive_requests` answers, the proxy closes, as nginx.
        if b"\r\nconnection: close" in head.lower():
            self.sock.close()
            self.connect()
        return head

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            sys.exit("the proxy closed the connection")
        self.buf += data


def callgrind_control(flag, pid):
    done = subprocess.run(
        ["callgrind_control", flag, str(pid)],
        capture_output=True,
        text=True,
        timeout=START_LIMIT,
    )
    if done.returncode != 0:
        sys.exit(f"callgrind_control {flag} {pid}: {done.stdout}{done.stderr}")


def dumped_instructions(directory, top):
    """The `totals:` of the one dump callgrind_control -d made; with
    `top`, the functions that executed most of them printed first."""
    dumps = [f for f in os.listdir(directory) if f.startswith("callgrind.out.")]
    if len(dumps) != 1:
        sys.exit(f"expected one callgrind dump, found {dumps}")
    dump = os.path.join(directory, dumps[0])
    if top:
        annotated = subprocess.run(
            ["callgrind_annotate", "--inclusive=no", "--threshold=100", dump],
            capture_output=True,
            text=True,
            timeout=START_LIMIT,
        )
        listed = annotated.stdout.partition("file:function")[2].splitlines()
        # Less the frames every thread runs under (thread start, the
        # worker's closure), which callgrind counts whole.
        functions = [
            line
            for line in listed
            if line.strip()[:1].isdigit()
            and not any(frame in line for frame in ("clone", "start_thread", "thread_start"))
            and "call_once" not in line
            and "__rust_begin_short_backtrace" not in line
        ]
        print("\n".join(functions[:top]) or annotated.stdout[-2000:])
    with open(dump) as f:
        for line in f:
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1])
    sys.exit(f"no totals in {dumps[0]}")


def measure(binary, case, requests, warmup, top, browser=False):
    cache_control = "no-store" if case == "miss" else "max-age=3600"
    backend = start_backend(cache_control)
    directory = tempfile.mkdtemp(prefix="inverso-instructions-")
    port = free_port()
    conf = os.path.join(directory, "proxy.conf")
    with open(conf, "w") as f:
        f.write(config(case, port, backend.server_address[1]))
    fields = [("Accept-Encoding", "gzip")] if case == "gzip-hit" else []
    if browser:
        fields += BROWSER_FIELDS
    proc = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={directory}/callgrind.out.%p",
            "--dump-instr=no",
            binary,
            "--config",
            conf,
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(directory, "stderr"), "w"),
        cwd=directory,
    )
    try:
        wait_for_port(port, proc)
        client = Client(port, fields)
        for _ in range(warmup):
            client.get()
        head = client.get()
        expected = {"proxied": None, "miss": b"MISS", "hit": b"HIT", "gzip-hit": b"HIT"}[case]
        if expected and b"X-Cache: " + expected not in head:
            sys.exit(f"{case}: not a {expected.decode()}: {head.decode(errors='replace')}")
        if case == "gzip-hit" and b"Content-Encoding: gzip" not in head:
            sys.exit(f"{case}: not compressed: {head.decode(errors='replace')}")
        callgrind_control("-z", proc.pid)
        for _ in range(requests):
            client.get()
        # Before the dump: the last response's log line is written by the
        # logger thread, which the dump then counts too.
        time.sleep(0.5)
        callgrind_control("-d", proc.pid)
        # The dump is written when the program next runs callgrind's code.
        deadline = time.monotonic() + START_LIMIT
        while not any(f.startswith("callgrind.out.") and f.endswith(".1") for f in os.listdir(directory)):
            if time.monotonic() > deadline:
                sys.exit("callgrind wrote no dump")
            time.sleep(0.2)
        time.sleep(0.5)
        for f in os.listdir(directory):
            # The final dump at exit is not wanted: only the one asked for.
            if f.startswith("callgrind.out.") and not f.endswith(".1"):
                os.rename(os.path.join(directory, f), os.path.join(directory, "ignored." + f))
        return dumped_instructions(directory, top) / requests
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=START_LIMIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        backend.shutdown()
        shutil.rmtree(directory, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", default="target/release/inverso")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument(
        "--top", type=int, default=0, help="print the N functions that executed most (all threads)"
    )
    parser.add_argument(
        "--browser", action="store_true", help="send a browser's fields too (by default Host alone, as wrk)"
    )
    args = parser.parse_args()
    # The proxy runs in a directory of its own.
    args.binary = os.path.abspath(args.binary)
    cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        sys.exit(f"unknown case(s) {unknown}; known: {CASES}")
    for tool in ["valgrind", "callgrind_control"]:
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install valgrind")
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"{args.binary} is not an executable: cargo build --release first")
    if not 0 < args.requests <= 100_000 or not 0 <= args.warmup <= 10_000:
        sys.exit("--requests must be 1 to 100000, --warmup 0 to 10000")
    print(f"{'case':<10} {'requests':>8} {'instructions/request':>21}")
    for case in cases:
        per = measure(args.binary, case, args.requests, args.warmup, args.top, args.browser)
        print(f"{case:<10} {args.requests:>8} {per:>21,.0f}", flush=True)


if __name__ == "__main__":
    main()
