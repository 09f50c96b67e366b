#!/usr/bin/env python3
"""Turns the raw files of scripts/bench.sh into one Markdown report.

Usage: bench_report.py OUT_DIR   (reads runs.tsv, mem.tsv, idle.tsv,
idle_tls.tsv, cachecheck.tsv, gzipcheck.tsv, filescheck.tsv, tlscheck.tsv,
tlsresume.tsv, backendtlscheck.tsv, backendtlsconns.tsv, authcheck.tsv,
authcount.tsv, subfilterpages.tsv, subfiltercheck.tsv, subfiltersame.tsv,
gunzipcheck.tsv, uploadcheck.tsv, uploaddisk.tsv, uploadspool.tsv,
fastcgicheck.tsv, fastcgiconns.tsv, tcpcheck.tsv, tcptlscheck.tsv,
udpruns.tsv, udpcheck.tsv, info.txt there; prints the report and writes OUT_DIR/results.md)

With several repetitions, every figure is the median over them, except
errors and requests, which are summed, so that no error can hide.
"""

import os
import statistics
import sys

ERROR_KINDS = ("connect", "read", "write", "status", "timeout")


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    if not lines:
        return []
    header, rows = lines[0], lines[1:]
    return [dict(zip(header, row)) for row in rows]


def num(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt_int(v):
    return "n/a" if v is None else f"{v:,.0f}"


def fmt_ms(us):
    return "n/a" if us is None else f"{us / 1000:.2f}"


def fmt_ratio(a, b):
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}"


def na(value):
    return "n/a" if value in (None, "", "na") else value


def fmt_kib(kib):
    return "n/a" if kib is None else f"{kib / 1024:.1f}"


class Cell:
    """All repetitions of one (mode, cell, system)."""

    def __init__(self):
        self.rows = []

    def add(self, row):
        self.rows.append(row)

    @property
    def measured(self):
        return [r for r in self.rows if num(r["requests"]) is not None]

    def rps(self):
        return median(num(r["requests"]) / (num(r["duration_us"]) / 1e6)
                      for r in self.measured if num(r["duration_us"]))

    def p50(self):
        return median(num(r["p50_us"]) for r in self.measured)

    def p99(self):
        return median(num(r["p99_us"]) for r in self.measured)

    def cpu_us_per_req(self, clk_tck):
        vals = []
        for r in self.measured:
            ticks, reqs = num(r["cpu_ticks"]), num(r["requests"])
            if ticks is not None and reqs:
                vals.append(ticks * 1e6 / clk_tck / reqs)
        return median(vals)

    def app_us_per_req(self, clk_tck):
        """CPU of the application server behind the proxy (php-fpm in
        fastcgi mode) per request of the run."""
        vals = []
        for r in self.measured:
            ticks, reqs = num(r.get("app_cpu_ticks")), num(r["requests"])
            if ticks is not None and reqs:
                vals.append(ticks * 1e6 / clk_tck / reqs)
        return median(vals)

    def errors(self):
        if not self.measured:
            return "n/a"
        sums = {k: sum(int(r[k]) for r in self.measured) for k in ERROR_KINDS}
        total = sum(sums.values())
        if total == 0:
            return "0"
        detail = ", ".join(f"{k} {v}" for k, v in sums.items() if v)
        return f"**{total}** ({detail})"

    def other_cpu(self):
        v = median(num(r.get("other_cpu_pct")) for r in self.measured)
        return "n/a" if v is None else f"{v:.0f}"

    def bytes_per_req(self):
        return median(num(r["bytes"]) / num(r["requests"])
                      for r in self.measured if num(r["requests"]))


def group(runs, mode):
    cells, order = {}, []
    for r in runs:
        if r["mode"] != mode:
            continue
        if r["cell"] not in cells:
            cells[r["cell"]] = {}
            order.append(r["cell"])
        cells[r["cell"]].setdefault(r["system"], Cell()).add(r)
    return order, cells


def table(header, rows):
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def throughput_rows(runs, clk_tck, mode, *extras):
    """The table of a mode whose systems are direct, nginx, haproxy and
    inverso (proxy, tls, backend-tls, tcp, tcp-tls). Each extra(cell,
    system) -> (heading, value): one more column, before "other CPU %";
    extra(None, None) gives the heading."""
    order, cells = group(runs, mode)
    if not order:
        return []
    header = ["cell", "system", "req/s", "p50 ms", "p99 ms", "errors",
              "req/s ÷ direct", "req/s ÷ nginx", "p99 ÷ nginx p99",
              "proxy CPU µs/req", "bytes/resp"]
    header += [extra(None, None)[0] for extra in extras]
    header.append("other CPU %")
    rows = []
    for name in order:
        systems = cells[name]
        direct, nginx = systems.get("direct"), systems.get("nginx")
        for sysname, c in systems.items():
            rows.append([
                name, sysname, fmt_int(c.rps()), fmt_ms(c.p50()), fmt_ms(c.p99()),
                c.errors(),
                fmt_ratio(c.rps(), direct.rps() if direct else None),
                fmt_ratio(c.rps(), nginx.rps() if nginx else None),
                fmt_ratio(c.p99(), nginx.p99() if nginx else None),
                "—" if sysname == "direct" else
                (lambda v: "n/a" if v is None else f"{v:.1f}")(c.cpu_us_per_req(clk_tck)),
                fmt_int(c.bytes_per_req()),
            ] + [extra(name, sysname)[1] for extra in extras] + [c.other_cpu()])
    return table(header, rows)


def proxy_section(runs, clk_tck):
    rows = throughput_rows(runs, clk_tck, "proxy")
    if not rows:
        return []
    return ["## Proxy (cache off): throughput and latency", ""] + rows + [""]


def tls_section(runs, checks, resumes, clk_tck):
    seen = {(c["system"], c["body"]): c for c in checks}

    def tls_column(cell, system):
        if cell is None:
            return ("TLS (probe)", None)
        if system == "direct":
            return (None, "none (plain HTTP)")
        return (None, tls_label(seen.get((system, cell.split()[0]))))

    rows = throughput_rows(runs, clk_tck, "tls", tls_column)
    if not rows:
        return []
    resumed = "not counted"
    for r in resumes:
        if r["client"] == "wrk":
            n, k = num(r["handshakes"]), num(r["resumed"])
            share = f" ({k * 100 / n:.0f}%)" if n and k is not None else ""
            resumed = (f"{r['resumed']} of {r['handshakes']} handshakes resumed a "
                       f"session{share}; protocols: {r['protocols']}")
    return (["## TLS termination: inverso vs nginx and HAProxy over HTTPS", "",
             "Each proxy takes HTTPS (a self-signed ECDSA P-256 certificate, TLS 1.2 "
             "and 1.3 offered) and proxies to the same two backends over plain "
             "HTTP/1.1, set up otherwise as in proxy mode; direct is the backend over "
             "plain HTTP, without TLS. nginx: `ssl_session_cache shared:SSL:10m`, "
             "session tickets on; HAProxy: `bind ... ssl crt`, its defaults; inverso: "
             "rustls (ring). Each one's TLS 1.3 tickets hold the session, encrypted "
             "(OpenSSL's for nginx and HAProxy, rustls's Ticketer for inverso). "
             "CPU µs/req counts the proxy's "
             "processes; wrk's TLS work shares the same cores. TLS (probe): what a "
             "python ssl client (the same OpenSSL as wrk's) agreed with each system "
             "before measuring, and whether the system resumed the session offered "
             "back to it.", "",
             "close64: every request opens a new connection and does a TLS handshake. "
             "wrk keeps one SSL object per connection and, after `Connection: close`, "
             "calls SSL_shutdown and SSL_clear, which keeps the session, so it offers "
             "it again on the next connection: a resumed handshake (no certificate, "
             "no signature; in TLS 1.3 still an ECDHE key exchange) where the server "
             "allows it. Counted against a check-only nginx logging "
             f"`$ssl_session_reused` (1 s of wrk, not measured): {resumed}.", ""]
            + rows + [""])


