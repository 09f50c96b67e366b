#!/usr/bin/env python3
"""Chaos soak of a built inverso binary (Python 3.11, standard library only).

    scripts/soak.py [--binary target/release/inverso] [--duration 120] [--seed N]

Builds nothing: build first with `cargo build --release`. Everything runs on
127.0.0.1 on ports the system picks. It starts three in-process backends
(threads) that answer in many ways, good and bad (Content-Length, chunked,
until close, slow, 1 MiB, cacheable with an ETag, cut mid-body, bad chunk
sizes, a garbage status line, 100-continue, resets), names a fourth port
that refuses connections, writes a proxy.conf (cache with a snapshot, admin
listener, retries, health checks, a rate-limited route, gzip, a files
route, an access log, short timeouts) into a temporary directory, and runs
the proxy for the duration under, all at once:

  - good clients (keep-alive, pipelined, HEAD, Range, conditional, gzip)
    that check every response is well formed and its body right;
  - bad clients (slowloris heads, half bodies, oversized heads,
    smuggling-shaped requests, resets with SO_LINGER 0, clients that never
    read their response);
  - SIGHUP reloads every few seconds, some changing the file, some with a
    broken file that must be refused while the old configuration serves,
    and SIGUSR1 log rotations (rename, then reopen);
  - admin calls (/status, /metrics, PURGE, PUT /targets/... drain/ready).

It samples the proxy's RSS, descriptors and threads from /proc, and after
the load a quiet period (idle workers retire after a minute) checks: the
process lives, descriptors and threads are back near their baseline, RSS
did not keep growing, nothing panicked, every good-client error is
explained (a good request never gets a malformed response; a 5xx of the
pool of bad backends is expected), SIGTERM ends it with code 0, and the
snapshot loads on a restart (a cached URL is a HIT). Prints a summary and
exits non-zero when a check fails. It stops only the processes it started.
Not run by `cargo test` or CI.
"""

import argparse
import collections
import gzip
import hashlib
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HOST = "127.0.0.1"
STOP = threading.Event()  # the load's end
ALL_STOP = threading.Event()  # the backends' end
LOCK = threading.Lock()
COUNTS = collections.Counter()  # good-client outcomes by kind
BAD = collections.Counter()  # bad-client attempts by kind
ADMIN = collections.Counter()
RELOADS = collections.Counter()
UNEXPLAINED = []  # (kind, detail) of good-client failures, first few


def count(kind, detail=None):
    with LOCK:
        COUNTS[kind] += 1
        if detail is not None and len(UNEXPLAINED) < 40:
            UNEXPLAINED.append((kind, detail))


# ---------------------------------------------------------------- bodies


def body_for(path, n):
    """Deterministic body of n bytes for a path, so a cache hit can be checked."""
    seed = hashlib.sha256(path.encode()).hexdigest().encode()
    line = (seed + b"\n") * 4
    reps = n // len(line) + 1
    return (line * reps)[:n]


HUGE = 1024 * 1024
TEXT = (b"<html><body>" + b"inverso soak text line, compressible. " * 200 + b"</body></html>\n")


# ---------------------------------------------------------------- backends


def read_head(sock, limit=65536):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            return None, b""
        buf += chunk
        if len(buf) > limit:
            return None, b""
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head.decode("latin-1"), rest


def parse_req_head(head):
    lines = head.split("\r\n")
    parts = lines[0].split(" ")
    method, target = parts[0], parts[1] if len(parts) > 1 else "/"
    fields = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            fields.setdefault(k.strip().lower(), v.strip())
    return method, target, fields


def read_req_body(sock, fields, rest):
    """Reads the request body (Content-Length or chunked); returns leftovers."""
    if "content-length" in fields:
        n = int(fields["content-length"])
        while len(rest) < n:
            c = sock.recv(65536)
            if not c:
                raise ConnectionError("body cut")
            rest += c
        return rest[n:]
    if "chunked" in fields.get("transfer-encoding", "").lower():
        while True:
            while b"\r\n" not in rest:
                c = sock.recv(65536)
                if not c:
                    raise ConnectionError("chunk cut")
                rest += c
            line, rest = rest.split(b"\r\n", 1)
            size = int(line.split(b";")[0], 16)
            if size == 0:
                while b"\r\n" not in rest:
                    c = sock.recv(4096)
                    if not c:
                        raise ConnectionError("trailer cut")
                    rest += c
                # trailers end with an empty line; the proxy sends none
                _, rest = rest.split(b"\r\n", 1)
                return rest
            while len(rest) < size + 2:
                c = sock.recv(65536)
                if not c:
                    raise ConnectionError("chunk cut")
                rest += c
            rest = rest[size + 2:]
    return rest


