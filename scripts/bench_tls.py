#!/usr/bin/env python3
"""TLS check for scripts/bench.sh (tls mode).

Usage: bench_tls.py HOST PORT PATH

Connects to HOST:PORT over TLS (no certificate verification: the benchmark's
certificate is self-signed; SNI "localhost"), sends one GET PATH with
"Connection: close" and reads the whole response (Content-Length framed).
Then connects again offering the session the first connection got (in TLS
1.3, from the server's ticket, which arrives before the response) and sends
the same request. Prints one line:

  version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 status=200 bytes=1024 resumed=yes

(version, cipher, status and body size of the first connection; resumed:
whether the server resumed the session on the second). Python's ssl module
runs on the system's OpenSSL, which wrk uses too, so the first handshake
agrees on what wrk's do. Exits 1 with a message on stderr if a connection
or handshake fails or the response cannot be read. Every socket operation
times out after 5 s.
"""

import socket
import ssl
import sys

TIMEOUT = 5


def exchange(ctx, host, port, path, session=None):
    """One TLS connection, one request: (tls socket facts, status, body size)."""
    with socket.create_connection((host, port), timeout=TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as tls:
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n"
                        "Connection: close\r\n\r\n".encode())
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = tls.recv(65536)
                if not chunk:
                    raise OSError(f"closed after {len(buf)} bytes, before the end of the head")
                buf += chunk
            head, body = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            length = None
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if length is None:
                raise OSError(f"no Content-Length in the response: {lines[0]}")
            while len(body) < length:
                chunk = tls.recv(65536)
                if not chunk:
                    break
                body += chunk
            return (tls.version(), tls.cipher()[0], tls.session, tls.session_reused,
                    status, len(body))


def main():
    if len(sys.argv) != 4:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        sys.exit(2)
    host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        version, cipher, session, _, status, size = exchange(ctx, host, port, path)
        resumed = "no"
        if session is not None:
            resumed = "yes" if exchange(ctx, host, port, path, session)[3] else "no"
    except (OSError, ValueError, IndexError) as e:
        print(f"bench_tls: {host}:{port}{path}: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"version={version} cipher={cipher} status={status} bytes={size} resumed={resumed}")


if __name__ == "__main__":
    main()