def backend_tls_section(runs, checks, conns, clk_tck):
    seen = {(c["system"], c["body"]): c for c in checks}
    counted = {}
    for c in conns:
        counted.setdefault((c["cell"], c["system"]), []).append(c)

    def probe_column(cell, system):
        if cell is None:
            return ("to backends (probe)", None)
        if system == "direct":
            return (None, "none (plain HTTP)")
        return (None, backend_tls_label(seen.get((system, cell.split()[0]))))

    def conns_column(cell, system):
        if cell is None:
            return ("TLS conns opened to backends per run (resumed), open after", None)
        if system == "direct":
            return (None, "—")
        runs_of = counted.get((cell, system), [])
        if not runs_of:
            return (None, "n/a")
        per_run = "/".join(r["opened"] for r in runs_of)
        resumed = sum(int(r["resumed"]) for r in runs_of)
        held = "/".join(na(r["established_after"]) for r in runs_of)
        return (None, f"{per_run} ({resumed} resumed), {held}")

    rows = throughput_rows(runs, clk_tck, "backend-tls", probe_column, conns_column)
    if not rows:
        return []
    return (["## TLS to backends: inverso vs nginx and HAProxy", "",
             "Clients speak plain HTTP to each proxy; each proxy speaks TLS 1.3 to the "
             "same two backends (the backend nginx's ssl ports: an ECDSA P-256 "
             "certificate for localhost and 127.0.0.1 from the script's own authority), "
             "verifying the certificate for the name localhost against that authority, "
             "and sending it as SNI. nginx: `proxy_pass https://`, upstream keepalive 64, "
             "`proxy_ssl_verify on`, `proxy_ssl_name localhost`, "
             "`proxy_ssl_session_reuse on`; HAProxy: `ssl verify required ca-file ... "
             "sni str(localhost)`, `http-reuse always`; inverso: `tls tls_name=localhost` "
             "targets, `backend_tls_ca`, verification on. direct: wrk to the backend "
             "over plain HTTP, the ceiling. CPU µs/req counts the proxy's processes. "
             "to backends (probe): what came back through each proxy before measuring "
             "(X-Backend-TLS, added by the backends' ssl server block only, and the SNI "
             "the backend got). TLS conns opened: the backend's log of the first request "
             "of each connection, one figure per repetition, with the handshakes that "
             "resumed a session summed; open after: the proxy's established connections "
             "to the backends' ssl ports after each run (ss). A proxy that reuses its "
             "connections opens few or none per run, in the close64 cell too, where "
             "only the clients close.", ""]
            + rows + [""])


def with_without_rows(runs, clk_tck, mode, suffix, what, probe):
    """The table of a mode whose systems are nginx and inverso, each
    without and with a feature (its name ending in suffix: auth, subfilter):
    each with the feature over the same proxy without it, and each over
    nginx the same way. probe(None, None) gives the probe column's heading,
    probe(cell, system, with_feature) its value."""
    order, cells = group(runs, mode)
    if not order:
        return []
    header = ["cell", "system", "req/s", "p50 ms", "p99 ms", "errors",
              f"req/s ÷ same proxy without {what}", f"req/s ÷ nginx (same {what})",
              f"p99 ÷ nginx p99 (same {what})", "proxy CPU µs/req",
              f"CPU ÷ same proxy without {what}", "bytes/resp",
              probe(None, None, None), "other CPU %"]
    rows = []
    for name in order:
        systems = cells[name]
        for sysname, c in systems.items():
            on = sysname.endswith(suffix)
            base = systems.get(sysname[:-len(suffix)]) if on else None
            ref = systems.get("nginx" + suffix if on else "nginx")
            cpu = c.cpu_us_per_req(clk_tck)
            base_cpu = base.cpu_us_per_req(clk_tck) if base else None
            rows.append([
                name, sysname, fmt_int(c.rps()), fmt_ms(c.p50()), fmt_ms(c.p99()),
                c.errors(),
                fmt_ratio(c.rps(), base.rps() if base else None) if on else "—",
                fmt_ratio(c.rps(), ref.rps() if ref else None),
                fmt_ratio(c.p99(), ref.p99() if ref else None),
                "n/a" if cpu is None else f"{cpu:.1f}",
                fmt_ratio(cpu, base_cpu) if on else "—",
                fmt_int(c.bytes_per_req()),
                probe(name, sysname, on), c.other_cpu(),
            ])
    return table(header, rows)


def auth_section(runs, checks, counts, clk_tck):
    """auth mode: nginx and inverso, each without and with auth_request."""
    seen = {c["system"]: c for c in checks}

    def probe(cell, system, auth):
        if cell is None:
            return "Remote-User at the backend (probe)"
        return auth_label(seen.get(system), auth)

    rows = with_without_rows(runs, clk_tck, "auth", "-auth", "auth", probe)
    if not rows:
        return []
    counted = ""
    for r in counts:
        counted = (f" {r['system']}'s inverso_auth_requests_total over the runs: "
                   f"{na(r['allowed'])} allowed, {na(r['denied'])} denied, "
                   f"{na(r['failed'])} failed, for {na(r['wrk_requests'])} responses "
                   "wrk counted (a few more asked than counted: the requests a run's "
                   "end cuts short).")
    return (["## Forward authentication: inverso `auth_request` vs nginx `auth_request`", "",
             "Every request of the -auth systems is first asked of a sign-in service, a "
             "server block of the backend nginx answering `204` with `Remote-User: ann` "
             "(its CPU counts as the backends', not the proxy's), over kept-alive "
             "connections; the answer's Remote-User goes on to the backend. nginx-auth: "
             "`auth_request /_auth`, an internal location proxying to the service "
             "(upstream keepalive 64, `proxy_pass_request_body off`), "
             "`auth_request_set $user $upstream_http_remote_user; proxy_set_header "
             "Remote-User $user`; inverso-auth: `pool.sso = <service>`, "
             "`auth_request = sso /verify`, `auth_request_headers = Remote-User`. nginx "
             "and inverso: the same proxies without it, set up as in proxy mode. No "
             "HAProxy: it cannot ask another server before proxying without Lua or an "
             "SPOE agent. Ratios are of the medians. Remote-User at the backend: what "
             "GET /whoami, sent with a forged `Remote-User: mallory`, showed the "
             "backend got, before measuring." + kept_answers() + counted, ""]
            + rows + [""])