def rst_close(sock):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class Backend:
    """A raw-socket backend in threads, answering by path."""

    def __init__(self, name):
        self.name = name
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((HOST, 0))
        self.lsock.listen(256)
        self.lsock.settimeout(0.5)
        self.port = self.lsock.getsockname()[1]
        self.conns = 0
        self.thread = threading.Thread(target=self.accept_loop, daemon=True)

    def start(self):
        self.thread.start()

    def accept_loop(self):
        while not ALL_STOP.is_set():
            try:
                s, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            threading.Thread(target=self.serve, args=(s,), daemon=True).start()
        self.lsock.close()

    def serve(self, s):
        s.settimeout(20)
        rest = b""
        try:
            for _ in range(10000):
                if ALL_STOP.is_set():
                    break
                if b"\r\n\r\n" in rest:
                    head, rest = rest.split(b"\r\n\r\n", 1)
                    head = head.decode("latin-1")
                else:
                    head, more = read_head(s)
                    if head is None:
                        break
                    head = (rest.decode("latin-1") + head) if rest else head
                    rest = more
                method, target, fields = parse_req_head(head)
                if fields.get("expect", "").lower() == "100-continue":
                    s.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                rest = read_req_body(s, fields, rest)
                keep = self.answer(s, method, target, fields)
                if not keep:
                    break
                if random.random() < 0.03:
                    break  # closes a keep-alive connection unannounced, as an idle timeout does
        except (OSError, ValueError, ConnectionError):
            pass
        try:
            s.close()
        except OSError:
            pass

    def send(self, s, status, fields, body, method, close=False):
        head = "HTTP/1.1 %s\r\n" % status
        for k, v in fields:
            head += "%s: %s\r\n" % (k, v)
        if close:
            head += "Connection: close\r\n"
        head += "\r\n"
        s.sendall(head.encode() + (b"" if method == "HEAD" else body))
        return not close

    def answer(self, s, method, target, fields):
        path = target.split("?")[0]
        rnd = random.random()
        close = rnd < 0.1  # some answers end their connection
        if path == "/healthz":
            return self.send(s, "200 OK", [("Content-Length", 2)], b"ok", method)
        m = re.match(r"^/cl/(\d+)$", path)
        if m:
            n = int(m.group(1))
            body = body_for(path, n)
            return self.send(s, "200 OK", [("Content-Length", n), ("Content-Type", "application/octet-stream"), ("Cache-Control", "no-store")], body, method, close)
        m = re.match(r"^/chunked/(\d+)$", path)
        if m:
            n = int(m.group(1))
            body = body_for(path, n)
            if method == "HEAD":
                return self.send(s, "200 OK", [("Transfer-Encoding", "chunked"), ("Cache-Control", "no-store")], b"", method, close)
            s.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nCache-Control: no-store\r\nContent-Type: application/octet-stream\r\n" + (b"Connection: close\r\n" if close else b"") + b"\r\n")
            pos = 0
            while pos < n:
                step = random.randint(1, 3000)
                piece = body[pos:pos + step]
                s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                pos += step
                if random.random() < 0.05:
                    time.sleep(0.06)
            s.sendall(b"0\r\n\r\n")
            return not close
        m = re.match(r"^/close/(\d+)$", path)
        if m:
            n = int(m.group(1))
            body = body_for(path, n)
            s.sendall(b"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n" + (b"" if method == "HEAD" else body))
            s.shutdown(socket.SHUT_WR)
            return False
        m = re.match(r"^/slow/(\d+)$", path)
        if m:
            time.sleep(int(m.group(1)) / 1000.0)
            body = body_for(path, 500)
            return self.send(s, "200 OK", [("Content-Length", 500), ("Cache-Control", "no-store")], body, method, close)
        if path == "/huge":
            body = body_for(path, HUGE)
            return self.send(s, "200 OK", [("Content-Length", HUGE), ("Cache-Control", "max-age=5"), ("ETag", '"huge"')], body, method, close)
        m = re.match(r"^/cache/(\w+)$", path)
        if m:
            body = body_for(path, 3000)
            etag = '"%s"' % hashlib.md5(body).hexdigest()[:12]
            age = "3600" if m.group(1).startswith("long") else "1"
            if fields.get("if-none-match") == etag:
                return self.send(s, "304 Not Modified", [("ETag", etag), ("Cache-Control", "max-age=" + age)], b"", "HEAD", close)
            return self.send(s, "200 OK", [("Content-Length", len(body)), ("ETag", etag), ("Cache-Control", "max-age=" + age), ("Content-Type", "application/octet-stream")], body, method, close)
        if path.startswith("/text"):
            return self.send(s, "200 OK", [("Content-Length", len(TEXT)), ("Content-Type", "text/html"), ("Cache-Control", "max-age=2")], TEXT, method, close)
        if path == "/upload":
            body = b"got it"
            return self.send(s, "200 OK", [("Content-Length", len(body)), ("Cache-Control", "no-store")], body, method, close)
        # the bad pool's answers
        if path == "/bad/midbody":
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\nCache-Control: no-store\r\n\r\n" + b"x" * 4000)
            rst_close(s) if random.random() < 0.5 else s.close()
            return False
        if path in BAD_REPLIES:
            s.sendall(BAD_REPLIES[path])
            return False
        if path == "/bad/reset":
            rst_close(s)
            return False
        if path == "/bad/silent":
            time.sleep(5)  # past backend_timeout
            return False
        return self.send(s, "404 Not Found", [("Content-Length", 3)], b"no\n", method, close)


# The bad pool's answers that are bytes sent as they are, the connection
# closed after them.
BAD_REPLIES = {
    "/bad/chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nCache-Control: no-store\r\n\r\n"
    b"5\r\nhello\r\nzz\r\nbad\r\n0\r\n\r\n",
    "/bad/status": b"HTTQ/9 what is this\r\n\r\n",
    "/bad/twocl": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello!!",
    "/bad/bigcl": b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nabc",
}


