#!/usr/bin/env python3
"""Idle keep-alive connections for scripts/bench.sh.

Opens N client connections to HOST:PORT; on each it sends one GET, reads the
whole response, and then leaves the connection open and idle. When all are
open it writes STATE_DIR/ready ("ok=<n> failed=<n>") and waits (bounded by
--hold seconds) for STATE_DIR/release to appear, so that bench.sh can read the
proxy's memory while the connections sit idle. Then it counts how many of the
connections the server has not closed, writes STATE_DIR/done
("still_open=<n>"), closes everything and exits.

With --tls, each connection is a TLS one (SNI localhost, the certificate not
checked: the benchmark's is self-signed), so that the server holds a TLS
session per idle connection as well.

Connections are opened one after another: a thread-per-connection server gets
its threads one at a time, which is also what an idle fleet looks like.
"""

import argparse
import os
import socket
import ssl
import sys
import time


def read_response(sock):
    """Read one HTTP/1.1 response (Content-Length or chunked). True if 2xx."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        buf += chunk
        if len(buf) > 1 << 20:
            return False
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) < 2 or not parts[1].startswith(b"2"):
        return False
    length = None
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        # Good enough for a benchmark probe: the last chunk ends the body.
        while not body.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                return False
            body += chunk
        return True
    if length is None:
        return False
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        body += chunk
    return True


def still_open(sock):
    """An idle connection is open if nothing (not even EOF) is readable.

    (Not select(): it cannot watch descriptors above 1023.)"""
    sock.setblocking(False)
    if isinstance(sock, ssl.SSLSocket):
        # An SSLSocket takes no recv flags, so no MSG_PEEK: read instead
        # (nothing is used after this). A record that is not application
        # data (a session ticket) is taken in and leaves nothing to read;
        # b"" is close_notify or the TCP connection's end.
        try:
            return sock.recv(1) != b""
        except ssl.SSLWantReadError:
            return True
        except OSError:
            return False
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def write_file(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text + "\n")
    os.rename(tmp, path)  # bench.sh never sees a half-written file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("count", type=int)
    ap.add_argument("path")
    ap.add_argument("state_dir")
    ap.add_argument("--hold", type=float, default=120.0,
                    help="longest wait for the release file, seconds")
    ap.add_argument("--tls", action="store_true",
                    help="speak TLS (SNI localhost, the certificate not checked)")
    args = ap.parse_args()

    context = None
    if args.tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE

    request = (f"GET {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n"
               "User-Agent: inverso-bench-idle\r\n\r\n").encode()
    socks = []
    failed = 0
    consecutive_failures = 0
    for _ in range(args.count):
        s = None
        try:
            s = socket.create_connection((args.host, args.port), timeout=10)
            if context is not None:
                # A failed handshake closes the connection in wrap_socket;
                # the close() below is then a no-op (s is detached).
                s = context.wrap_socket(s, server_hostname="localhost")
            s.sendall(request)
            if not read_response(s):
                raise OSError("bad response")
            socks.append(s)
            consecutive_failures = 0
        except OSError:
            failed += 1
            consecutive_failures += 1
            if s is not None:
                s.close()
            if consecutive_failures >= 50:  # the server has given up; so do we
                failed += args.count - len(socks) - failed
                break

    write_file(os.path.join(args.state_dir, "ready"),
               f"ok={len(socks)} failed={failed}")

    deadline = time.monotonic() + args.hold
    release = os.path.join(args.state_dir, "release")
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.1)

    alive = sum(1 for s in socks if still_open(s))
    for s in socks:
        s.close()
    write_file(os.path.join(args.state_dir, "done"), f"still_open={alive}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