def subfilter_section(runs, pages, checks, same, clk_tck):
    """subfilter mode: nginx and inverso, each without and with sub_filter."""
    seen = {(c["system"], c["body"]): c for c in checks}
    alike = {s["body"]: s for s in same}

    def probe(cell, system, sub):
        if cell is None:
            return "body (probe)"
        body = cell.split()[0]
        return subfilter_label(seen.get((system, body)), alike.get(body), sub)

    rows = with_without_rows(runs, clk_tck, "subfilter", "-sub", "sub_filter", probe)
    if not rows:
        return []
    made = "; ".join(f"{p['body']}.html: {p['bytes']} bytes, {p['addresses']} "
                     f"addresses, {p['head_ends']} `</head>`, {p['rewritten_bytes']} "
                     "bytes rewritten" for p in pages)
    return (["## Rewriting bodies: inverso `sub_filter` vs nginx `sub_filter`", "",
             "The backends serve text/html pages of 1 KiB and 64 KiB holding "
             "`http://app.internal:8080/` about every 256 bytes and one `</head>` "
             f"({made or 'n/a'}); the -sub systems rewrite every match as they relay the "
             "body (cache off), the address to `https://www.example.com/` and "
             "`</head>` to `<script src=\"/a.js\"></script></head>`, and send it "
             "chunked. nginx-sub: `sub_filter` twice, `sub_filter_once off`, "
             "`sub_filter_types text/html`, `proxy_set_header Accept-Encoding \"\"`; "
             "inverso-sub: `sub_filter` with the two rules, `sub_filter_once = false`. "
             "nginx and inverso: the same proxies without it, set up as in proxy mode, "
             "on the same pages. No HAProxy: it has no body substitution. Ratios are "
             "of the medians. body (probe): what curl got from each system before "
             "measuring: the rewritten page from the -sub systems, the same bytes "
             "from both, and the page as served from the others.", ""]
            + rows + [""])


def upload_section(runs, checks, disk, spool, clk_tck):
    """upload mode: POSTs of 64 KiB and 1 MiB, direct and through nginx,
    inverso (bodies past request_buffer_size streamed) and inverso-spool
    (request_buffer_dir); every proxy over nginx."""
    order, cells = group(runs, "upload")
    if not order:
        return []
    header = ["cell", "system", "req/s", "p50 ms", "p99 ms", "errors",
              "req/s ÷ direct", "req/s ÷ nginx", "p50 ÷ nginx p50", "p99 ÷ nginx p99",
              "proxy CPU µs/req", "CPU ÷ nginx", "bytes/resp", "backend got (probe)",
              "other CPU %"]
    seen = {(c["system"], c["body"]): c for c in checks}
    rows = []
    for name in order:
        systems = cells[name]
        direct, nginx = systems.get("direct"), systems.get("nginx")
        nginx_cpu = nginx.cpu_us_per_req(clk_tck) if nginx else None
        for sysname, c in systems.items():
            cpu = c.cpu_us_per_req(clk_tck)
            is_direct = sysname == "direct"
            rows.append([
                name, sysname, fmt_int(c.rps()), fmt_ms(c.p50()), fmt_ms(c.p99()),
                c.errors(),
                fmt_ratio(c.rps(), direct.rps() if direct else None),
                fmt_ratio(c.rps(), nginx.rps() if nginx else None),
                fmt_ratio(c.p50(), nginx.p50() if nginx else None),
                fmt_ratio(c.p99(), nginx.p99() if nginx else None),
                "—" if is_direct else ("n/a" if cpu is None else f"{cpu:.1f}"),
                "—" if is_direct else fmt_ratio(cpu, nginx_cpu),
                fmt_int(c.bytes_per_req()),
                upload_label(seen.get((sysname, name.split()[0]))), c.other_cpu(),
            ])
    on_disk = "; ".join(
        f"{d['system']}: status {d['status']}, a file open in its directory "
        f"{d['file_seen']}, entries with a name seen {d['named_entries']}" for d in disk)
    left = "; ".join(f"{r['system']} {r['when']}: {na(r['entries'])} entries" for r in spool)
    return (["## Request bodies: inverso `request_buffer_dir` vs streaming vs nginx", "",
             "wrk POSTs a body of 64 KiB or 1 MiB to /upload (Content-Length, no "
             "`Expect`), 16 or 64 keep-alive connections; the backends read each body "
             "whole into memory before answering 200 with a 15-byte line telling how "
             "it came (nginx's mirror module, `mirror_request_body on`). direct: the "
             "backend itself. nginx: proxy mode's nginx, `client_max_body_size 2m`, "
             "request buffering at its defaults (`proxy_request_buffering on`, "
             "`client_body_buffer_size` two memory pages): a body past that goes to an "
             "unlinked file of `client_body_temp_path` before the backend is asked "
             "(its error log at `error`, its default, not warn: a line per such body "
             "otherwise). inverso: `max_body_size = 2MiB`, `request_buffer_size` at "
             "its default, 64KiB: a 64 KiB body is read whole into memory, a 1 MiB one "
             "streams to the backend as it comes. inverso-spool: the same plus "
             "`request_buffer_dir`: a 1 MiB body is read whole into a file with no "
             "name (O_TMPFILE) before the backend is asked, then sent with its "
             "Content-Length; a 64 KiB one as inverso's. No HAProxy. Ratios are of "
             "the medians; CPU ÷ nginx compares the proxies' CPU µs per request. "
             "backend got: the probe's POST before measuring, the framing the backend "
             "saw. A slow 1 MiB POST (512 KiB/s) before measuring, looking at the "
             f"proxy's open files meanwhile: {on_disk or 'n/a'}. Spool directory: "
             f"{left or 'n/a'}.", ""]
            + table(header, rows) + [""])