def dead_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------- a strict client


class Malformed(Exception):
    pass


class Unexplained(Exception):
    """A well-formed answer a good request should not get."""


class Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.eof = False

    slow = False

    def fill(self):
        if self.slow:
            time.sleep(0.01)
        c = self.sock.recv(4096 if self.slow else 65536)
        if not c:
            self.eof = True
            return False
        self.buf += c
        return True

    def line(self, limit=65536):
        while b"\r\n" not in self.buf:
            if len(self.buf) > limit:
                raise Malformed("line too long")
            if not self.fill():
                raise EOFError("eof in line")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, n):
        while len(self.buf) < n:
            if not self.fill():
                raise Malformed("body short: got %d of %d" % (len(self.buf), n))
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def rest(self):
        while self.fill():
            pass
        data, self.buf = self.buf, b""
        return data


STATUS_RE = re.compile(rb"^HTTP/1\.[01] (\d{3}) [\x20-\x7e\t]*$")


def read_response(rd, method):
    """Reads one response strictly; returns (status, fields dict of lists, body, keep)."""
    while True:
        try:
            sl = rd.line()
        except EOFError:
            if not rd.buf:
                raise EOFError("eof before response")
            raise Malformed("eof in status line")
        m = STATUS_RE.match(sl)
        if not m:
            raise Malformed("bad status line %r" % sl[:80])
        status = int(m.group(1))
        fields = collections.defaultdict(list)
        for _ in range(300):
            try:
                line = rd.line()
            except EOFError:
                raise Malformed("eof in head")
            if line == b"":
                break
            if b":" not in line or line[:1] in (b" ", b"\t"):
                raise Malformed("bad field line %r" % line[:80])
            k, v = line.split(b":", 1)
            if not re.match(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", k):
                raise Malformed("bad field name %r" % k[:40])
            fields[k.decode().lower()].append(v.strip().decode("latin-1"))
        else:
            raise Malformed("too many fields")
        if 100 <= status < 200:
            if status == 101:
                raise Malformed("unexpected 101")
            continue
        break
    te = ",".join(fields.get("transfer-encoding", [])).lower()
    cls = fields.get("content-length", [])
    conn = ",".join(fields.get("connection", [])).lower()
    keep = "close" not in conn
    if te and cls:
        raise Malformed("both Transfer-Encoding and Content-Length")
    if len(set(cls)) > 1:
        raise Malformed("two Content-Length values %r" % cls)
    if method == "HEAD" or status in (204, 304):
        if status in (204, 304) and cls and cls[0] != "0" and method != "HEAD" and status == 204:
            raise Malformed("204 with a Content-Length")
        return status, fields, b"", keep
    if te:
        if te.strip() != "chunked":
            raise Malformed("transfer-encoding %r" % te)
        body = b""
        for _ in range(1000000):
            try:
                line = rd.line(1024)
            except EOFError:
                raise Malformed("eof in chunk size")
            sz = line.split(b";")[0].strip()
            if not re.match(rb"^[0-9a-fA-F]{1,16}$", sz):
                raise Malformed("bad chunk size %r" % line[:40])
            n = int(sz, 16)
            if n == 0:
                for _ in range(100):
                    try:
                        t = rd.line()
                    except EOFError:
                        raise Malformed("eof in trailers")
                    if t == b"":
                        break
                break
            body += rd.exact(n)
            if rd.exact(2) != b"\r\n":
                raise Malformed("chunk without CRLF")
        return status, fields, body, keep
    if cls:
        if not cls[0].isdigit():
            raise Malformed("bad Content-Length %r" % cls[0])
        return status, fields, rd.exact(int(cls[0])), keep
    # until close
    return status, fields, rd.rest(), False


def connect(port, timeout=10):
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def req(method, path, extra=(), body=None, host="soak.test"):
    h = "%s %s HTTP/1.1\r\nHost: %s\r\n" % (method, path, host)
    for k, v in extra:
        h += "%s: %s\r\n" % (k, v)
    if body is not None and not any(k.lower() == "transfer-encoding" for k, _ in extra):
        h += "Content-Length: %d\r\n" % len(body)
    return h.encode() + b"\r\n" + (body or b"")


# ---------------------------------------------------------------- good clients

FILES = {"a.txt": b"file a\n" * 50, "b.bin": os.urandom(20000), "sub/c.html": TEXT}


def expected(path):
    """What a path answers when the backend is well: (statuses, body or None for any)."""
    p = path.split("?")[0]
    for pre in ("/cl/", "/chunked/", "/close/"):
        if p.startswith(pre):
            return body_for(p, int(p[len(pre):]))
    if p.startswith("/slow/"):
        return body_for(p, 500)
    if p == "/huge":
        return body_for(p, HUGE)
    if p.startswith("/cache/"):
        return body_for(p, 3000)
    if p.startswith("/text"):
        return TEXT
    if p.startswith("/files/"):
        return FILES[p[len("/files/"):]]
    if p == "/upload":
        return b"got it"
    return None


def good_paths(rng):
    c = rng.random()
    if c < 0.15:
        return "/cl/%d" % rng.choice([0, 1, 100, 5000, 70000, 200000])
    if c < 0.3:
        return "/chunked/%d" % rng.choice([0, 10, 5000, 100000])
    if c < 0.37:
        return "/close/%d" % rng.choice([0, 100, 30000])
    if c < 0.42:
        return "/slow/%d" % rng.choice([100, 400, 1200])
    if c < 0.45:
        return "/huge"
    if c < 0.65:
        return "/cache/%s" % rng.choice(["a", "b", "c", "d", "long1"])
    if c < 0.75:
        return "/text%d" % rng.randint(0, 3)
    if c < 0.83:
        return "/files/" + rng.choice(list(FILES))
    if c < 0.85:
        return rng.choice(["/bad/status", "/bad/reset", "/bad/twocl", "/dead/cl/10", "/bad/bigcl"])
    if c < 0.9:
        return "/upload"
    return "/limited/cl/%d" % rng.choice([10, 1000])


def check_response(method, path, status, fields, body, sent_fields):
    """Returns an outcome kind for a well-framed response, or raises Malformed."""
    exp = expected(path[len("/limited"):] if path.startswith("/limited") else path)
    if path.startswith(("/bad/", "/dead/")):
        # backends that fail before a response begins: the proxy answers for them
        if status in (502, 503, 504):
            return "bad-backend-%d" % status
        if method == "HEAD" and status == 200 and path in ("/bad/twocl", "/bad/bigcl"):
            # a HEAD response ends at its head whatever its Content-Length says (RFC 9112 6.3)
            return "bad-backend-head-200"
        raise Malformed("%d for %s %s" % (status, method, path))
    if status == 429 and path.startswith("/limited"):
        return "429-rate-limited"
    if status == 502 and method == "POST":
        # the backends close some keep-alive connections unannounced; a POST
        # sent on one as it closed is not sent again (RFC 9112 9.3.1): the
        # proxy must have logged it (checked at the end)
        return "502-post-on-closed-pooled"
    if status in (502, 503, 504):
        raise Unexplained("%d for a good request %s %s" % (status, method, path))
    if status == 304:
        if "if-none-match" in sent_fields:
            return "304"
        raise Malformed("304 to an unconditional request")
    if status == 206:
        rng_ = sent_fields.get("range")
        m = re.match(r"bytes=(\d+)-(\d+)", rng_ or "")
        cr = fields.get("content-range", [""])[0]
        m2 = re.match(r"bytes (\d+)-(\d+)/(\d+)", cr)
        if not m or not m2:
            raise Malformed("206 with Content-Range %r to Range %r" % (cr, rng_))
        a, b = int(m2.group(1)), int(m2.group(2))
        if method != "HEAD" and exp is not None and body != exp[a:b + 1]:
            raise Malformed("206 body wrong (%d bytes, range %d-%d)" % (len(body), a, b))
        return "206"
    if status != 200:
        raise Malformed("status %d for %s %s" % (status, method, path))
    if method == "HEAD":
        return "200-head"
    enc = ",".join(fields.get("content-encoding", []))
    if enc == "gzip":
        if "gzip" not in sent_fields.get("accept-encoding", ""):
            raise Malformed("gzip to a client that did not ask")
        try:
            body = gzip.decompress(body)
        except Exception as e:  # noqa: BLE001
            raise Malformed("bad gzip: %s" % e)
    elif enc:
        raise Malformed("content-encoding %r" % enc)
    if exp is not None and body != exp:
        raise Malformed("body wrong for %s: %d bytes, expected %d" % (path, len(body), len(exp)))
    return "200" + ("-gzip" if enc else "")


def good_client(port, seed, deadline):
    rng = random.Random(seed)
    while not STOP.is_set() and time.time() < deadline:
        mode = rng.random()
        try:
            s = connect(port)
        except OSError as e:
            count("connect-failed", str(e))
            time.sleep(0.2)
            continue
        rd = Reader(s)
        rd.slow = mode > 0.95
        try:
            n = rng.randint(1, 8)
            pipelined = mode < 0.2
            batch = []
            for i in range(n):
                path = good_paths(rng)
                method = "GET"
                extra = []
                body = None
                r = rng.random()
                if path == "/upload":
                    method = "POST"
                    body = os.urandom(rng.choice([10, 5000, 100000]))
                    if rng.random() < 0.3:
                        extra.append(("Expect", "100-continue"))
                    if rng.random() < 0.4:
                        extra.append(("Transfer-Encoding", "chunked"))
                        pieces = [body[k:k + 7000] for k in range(0, len(body), 7000)]
                        body = b"".join(b"%x\r\n%s\r\n" % (len(x), x) for x in pieces) + b"0\r\n\r\n"
                elif r < 0.15:
                    method = "HEAD"
                elif r < 0.3:
                    a = rng.randint(0, 50)
                    extra.append(("Range", "bytes=%d-%d" % (a, a + rng.randint(0, 100))))
                elif r < 0.4 and path.startswith("/cache/"):
                    etag = '"%s"' % hashlib.md5(body_for(path, 3000)).hexdigest()[:12]
                    extra.append(("If-None-Match", etag))
                if rng.random() < 0.4:
                    extra.append(("Accept-Encoding", "gzip"))
                if rng.random() < 0.3:
                    # cache_vary's cookie: a copy per value, the body the same.
                    extra.append(("Cookie", "sid=%d; lang=%s" % (rng.randint(0, 99), rng.choice(["en", "fr", "de"]))))
                last = i == n - 1
                if last and rng.random() < 0.3:
                    extra.append(("Connection", "close"))
                sent = {k.lower(): v for k, v in extra}
                batch.append((method, path, sent, req(method, path, extra, body)))
            if pipelined:
                # only requests without a body or an Expect go pipelined
                batch = [b for b in batch if "expect" not in b[2]] or batch[:1]
                s.sendall(b"".join(b[3] for b in batch))
            for j, (method, path, sent, raw) in enumerate(batch):
                if not pipelined:
                    s.sendall(raw)
                try:
                    status, fields, body, keep = read_response(rd, method)
                except EOFError:
                    count("eof-before-response" + ("-first" if j == 0 else "-reused"), "%s %s (req %d on conn)" % (method, path, j))
                    break
                except socket.timeout:
                    count("timeout", "%s %s" % (method, path))
                    break
                except ConnectionResetError:
                    count("reset", "%s %s (req %d)" % (method, path, j))
                    break
                kind = check_response(method, path, status, fields, body, sent)
                count(kind)
                if not keep:
                    break
        except Malformed as e:
            count("MALFORMED", "%s" % e)
        except Unexplained as e:
            count("5xx-to-good-request", "%s" % e)
        except (ConnectionResetError, BrokenPipeError) as e:
            count("reset-on-send", str(e))
        except socket.timeout:
            count("timeout", "on send")
        except OSError as e:
            count("oserror", str(e))
        finally:
            s.close()


# ---------------------------------------------------------------- bad clients


def bad_client(port, seed, deadline):
    rng = random.Random(seed)
    kinds = ["slowloris", "halfbody", "oversized", "clte", "twocl", "badchunk",
             "rst", "noread", "garbage", "bad-backend", "expect-close"]
    for _ in range(1000000):
        if STOP.is_set() or time.time() > deadline:
            return
        kind = rng.choice(kinds)
        with LOCK:
            BAD[kind] += 1
        try:
            s = connect(port, timeout=8)
        except OSError:
            with LOCK:
                BAD["connect-failed"] += 1
            time.sleep(0.2)
            continue
        try:
            if kind == "slowloris":
                s.sendall(b"GET /cl/10 HTTP/1.1\r\n")
                for i in range(rng.randint(1, 6)):
                    if STOP.is_set():
                        break
                    time.sleep(1)
                    s.sendall(b"X-A%d: b\r\n" % i)
            elif kind == "halfbody":
                s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"y" * rng.randint(0, 90000))
                time.sleep(rng.random())
            elif kind == "oversized":
                s.sendall(b"GET /cl/10 HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n")
                s.recv(4096)
            elif kind == "clte":
                s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /cl/1 HTTP/1.1\r\nHost: x\r\n\r\n")
                s.recv(4096)
            elif kind == "twocl":
                s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 10\r\n\r\nabcdefghij")
                s.recv(4096)
            elif kind == "badchunk":
                s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")
                s.recv(4096)
            elif kind == "rst":
                s.sendall(req("GET", rng.choice(["/huge", "/slow/800", "/chunked/100000", "/cl/200000"])))
                time.sleep(rng.random() * 0.2)
                rst_close(s)
                continue
            elif kind == "noread":
                s.sendall(req("GET", "/huge") * rng.randint(1, 5))
                time.sleep(rng.uniform(1, 5))
            elif kind == "garbage":
                s.sendall(bytes(rng.randrange(256) for _ in range(rng.randint(1, 3000))))
                s.recv(4096)
            elif kind == "bad-backend":
                # a good client's request to a bad backend: the answer must still be well formed
                path = rng.choice(["/bad/midbody", "/bad/chunk", "/bad/status", "/bad/reset", "/bad/silent", "/bad/twocl", "/bad/bigcl", "/dead/cl/10"])
                s.sendall(req("GET", path))
                rd = Reader(s)
                try:
                    status, fields, body, keep = read_response(rd, "GET")
                    count("bad-backend-%d" % status)
                    if status == 200 and path != "/dead/cl/10":
                        # a 200 head already sent, then cut: the framing must show the cut
                        count("MALFORMED", "bad backend %s answered 200 and framed whole (%d bytes)" % (path, len(body)))
                except Malformed as e:
                    if path in ("/bad/midbody", "/bad/chunk"):
                        count("bad-backend-cut-body")  # a cut response after its head: expected
                    else:
                        count("MALFORMED", "bad backend %s: %s" % (path, e))
                except EOFError:
                    count("bad-backend-eof")
            elif kind == "expect-close":
                s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 50000\r\nExpect: 100-continue\r\n\r\n")
                s.recv(4096)
        except socket.timeout:
            with LOCK:
                BAD[kind + "-timeout"] += 1
        except OSError:
            pass
        finally:
            try:
                s.close()
            except OSError:
                pass