def fastcgi_section(runs, checks, conns, clk_tck):
    """fastcgi mode: nginx, HAProxy and inverso in front of php-fpm, every
    proxy over nginx, and php-fpm's CPU per request."""
    order, cells = group(runs, "fastcgi")
    if not order:
        return []
    header = ["cell", "system", "req/s", "p50 ms", "p99 ms", "errors",
              "req/s ÷ nginx", "p50 ÷ nginx p50", "p99 ÷ nginx p99",
              "proxy CPU µs/req", "CPU ÷ nginx", "php-fpm CPU µs/req", "bytes/resp",
              "probe", "other CPU %"]
    seen = {}
    for c in checks:
        seen.setdefault((c["system"], c["transport"]), []).append(c)
    rows = []
    for name in order:
        systems = cells[name]
        nginx = systems.get("nginx")
        nginx_cpu = nginx.cpu_us_per_req(clk_tck) if nginx else None
        script = "small" if name.split()[0] == "1k" else "big"
        transport = name.split()[-1]
        for sysname, c in systems.items():
            cpu, app = c.cpu_us_per_req(clk_tck), c.app_us_per_req(clk_tck)
            rows.append([
                name, sysname, fmt_int(c.rps()), fmt_ms(c.p50()), fmt_ms(c.p99()),
                c.errors(),
                fmt_ratio(c.rps(), nginx.rps() if nginx else None),
                fmt_ratio(c.p50(), nginx.p50() if nginx else None),
                fmt_ratio(c.p99(), nginx.p99() if nginx else None),
                "n/a" if cpu is None else f"{cpu:.1f}",
                fmt_ratio(cpu, nginx_cpu),
                "n/a" if app is None else f"{app:.1f}",
                fmt_int(c.bytes_per_req()),
                fastcgi_label(seen.get((sysname, transport), []), script), c.other_cpu(),
            ])
    held = "; ".join(f"{c['transport']} {c['system']} {na(c['held'])}" for c in conns)
    return (["## FastCGI: inverso vs nginx and HAProxy in front of php-fpm", "",
             "Each proxy passes every request to php-fpm (Debian's, one master with a "
             "pool of its own for each proxy, the same settings: `pm = static`, the "
             "children in the notes) over kept connections, cache off, and relays the "
             "script's output: /small.php and /big.php echo a fixed text of 1 KiB and "
             "64 KiB (text/html, no length from PHP). Two rounds, the cells named "
             "after them: tcp, each pool on a 127.0.0.1 port; unix, each on a Unix "
             "socket (as Debian's php-fpm listens by default), a php-fpm and proxies "
             "of their own. Over TCP, a good part of the 64 KiB answers wait some 40 ms "
             "whichever the proxy (p99, and p50 when many do): php-fpm's last segment "
             "held back (Nagle) until the proxy's delayed ACK, it seems (the kernel's "
             "TcpExtDelayedACKs count grows with them), so those cells' req/s swing "
             "from run to run; a Unix socket has no such wait. At 64 connections, 64 "
             "PHP workers share the cores with wrk and the proxy: the p99 there is "
             "mostly the scheduler's. nginx: `fastcgi_pass` to an "
             "upstream with `keepalive 32`, `fastcgi_keep_conn on`, its params "
             "written out (no `include fastcgi_params`), `fastcgi_buffers 8 16k`; "
             "HAProxy: `fcgi-app` (docroot, `index index.php`, `option keep-conn`), "
             "`use-fcgi-app`, `server ... proto fcgi`, `http-reuse always`; inverso: "
             "`targets = 127.0.0.1:PORT fastcgi`, `fastcgi_root`, `fastcgi_index = "
             "index.php`, `fastcgi_keep_conn = true` (its default is a connection per "
             "request), no `max_conns` (as the others have no limit). A pool per proxy: a php-fpm child serves one connection at a "
             "time and, with FCGI_KEEP_CONN, stays with it until the proxy closes it, "
             "so each connection a proxy keeps, busy or idle, holds a child; one pool "
             "of a few children would leave requests waiting in its listen queue "
             "behind idle connections. No direct row: wrk speaks no FastCGI. Ratios "
             "are of the medians; proxy CPU µs/req counts the proxy's processes, "
             "php-fpm CPU µs/req php-fpm's master and children over the same run. "
             "probe: before measuring, /small.php, /big.php and /hello.php?x=1 (the "
             "request's method, URI, SCRIPT_NAME and QUERY_STRING, and whether "
             "SCRIPT_FILENAME and DOCUMENT_ROOT were the script's and the docroot's) "
             "must answer 200 with the bytes the script prints; a proxy that does not "
             "is skipped, its rows n/a. Connections each proxy kept open to its pool "
             "after a round's runs (ss; as many as a run's clients, or about, when "
             f"they are kept and reused, none if not): {held or 'n/a'}.", ""]
            + table(header, rows) + [""])


def tcp_section(runs, checks, clk_tck):
    """tcp mode: direct, nginx (stream), HAProxy (mode tcp) and inverso
    (stream.web) relaying HTTP as bytes to the same two backends."""
    seen = {(c["system"], c["body"]): c for c in checks}
    started = {c["system"]: c for c in checks if c["status"] == "not started"}
    _, cells = group(runs, "tcp")

    def cpu_column(cell, system):
        if cell is None:
            return ("CPU ÷ nginx", None)
        if system == "direct":
            return (None, "—")
        c, nginx = cells[cell].get(system), cells[cell].get("nginx")
        return (None, fmt_ratio(c.cpu_us_per_req(clk_tck) if c else None,
                                nginx.cpu_us_per_req(clk_tck) if nginx else None))

    def probe_column(cell, system):
        if cell is None:
            return ("probe", None)
        if system in started:
            return (None, "**skipped: did not start**")
        return (None, tcp_label([seen[(system, b)] for b in ("1k", "64k")
                                 if (system, b) in seen], cell.split()[0]))

    rows = throughput_rows(runs, clk_tck, "tcp", cpu_column, probe_column)
    if not rows:
        return []
    return (["## TCP streams: inverso `stream` vs nginx `stream` and HAProxy `mode tcp`", "",
             "HTTP relayed at layer 4: each proxy takes a client's connection, picks one "
             "of the same two backends as proxy mode (round robin, per connection) and "
             "copies the bytes both ways, reading nothing of HTTP, until either side "
             "closes. nginx: the stream module, `upstream` of the two backends, `listen` "
             "(no `deferred`: the stream module has none), `proxy_pass`, a log line per "
             "session; HAProxy: `mode tcp`, `option tcplog`, `balance roundrobin`, "
             "nbthread = cores, no defer-accept; inverso: `stream.web = default "
             "listen=...` (its HTTP port unused), one thread per connection copying "
             "both ways (poll). direct: wrk to the backend, the ceiling. close64: every request "
             "is a connection to the proxy and one from it to a backend (the backend "
             "closes, the proxy passes the close on, wrk reconnects): the relays' cost "
             "per connection. ka256: 256 keep-alive connections, for the tail (p99). "
             "Ratios are of the medians; proxy CPU µs/req counts the proxy's processes. "
             "probe: before measuring, /1k and /64k through each proxy: status 200, the "
             "file's exact bytes, the backend's head as direct gets it (its Date line "
             "aside: nothing added or rewritten), and a second request on the same "
             "connection (curl, two URLs); a proxy that fails is skipped, its rows "
             "n/a.", ""]
            + rows + [""])


def tcp_tls_section(runs, checks, clk_tck):
    """tcp-tls mode: direct (plain HTTP), nginx (stream, `listen ... ssl`),
    HAProxy (mode tcp, `bind ... ssl crt`) and inverso (`stream.web ... tls`)
    ending TLS and relaying the decrypted bytes to the same two backends."""
    seen = {(c["system"], c["body"]): c for c in checks}
    started = {c["system"]: c for c in checks if c["status"] == "not started"}
    _, cells = group(runs, "tcp-tls")

    def cpu_column(cell, system):
        if cell is None:
            return ("CPU ÷ nginx", None)
        if system == "direct":
            return (None, "—")
        c, nginx = cells[cell].get(system), cells[cell].get("nginx")
        return (None, fmt_ratio(c.cpu_us_per_req(clk_tck) if c else None,
                                nginx.cpu_us_per_req(clk_tck) if nginx else None))

    def probe_column(cell, system):
        if cell is None:
            return ("probe", None)
        if system in started:
            return (None, "**skipped: did not start**")
        mine = [seen[(system, b)] for b in ("1k", "64k") if (system, b) in seen]
        label = tcp_label(mine, cell.split()[0])
        if system == "direct" or label.startswith("**") or label == "n/a":
            return (None, label + (" (plain HTTP)" if system == "direct" else ""))
        tls = [c for c in mine if c["body"] == cell.split()[0]]
        return (None, label + "; " + tls_label(tls[0] if tls else None))

    rows = throughput_rows(runs, clk_tck, "tcp-tls", cpu_column, probe_column)
    if not rows:
        return []
    return (["## TLS ended by TCP streams: inverso `stream ... tls` vs nginx `stream` "
             "`listen ... ssl` and HAProxy `mode tcp` `bind ... ssl`", "",
             "HTTPS ended at layer 4: each proxy makes the client's TLS handshake (tls "
             "mode's self-signed ECDSA P-256 certificate, TLS 1.2 and 1.3 allowed, no "
             "ALPN) and relays the decrypted bytes, reading nothing of HTTP, to one of "
             "the same two backends over plain TCP (round robin, per connection), set up "
             "otherwise as in tcp mode. Session resumption at each one's defaults: "
             "nginx's stream module session tickets on and `ssl_session_cache none`; "
             "HAProxy tickets on and its shared session cache; inverso "
             "(`stream.web = default listen=... tls`, rustls with ring) tickets that "
             "hold the session and TLS 1.2 session IDs in memory. direct: wrk to the "
             "backend over plain HTTP, no TLS, the ceiling. close64: every request is a "
             "TLS handshake with the proxy (a resumed one: wrk offers its session again, "
             "see the TLS termination section) and a TCP connection from it to a "
             "backend. Ratios are of the medians; proxy CPU µs/req counts the proxy's "
             "processes, and wrk's own TLS work shares the same cores. probe: before "
             "measuring, /1k and /64k through each proxy over https (curl -k): status "
             "200, the file's exact bytes, the backend's head as direct gets it (its "
             "Date line aside) and a second request on the same connection; then what "
             "a python ssl client (the same OpenSSL as wrk's) agreed and whether the "
             "proxy resumed the session offered back to it. A proxy that fails is "
             "skipped, its rows n/a.", ""]
            + rows + [""])


def udp_section(udp_runs, checks, clk_tck):
    """udp mode: dnsperf (DNS over UDP) direct to one dnsmasq, and through
    nginx (stream, `listen ... udp`) and inverso (`stream.dns ... udp`) in
    front of two. udpruns.tsv has dnsperf's own figures, not wrk's."""
    cells, order = {}, []
    for r in udp_runs:
        if r["cell"] not in cells:
            cells[r["cell"]] = {}
            order.append(r["cell"])
        cells[r["cell"]].setdefault(r["system"], []).append(r)
    if not order:
        return []
    seen = {c["system"]: c for c in checks}

    def measured(rows):
        return [r for r in rows if num(r["qps"]) is not None]

    def med(rows, key):
        return median(num(r[key]) for r in measured(rows))

    def per_query(rows, key):
        vals = []
        for r in measured(rows):
            ticks, done = num(r[key]), num(r["completed"])
            if ticks is not None and done:
                vals.append(ticks * 1e6 / clk_tck / done)
        return median(vals)

    def count(rows, what):
        """Summed over repetitions: lost queries, or answers whose rcode
        was not NOERROR; bold when any."""
        m = measured(rows)
        if not m:
            return "n/a"
        sent = sum(num(r["sent"]) or 0 for r in m)
        if what == "lost":
            n = sum(num(r["lost"]) or 0 for r in m)
        else:
            n = sum((num(r["completed"]) or 0) - (num(r["noerror"]) or 0) for r in m)
        if n == 0:
            return "0"
        return f"**{n:,.0f}** ({n * 100 / sent:.2f}%)" if sent else f"**{n:,.0f}**"

    def per_session(rows):
        """Queries answered per session the proxy ended in the run
        (median): 1 when every query is a session of its own."""
        vals = []
        for r in measured(rows):
            n, done = num(r.get("sessions")), num(r["completed"])
            if n and done:
                vals.append(done / n)
        v = median(vals)
        return "—" if not vals and rows and rows[0]["system"] == "direct" else (
            "n/a" if v is None else f"{v:,.1f}")

    def ms(v):
        return "n/a" if v is None else f"{v * 1000:.3f}"

    def probe(system):
        c = seen.get(system)
        if c is None:
            return "n/a"
        if c["names_right"] == "not started":
            return "**skipped: did not start**"
        ok = (c["names_right"] == "3/3" and c["sent"] not in ("na", "0")
              and c["completed"] == c["sent"] and c["noerror"] == c["sent"]
              and c["lost"] == "0")
        said = (f"{c['names_right']} names right, {c['completed']}/{c['sent']} "
                f"answered ({c['noerror']} NOERROR, {c['lost']} lost)")
        return said if ok else f"**skipped: {said}**"

    header = ["cell", "system", "queries/s", "avg ms", "stddev ms", "max ms", "lost",
              "not NOERROR", "q/s ÷ direct", "q/s ÷ nginx", "avg ÷ nginx avg",
              "proxy CPU µs/query", "CPU ÷ nginx", "DNS servers' CPU µs/query",
              "queries/session", "probe", "other CPU %"]
    rows = []
    for name in order:
        systems = cells[name]
        direct, nginx = systems.get("direct", []), systems.get("nginx", [])
        for sysname, rs in systems.items():
            qps, avg = med(rs, "qps"), med(rs, "avg_s")
            cpu = None if sysname == "direct" else per_query(rs, "cpu_ticks")
            other = med(rs, "other_cpu_pct")
            rows.append([
                name, sysname, fmt_int(qps), ms(avg), ms(med(rs, "stddev_s")),
                ms(med(rs, "max_s")), count(rs, "lost"), count(rs, "rcode"),
                fmt_ratio(qps, med(direct, "qps")), fmt_ratio(qps, med(nginx, "qps")),
                fmt_ratio(avg, med(nginx, "avg_s")),
                "—" if sysname == "direct" else ("n/a" if cpu is None else f"{cpu:.1f}"),
                "—" if sysname == "direct" else fmt_ratio(cpu, per_query(nginx, "cpu_ticks")),
                (lambda v: "n/a" if v is None else f"{v:.1f}")(per_query(rs, "dns_cpu_ticks")),
                per_session(rs), probe(sysname),
                "n/a" if other is None else f"{other:.0f}",
            ])
    return (["## UDP streams (DNS): inverso `stream ... udp` vs nginx `stream` "
             "`listen ... udp`", "",
             "DNS over UDP: dnsperf asks for the A records of 300 names of a local zone "
             "(bench.test, a distinct address each), as fast as it goes (no -Q, up to "
             "100 queries outstanding), through each proxy in front of two DNS servers "
             "(two dnsmasq processes answering the zone from memory; round robin, per "
             "session), or direct to one of them, the ceiling. A session is a client "
             "address and port. nginx: the stream module, `upstream` of the two servers, "
             "`listen 127.0.0.1:PORT udp`, `proxy_pass`, `proxy_responses 1`, "
             "`proxy_timeout 5s`, a log line per session; inverso: `targets` the two "
             "servers and `stream.dns = default listen=127.0.0.1:PORT udp responses=1 "
             "timeout=5s` (its HTTP port unused), a log line per session to /dev/null. "
             "A session ends, in both, once none of its queries is owed an answer. c1: "
             "`dnsperf -c 1 -T 1`, one client socket: one session at a time, a new one "
             "whenever its outstanding queries all got answers; c64: `-c 64 -T 2`, 64 "
             "sockets, each a session of its own, ended and begun again as its one or two "
             "outstanding queries are answered: about a session per query, each with a "
             "new socket to a server (and in inverso a thread of its own). No HAProxy row: its community edition proxies no UDP (that is "
             "HAProxy Enterprise's UDP module). Latencies are dnsperf's (average, "
             "standard deviation and maximum: it gives no percentiles); lost: queries "
             "sent and not answered within 5 s or by the run's end; not NOERROR: "
             "answers with another rcode. queries/session: the queries answered over "
             "the sessions the proxy ended in the run (inverso: its "
             "inverso_stream_connections_total; nginx: the lines of its session log, "
             "give or take the up to 64 KiB still in its buffer). Figures are medians "
             "over repetitions, lost and not NOERROR are summed. CPU µs/query: the proxy's processes (and, "
             "apart, the two DNS servers') over the queries answered. probe: before "
             "measuring, h1, h150 and h300 (dig, one try) answered with their exact "
             "addresses, then a 1 s dnsperf run (4 clients) with every query answered "
             "NOERROR; a path that fails is skipped, its rows n/a.", ""]
            + table(header, rows) + [""])