# ---------------------------------------------------------------- admin, reloads, sampling


def admin_call(port, method, path, body=b"", host="127.0.0.1"):
    s = connect(port, timeout=10)
    try:
        s.sendall(req(method, path, [("Connection", "close")], body if method == "PUT" else None, host=host))
        return read_response(Reader(s), method)
    finally:
        s.close()


def admin_loop(admin_port, targets, deadline):
    rng = random.Random(7)
    while not STOP.is_set() and time.time() < deadline:
        what = rng.choice(["status", "metrics", "purge", "drain", "cache"])
        try:
            if what == "status":
                st, f, b, _ = admin_call(admin_port, "GET", "/status")
                json.loads(b)
            elif what == "metrics":
                st, f, b, _ = admin_call(admin_port, "GET", "/metrics")
                if b"inverso_" not in b:
                    raise Malformed("metrics without inverso_")
            elif what == "cache":
                st, f, b, _ = admin_call(admin_port, "GET", "/cache")
                json.loads(b)
            elif what == "purge":
                p = rng.choice(["/cache/a", "/cache/b", "/text1", "/cache/*", "/huge"])
                st, f, b, _ = admin_call(admin_port, "PURGE", p, host="soak.test")
                if st not in (200, 404):
                    raise Malformed("purge %d" % st)
            else:
                t = rng.choice(targets)
                st, f, b, _ = admin_call(admin_port, "PUT", "/targets/%s" % t, b"drain")
                if st != 200:
                    raise Malformed("drain %d %r" % (st, b[:200]))
                time.sleep(rng.uniform(0.2, 2))
                st, f, b, _ = admin_call(admin_port, "PUT", "/targets/%s" % t, b"ready")
                if st != 200:
                    raise Malformed("ready %d" % st)
            with LOCK:
                ADMIN[what + "-ok"] += 1
        except (Malformed, OSError, EOFError, ValueError) as e:
            with LOCK:
                ADMIN[what + "-FAILED"] += 1
                if len(UNEXPLAINED) < 40:
                    UNEXPLAINED.append(("admin " + what, str(e)))
        time.sleep(rng.uniform(0.2, 1.0))