def tcp_label(checks, body):
    """What the probe saw of one system: skipped (and why) if any check
    failed, else that the body measured in this cell was relayed as it is."""
    if not checks:
        return "n/a"
    bad = []
    for c in checks:
        problems = []
        if c["status"] != "200":
            problems.append(f"status {c['status']}")
        if c["same_as_file"] != "yes":
            problems.append(f"{c['bytes']} bytes, not the file")
        if c["head_as_direct"] != "yes":
            problems.append("head not the backend's")
        if c["reused"] != "yes":
            problems.append("connection not kept")
        if problems:
            bad.append(f"/{c['body']} " + ", ".join(problems))
    if bad:
        return "**skipped: " + "; ".join(bad) + "**"
    mine = [c for c in checks if c["body"] == body]
    size = mine[0]["bytes"] if mine else "n/a"
    return f"200, the file's {size} bytes, the backend's head, connection kept"


def fastcgi_label(checks, script):
    """What the probe saw of one proxy over one transport: skipped (and
    why) if any of its checks failed, else the framing of the script
    measured in this cell."""
    if not checks:
        return "n/a"
    bad = []
    for c in checks:
        if c["status"] == "not started":
            return "**skipped: did not start**"
        if c["status"] != "200" or c["same_as_script"] != "yes":
            bad.append(f"{c['script']}.php status {c['status']}, {c['bytes']} bytes"
                       + ("" if c["same_as_script"] == "yes" else ", not the script's output"))
    if bad:
        return "**skipped: " + "; ".join(bad) + "**"
    mine = [c for c in checks if c["script"] == script]
    framing = mine[0]["framing"] if mine else "n/a"
    return f"200, the script's bytes ({len(checks)} scripts), {framing}"


def upload_label(check):
    if check is None:
        return "n/a"
    problems = []
    if check["status"] != "200":
        problems.append(f"status {check['status']}")
    if check["framing"] == "none":
        problems.append(f"answer '{check['backend_got']}'")
    if check["spool_left"] not in ("-", "0"):
        problems.append(f"{check['spool_left']} entries left in the spool dir")
    if problems:
        return "**" + "; ".join(problems) + "**"
    return check["framing"] + (", spool dir empty" if check["spool_left"] == "0" else "")


def subfilter_label(check, same, sub):
    if check is None:
        return "n/a"
    problems = []
    if check["status"] != "200":
        problems.append(f"status {check['status']}")
    want = "rewritten" if sub else "as-served"
    if check["body_was"] != want:
        problems.append(f"{check['bytes']} bytes, {check['body_was']}, "
                        f"{check['addresses_left']} addresses left")
    if sub and (same is None or same["same"] != "yes"):
        problems.append("not the same bytes as the other -sub")
    if problems:
        return "**" + "; ".join(problems) + "**"
    if sub:
        return f"rewritten, {check['bytes']} bytes, the same from both"
    return f"as served, {check['bytes']} bytes"


def kept_answers():
    """What BENCH_AUTH_CACHE set: each proxy keeping the service's yes."""
    keep = os.environ.get("BENCH_AUTH_CACHE", "")
    if not keep:
        return " The service is asked at every request."
    return (f" Each -auth proxy keeps the service's yes for {keep} (BENCH_AUTH_CACHE): "
            "nginx-auth a `proxy_cache` on its /_auth location keyed on `$remote_addr "
            "$http_cookie $http_authorization $request_uri`, inverso-auth "
            f"`auth_request_cache = {keep}`. wrk asks one question over and over: "
            "after the first, requests pass unasked until the kept yes expires.")


def auth_label(check, auth):
    if check is None:
        return "n/a"
    if check["status"] != "200" or check["whoami_status"] != "200":
        return f"**status {check['status']}, /whoami {check['whoami_status']}**"
    who = check["remote_user"]
    if auth:
        return "ann (the service's)" if who == "ann" else f"**{who}**"
    return f"{who} (the client's)" if who == "mallory" else who


def backend_tls_label(check):
    if check is None:
        return "n/a"
    if check["status"] != "200" or check["x_backend_tls"] != "TLSv1.3":
        return f"**status {check['status']}, X-Backend-TLS {check['x_backend_tls']}**"
    sni = "" if check["sni"] == "-" else f", SNI {check['sni']}"
    return f"{check['x_backend_tls']}{sni}"


def tls_label(check):
    if check is None:
        return "n/a"
    if check["status"] != "200":
        return f"**status {check['status']}**"
    resumed = "resumes" if check["resumed"] == "yes" else "**does not resume**"
    return f"{check['version']} {check['cipher']}, {resumed}"


def cache_section(runs, checks):
    order, cells = group(runs, "cache")
    if not order:
        return []
    header = ["cell", "system", "req/s", "p50 ms", "p99 ms", "errors",
              "req/s ÷ direct", "req/s ÷ nginx-cache", "p99 ÷ nginx-cache p99",
              "bytes/resp", "X-Cache after warm-up", "other CPU %"]
    seen = {(c["system"], c["body"]): c["x_cache"] for c in checks}
    rows = []
    for name in order:
        systems = cells[name]
        direct, ref = systems.get("direct"), systems.get("nginx-cache")
        for sysname, c in systems.items():
            rows.append([
                name, sysname, fmt_int(c.rps()), fmt_ms(c.p50()), fmt_ms(c.p99()),
                c.errors(),
                fmt_ratio(c.rps(), direct.rps() if direct else None),
                fmt_ratio(c.rps(), ref.rps() if ref else None),
                fmt_ratio(c.p99(), ref.p99() if ref else None),
                fmt_int(c.bytes_per_req()),
                hit_label(seen.get((sysname, name.split()[0]))) if sysname != "direct" else "—",
                c.other_cpu(),
            ])
    return ["## Cache hits: inverso vs nginx proxy_cache", ""] + table(header, rows) + [""]


def measured_cells(name, sysname, c, ref, clk_tck):
    """The cells a table of proxies against a reference REF begins a row
    with: the cell and system, req/s, p50, p99, errors, req/s and p99 over
    REF's, and the proxy's CPU µs per request."""
    cpu = c.cpu_us_per_req(clk_tck)
    return [
        name, sysname, fmt_int(c.rps()), fmt_ms(c.p50()), fmt_ms(c.p99()),
        c.errors(),
        fmt_ratio(c.rps(), ref.rps() if ref else None),
        fmt_ratio(c.p99(), ref.p99() if ref else None),
        "n/a" if cpu is None else f"{cpu:.1f}",
    ]


def gzip_section(runs, checks, clk_tck):
    order, cells = group(runs, "gzip")
    if not order:
        return []
    header = ["cell", "system", "req/s", "p50 ms", "p99 ms", "errors",
              "req/s ÷ nginx-gzip", "p99 ÷ nginx-gzip p99", "proxy CPU µs/req",
              "compressed ÷ body", "bytes/resp", "probe (2nd request)", "other CPU %"]
    seen = {(c["system"], c["body"]): c for c in checks}
    rows = []
    for name in order:
        systems = cells[name]
        ref = systems.get("nginx-gzip")
        for sysname, c in systems.items():
            check = seen.get((sysname, name.split()[0]))
            rows.append(measured_cells(name, sysname, c, ref, clk_tck) + [
                "n/a" if check is None else
                fmt_ratio(num(check["sent_bytes"]), num(check["decoded_bytes"])),
                fmt_int(c.bytes_per_req()), gzip_label(check), c.other_cpu(),
            ])
    return (["## Cache hits sent compressed: inverso vs nginx proxy_cache + gzip", "",
             "Every request says `Accept-Encoding: gzip`; text/plain bodies, "
             "`gzip_comp_level` 1 in both, 64 keep-alive connections. inverso compresses "
             "an entry once (at level 6 at least) and keeps the copy; nginx compresses the "
             "cached body again at every hit. "
             "compressed ÷ body: the bytes sent for the body over the body's, from the "
             "curl probe; bytes/resp (wrk) counts the head too. No direct row: the "
             "backend does not compress.", ""]
            + table(header, rows) + [""])


def gunzip_section(runs, checks, clk_tck):
    """gunzip mode: cache hits decoded for a client that takes no gzip,
    beside the same proxy's hits for one that takes gzip (the coded entry
    as it is); then the relayed pair (no cache, cells "... relayed"), the
    same way, in a table of its own."""
    order, cells = group(runs, "gunzip")
    if not order:
        return []
    seen = {(c["system"], c["body"], c["client"]): c for c in checks}
    hits = gunzip_rows(cells, [n for n in order if not n.endswith(" relayed")],
                       "nginx-gunzip", seen, clk_tck)
    relayed = gunzip_rows(cells, [n for n in order if n.endswith(" relayed")],
                          "nginx-gunzip-relay", seen, clk_tck)
    out = (["## Cache hits decoded for clients that take no gzip: inverso `gunzip` vs "
            "nginx proxy_cache + `gunzip on`", "",
            "The backend nginx sends /gz/1k.txt and /gz/64k.txt (text/plain, 1 KiB and "
            "64 KiB decoded) gzip-coded (`gzip on`, level 6, `Vary: Accept-Encoding`); "
            "both proxies ask it for gzip whatever the client takes (nginx "
            "`proxy_set_header Accept-Encoding gzip`, inverso `request_header."
            "Accept-Encoding = gzip`), keep the coded answer as one entry per URL "
            "(nginx `proxy_ignore_headers Vary`, inverso `cache_ignore_headers = Vary`) "
            "and decode it again at every hit for a client that takes no gzip (nginx "
            "`gunzip on`, inverso `gunzip = true`). decoded cells: wrk sends no "
            "Accept-Encoding; gzip cells: `Accept-Encoding: gzip`, the coded entry sent "
            "as it is, the reference. 64 keep-alive connections. The two columns "
            "\"same proxy, gzip client\" set each decoded cell against the same "
            "proxy's gzip cell of the same body: what decoding costs each, and sending "
            "the larger decoded body (bytes/resp). probe: the second request of each "
            "kind before measuring, with what framed its body.", ""]
           + hits + [""])
    if relayed:
        out += (["### Relayed, no cache: inverso `gunzip` vs nginx `gunzip on`", "",
                 "The same proxies without a cache, in the same run, interleaved with "
                 "the cached pair: nginx-gunzip-relay (no proxy_cache, upstream "
                 "keepalive, `proxy_set_header Accept-Encoding gzip; gunzip on;`), "
                 "inverso-gunzip-relay (cache_size 0, `gunzip = true`, "
                 "`request_header.Accept-Encoding = gzip`). Every request goes to a "
                 "backend, which compresses the file (level 6) each time; its chunked "
                 "gzip answer is decoded as it is relayed to a client that takes no gzip, "
                 "and relayed as it came to one that takes gzip. The backend's "
                 "compression shares the cores with wrk and the proxy, so the req/s "
                 "of this table are bounded by it; proxy CPU µs/req counts the proxy "
                 "alone. Same columns as above, over nginx-gunzip-relay; probe: no "
                 "X-Cache expected.", ""]
                + relayed + [""])
    return out


def gunzip_rows(cells, names, ref_name, seen, clk_tck):
    """gunzip_section's table for the cells NAMES, each system over
    REF_NAME."""
    if not names:
        return []
    header = ["cell", "system", "req/s", "p50 ms", "p99 ms", "errors",
              f"req/s ÷ {ref_name}", f"p99 ÷ {ref_name} p99", "proxy CPU µs/req",
              "req/s ÷ same proxy, gzip client", "CPU µs/req − same proxy, gzip client",
              "bytes/resp",
              "probe (2nd request)", "other CPU %"]
    rows = []
    for name in names:
        systems = cells[name]
        ref = systems.get(ref_name)
        body, client = name.split()[0], name.split()[2]
        coded = cells.get(name.replace(" decoded ", " gzip ")) if client == "decoded" else None
        for sysname, c in systems.items():
            cpu = c.cpu_us_per_req(clk_tck)
            base = coded.get(sysname) if coded else None
            base_cpu = base.cpu_us_per_req(clk_tck) if base else None
            rows.append(measured_cells(name, sysname, c, ref, clk_tck) + [
                "—" if client != "decoded" else fmt_ratio(c.rps(), base.rps() if base else None),
                "—" if client != "decoded" else
                ("n/a" if cpu is None or base_cpu is None else f"{cpu - base_cpu:+.1f}"),
                fmt_int(c.bytes_per_req()),
                gunzip_label(seen.get((sysname, body, client))), c.other_cpu(),
            ])
    return table(header, rows)


def gunzip_label(check):
    """A relayed system's (its name ends in -relay: no cache) answer must
    carry no X-Cache; a cached one's must be a HIT."""
    if check is None:
        return "n/a"
    want = "gzip" if check["client"] == "gzip" else "none"
    relayed = check["system"].endswith("-relay")
    want_xc = "none" if relayed else "HIT"
    problems = []
    if check["status"] != "200":
        problems.append(f"status {check['status']}")
    if check["content_encoding"] != want:
        problems.append(f"Content-Encoding {check['content_encoding']}")
    if check["x_cache"] != want_xc:
        problems.append(f"X-Cache {check['x_cache']}, "
                        + ("not relayed" if relayed else "not a hit"))
    if check["same_as_file"] != "yes":
        problems.append(f"{check['decoded_bytes']} bytes decoded, not the file")
    if problems:
        return "**" + "; ".join(problems) + "**"
    what = "gzip" if want == "gzip" else "decoded"
    how = "no X-Cache" if relayed else "HIT"
    return f"{what}, {how}, {check['sent_bytes']} bytes, {check['framing']}"