def probe(port, path="/cl/100"):
    s = connect(port, timeout=10)
    try:
        s.sendall(req("GET", path, [("Connection", "close")]))
        st, f, b, _ = read_response(Reader(s), "GET")
        return st, f, b
    finally:
        s.close()


def reload_loop(proc, conf_path, make_conf, port, deadline):
    rng = random.Random(11)
    i = 0
    while not STOP.is_set() and time.time() < deadline:
        STOP.wait(rng.uniform(2, 5))
        if STOP.is_set():
            break
        i += 1
        kind = rng.choice(["same", "change", "change", "broken", "rotate"])
        if kind == "rotate":
            # logrotate's way: rename, then SIGUSR1 to reopen
            log = os.path.join(os.path.dirname(conf_path), "access.log")
            try:
                os.replace(log, "%s.%d" % (log, RELOADS["rotate"] + 1))
            except OSError:
                pass
            RELOADS[kind] += 1
            os.kill(proc.pid, signal.SIGUSR1)
            continue
        text = make_conf(variant=i) if kind == "change" else make_conf()
        if kind == "broken":
            text += "keepalive_timeout = banana\n"  # a key the good file does not set
        tmp = conf_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, conf_path)
        os.kill(proc.pid, signal.SIGHUP)
        RELOADS[kind] += 1
        if kind == "broken":
            time.sleep(0.5)
            try:
                st, _, b = probe(port)
                if st != 200 or b != body_for("/cl/100", 100):
                    raise Malformed("status %d" % st)
                RELOADS["broken-still-served"] += 1
            except (Malformed, OSError, EOFError) as e:
                RELOADS["broken-NOT-SERVED"] += 1
                count("reload-broken-not-served", str(e))
            # put a good file back for the next reload
            with open(tmp, "w") as f:
                f.write(make_conf())
            os.replace(tmp, conf_path)