def files_section(runs, checks, clk_tck):
    order, cells = group(runs, "files")
    if not order:
        return []
    header = ["cell", "system", "req/s", "p50 ms", "p99 ms", "errors",
              "req/s ÷ direct", "req/s ÷ nginx", "p99 ÷ nginx p99", "CPU µs/req",
              "bytes/resp", "probe", "other CPU %"]
    seen = {(c["system"], c["body"]): c for c in checks}
    rows = []
    for name in order:
        systems = cells[name]
        direct, ref = systems.get("direct"), systems.get("nginx")
        for sysname, c in systems.items():
            cpu = c.cpu_us_per_req(clk_tck)
            rows.append([
                name, sysname, fmt_int(c.rps()), fmt_ms(c.p50()), fmt_ms(c.p99()),
                c.errors(),
                fmt_ratio(c.rps(), direct.rps() if direct else None),
                fmt_ratio(c.rps(), ref.rps() if ref else None),
                fmt_ratio(c.p99(), ref.p99() if ref else None),
                "n/a" if cpu is None else f"{cpu:.1f}",
                fmt_int(c.bytes_per_req()),
                files_label(seen.get((sysname, name.split()[0]))), c.other_cpu(),
            ])
    return (["## Static files: inverso `files` route vs nginx", "",
             "No proxying: each system reads /c/1k.txt or /c/64k.txt from the same "
             "directory. nginx: `alias`, sendfile on, tcp_nopush on, open_file_cache "
             "off, access log on (as inverso's); direct: the backend nginx "
             "(open_file_cache, etag off, no access log), the machine's ceiling. "
             "CPU µs/req counts the server's processes (nginx master and workers). "
             "probe: one GET before measuring, its status and whether the body was "
             "the file's exact bytes.", ""]
            + table(header, rows) + [""])


def files_label(check):
    if check is None:
        return "n/a"
    problems = []
    if check["status"] != "200":
        problems.append(f"status {check['status']}")
    if check["same_as_file"] != "yes":
        problems.append(f"{check['bytes']} bytes, not the file")
    if problems:
        return "**" + "; ".join(problems) + "**"
    return "200, same bytes"


def gzip_label(check):
    if check is None:
        return "n/a"
    problems = []
    if check["status"] != "200":
        problems.append(f"status {check['status']}")
    if check["content_encoding"] != "gzip":
        problems.append(f"not compressed ({check['content_encoding']})")
    if check["x_cache"] != "HIT":
        problems.append(f"X-Cache {check['x_cache']}, not a hit")
    if check["same_as_file"] != "yes":
        problems.append(f"decoded {check['decoded_bytes']} bytes, not the file")
    if problems:
        return "**" + "; ".join(problems) + "**"
    return "gzip, HIT"


def hit_label(x_cache):
    if x_cache is None:
        return "n/a"
    return x_cache if x_cache == "HIT" else f"**{x_cache}** (not a hit!)"


def mem_section(mem):
    if not mem:
        return []
    rows = [[m["mode"], m["system"], fmt_kib(num(m["peak_rss_kib"])), na(m["threads"])]
            for m in mem]
    return (["## Peak memory after the load runs", ""]
            + table(["mode", "system", "peak RSS MiB (VmHWM)", "threads"], rows) + [""])


def idle_section(idle, title="Idle keep-alive connections: memory"):
    if not idle:
        return []
    rows = []
    for m in idle:
        before, after, ok = num(m["rss_before_kib"]), num(m["rss_after_kib"]), num(m["ok"])
        per_conn = "n/a"
        if before is not None and after is not None and ok:
            per_conn = f"{(after - before) / ok:.1f}"
        threads = "n/a"
        if na(m["threads_before"]) != "n/a":
            threads = f'{m["threads_before"]} → {m["threads_after"]}'
        rows.append([m["system"], m["conns"], na(m["ok"]), na(m["failed"]),
                     na(m["still_open"]), fmt_kib(before), fmt_kib(after), per_conn, threads])
    header = ["system", "conns asked", "opened", "failed", "still open at end",
              "RSS before MiB", "RSS with idle conns MiB", "KiB per idle conn", "threads"]
    return [f"## {title}", ""] + table(header, rows) + [""]


def main():
    out_dir = sys.argv[1]
    runs = read_tsv(os.path.join(out_dir, "runs.tsv"))
    mem = read_tsv(os.path.join(out_dir, "mem.tsv"))
    idle = read_tsv(os.path.join(out_dir, "idle.tsv"))
    info, notes = [], []
    info_path = os.path.join(out_dir, "info.txt")
    if os.path.exists(info_path):
        with open(info_path) as f:
            for line in f:
                line = line.rstrip("\n")
                if line.startswith("note: "):
                    notes.append("- " + line[len("note: "):])
                elif line:
                    info.append("- " + line)
    clk_tck = 100
    for line in info:
        if line.startswith("- clock ticks/s: "):
            clk_tck = int(line.split(": ", 1)[1])

    out = ["# inverso benchmark", ""] + info + [""]
    out += proxy_section(runs, clk_tck)
    out += mem_section(mem)
    out += idle_section(idle)
    out += cache_section(runs, read_tsv(os.path.join(out_dir, "cachecheck.tsv")))
    out += gzip_section(runs, read_tsv(os.path.join(out_dir, "gzipcheck.tsv")), clk_tck)
    out += gunzip_section(runs, read_tsv(os.path.join(out_dir, "gunzipcheck.tsv")), clk_tck)
    out += files_section(runs, read_tsv(os.path.join(out_dir, "filescheck.tsv")), clk_tck)
    out += tls_section(runs, read_tsv(os.path.join(out_dir, "tlscheck.tsv")),
                       read_tsv(os.path.join(out_dir, "tlsresume.tsv")), clk_tck)
    out += idle_section(read_tsv(os.path.join(out_dir, "idle_tls.tsv")),
                        "Idle TLS keep-alive connections: memory")
    out += backend_tls_section(runs, read_tsv(os.path.join(out_dir, "backendtlscheck.tsv")),
                               read_tsv(os.path.join(out_dir, "backendtlsconns.tsv")), clk_tck)
    out += auth_section(runs, read_tsv(os.path.join(out_dir, "authcheck.tsv")),
                        read_tsv(os.path.join(out_dir, "authcount.tsv")), clk_tck)
    out += subfilter_section(runs, read_tsv(os.path.join(out_dir, "subfilterpages.tsv")),
                             read_tsv(os.path.join(out_dir, "subfiltercheck.tsv")),
                             read_tsv(os.path.join(out_dir, "subfiltersame.tsv")), clk_tck)
    out += upload_section(runs, read_tsv(os.path.join(out_dir, "uploadcheck.tsv")),
                          read_tsv(os.path.join(out_dir, "uploaddisk.tsv")),
                          read_tsv(os.path.join(out_dir, "uploadspool.tsv")), clk_tck)
    out += fastcgi_section(runs, read_tsv(os.path.join(out_dir, "fastcgicheck.tsv")),
                           read_tsv(os.path.join(out_dir, "fastcgiconns.tsv")), clk_tck)
    out += tcp_section(runs, read_tsv(os.path.join(out_dir, "tcpcheck.tsv")), clk_tck)
    out += tcp_tls_section(runs, read_tsv(os.path.join(out_dir, "tcptlscheck.tsv")), clk_tck)
    out += udp_section(read_tsv(os.path.join(out_dir, "udpruns.tsv")),
                       read_tsv(os.path.join(out_dir, "udpcheck.tsv")), clk_tck)
    if notes:
        out += ["## Notes", ""] + notes + [""]
    text = "\n".join(out)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