def sample(pid):
    with open("/proc/%d/status" % pid) as f:
        st = f.read()
    rss = int(re.search(r"VmRSS:\s+(\d+)", st).group(1))
    threads = int(re.search(r"Threads:\s+(\d+)", st).group(1))
    fds = len(os.listdir("/proc/%d/fd" % pid))
    return {"t": time.time(), "rss_kb": rss, "threads": threads, "fds": fds}


def sampler(pid, samples, every):
    while not ALL_STOP.is_set():
        try:
            samples.append(sample(pid))
        except (OSError, AttributeError):
            return
        ALL_STOP.wait(every)


# ---------------------------------------------------------------- the proxy


def write_files(d):
    for name, data in FILES.items():
        p = os.path.join(d, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)


def start_proxy(binary, conf_path, workdir, tag):
    out = open(os.path.join(workdir, "stdout-%s.txt" % tag), "wb")
    err = open(os.path.join(workdir, "stderr-%s.txt" % tag), "wb")
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "info")
    proc = subprocess.Popen([binary, "--config", conf_path], stdout=out, stderr=err, cwd=workdir, env=env)
    return proc, out, err


def wait_listening(port, proc, secs=20):
    end = time.time() + secs
    while time.time() < end:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    p = s.getsockname()[1]
    s.close()
    return p


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default="target/release/inverso")
    ap.add_argument("--duration", type=float, default=120)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--good", type=int, default=6, help="good client threads")
    ap.add_argument("--bad", type=int, default=4, help="bad client threads")
    ap.add_argument("--quiet", type=float, default=75, help="seconds of quiet before the final checks (idle workers live a minute)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        sys.exit("no binary at %s: build it with cargo build --release" % binary)
    random.seed(args.seed)
    print("seed %d, duration %.0fs" % (args.seed, args.duration), flush=True)

    workdir = tempfile.mkdtemp(prefix="inverso-soak-")
    filesdir = os.path.join(workdir, "files")
    write_files(filesdir)
    backends = [Backend("b1"), Backend("b2"), Backend("bad")]
    for b in backends:
        b.start()
    dead, dead2 = dead_port(), dead_port()
    port, admin_port = free_port(), free_port()
    conf_path = os.path.join(workdir, "proxy.conf")
    log_path = os.path.join(workdir, "access.log")

    def make_conf(variant=0):
        v = variant % 4
        lines = [
            "bind = 127.0.0.1",
            "port = %d" % port,
            "admin_port = %d" % admin_port,
            "targets = 127.0.0.1:%d%s, 127.0.0.1:%d%s" % (backends[0].port, " weight=3" if v == 1 else "", backends[1].port, "" if v == 3 else ", 127.0.0.1:%d" % dead),
            "pool.bad = 127.0.0.1:%d" % backends[2].port,
            "pool.dead = 127.0.0.1:%d" % dead2,
            "route./bad/ = bad",
            "route./dead/ = dead rewrite=/",
            "route./limited/ = default rewrite=/ rate_limit=%d/s rate_limit_burst=5" % (20 + v),
            "route./files/ = files %s" % filesdir,
            "cache_size = 16MiB",
            "path_to_persistence = %s" % os.path.join(workdir, "cache", "cache.bin"),
            "unit_time = 1s",
            "retries = 2",
            "max_fails = %d" % (2 + v % 2),
            "fail_timeout = 2s",
            "health_check_path = /healthz",
            "health_check_interval = 1s",
            "gzip = true",
            "path_to_log = %s" % log_path,
            "connection_timeout = 3s",
            "client_header_timeout = 2s",
            "client_body_timeout = 3s",
            "shutdown_timeout = 5s",
            "upstream_keepalive = %d" % (8 + v),
            "max_header_size = 16KiB",
            # Exercised, never reached: every client here is 127.0.0.1,
            # the bad ones' 4xx would refuse the good ones too.
            "error_limit = 100000/s",
            "cache_vary = cookie:lang",
            "pid_file = %s" % os.path.join(workdir, "inverso.pid"),
        ]
        if v == 1:
            lines.append("balance = weighted_round_robin")
        if v == 2:
            lines.append("balance = least_conn")
        return "\n".join(lines) + "\n"

    with open(conf_path, "w") as f:
        f.write(make_conf())
    proc, out, err = start_proxy(binary, conf_path, workdir, "run")
    failures = []
    if not wait_listening(port, proc):
        print(open(os.path.join(workdir, "stderr-run.txt")).read())
        sys.exit("proxy did not start")
    # a few requests to warm it, then the baseline
    for p in ("/cl/100", "/cache/long1"):
        try:
            probe(port, p)
        except (OSError, Malformed, EOFError):
            pass
    time.sleep(1)
    base = sample(proc.pid)
    samples = [base]
    sampler_t = threading.Thread(target=sampler, args=(proc.pid, samples, 3), daemon=True)
    sampler_t.start()

    deadline = time.time() + args.duration
    threads = []
    for i in range(args.good):
        threads.append(threading.Thread(target=good_client, args=(port, args.seed * 100 + i, deadline), daemon=True))
    for i in range(args.bad):
        threads.append(threading.Thread(target=bad_client, args=(port, args.seed * 100 + 50 + i, deadline), daemon=True))
    targets = ["127.0.0.1:%d" % backends[0].port, "127.0.0.1:%d" % backends[1].port]
    threads.append(threading.Thread(target=admin_loop, args=(admin_port, targets, deadline), daemon=True))
    threads.append(threading.Thread(target=reload_loop, args=(proc, conf_path, make_conf, port, deadline), daemon=True))
    for t in threads:
        t.start()
    while time.time() < deadline and proc.poll() is None:
        time.sleep(1)
    STOP.set()
    for t in threads:
        t.join(timeout=30)
    stuck = [t for t in threads if t.is_alive()]
    if stuck:
        failures.append("%d load threads did not end within 30 s of the load's end" % len(stuck))
    end_load = sample(proc.pid) if proc.poll() is None else None
    # a good file in place whatever the last reload wrote
    with open(conf_path, "w") as f:
        f.write(make_conf())
    print("load over; quiet for %.0fs" % args.quiet, flush=True)
    time.sleep(args.quiet)

    alive = proc.poll() is None
    final = sample(proc.pid) if alive else None
    if not alive:
        failures.append("proxy died during the run (exit %s)" % proc.returncode)
    else:
        ka = 8 + 3 + 1  # upstream keepalive per backend at most, snapshot and log files
        if final["fds"] > base["fds"] + 20 + ka:
            failures.append("fds %d after quiet, baseline %d" % (final["fds"], base["fds"]))
        if final["threads"] > base["threads"] + 4:
            failures.append("threads %d after quiet, baseline %d" % (final["threads"], base["threads"]))
        # still serving after all that
        try:
            st, _, b = probe(port)
            if st != 200:
                failures.append("a probe after the quiet got %d" % st)
        except (OSError, Malformed, EOFError) as e:
            failures.append("a probe after the quiet failed: %s" % e)
    # RSS: the last third of the load's samples against the middle third
    load_samples = [s for s in samples if s["t"] <= deadline]
    if len(load_samples) >= 9:
        k = len(load_samples) // 3
        mid = sum(s["rss_kb"] for s in load_samples[k:2 * k]) / k
        last = sum(s["rss_kb"] for s in load_samples[2 * k:]) / len(load_samples[2 * k:])
        if last > mid * 1.3 + 20000:
            failures.append("RSS grew: middle third %.0f KiB, last third %.0f KiB" % (mid, last))
    # the snapshot holds this one
    if alive:
        try:
            probe(port, "/cache/long1")
        except (OSError, Malformed, EOFError):
            pass
        time.sleep(2.5)  # a unit_time or two: the snapshot written
        pid_file = os.path.join(workdir, "inverso.pid")
        try:
            if int(open(pid_file).read()) != proc.pid:
                failures.append("pid_file does not hold the process's ID")
        except (OSError, ValueError) as e:
            failures.append("pid_file unreadable while running: %s" % e)
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=5 + 10)
            if rc != 0:
                failures.append("exit code %d after SIGTERM" % rc)
            if os.path.exists(pid_file):
                failures.append("pid_file left after a clean stop")
        except subprocess.TimeoutExpired:
            failures.append("no exit within the grace period after SIGTERM")
            proc.kill()
            proc.wait()
    out.close()
    err.close()
    ALL_STOP.set()

    # restart on the snapshot; the backends are gone, so a HIT is the cache's alone
    hit = None
    if alive:
        proc2, out2, err2 = start_proxy(binary, conf_path, workdir, "restart")
        try:
            if wait_listening(port, proc2):
                st, f, b = probe(port, "/cache/long1")
                hit = f.get("x-cache", ["?"])[0]
                if st != 200 or hit != "HIT" or b != body_for("/cache/long1", 3000):
                    failures.append("after a restart /cache/long1 got %d X-Cache %s" % (st, hit))
            else:
                failures.append("the restart did not listen")
        except (OSError, Malformed, EOFError) as e:
            failures.append("after a restart: %s" % e)
        proc2.send_signal(signal.SIGTERM)
        try:
            if proc2.wait(timeout=15) != 0:
                failures.append("the restart exited %d" % proc2.returncode)
        except subprocess.TimeoutExpired:
            proc2.kill()
            proc2.wait()
            failures.append("the restart did not exit after SIGTERM")
        out2.close()
        err2.close()

    # panics anywhere
    for name in os.listdir(workdir):
        p = os.path.join(workdir, name)
        if os.path.isfile(p) and (name.startswith("std") or name.startswith("access.log")):
            with open(p, "rb") as f:
                data = f.read()
            if b"panicked" in data:
                idx = data.find(b"panicked")
                failures.append("'panicked' in %s: %r" % (name, data[max(0, idx - 300):idx + 300]))
    with open(os.path.join(workdir, "stderr-run.txt"), "rb") as f:
        errtext = f.read()
    refusals = [ln for ln in errtext.split(b"\n") if b"reload refused" in ln]
    if RELOADS["broken"] and not refusals:
        failures.append("a broken configuration was sent %d times and no refusal logged" % RELOADS["broken"])
    for ln in refusals:
        if b"banana" not in ln:
            failures.append("a good configuration refused: %r" % ln[:300])

    if COUNTS["502-post-on-closed-pooled"] and b"a pooled connection it had closed" not in errtext:
        failures.append("%d POSTs answered 502 and no closed pooled connection logged" % COUNTS["502-post-on-closed-pooled"])
    # good-client errors: everything but these is unexplained
    ok_kinds = re.compile(r"^(200|200-gzip|200-head|206|304|429-rate-limited|502-post-on-closed-pooled|bad-backend-.*)$")
    bad_kinds = {k: v for k, v in COUNTS.items() if not ok_kinds.match(k)}
    for k, v in bad_kinds.items():
        failures.append("good clients: %d x %s" % (v, k))

    # summary
    print("\n== good clients ==")
    for k, v in sorted(COUNTS.items()):
        print("  %-28s %8d" % (k, v))
    print("== bad clients ==")
    for k, v in sorted(BAD.items()):
        print("  %-28s %8d" % (k, v))
    print("== admin ==")
    for k, v in sorted(ADMIN.items()):
        print("  %-28s %8d" % (k, v))
    print("== reloads ==")
    for k, v in sorted(RELOADS.items()):
        print("  %-28s %8d" % (k, v))
    print("== process ==")
    print("  %-10s %10s %8s %8s" % ("", "rss KiB", "fds", "threads"))
    for name, s in (("baseline", base), ("peak", None), ("load end", end_load), ("after quiet", final)):
        if name == "peak":
            s = {"rss_kb": max(x["rss_kb"] for x in samples), "fds": max(x["fds"] for x in samples), "threads": max(x["threads"] for x in samples)}
        if s:
            print("  %-10s %10d %8d %8d" % (name, s["rss_kb"], s["fds"], s["threads"]))
    print("  restart on snapshot: X-Cache %s" % hit)
    if UNEXPLAINED:
        print("== first details ==")
        for k, d in UNEXPLAINED[:20]:
            print("  %s: %s" % (k, d))
    print("== checks ==")
    if failures:
        for f_ in failures:
            print("  FAIL", f_)
        print("workdir kept: %s" % workdir)
        sys.exit(1)
    print("  all passed")
    if not args.keep:
        import shutil
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print("workdir kept: %s" % workdir)


if __name__ == "__main__":
    main()
