#!/usr/bin/env bash
# Benchmark inverso against nginx and HAProxy on this machine, all on 127.0.0.1.
#
#   scripts/bench.sh [proxy|cache|gzip|gunzip|idle|files|tls|backend-tls|auth|
#                     subfilter|upload|fastcgi|tcp|tcp-tls|udp|all]
#                                                             (default: all)
#
# Environment:
#   BENCH_SECONDS     seconds per measured wrk (or dnsperf) run (default 10)
#   BENCH_REPS        repetitions of the whole round          (default 1)
#   BENCH_IDLE_CONNS  idle keep-alive connections (idle mode) (default 5000)
#   BENCH_IDLE_TLS_CONNS
#                     idle TLS keep-alive connections (tls mode)
#                                                           (default 1000)
#   BENCH_TIMEOUT     wrk request timeout in seconds          (default 5)
#   BENCH_SKIP_BUILD  1 = use the existing target/release/inverso
#   BENCH_INVERSO_BIN another inverso binary to measure (no build)
#   BENCH_NICE        nice value for everything measured, e.g. -10 on a
#                     shared machine so that other jobs disturb less (root)
#   BENCH_PROXY_NICE  the three proxies' nice value relative to wrk and the
#                     backends, e.g. -10 for a higher priority than theirs:
#                     nginx `worker_priority`, inverso `worker_priority`,
#                     HAProxy started under `nice` (it has no such directive);
#                     empty = the same as everything else
#   BENCH_FASTCGI_CHILDREN
#                     fastcgi mode: php-fpm children of each proxy's pool
#                     (pm = static; default 96, see the fastcgi notes below)
#   BENCH_AUTH_CACHE  auth mode: how long each proxy keeps the sign-in
#                     service's yes (e.g. 30s): nginx-auth a proxy_cache on
#                     its /_auth location keyed on the client's address,
#                     cookies, credentials and URI, inverso-auth
#                     `auth_request_cache`; empty = asked every request
#
# Modes:
#   proxy  direct-to-backend (the ceiling), nginx, HAProxy and inverso (cache
#          off) in front of two backends; keep-alive with 16/64/256
#          connections and "Connection: close" with 64, for a 1 KiB and a
#          64 KiB body. Runs are interleaved (each repetition walks every cell,
#          and in each cell runs all systems back to back) so that machine
#          noise hits every system alike.
#   cache  cache hits: inverso (cache on) vs nginx proxy_cache, 64 keep-alive
#          connections, after warming the cache.
#   gzip   cache hits served gzip-compressed (Accept-Encoding: gzip on every
#          request): inverso (cache on, gzip = true) vs nginx proxy_cache with
#          gzip on, 64 keep-alive connections, 1 KiB and 64 KiB text bodies.
#          inverso compresses an entry once and keeps the copy; nginx's gzip
#          filter compresses the cached body again at every hit. No direct
#          row: the backend does not compress.
#   gunzip cache hits served DECODED to clients that take no gzip (wrk
#          sends no Accept-Encoding): inverso (cache on, gunzip = true) vs
#          nginx proxy_cache with gunzip on, 64 keep-alive connections,
#          /gz/1k.txt and /gz/64k.txt (1 KiB and 64 KiB decoded, gzip-coded
#          by the backend). Both ask the backends for gzip whatever the
#          client takes, keep the coded answer as one entry per URL and
#          decode it again at every hit for a client that takes no gzip.
#          Beside each, the same proxy's hits for a client that takes gzip
#          (wrk with Accept-Encoding: gzip), which get the coded entry as
#          it is: the difference is what decoding costs. And the RELAYED
#          path, in the same run and interleaved with them: the same two
#          proxies without a cache (nginx-gunzip-relay, inverso-gunzip-relay),
#          every request going to a backend that compresses it, its coded
#          answer decoded as it is relayed to a client that takes no gzip
#          (and sent as it came to one that takes gzip); the same bodies
#          and the same two kinds of client. No direct row: the backend
#          compresses at every request, which no hit does.
#   idle   memory per idle keep-alive connection (BENCH_IDLE_CONNS of them)
#          for inverso, nginx and HAProxy.
#   files  static files served by the web server itself, no proxying:
#          inverso with a `files` route (route./c/ = files <dir>) against
#          nginx serving the same directory, /c/1k.txt and /c/64k.txt
#          (text/plain, 1 KiB and 64 KiB), 64 keep-alive connections and 64
#          sending "Connection: close"; direct (the backend nginx, on the
#          same files) as the machine's ceiling. Interleaved as in proxy
#          mode.
#   tls    HTTPS termination: nginx, HAProxy and inverso, each set up as in
#          proxy mode but taking TLS (a self-signed ECDSA P-256 certificate
#          made with the openssl CLI in the temp dir), in front of the same
#          two backends over plain HTTP; direct (the backend over plain
#          HTTP, no TLS at all) as the ceiling. 1 KiB and 64 KiB with 64
#          keep-alive connections, and 1 KiB with 64 sending "Connection:
#          close", where every request is a new TCP connection and TLS
#          handshake. Interleaved as in proxy mode. Then, as idle mode does
#          it, memory per idle TLS keep-alive connection
#          (BENCH_IDLE_TLS_CONNS of them) for inverso, nginx and HAProxy.
#   backend-tls
#          TLS to backends: clients speak plain HTTP to nginx, HAProxy and
#          inverso, and each proxy speaks TLS 1.3 to the same two backends,
#          the backend nginx listening on two more ports with `ssl` (a
#          certificate of the script's own authority, made with the openssl
#          CLI in the temp dir), verifying the backend's certificate for
#          the name localhost; direct (wrk to the backend over plain HTTP)
#          as the ceiling. 1 KiB and 64 KiB with 64 keep-alive connections,
#          and 1 KiB with 64 sending "Connection: close", where the clients
#          close but the proxies keep their TLS connections to the
#          backends. Counts, per run, the TLS connections each proxy opened
#          to the backends. Interleaved as in proxy mode.
#   auth   forward authentication (a sign-in service asked before every
#          request): inverso's `auth_request` against nginx's
#          `auth_request`, each beside the same proxy without it, set up
#          as in proxy mode in front of the same two backends: nginx,
#          nginx-auth, inverso, inverso-auth, 1 KiB with 64 keep-alive
#          connections, interleaved as in proxy mode. The service is a
#          server block of the backend nginx on a port of its own,
#          answering 204 with `Remote-User: ann` on /verify. The report
#          gives each proxy's req/s and CPU with auth over its own without,
#          and inverso-auth over nginx-auth. No HAProxy: it cannot ask
#          another server before proxying without Lua (the usual way is
#          haproxy-auth-request, a Lua script on its httpclient) or an
#          SPOE agent, a program of its own; no direct row either.
#   subfilter
#          bodies rewritten as they are relayed: inverso's `sub_filter`
#          against nginx's `sub_filter`, each beside the same proxy without
#          it, set up as in proxy mode (cache off) in front of the same two
#          backends: nginx, nginx-sub, inverso, inverso-sub, 64 keep-alive
#          connections, a 1 KiB and a 64 KiB text/html page (/1k.html,
#          /64k.html) holding `http://app.internal:8080/` about every 256
#          bytes (4 and 263 times) and one `</head>`; two rules, the address
#          to `https://www.example.com/` and `</head>` to a script tag
#          before it, every match replaced. Interleaved as in proxy mode.
#          The report gives each proxy's req/s and CPU with the filter over
#          its own without, and inverso-sub over nginx-sub. No HAProxy: it
#          has no body substitution (its rewriting rules touch the head
#          alone; a body takes a Lua filter); no direct row either.
#   upload request bodies: inverso's `request_buffer_dir` (a body past
#          request_buffer_size read whole to an unnamed file before a
#          backend is asked) against inverso streaming such a body and
#          nginx buffering it as it does by default, in front of the same
#          two backends: direct (the backend itself), nginx, inverso,
#          inverso-spool. wrk POSTs a body of 64 KiB and of 1 MiB to
#          /upload (bench_wrk.lua with BENCH_WRK_POST_BYTES), 16 and 64
#          keep-alive connections, interleaved as in proxy mode. The report
#          gives every system's req/s, p50, p99 and CPU over nginx's. No
#          HAProxy: it buffers a body in memory at most (`option
#          http-buffer-request`, up to its buffer size), never to disk.
#   fastcgi
#          FastCGI backends: nginx (`fastcgi_pass`), HAProxy (`fcgi-app`,
#          `proto fcgi`) and inverso (`targets = ... fastcgi`), cache off,
#          each in front of php-fpm (Debian's, started by the script: one
#          master, a pool of its own for each proxy, the same settings),
#          running /small.php and /big.php, which echo a fixed string of 1 KiB
#          and 64 KiB. 16 and 64 keep-alive connections, interleaved as in
#          proxy mode. Two rounds, each with a php-fpm and proxies of its own:
#          tcp, the pools on 127.0.0.1 ports, and unix, on Unix sockets in the
#          temp dir (as Debian's php-fpm listens by default); the cells are
#          named after them. Before measuring, each proxy must answer the two
#          scripts, and /hello.php?x=1 (which prints the request method, URI,
#          SCRIPT_NAME, QUERY_STRING and whether SCRIPT_FILENAME and
#          DOCUMENT_ROOT are the script's and the docroot's), with 200 and the
#          exact bytes the script prints; a proxy that does not (or does not
#          start) is skipped, its rows n/a, and the rest measured. The report
#          gives every proxy's req/s, p50, p99 and CPU over nginx's, and
#          php-fpm's CPU per request in each run. No direct row: wrk speaks no
#          FastCGI.
#   tcp    TCP proxying (layer 4) of HTTP traffic, as `mode tcp` is used in
#          front of web servers: nginx's stream module (`stream { upstream
#          ...; server { listen ...; proxy_pass ...; } }`), HAProxy `mode
#          tcp` and inverso's `stream.web = default listen=...` (its HTTP
#          port unused), each relaying every client connection, as bytes,
#          to one of the same two backends as proxy mode (round robin);
#          direct (wrk to the backend) as the ceiling. 1 KiB and 64 KiB with
#          64 keep-alive connections, 1 KiB with 64 sending "Connection:
#          close" (a TCP connection to the proxy, and from it to a backend,
#          per request: where a thread-per-connection relay pays most) and
#          1 KiB with 256 keep-alive connections (its p99). Interleaved as in
#          proxy mode. Before measuring, each proxy must answer /1k and /64k
#          with 200, the file's exact bytes and the backend's own head (as
#          direct gets it, the Date line aside), and keep the connection for
#          a second request; one that does not (or does not start) is
#          skipped, its rows n/a, and the rest measured.
#   tcp-tls
#          TLS ended at layer 4: HTTPS clients (wrk over https, as tls
#          mode) to nginx's stream module (`listen ... ssl`), HAProxy
#          `mode tcp` (`bind ... ssl crt`) and inverso's `stream.web =
#          default listen=... tls`, each making the client's handshake with
#          tls mode's certificate and relaying the decrypted bytes, as
#          they are, to one of the same two backends over plain TCP (round
#          robin); direct (the backend over plain HTTP, no TLS at all) as
#          the ceiling. 1 KiB and 64 KiB, each with 64 keep-alive
#          connections and with 64 sending "Connection: close" (a TLS
#          handshake with the proxy, and a TCP connection from it to a
#          backend, per request). Interleaved as in proxy mode. Before
#          measuring, each proxy is probed as in tcp mode, over https
#          (curl -k): /1k and /64k answered 200 with the file's exact bytes
#          and the backend's own head, and a second request kept on the
#          same connection; then the TLS client of tls mode records the
#          protocol and cipher agreed and whether the proxy resumes a
#          session offered back to it. One that fails (or does not start)
#          is skipped, its rows n/a, and the rest measured.
#   udp    UDP proxying, DNS as the classic use: dnsperf (Debian's, installed
#          if missing) asking for names of a small local zone through nginx's
#          stream module (`listen ... udp`, `proxy_responses 1`) and
#          inverso's `stream.dns = default listen=... udp responses=1
#          timeout=5s`, each relaying every query to one of two DNS servers
#          (round robin, per session), and direct to one of them as the
#          ceiling. The servers: two dnsmasq processes (Debian's
#          dnsmasq-base, installed if missing) answering the zone from
#          memory. Two cells: c1 (`dnsperf -c 1 -T 1`: one client socket,
#          so one session at a time in each proxy, up to 100 queries
#          outstanding on it) and c64 (`-c 64 -T 2`: 64 client sockets, each
#          its own session, the same 100 outstanding in all), no -Q (as fast
#          as it goes). Interleaved as in proxy mode. The report gives
#          queries/s, dnsperf's average, standard deviation and maximum
#          latency (it has no percentiles), lost queries, answers other than
#          NOERROR, the proxy's CPU per query and the queries per session
#          each proxy ended (a session ends once no query of it is owed an
#          answer, so even c1 makes many). No HAProxy: its
#          community edition proxies no UDP (UDP load balancing is HAProxy
#          Enterprise's UDP module, or ALOHA's). Before measuring, each path
#          must answer three names of the zone (dig) with their exact
#          addresses and then a 1 s dnsperf run with every query answered
#          NOERROR and none lost; one that fails (or does not start) is
#          skipped, its rows n/a, and the rest measured.
#
# Choices worth knowing when reading the numbers:
#   - Backends: one dedicated nginx listening on two ports, static files,
#     access_log off, so that they cost as little CPU as possible. On 2 cores,
#     wrk, the proxy and the backends share the CPU: the ratios matter, not
#     the absolute numbers.
#   - Access logs: inverso writes one line per request to stdout, which goes
#     to /dev/null here (it still formats and writes every line). nginx gets
#     a comparable log: combined format to a file in the temp dir with
#     buffer=64k. HAProxy logs each request (option httplog) to its stdout,
#     redirected to a file in the temp dir. Log files are truncated between
#     runs so that a long run cannot fill the disk.
#   - nginx proxy: upstream keepalive 64, HTTP/1.1 to the backends, and
#     proxy_buffers big enough for the 64 KiB body, so that it never spills
#     to a temp file (that is how one tunes nginx for this payload);
#     `listen ... deferred`, as inverso defers accept by default.
#   - HAProxy: mode http, roundrobin, http-reuse always, nbthread = cores,
#     `bind ... defer-accept`.
#   - inverso: round robin (its default) over the same two backends,
#     RUST_LOG=warn, persistence off, upstream_keepalive at its default;
#     cache_size = 0 in proxy/idle mode (and gunzip mode's relayed pair),
#     256MiB in cache, gzip and gunzip mode.
#   - gzip mode: both at level 1 for text/plain of at least 256 bytes: nginx
#     `gzip on; gzip_types text/plain; gzip_comp_level 1; gzip_min_length 256;
#     gzip_proxied any; gzip_vary on;`, inverso `gzip = true` with
#     gzip_comp_level = 1 and gzip_min_length = 256 (its defaults) written
#     out. The bodies (/c/1k.txt, /c/64k.txt) are text/plain lines of words
#     and numbers. Before measuring, a curl probe (no --compressed) checks
#     that the second request is a hit with Content-Encoding: gzip whose
#     decoded body is the file; the report shows the compressed size over
#     the body's. The same level is not the same coder: inverso's zlib-rs
#     at level 1 uses a quick coder with fixed Huffman codes (as zlib-ng
#     does), which sends more bytes than nginx's zlib at level 1; but the
#     copy inverso keeps with a cache entry, made once, is made at level 6
#     at least, so its hits send fewer.
#   - gunzip mode: the backend nginx compresses the text files of gzip
#     mode under /gz/ (`location /gz/ { alias <dir>/; gzip on; gzip_types
#     text/plain; gzip_min_length 0; gzip_comp_level 6; gzip_vary on;
#     gzip_proxied any; }`, Cache-Control: max-age=600): dynamic gzip
#     rather than gzip_static, so no .gz files to make; level 6 as a
#     backend that compresses its answers (or `gzip -k` its files) uses,
#     paid on misses alone; gzip_proxied any, since inverso's requests
#     carry Via. Its answers say Vary: Accept-Encoding and are chunked.
#     nginx-gunzip: cache mode's proxy_cache (X-Cache
#     $upstream_cache_status) plus, in `location /`, `proxy_set_header
#     Accept-Encoding gzip; proxy_ignore_headers Vary; gunzip on;`
#     (without proxy_ignore_headers, nginx keeps a variant per client
#     Accept-Encoding, as Vary says). inverso-gunzip: cache_size 256MiB,
#     `gunzip = true`, `request_header.Accept-Encoding = gzip`,
#     `cache_ignore_headers = Vary`. Before measuring, a curl probe: a first
#     request without Accept-Encoding fills the cache; the second, without
#     it, must be a hit (X-Cache: HIT), 200, without Content-Encoding, and
#     the file's exact bytes; a third, with Accept-Encoding: gzip, must be
#     a hit, 200, Content-Encoding: gzip, decoding to the file. The
#     relayed pair: nginx-gunzip-relay is nginx-gunzip without proxy_cache
#     (proxy_pass to the backends with upstream keepalive, `proxy_set_header
#     Accept-Encoding gzip; gunzip on;`), inverso-gunzip-relay is
#     inverso-gunzip with cache_size 0 (`gunzip = true`,
#     `request_header.Accept-Encoding = gzip`); the probe checks them the
#     same way, except that each answer must carry no X-Cache at all (it
#     came from a backend, not a cache). Their cells are named "relayed"
#     where the cached pair's say "hit"; the report gives them a table of
#     their own, inverso-gunzip-relay over nginx-gunzip-relay. The report
#     shows what each sent (its length or chunked). If any check fails,
#     or inverso-gunzip or inverso-gunzip-relay does not start, the mode
#     stops with an error and measures nothing.
#   - files mode: the three systems read the same files in the temp
#     dir's www/c. "nginx" is an nginx of its own, not the backend, set up
#     as one would serve static files and as inverso does it:
#     `location /c/ { alias <dir>/; }`, `sendfile on; tcp_nopush on;`,
#     open_file_cache off (its default; inverso opens the file at every
#     request), etag on (its default; inverso sends an ETag too), an access
#     log as in proxy mode (inverso's goes to /dev/null), `listen ...
#     deferred`, and BENCH_PROXY_NICE's priority. "direct" is the backend
#     nginx as it is, tuned to cost as little as possible rather than as
#     one would run it: open_file_cache (no open, fstat and close per
#     request), etag off, no access log; it shows what the machine gives
#     that hour. Both nginx and inverso send Cache-Control: max-age=600
#     (inverso's `max_age=10m`). inverso writes the head and a body of up
#     to 32 KiB in one writev; a larger one goes by sendfile after the
#     head, which is sent with MSG_MORE (`strace -f -e trace=sendfile` on
#     inverso shows it). Before measuring, a curl probe checks that each system
#     answers 200 with the file's exact bytes. CPU µs/req counts the
#     serving nginx's master and workers (the backend's, for direct) and
#     inverso's process.
#   - Percentiles are exact (wrk's done() callback, scripts/bench_wrk.lua).
#     Errors are all of wrk's counters: connect, read, write, timeout, and
#     status (responses >= 400). Any error shows in bold in the table.
#   - CPU µs/req: utime+stime of the proxy's processes (/proc/PID/stat)
#     over the run, divided by the requests of the run.
#   - "other CPU %": the machine's busy time during a run (/proc/stat, with
#     hypervisor steal) minus that of wrk, the backends and the proxy under
#     test. Above a few percent, something else disturbed that run. The
#     script also warns if the machine is busy before it starts.
#   - tls mode: nginx `listen ... ssl backlog=4096 deferred`,
#     ssl_certificate + ssl_certificate_key, `ssl_protocols TLSv1.2 TLSv1.3`,
#     `ssl_session_cache shared:SSL:10m` (session tickets on, its default);
#     HAProxy `bind ... defer-accept ssl crt <chain and key in one file>`
#     (its session cache and tickets at their defaults); inverso `tls_port`
#     and `tls_certificates = <chain> key=<key>` (rustls, ring), its plain
#     `port` unused. All three send TLS 1.3 tickets that hold the session
#     themselves, encrypted (OpenSSL's for nginx and HAProxy, rustls's
#     ring Ticketer for inverso). No ALPN from wrk: HTTP/1.1
#     everywhere. Before measuring, each system must answer a curl -k over
#     https with 200 and the body's size, and a TLS client (python's ssl,
#     on the OpenSSL wrk uses too) records the protocol and cipher agreed
#     and whether the system resumes a session offered back to it; if any
#     of this fails, the mode stops with an error and measures nothing.
#     wrk over https: one SSL object per connection, never freed; on
#     "Connection: close" it calls SSL_shutdown and SSL_clear, which keeps
#     the session, and reconnects offering it, so the handshakes of the
#     close cell are resumed ones when the server allows it (a session
#     ticket or ID: no certificate and no signature, but still an ECDHE
#     key exchange in TLS 1.3). How many were resumed is counted against a
#     check-only nginx logging $ssl_session_reused (1 s of wrk, not
#     measured), and the report says it. CPU µs/req counts the TLS
#     proxy's processes; wrk's own TLS work shares the same cores.
#   - backend-tls mode: the authority (ca.pem) is an ECDSA P-256
#     self-signed CA (CA:TRUE, keyCertSign); the backends' certificate an
#     ECDSA P-256 leaf it signs (CA:FALSE, serverAuth, SAN DNS:localhost
#     and IP:127.0.0.1), which rustls accepts as an end entity (it refuses
#     a CA certificate there). The backend nginx: a server block of its own
#     on two more ports, `listen ... ssl`, `ssl_protocols TLSv1.3`,
#     `ssl_session_cache shared:BACKEND:10m` (tickets on, its default),
#     the same files, `add_header X-Backend-TLS $ssl_protocol` (the probe
#     reads it through each proxy), and a log of the first request of each
#     connection only (access_log if=, so a reused connection costs
#     nothing): its connection number, $ssl_session_reused and the SNI it
#     got, which count the TLS connections each proxy opens in each run.
#     All three proxies verify the certificate against ca.pem for
#     "localhost", which they also send as SNI: nginx cannot check an
#     address (X509_check_host), so `proxy_ssl_name localhost`, and the
#     others are given the same name. nginx: `proxy_pass https://...`,
#     upstream keepalive 64, proxy_http_version 1.1, `proxy_set_header
#     Connection ""`, `proxy_ssl_verify on`, proxy_ssl_trusted_certificate,
#     `proxy_ssl_server_name on`, `proxy_ssl_session_reuse on` (its
#     default). HAProxy: `server ... ssl verify required ca-file <ca> sni
#     str(localhost) verifyhost localhost`, http-reuse always (its session
#     reuse on by default). inverso: targets `127.0.0.1:PORT tls
#     tls_name=localhost`, `backend_tls_ca = <ca>`, `backend_tls_verify =
#     on` (its default, written out). Before measuring, each proxy must
#     answer GET /1k and /64k with 200, the body's size and X-Backend-TLS:
#     TLSv1.3 (the response came from the ssl server block); if one does
#     not, or does not start, the mode stops with an error and measures
#     nothing. The warm-up uses 64 connections, so that each proxy's pool
#     holds as many TLS connections as a run needs before it starts.
#   - auth mode: the service is `location = /verify { add_header
#     Remote-User ann; return 204; }` in a server block of the backend
#     nginx (access_log off, as the backends); its CPU counts as the
#     backends', not the proxy's. nginx-auth: nginx-proxy's config plus
#     `auth_request /_auth; auth_request_set $user
#     $upstream_http_remote_user; proxy_set_header Remote-User $user;` in
#     `location /`, and `location = /_auth { internal; proxy_pass
#     http://sso/verify; }` over `upstream sso { ... keepalive 64; }` with
#     proxy_http_version 1.1, `proxy_set_header Connection ""`,
#     `proxy_pass_request_body off`, `proxy_set_header Content-Length ""`
#     and `proxy_set_header X-Original-URI $request_uri` (as nginx's
#     documentation writes it; inverso sends X-Original-* and
#     X-Forwarded-* fields of its own). inverso-auth: inverso-proxy's
#     config plus `pool.sso = 127.0.0.1:<service>`, `auth_request = sso
#     /verify`, `auth_request_headers = Remote-User` and an admin port,
#     whose inverso_auth_requests_total is read after the runs: denied or
#     failed questions, or fewer allowed than wrk got answers, are a note
#     in the report. In auth and all modes only, the backend nginx also
#     has the service's server block and answers `location = /whoami`
#     with the Remote-User field it got: before measuring, each system
#     must answer GET /1k with 200 and 1024 bytes, and GET /whoami, sent
#     with a forged `Remote-User: mallory`, through nginx-auth and
#     inverso-auth with 200 "ann" (the service was asked, its field went
#     on and the client's did not); if not, or if inverso-auth does not
#     start, the mode stops with an error and measures nothing. Errors
#     as in every mode (wrk counts a status >= 400); bytes/resp shows
#     that the answers were the 1 KiB body.
#   - subfilter mode: scripts/bench_pages.py makes the pages, and beside
#     each, piece by piece rather than by replacing strings, the page the
#     rules must make of it. The backend nginx gives .html files the type
#     text/html. nginx-sub: nginx-proxy's config plus, in `location /`,
#     `sub_filter 'http://app.internal:8080/' 'https://www.example.com/';
#     sub_filter '</head>' '<script src="/a.js"></script></head>';
#     sub_filter_once off; sub_filter_types text/html; proxy_set_header
#     Accept-Encoding "";` (nginx's filter finds nothing in a compressed
#     body: backends must be asked for plain ones; a pool of inverso's with
#     rules does that itself). inverso-sub: inverso-proxy's config plus
#     `sub_filter = 'http://app.internal:8080/' 'https://www.example.com/',
#     '</head>' '<script src="/a.js"></script></head>'`, `sub_filter_once
#     = false` and `sub_filter_types = text/html` (its default, written
#     out). Both send a rewritten body chunked, its length unknown until it
#     ends. Before measuring, a curl probe (no Accept-Encoding, as wrk)
#     checks that each system answers /1k.html and /64k.html with 200:
#     nginx and inverso with the page's exact bytes (not rewritten),
#     nginx-sub and inverso-sub with the rewritten page's, and the same
#     bytes from the two (cmp of what curl got from each); if not, or if
#     inverso-sub does not start, the mode stops with an error and
#     measures nothing.
#   - upload mode: in upload and all modes only, the backend nginx
#     answers POST /upload having read the body whole into memory, as an
#     application reads an upload: `client_max_body_size 2m;
#     client_body_buffer_size 2m; mirror /_upload_read; mirror_request_body
#     on; error_page 405 =200 @uploaded;` (the mirror module reads the body
#     before its subrequest, an internal `return 204`; the static handler
#     then refuses a POST to the empty file www/upload with 405, which
#     error_page makes a 200), answering `cl=$http_content_length
#     te=$http_transfer_encoding` (15 bytes for 1 MiB). Not a bare `return
#     200`: nginx would discard the body (ngx_http_discard_request_body,
#     from ngx_http_send_response), reading it but answering as soon as
#     the head is in, before the body has all come, which is not what a
#     backend that takes uploads does. nginx: proxy mode's nginx plus
#     `client_max_body_size 2m` in `location /`, the rest of the request
#     body handling at its defaults: proxy_request_buffering on,
#     client_body_buffer_size two memory pages (8k on x86-64), so both
#     bodies go to a file of client_body_temp_path (in the mode's temp
#     dir, nginx-upload/client_body; unlinked once opened) before the
#     backend is asked, and are sent from it with a Content-Length; its
#     error_log there at `error` (nginx's default level; at warn, as the
#     other nginx configs here, it would write a line per body so
#     buffered). Seen on 2 cores: nginx's 64 KiB answers take some 40 ms
#     (p50), and not with client_body_buffer_size 2m (the body in memory):
#     likely its request head written apart from the body read from the
#     file, the body's last segment held back (Nagle: nginx sets no
#     TCP_NODELAY on connections to backends) until the backend's delayed
#     ACK. That is nginx at its defaults; a tuned nginx keeps such bodies in
#     memory. inverso: `max_body_size = 2MiB`, request_buffer_size at
#     its default (64KiB): the 64 KiB body is read whole into memory, the
#     1 MiB one streams to a backend as it comes, with the client's
#     Content-Length. inverso-spool: the same plus `request_buffer_dir =`
#     a directory of the mode's temp dir (inverso-spool/spool): the 1 MiB
#     body is read whole into a file there with no name (O_TMPFILE) before
#     a backend is asked, then sent with its Content-Length; the 64 KiB one
#     as inverso's. Before measuring, a curl probe (no Expect:
#     100-continue, as wrk sends none) POSTs each body to each system: it
#     must get 200 and the backend's line saying the whole body came (its
#     Content-Length, or chunked); for inverso-spool the spool dir must be
#     empty after it. Then one 1 MiB POST sent slowly (curl --limit-rate
#     512k, about 2 s) to nginx and to inverso-spool, meanwhile looking at
#     their open files every 0.1 s: one in their temp (spool) dir must be
#     seen, the body being read to disk, and for inverso-spool no entry in
#     the dir. If any check fails, or inverso-spool does not start, the
#     mode stops with an error and measures nothing. After the runs, the
#     spool dir must be empty (a note in the report if not).
#   - fastcgi mode: php-fpm (`php-fpmX.Y -F -y <conf>`, with -R when run as
#     root; its pid file and error log in the temp dir; Debian's php.ini for
#     FPM, opcache on as installed) with one pool per proxy, each `pm =
#     static`, `pm.max_children = BENCH_FASTCGI_CHILDREN` (96),
#     `pm.max_requests = 0`, `listen.mode = 0666` (nginx's workers may be
#     another user), on a 127.0.0.1 port of its own (tcp round) or a Unix
#     socket (unix round: nginx and inverso `unix:PATH`, HAProxy `unix@PATH`).
#     Over TCP, a good part of the 64 KiB answers wait about 40 ms, whichever
#     the proxy: php-fpm's last segment held back (Nagle) until the proxy's
#     delayed ACK, it seems (the kernel's TcpExtDelayedACKs, `nstat`, grew by
#     some 1,500 over 14,000 such requests through nginx in a test), so that
#     those cells' req/s swing from run to run; hence the unix round, which
#     has no such wait (its tail at 64 connections is 64 PHP workers sharing
#     the cores). Not 8 children in one shared pool: a php-fpm child serves
#     one connection at a time, and with FCGI_KEEP_CONN it stays with that
#     connection, waiting for its next request, until the proxy closes it. So
#     every connection a proxy holds, busy or idle in its pool, holds a child:
#     nginx with 64 clients opens up to 64 (it cannot queue requests for a
#     busy backend; NGINX Plus's `queue` can), and those past the children
#     wait in php-fpm's listen queue until some child's connection closes (8
#     children, tried: requests waiting up to 2 s through nginx, and at 64
#     connections the 64 KiB cells' req/s a sixth of those with 96 through
#     nginx, a thirtieth through HAProxy); and a proxy's idle connections from
#     the run before would hold children the next proxy's run needs (nginx
#     keeps about 60 after a 64-connection run). A pool per proxy, larger than
#     the most connections it opens, keeps them apart. The docroot holds
#     small.php and big.php (`<?php echo '...';` of a fixed text, the bytes
#     gzip mode's 1k.txt and 64k.txt hold) and hello.php; PHP sends them as
#     text/html without a length (chunked by the proxies, or given a length
#     when a proxy reads the whole answer first). nginx: `upstream php {
#     server ...; keepalive 32; }`, `fastcgi_pass php; fastcgi_keep_conn on;
#     fastcgi_index index.php;`, fastcgi_buffer_size 16k and fastcgi_buffers 8
#     16k (the 64 KiB answer in memory, as proxy mode's proxy_buffers), no
#     `include fastcgi_params` but its params written out: SCRIPT_FILENAME
#     ($document_root$fastcgi_script_name), QUERY_STRING, REQUEST_METHOD,
#     CONTENT_TYPE, CONTENT_LENGTH, SCRIPT_NAME, REQUEST_URI, DOCUMENT_URI,
#     DOCUMENT_ROOT, SERVER_PROTOCOL, REMOTE_ADDR, REMOTE_PORT, SERVER_ADDR,
#     SERVER_PORT, SERVER_NAME; an access log as in proxy mode. HAProxy:
#     `fcgi-app php` (docroot, `index index.php`, `option keep-conn`),
#     `use-fcgi-app php`, `server php ... proto fcgi`, the rest as in proxy
#     mode (http-reuse always). inverso: `targets = 127.0.0.1:PORT fastcgi`
#     (or `unix:PATH fastcgi`), `fastcgi_root`, `fastcgi_index = index.php`,
#     `fastcgi_keep_conn = true` (its default is a connection per request), no
#     `max_conns` (nginx and HAProxy have no limit either; inverso warns of
#     it), cache_size 0. After a round's runs, the connections each proxy
#     still has open to its pool (ss) show that they are kept: about as many
#     as a run's clients. (php-fpm's status page cannot tell: its `accepted
#     conn` counts requests.) CPU µs/req counts the proxy's processes;
#     php-fpm's (master and children of all pools: only the pool of the proxy
#     measured works) is counted apart, per request of the run, and counts as
#     neither "other CPU" nor the proxy's.
#   - tcp mode: nginx (`worker_processes auto`, as every nginx here) loads
#     its stream module (Debian's libnginx-mod-stream, installed if missing:
#     `load_module` of the .so in its modules path, unless built in):
#     `upstream backends { server ...; server ...; }` (round robin, no
#     keepalive: a stream has no requests to reuse a connection for),
#     `listen 127.0.0.1:PORT backlog=4096` (the stream module has no
#     `deferred`), `proxy_pass backends`, proxy_timeout at its default
#     (10m), and an access_log of one line per session (`log_format` of the
#     address, time, status, bytes both ways, session time and upstream,
#     buffer=64k). HAProxy: `mode tcp`, `option tcplog` (a line per
#     connection, to its stdout as in every mode), `balance roundrobin`,
#     nbthread = cores, timeouts client/server 120s, `bind` without
#     defer-accept (nginx's stream cannot defer, and inverso defers no
#     stream's listener). inverso: proxy mode's file (`targets` the two
#     backends, cache_size 0) plus `stream.web = default
#     listen=127.0.0.1:PORT`, the pool's tunnel_timeout at its default
#     (1h): one thread per connection copying both ways (poll); its access log
#     (a line per connection) to /dev/null. All three leave the client's
#     bytes as they are: no PROXY header, nothing of HTTP read. The
#     backends answer keep-alive requests on the connection the proxy
#     opened for the client; "Connection: close" makes the backend close
#     it, which each proxy passes on to wrk, which reconnects. CPU µs/req
#     counts the proxy's processes; every proxy's relay costs are per
#     connection, so the close64 cell is where they show.
#   - tcp-tls mode: the same three as tcp mode (the same stream blocks,
#     log lines, timeouts, nbthread, no defer-accept, round robin), each
#     ending TLS with tls mode's self-signed ECDSA P-256 certificate (made
#     once if tls mode did not run), TLS 1.2 and 1.3 allowed, no ALPN
#     (wrk offers none; curl's is declined). nginx: `listen
#     127.0.0.1:PORT ssl backlog=4096`, ssl_certificate +
#     ssl_certificate_key, `ssl_protocols TLSv1.2 TLSv1.3`, resumption at
#     the stream module's defaults: session tickets on (keys OpenSSL makes
#     at start-up, shared by the workers), `ssl_session_cache none` (no
#     session IDs kept: TLS 1.2 clients resume by ticket alone; unlike tls
#     mode's nginx, which sets shared:SSL:10m). HAProxy: `mode tcp`, `bind
#     127.0.0.1:PORT ssl crt <chain and key in one file>`, its defaults:
#     TLS 1.2 at least (ssl-min-ver), tickets on, and a session cache shared
#     by its threads (tune.ssl.cachesize 20000). inverso: `tls_certificates
#     = <chain> key=<key>` and `stream.web = default listen=127.0.0.1:PORT
#     tls`, no tls_port (its HTTP port unused), tls_protocols and
#     tls_session_tickets at their defaults (TLS 1.2 and 1.3; tickets that
#     hold the session, encrypted with a key made at start-up, and TLS 1.2
#     session IDs kept in memory); rustls (ring); a thread a direction per
#     connection. So all three resume a session by ticket, as the probe
#     checks; wrk offers its session again after "Connection: close" (see
#     tls mode), so the close64 handshakes are resumed ones (in TLS 1.3
#     still an ECDHE key exchange, no certificate nor signature). The
#     backends answer keep-alive requests on the connection the proxy
#     opened for the client; "Connection: close" makes the backend close
#     it, which each proxy passes on to wrk as a TLS close. CPU µs/req
#     counts the proxy's processes; wrk's own TLS work shares the cores.
#   - udp mode: the DNS servers are two dnsmasq processes (`dnsmasq
#     --keep-in-foreground --port=P --listen-address=127.0.0.1
#     --bind-interfaces --no-resolv --no-hosts --addn-hosts=<file>
#     --local=/bench.test/ --log-facility=-`, as nobody when run as root),
#     each answering the same zone, 300 names h1.bench.test ... with
#     addresses of their own (10.53.x.y, so that a probe can tell a right
#     answer from a wrong one), from memory: no upstream, no query log.
#     dnsmasq is single-threaded and cheap, which leaves the cores to the
#     proxy and dnsperf; the two processes share the HTTP backends' role,
#     and their CPU counts as the backends'. dnsperf: `-s 127.0.0.1 -p
#     PORT -d <file> -l BENCH_SECONDS -t 5`, the file an A query for each
#     of the 300 names, -q at its default (100 outstanding), no EDNS; the
#     queries are 32 bytes, the answers 48. nginx: its stream module as
#     in tcp mode (worker_processes auto, the same log line per session,
#     buffer=64k), `upstream dns { server ...; server ...; }` (round robin),
#     `listen 127.0.0.1:PORT udp` (no reuseport: the workers share one
#     socket, its datagrams taken by whichever worker wakes; nginx's own
#     DNS example adds `reuseport`, a socket per worker, the kernel
#     spreading clients over them by address and port),
#     `proxy_pass dns; proxy_responses 1; proxy_timeout 5s;` (a session
#     ends with the answer to each of its queries, as DNS wants; the 5 s
#     bound is dnsperf's own timeout). inverso: `targets` the two dnsmasq
#     ports, `stream.dns = default listen=127.0.0.1:PORT udp responses=1
#     timeout=5s` (its HTTP port unused), a thread for the stream's
#     datagrams and one per session waiting for its answers; its access
#     log (a line per session) to /dev/null; an admin_port whose
#     inverso_stream_connections_total, read before and after each run,
#     counts its sessions (nginx's: the lines of its session log, give or
#     take what its 64 KiB buffer holds). A session is a client's address
#     and port, and ends, in both, once none of its queries is owed an
#     answer: with c1 all of dnsperf's queries go by one session at a time
#     (a new one whenever the 100 outstanding all got answers), with c64
#     each of the 64 sockets has its own, ended and begun again as its
#     one or two outstanding queries are answered: about one session per
#     query, a new upstream socket each (and in inverso a thread). Lost
#     queries are dnsperf's: sent and not answered within its timeout (5
#     s) or by the end of the run. CPU µs/query counts the proxy's
#     processes over the queries answered; dnsperf's own CPU counts
#     neither as the proxy's nor as "other".
#   - Idle memory: VmRSS of the proxy (all its processes) before and while
#     BENCH_IDLE_CONNS connections sit idle after one request each
#     (scripts/bench_idle.py); kernel socket buffers are not in RSS. A
#     fresh process of each proxy, one at a time. In tls mode the same for
#     BENCH_IDLE_TLS_CONNS TLS connections (bench_idle.py --tls: python's
#     ssl, SNI localhost, no certificate check) to a fresh process of each
#     proxy set up as for tls mode's runs, after them.
#
# A quick run: BENCH_SECONDS=2 scripts/bench.sh (about 6.5 minutes; the
# default takes about 24, of which `files`, `tls` and `backend-tls` about 2
# each a repetition, `auth` under 1, `subfilter` about 1.5, `gunzip` about 3,
# `upload` about 3, `fastcgi` about 4.5, `tcp` about 3, `tcp-tls` about 3,
# `udp` about 1.5).
# For README figures use BENCH_REPS=3 on a quiet machine: figures are then
# medians and the errors are summed.
#
# Output: the report (Markdown) on stdout and in target/bench/results.md; raw
# per-run figures in target/bench/*.tsv. Everything the script starts lives in
# a temp dir from mktemp -d, listens on ports it checked were free, and is
# stopped by PID when the script exits (trap EXIT). If inverso does not build
# or start, its cells read n/a and the rest still runs.
set -euo pipefail
umask 022 # files and dirs we create must be readable by nginx's workers

readonly MODE=${1:-all}
case $MODE in
  proxy | cache | gzip | gunzip | idle | files | tls | backend-tls | auth | subfilter | upload | fastcgi | tcp | tcp-tls | udp | all) ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "usage: $0 [proxy|cache|gzip|gunzip|idle|files|tls|backend-tls|auth|subfilter|upload|fastcgi|tcp|tcp-tls|udp|all]" >&2
    exit 2
    ;;
esac

readonly SECONDS_PER_RUN=${BENCH_SECONDS:-10}
readonly REPS=${BENCH_REPS:-1}
readonly IDLE_CONNS=${BENCH_IDLE_CONNS:-5000}
readonly IDLE_TLS_CONNS=${BENCH_IDLE_TLS_CONNS:-1000}
readonly FASTCGI_CHILDREN=${BENCH_FASTCGI_CHILDREN:-96}
readonly WRK_TIMEOUT=${BENCH_TIMEOUT:-5}
readonly NICE=${BENCH_NICE:-0}
if ! [[ $NICE =~ ^-?[0-9]+$ ]] || ((NICE < -20 || NICE > 19)); then
  echo "bench: BENCH_NICE must be an integer from -20 to 19, got '$NICE'" >&2
  exit 2
fi
# BENCH_NICE: with the kernel's autogroups (the default), a nice value only
# weighs against threads of the same session, while each session as a whole
# gets an equal share. So the benchmark re-runs itself in a session of its
# own and sets that session's nice; every process it starts is measured
# under the same priority, so the comparison stays fair.
if ((NICE != 0)) && [[ -z ${BENCH_OWN_SESSION:-} ]]; then
  BENCH_OWN_SESSION=1 setsid "$0" "$@" &
  bench_pid=$!
  trap 'kill -TERM "$bench_pid" 2>/dev/null' INT TERM
  status=0
  # wait returns early when a trapped signal arrives; then wait again.
  for _ in 1 2 3; do
    wait "$bench_pid" && status=0 || status=$?
    kill -0 "$bench_pid" 2>/dev/null || break
  done
  exit "$status"
fi
RUN=()
if ((NICE != 0)); then
  if [[ -w /proc/self/autogroup ]]; then
    echo "$NICE" >/proc/self/autogroup
  fi
  RUN=(nice -n "$NICE") # without autogroups, nice the processes themselves
fi
readonly RUN
# BENCH_PROXY_NICE: the same priority for every proxy, relative to wrk and
# the backends. nginx's and inverso's settings are absolute nice values:
# PROXY_AT is the proxies' one, from the value the others run at.
readonly PROXY_NICE=${BENCH_PROXY_NICE:-}
PROXY_AT=
if [[ -n $PROXY_NICE ]]; then
  if ! [[ $PROXY_NICE =~ ^-?[0-9]+$ ]] || ((PROXY_NICE < -39 || PROXY_NICE > 39)); then
    echo "bench: BENCH_PROXY_NICE must be an integer from -39 to 39, got '$PROXY_NICE'" >&2
    exit 2
  fi
  others=$(nice)
  if ((${#RUN[@]} > 0)); then others=$((others + NICE)); fi # RUN: nice -n NICE
  PROXY_AT=$((others + PROXY_NICE))
  PROXY_AT=$((PROXY_AT < -20 ? -20 : PROXY_AT > 19 ? 19 : PROXY_AT))
fi
readonly PROXY_AT
for v in SECONDS_PER_RUN REPS IDLE_CONNS IDLE_TLS_CONNS WRK_TIMEOUT FASTCGI_CHILDREN; do
  if ! [[ ${!v} =~ ^[1-9][0-9]*$ ]]; then
    echo "bench: $v must be a positive integer, got '${!v}'" >&2
    exit 2
  fi
done

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
readonly SCRIPT_DIR REPO_ROOT
readonly OUT_DIR=$REPO_ROOT/target/bench
readonly INVERSO_BIN=${BENCH_INVERSO_BIN:-$REPO_ROOT/target/release/inverso}
CORES=$(nproc)
CLK_TCK=$(getconf CLK_TCK)
readonly CORES CLK_TCK
readonly WRK_THREADS=2

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# ---------------------------------------------------------------- install

install_deps() {
  local missing=() cmd pkg
  # command:package pairs (procps gives ps and pgrep); cargo must be there.
  for pair in wrk:wrk nginx:nginx haproxy:haproxy ps:procps pgrep:procps \
    curl:curl python3:python3 gzip:gzip openssl:openssl cargo:; do
    cmd=${pair%%:*} pkg=${pair#*:}
    if ! command -v "$cmd" >/dev/null 2>&1; then
      [[ -n $pkg ]] || die "$cmd not found (install the Rust toolchain)"
      missing+=("$pkg")
    fi
  done
  # php-fpm only for the mode that runs it; Debian names its binary after
  # the PHP version (php-fpm8.2).
  local want_fpm=0
  case $MODE in fastcgi | all) want_fpm=1 ;; esac
  if [[ $want_fpm == 1 ]]; then
    find_php_fpm
    [[ -n $PHP_FPM ]] || missing+=(php-fpm)
  fi
  # nginx's stream module only for the mode that proxies TCP; Debian builds
  # it as a module of its own package (libnginx-mod-stream).
  local want_stream=0
  case $MODE in tcp | tcp-tls | udp | all) want_stream=1 ;; esac
  if [[ $want_stream == 1 ]] && ! nginx_stream_module; then
    missing+=(libnginx-mod-stream)
  fi
  # udp mode's DNS load generator, servers and probe: dnsperf, dnsmasq
  # (dnsmasq-base: the binary without Debian's system service) and dig.
  local want_dns=0
  case $MODE in udp | all) want_dns=1 ;; esac
  if [[ $want_dns == 1 ]]; then
    command -v dnsperf >/dev/null 2>&1 || missing+=(dnsperf)
    command -v dig >/dev/null 2>&1 || missing+=(dnsutils)
    find_dnsmasq
    [[ -n $DNSMASQ ]] || missing+=(dnsmasq-base)
  fi
  ((${#missing[@]} == 0)) && return 0
  [[ $(id -u) == 0 ]] || die "missing ${missing[*]}; run as root to install them"
  log "installing ${missing[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian's nginx and haproxy packages start their system service on
  # install (nginx on port 80). We run our own instances only, and must
  # leave nothing running: unless the machine already has a policy-rc.d
  # (containers usually do), a temporary one tells the packages not to start
  # anything; it is removed right after, also on failure.
  local policy=/usr/sbin/policy-rc.d
  if [[ ! -e $policy ]]; then
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    printf '#!/bin/sh\n# temporary, from scripts/bench.sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
  fi
  apt-get install -y -qq "${missing[@]}" >/dev/null
  if grep -q 'from scripts/bench.sh' "$policy" 2>/dev/null; then
    rm -f "$policy"
    trap - EXIT
  fi
  if [[ $want_fpm == 1 ]]; then
    find_php_fpm
    [[ -n $PHP_FPM ]] || die "php-fpm installed, but no php-fpm binary found"
  fi
  if [[ $want_stream == 1 ]]; then
    nginx_stream_module || die "libnginx-mod-stream installed, but nginx has no stream module"
  fi
  if [[ $want_dns == 1 ]]; then
    find_dnsmasq
    [[ -n $DNSMASQ ]] || die "dnsmasq-base installed, but no dnsmasq binary found"
  fi
}

DNSMASQ="" # the dnsmasq binary (udp mode)
# find_dnsmasq: sets DNSMASQ to dnsmasq in PATH or /usr/sbin (not in a
# user's PATH), "" if none.
find_dnsmasq() {
  DNSMASQ=$(command -v dnsmasq 2>/dev/null || true)
  if [[ -z $DNSMASQ && -x /usr/sbin/dnsmasq ]]; then DNSMASQ=/usr/sbin/dnsmasq; fi
}

NGINX_STREAM_LOAD="" # the load_module line nginx's stream configs start with (tcp mode)
# nginx_stream_module: whether nginx has its stream module, built in or as
# a dynamic module in its modules path (Debian's libnginx-mod-stream); sets
# NGINX_STREAM_LOAD to the load_module line a config needs for it ("" when
# built in). Our configs load it themselves: they include nothing from
# /etc/nginx (modules-enabled).
nginx_stream_module() {
  local v dir so
  NGINX_STREAM_LOAD=""
  command -v nginx >/dev/null 2>&1 || return 1
  v=" $(nginx -V 2>&1 | tr '\n' ' ') "
  [[ $v == *" --with-stream "* ]] && return 0
  [[ $v == *" --with-stream=dynamic "* ]] || return 1
  dir=$(tr ' ' '\n' <<<"$v" | sed -n 's/^--modules-path=//p')
  so=${dir:-/usr/lib/nginx/modules}/ngx_stream_module.so
  [[ -f $so ]] || return 1
  NGINX_STREAM_LOAD="load_module $so;"
}

PHP_FPM="" # the php-fpm binary (fastcgi mode)
# find_php_fpm: sets PHP_FPM to php-fpm, or to Debian's php-fpmX.Y (the
# newest, if several), in PATH or /usr/sbin (not in a user's PATH); "" if
# none.
find_php_fpm() {
  local c best=""
  for c in $(compgen -c php-fpm | sort -uV) /usr/sbin/php-fpm*; do
    if [[ $c != */* ]]; then c=$(command -v "$c" 2>/dev/null) || continue; fi
    [[ -x $c && ${c##*/} =~ ^php-fpm[0-9.]*$ ]] && best=$c
  done
  PHP_FPM=$best
}

# ---------------------------------------------------------------- processes

TMP=
# shellcheck source=scripts/procs.sh
source "$SCRIPT_DIR/procs.sh"

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  stop_all
  [[ -n $TMP && -d $TMP ]] && rm -rf "$TMP"
  exit "$status"
}

# Sum of a /proc/PID/status field (VmRSS, VmHWM, Threads) over PID and its
# children (nginx master + workers). In KiB for Vm* fields.
status_tree() {
  local field=$1 pid=$2 p total=0 v
  for p in $pid $(pgrep -P "$pid" 2>/dev/null || true); do
    v=$(awk -v f="$field:" '$1 == f { print $2 }' "/proc/$p/status" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

# utime+stime in clock ticks over PID and its children.
cpu_ticks_tree() {
  local pid=$1 p total=0 v
  for p in $pid $(pgrep -P "$pid" 2>/dev/null || true); do
    # Fields after "(comm) ": utime and stime are the 12th and 13th.
    v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }' || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

# cpu_ticks_many PID: cpu_ticks_tree for a parent of many children (php-fpm's
# master and its pools), in one awk rather than two processes per child.
cpu_ticks_many() {
  local pid=$1 p files=()
  for p in $pid $(pgrep -P "$pid" 2>/dev/null || true); do
    [[ -r /proc/$p/stat ]] && files+=("/proc/$p/stat")
  done
  ((${#files[@]} > 0)) || {
    echo 0
    return 0
  }
  # cat: a child gone since the test is skipped, the rest still summed.
  # Fields after "(comm) ": utime and stime are the 12th and 13th.
  cat "${files[@]}" 2>/dev/null | awk '{ sub(/.*\) /, ""); t += $12 + $13 } END { print t + 0 }'
}

# "busy all" ticks of the whole machine (/proc/stat): busy = user + nice +
# system + steal, all = every field. Interrupt time is left out of "busy":
# on loopback it is mostly our own traffic.
machine_ticks() {
  awk '$1 == "cpu" { print $2 + $3 + $4 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit }' /proc/stat
}

# children_ticks VAR: CPU ticks of this shell's finished children (wrk),
# from the "times" builtin, which must run in this shell: in a $(...)
# subshell it would see that subshell's children only.
children_ticks() {
  times >"$TMP/times"
  printf -v "$1" '%s' "$(awk -v hz="$CLK_TCK" 'NR == 2 {
    t = 0
    for (i = 1; i <= 2; i++) { split($i, a, "m"); t += a[1] * 60 + substr(a[2], 1, length(a[2]) - 1) }
    printf "%d", t * hz }' "$TMP/times")"
}

# ---------------------------------------------------------------- servers

# Static files the backends serve. /c/... answers carry max-age so caches may
# keep them; the plain paths say nothing about caching.
make_content() {
  mkdir -p "$TMP/www/c"
  head -c 1024 /dev/zero | tr '\0' 'a' >"$TMP/www/1k"
  head -c 65536 /dev/zero | tr '\0' 'b' >"$TMP/www/64k"
  cp "$TMP/www/1k" "$TMP/www/64k" "$TMP/www/c/"
  # gzip mode: text that compresses as text does, neither random (which
  # does not compress) nor one repeated byte (which shrinks a thousandfold):
  # numbered lines of words and figures that vary from line to line.
  local text=$TMP/www/c/text f
  awk 'BEGIN {
    split("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu", w, " ")
    for (i = 1; i <= 2000; i++) {
      a = (i * 7919) % 26 + 1; b = (i * i * 31 + 7) % 26 + 1; c = (i * 104729) % 26 + 1
      printf "%05d %s-%s %s qty=%d price=%d.%02d ref=%08x\n", i, w[a], w[b], w[c],
        (i * 37) % 1000, (i * 7) % 9973, (i * 13) % 100, (i * 2654435761) % 4294967296
    } }' >"$text"
  head -c 1024 "$text" >"$TMP/www/c/1k.txt"
  head -c 65536 "$text" >"$TMP/www/c/64k.txt"
  rm "$text"
  for f in 1k 64k; do
    [[ $(wc -c <"$TMP/www/c/$f.txt") == "$(body_size "$f")" ]] || die "short text body $f.txt"
  done
  # subfilter mode: HTML pages holding the strings its rules replace, and
  # in $TMP/subfilter-want (not served) what each must become.
  mkdir -p "$TMP/subfilter-want"
  local made
  for f in 1k 64k; do
    made=$(python3 "$SCRIPT_DIR/bench_pages.py" "$(body_size "$f")" "$TMP/www/$f.html" \
      "$TMP/subfilter-want/$f.html" "$SUB_FROM1" "$SUB_TO1" "$SUB_FROM2" "$SUB_TO2") ||
      die "bench_pages.py could not make $f.html"
    SUBFILTER_PAGES[$f]=$made
  done
}

# subfilter mode's rules, the same for nginx-sub and inverso-sub: an
# application's own address written as the public one, and a script put
# before </head>. They hold no `$` (a variable in both configs), `#` (a
# comment in inverso's file) or `\` (an escape in both). The second
# replacement holds its own string to find, `</head>`, as such a rule
# does: a filter that looked at what it wrote would not end.
readonly SUB_FROM1='http://app.internal:8080/' SUB_TO1='https://www.example.com/'
readonly SUB_FROM2='</head>' SUB_TO2='<script src="/a.js"></script></head>'
declare -A SUBFILTER_PAGES=() # what bench_pages.py said of each page

# Lines every nginx config here needs so that nothing lands outside $TMP:
# Debian's build defaults point its temp paths and logs into /var.
nginx_common() {
  local name=$1
  mkdir -p "$TMP/$name"
  cat <<EOF
daemon off;
worker_processes auto;
worker_rlimit_nofile $NOFILE;
pid $TMP/$name/nginx.pid;
error_log $TMP/$name/error.log warn;
events { worker_connections $((NOFILE / 2)); multi_accept on; }
EOF
}

nginx_http_common() {
  local name=$1
  cat <<EOF
  client_body_temp_path $TMP/$name/client_body;
  proxy_temp_path $TMP/$name/proxy_temp;
  fastcgi_temp_path $TMP/$name/fastcgi_temp;
  uwsgi_temp_path $TMP/$name/uwsgi_temp;
  scgi_temp_path $TMP/$name/scgi_temp;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  tcp_nodelay on;
EOF
}

# start_nginx VAR NAME CONF PORT: starts nginx, sets VAR to its master's PID.
start_nginx() {
  local _name=$2 _conf=$3 _port=$4 _pid
  "${RUN[@]}" nginx -p "$TMP/$_name" -c "$_conf" -e "$TMP/$_name/error.log" \
    >"$TMP/$_name/stdout.log" 2>&1 &
  _pid=$!
  PIDS+=("$_pid")
  if ! wait_listening "$_pid" "$_port"; then
    cat "$TMP/$_name/error.log" >&2 || true
    die "$_name did not start"
  fi
  printf -v "$1" '%s' "$_pid"
}

BACKEND1="" BACKEND2="" BACKEND_PID=""
APP_PID="" # php-fpm's master while fastcgi mode measures (run_wrk counts its CPU)
BACKEND_TLS_WANTED=0 # 1: the backends listen with ssl too (backend-tls mode)
BACKEND1_TLS="" BACKEND2_TLS="" # their ssl ports
BACKEND_TLS_LOG=""              # one line per new TLS connection to them
AUTH_WANTED=0    # 1: the backend nginx is the sign-in service too (auth mode)
AUTH_SERVICE=""  # the service's port
UPLOAD_WANTED=0  # 1: the backends take POSTs to /upload (upload mode)
start_backends() {
  pick_port BACKEND1
  pick_port BACKEND2
  local conf=$TMP/backend.conf tls_server="" auth_server="" whoami="" upload=""
  if [[ $BACKEND_TLS_WANTED == 1 ]]; then
    make_backend_certificate
    pick_port BACKEND1_TLS
    pick_port BACKEND2_TLS
    BACKEND_TLS_LOG=$TMP/backend/tls-connections.log
    tls_server=$(backend_tls_server)
  fi
  if [[ $AUTH_WANTED == 1 ]]; then
    pick_port AUTH_SERVICE
    # The service says yes to everyone, and who they are; /whoami tells
    # auth_probe which Remote-User reached the backends.
    auth_server="  server {
    listen 127.0.0.1:$AUTH_SERVICE backlog=4096;
    location = /verify { add_header Remote-User ann; return 204; }
  }"
    whoami="location = /whoami { default_type text/plain; return 200 \"\$http_remote_user\\n\"; }"
  fi
  if [[ $UPLOAD_WANTED == 1 ]]; then
    # POST /upload: the body read whole into memory before the answer, as
    # an application reads an upload (`return` alone would discard it, the
    # answer going out before the body has all come). The mirror module
    # reads it (mirror_request_body on: "the client request body will be
    # read prior to creating mirror subrequests"); its subrequest goes to
    # an internal location answering 204, in the process. Then the static
    # handler refuses a POST to the (empty) file www/upload with 405, which
    # error_page turns into a 200 telling how the body came (the probe
    # reads it): its Content-Length or Transfer-Encoding.
    : >"$TMP/www/upload"
    upload="location = /upload {
      client_max_body_size 2m;
      client_body_buffer_size 2m;
      mirror /_upload_read;
      mirror_request_body on;
      error_page 405 =200 @uploaded;
    }
    location = /_upload_read { internal; return 204; }
    location @uploaded {
      default_type text/plain;
      return 200 \"cl=\$http_content_length te=\$http_transfer_encoding\\n\";
    }"
  fi
  {
    nginx_common backend
    cat <<EOF
http {
$(nginx_http_common backend)
  access_log off;
  sendfile on;
  tcp_nopush on;
  etag off;
  open_file_cache max=64;
  default_type application/octet-stream;
  types { text/plain txt; text/html html; }
  server {
    listen 127.0.0.1:$BACKEND1 backlog=4096;
    listen 127.0.0.1:$BACKEND2 backlog=4096;
    root $TMP/www;
    location /c/ { add_header Cache-Control "max-age=600"; }
    # gunzip mode: the same text files, always sent gzip-coded to a client
    # that takes gzip, as a backend that compresses its answers does;
    # gzip_proxied any: inverso's requests carry Via, which nginx's gzip
    # filter otherwise takes as a reason not to compress.
    location /gz/ {
      alias $TMP/www/c/;
      gzip on; gzip_types text/plain; gzip_min_length 0; gzip_comp_level 6;
      gzip_vary on; gzip_proxied any;
      add_header Cache-Control "max-age=600";
    }
    $whoami
    $upload
  }
$tls_server
$auth_server
}
EOF
  } >"$conf"
  start_nginx BACKEND_PID backend "$conf" "$BACKEND1"
  wait_listening "$BACKEND_PID" "$BACKEND2" || die "backend port 2 not up"
  log "backends on 127.0.0.1:$BACKEND1 and :$BACKEND2 (nginx pid $BACKEND_PID)"
  if [[ $AUTH_WANTED == 1 ]]; then
    wait_listening "$BACKEND_PID" "$AUTH_SERVICE" || die "sign-in service port not up"
    log "sign-in service (a server block of the backend nginx) on 127.0.0.1:$AUTH_SERVICE"
  fi
  if [[ $BACKEND_TLS_WANTED == 1 ]]; then
    # wait_listening's connects send nothing: no TLS connection is logged.
    wait_listening "$BACKEND_PID" "$BACKEND1_TLS" || die "backend ssl port 1 not up"
    wait_listening "$BACKEND_PID" "$BACKEND2_TLS" || die "backend ssl port 2 not up"
    log "backends over TLS on 127.0.0.1:$BACKEND1_TLS and :$BACKEND2_TLS"
  fi
}

# start_nginx_proxy VAR NAME PORT CACHE [GZIP] [TLS] [BACKEND_TLS] [AUTH]
# [SUB] [GUNZIP] [UPLOAD]: nginx as reverse proxy (CACHE=1: with proxy_cache; GZIP=1:
# gzip on for text/plain, level 1; TLS=1: the port takes HTTPS with
# make_certificate's certificate; BACKEND_TLS=1: to the backends' ssl ports
# over TLS, verifying their certificate; AUTH=1: every request first asked
# of the sign-in service, auth_request; SUB=1: subfilter mode's rules
# rewrite text/html bodies, sub_filter; GUNZIP=1: the backends always asked
# for gzip, a gzip-coded answer decoded for a client that takes none,
# gunzip on, and stored once whatever its Vary says; UPLOAD=1: request
# bodies of up to 2 MiB taken, client_max_body_size 2m, buffered as nginx
# does by default, past client_body_buffer_size to a file in its temp dir);
# sets VAR to its master's PID.
start_nginx_proxy() {
  local _var=$1 name=$2 port=$3 cache=$4 gzip=${5:-0} tls=${6:-0} backend_tls=${7:-0}
  local auth=${8:-0} sub=${9:-0} gunzip=${10:-0} upload=${11:-0} conf=$TMP/$2.conf
  local cache_http="" cache_loc="" sub_loc="" gunzip_loc="" upload_loc=""
  local gzip_http="" listen_ssl="" ssl_server="" auth_http="" auth_loc="" auth_server=""
  local scheme=http b1=$BACKEND1 b2=$BACKEND2 ssl_loc=""
  if [[ $auth == 1 ]]; then
    # The subrequest goes to the service over kept-alive connections,
    # without the client's body; the service's Remote-User replaces any
    # the client sent (an empty one removes it).
    auth_http="upstream sso {
    server 127.0.0.1:$AUTH_SERVICE;
    keepalive 64;
    keepalive_requests 1000000;
  }"
    auth_loc="auth_request /_auth;
      auth_request_set \$user \$upstream_http_remote_user;
      proxy_set_header Remote-User \$user;"
    local auth_cache=""
    if [[ -n ${BENCH_AUTH_CACHE:-} ]]; then
      mkdir -p "$TMP/$name/auth_cache"
      auth_http+="
  proxy_cache_path $TMP/$name/auth_cache keys_zone=auth:1m use_temp_path=off;"
      auth_cache="proxy_cache auth;
      proxy_cache_key \"\$remote_addr \$http_cookie \$http_authorization \$request_uri\";
      proxy_cache_valid 200 204 $BENCH_AUTH_CACHE;"
    fi
    auth_server="location = /_auth {
      internal;
      $auth_cache
      proxy_pass http://sso/verify;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_pass_request_body off;
      proxy_set_header Content-Length \"\";
      proxy_set_header X-Original-URI \$request_uri;
    }"
  fi
  if [[ $backend_tls == 1 ]]; then
    # proxy_ssl_name: nginx checks a name (X509_check_host), never an
    # address, and would check the upstream block's name by default.
    # proxy_ssl_protocols: before 1.23.4 its default leaves TLSv1.3 out.
    scheme=https b1=$BACKEND1_TLS b2=$BACKEND2_TLS
    ssl_loc="proxy_ssl_verify on; proxy_ssl_trusted_certificate $BACKEND_TLS_DIR/ca.pem;
      proxy_ssl_name localhost; proxy_ssl_server_name on; proxy_ssl_session_reuse on;
      proxy_ssl_protocols TLSv1.2 TLSv1.3;"
  fi
  if [[ $tls == 1 ]]; then
    listen_ssl=" ssl"
    ssl_server="ssl_certificate $TLS_DIR/cert.pem; ssl_certificate_key $TLS_DIR/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:SSL:10m;"
  fi
  if [[ $gzip == 1 ]]; then
    # The gzip filter runs on every response nginx sends, hits from
    # proxy_cache included (the cache keeps the backend's uncompressed body).
    gzip_http="gzip on; gzip_types text/plain; gzip_comp_level 1; gzip_min_length 256; gzip_proxied any; gzip_vary on;"
  fi
  if [[ $sub == 1 ]]; then
    # Every match, not the first alone; the backends asked for plain
    # bodies, as nginx's documentation says to (the filter finds nothing
    # in a compressed one). text/html is nginx's default type here:
    # written out, as inverso's is, it draws a harmless "duplicate MIME
    # type" warning in the error log.
    sub_loc="sub_filter '$SUB_FROM1' '$SUB_TO1';
      sub_filter '$SUB_FROM2' '$SUB_TO2';
      sub_filter_once off;
      sub_filter_types text/html;
      proxy_set_header Accept-Encoding \"\";"
  fi
  if [[ $gunzip == 1 ]]; then
    # The backends compress whatever the client takes; the cache keeps
    # their coded answer and, Vary: Accept-Encoding unread, one entry per
    # URL for every client, which nginx's gunzip filter decodes at each hit
    # for a client that takes no gzip and lets through as it is otherwise.
    gunzip_loc="proxy_set_header Accept-Encoding gzip;
      proxy_ignore_headers Vary;
      gunzip on;"
  fi
  if [[ $upload == 1 ]]; then
    # proxy_request_buffering on and client_body_buffer_size (two memory
    # pages, 8k on x86-64) at their defaults: a larger body goes to a file
    # of client_body_temp_path (in $TMP/NAME, nginx_http_common), unlinked
    # once opened, and is sent from it. The error log at nginx's default
    # level, error: at warn, set for every other nginx here, each such body
    # writes a line ("a client request body is buffered to a temporary
    # file").
    upload_loc="client_max_body_size 2m;
      error_log $TMP/$name/error.log error;"
  fi
  if [[ $cache == 1 ]]; then
    mkdir -p "$TMP/$name/cache"
    cache_http="proxy_cache_path $TMP/$name/cache levels=1:2 keys_zone=bench:16m max_size=256m inactive=10m use_temp_path=off;"
    cache_loc="proxy_cache bench; proxy_cache_valid 200 10m; add_header X-Cache \$upstream_cache_status;"
  fi
  {
    nginx_common "$name"
    if [[ -n $PROXY_AT ]]; then echo "worker_priority $PROXY_AT;"; fi
    cat <<EOF
http {
$(nginx_http_common "$name")
  access_log $TMP/$name/access.log combined buffer=64k;
  $cache_http
  $gzip_http
  upstream backends {
    server 127.0.0.1:$b1;
    server 127.0.0.1:$b2;
    keepalive 64;
    keepalive_requests 1000000;
  }
  $auth_http
  server {
    listen 127.0.0.1:$port$listen_ssl backlog=4096 deferred;
    $ssl_server
    location / {
      proxy_pass $scheme://backends;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffer_size 16k;
      proxy_buffers 8 16k;
      $ssl_loc
      $cache_loc
      $auth_loc
      $sub_loc
      $gunzip_loc
      $upload_loc
    }
    $auth_server
  }
}
EOF
  } >"$conf"
  start_nginx "$_var" "$name" "$conf" "$port"
}

# start_nginx_files VAR NAME PORT (files mode): nginx serving $TMP/www/c
# under /c/ itself, configured as one would serve static files (see the
# header comment); sets VAR to its master's PID.
start_nginx_files() {
  local _var=$1 name=$2 port=$3 conf=$TMP/$2.conf
  {
    nginx_common "$name"
    if [[ -n $PROXY_AT ]]; then echo "worker_priority $PROXY_AT;"; fi
    cat <<EOF
http {
$(nginx_http_common "$name")
  access_log $TMP/$name/access.log combined buffer=64k;
  sendfile on;
  tcp_nopush on;
  open_file_cache off;
  default_type application/octet-stream;
  types { text/plain txt; }
  server {
    listen 127.0.0.1:$port backlog=4096 deferred;
    location /c/ {
      alias $TMP/www/c/;
      add_header Cache-Control "max-age=600";
    }
  }
}
EOF
  } >"$conf"
  start_nginx "$_var" "$name" "$conf" "$port"
}

# start_nginx_fastcgi VAR NAME PORT FCGI_ADDR (fastcgi mode): nginx passing
# every request to php-fpm at FCGI_ADDR (127.0.0.1:PORT or unix:PATH) over
# kept connections, its FastCGI params written out (no `include
# fastcgi_params`; see the header comment); sets VAR to its master's PID.
start_nginx_fastcgi() {
  local _var=$1 name=$2 port=$3 faddr=$4 conf=$TMP/$2.conf
  {
    nginx_common "$name"
    if [[ -n $PROXY_AT ]]; then echo "worker_priority $PROXY_AT;"; fi
    cat <<EOF
http {
$(nginx_http_common "$name")
  access_log $TMP/$name/access.log combined buffer=64k;
  upstream php {
    server $faddr;
    keepalive 32;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$port backlog=4096 deferred;
    root $FASTCGI_ROOT;
    location / {
      fastcgi_pass php;
      fastcgi_keep_conn on;
      fastcgi_index index.php;
      fastcgi_buffer_size 16k;
      fastcgi_buffers 8 16k;
      fastcgi_param SCRIPT_FILENAME \$document_root\$fastcgi_script_name;
      fastcgi_param QUERY_STRING \$query_string;
      fastcgi_param REQUEST_METHOD \$request_method;
      fastcgi_param CONTENT_TYPE \$content_type;
      fastcgi_param CONTENT_LENGTH \$content_length;
      fastcgi_param SCRIPT_NAME \$fastcgi_script_name;
      fastcgi_param REQUEST_URI \$request_uri;
      fastcgi_param DOCUMENT_URI \$document_uri;
      fastcgi_param DOCUMENT_ROOT \$document_root;
      fastcgi_param SERVER_PROTOCOL \$server_protocol;
      fastcgi_param REMOTE_ADDR \$remote_addr;
      fastcgi_param REMOTE_PORT \$remote_port;
      fastcgi_param SERVER_ADDR \$server_addr;
      fastcgi_param SERVER_PORT \$server_port;
      fastcgi_param SERVER_NAME \$server_name;
    }
  }
}
EOF
  } >"$conf"
  start_nginx "$_var" "$name" "$conf" "$port"
}

# start_nginx_stream VAR NAME PORT [tls] (tcp mode): nginx's stream module
# relaying each connection to one of the two backends, round robin (its
# default), as bytes; a line logged per connection when it ends; sets VAR to
# its master's PID. With tls (tcp-tls mode), the listener ends TLS with the
# benchmark's certificate (tls mode's), TLS 1.2 and 1.3, its session
# resumption at nginx's defaults (ssl_session_tickets on, ssl_session_cache
# none).
start_nginx_stream() {
  local _var=$1 name=$2 port=$3 tls=${4:-} conf=$TMP/$2.conf
  local listen_ssl="" ssl_server=""
  if [[ $tls == tls ]]; then
    listen_ssl=" ssl"
    ssl_server="
    ssl_certificate $TLS_DIR/cert.pem;
    ssl_certificate_key $TLS_DIR/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;"
  fi
  {
    # load_module: in the main context, before the block that uses it.
    if [[ -n $NGINX_STREAM_LOAD ]]; then echo "$NGINX_STREAM_LOAD"; fi
    nginx_common "$name"
    if [[ -n $PROXY_AT ]]; then echo "worker_priority $PROXY_AT;"; fi
    cat <<EOF
stream {
  log_format tcp '\$remote_addr [\$time_local] \$protocol \$status \$bytes_sent '
                 '\$bytes_received \$session_time "\$upstream_addr"';
  access_log $TMP/$name/access.log tcp buffer=64k;
  upstream backends {
    server 127.0.0.1:$BACKEND1;
    server 127.0.0.1:$BACKEND2;
  }
  server {
    listen 127.0.0.1:$port$listen_ssl backlog=4096;$ssl_server
    proxy_pass backends;
  }
}
EOF
  } >"$conf"
  start_nginx "$_var" "$name" "$conf" "$port"
}

# start_haproxy VAR PORT BACKENDS [BIND_OPTION...]: sets VAR to HAProxy's PID.
# BACKENDS: plain (the backends' HTTP ports), tls (their ssl ports, the
# certificate verified as nginx and inverso do in backend-tls mode) or
# fcgi:ADDR (php-fpm at ADDR, 127.0.0.1:PORT or unix@PATH, spoken to in
# FastCGI: fastcgi mode) or tcp (the backends' HTTP ports, relayed as bytes
# in `mode tcp`, without defer-accept: tcp mode). The BIND_OPTIONs end the
# frontend's bind line (ssl crt FILE).
start_haproxy() {
  local _port=$2 _conf=$TMP/haproxy.conf _pid _bind_extra=""
  local _b1=$BACKEND1 _b2=$BACKEND2 _server_extra="" _servers _fcgi_app=""
  local _defaults="  mode http
  log global
  option httplog
  http-reuse always
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  timeout http-keep-alive 120s" _defer=" defer-accept"
  case $3 in
    plain | fcgi:*) ;;
    tcp)
      # A line logged per connection, when it ends (as nginx's stream
      # access_log and inverso's); nothing of HTTP. No defer-accept: nginx's
      # stream listen has no `deferred`, and inverso defers no stream's.
      _defaults="  mode tcp
  log global
  option tcplog
  timeout connect 5s
  timeout client 120s
  timeout server 120s" _defer=""
      ;;
    tls)
      _b1=$BACKEND1_TLS _b2=$BACKEND2_TLS
      _server_extra=" ssl verify required ca-file $BACKEND_TLS_DIR/ca.pem sni str(localhost) verifyhost localhost"
      ;;
    *) die "start_haproxy: backends '$3' is none of plain, tls, fcgi:ADDR and tcp" ;;
  esac
  _servers="  server b1 127.0.0.1:$_b1$_server_extra
  server b2 127.0.0.1:$_b2$_server_extra"
  if [[ $3 == fcgi:* ]]; then
    # SCRIPT_FILENAME is docroot + SCRIPT_NAME (the path, index.php
    # appended to one ending in /), as nginx's and inverso's. keep-conn
    # (FCGI_KEEP_CONN) is its default, written out.
    _fcgi_app="fcgi-app php
  docroot $FASTCGI_ROOT
  index index.php
  option keep-conn
"
    _servers="  use-fcgi-app php
  server php ${3#fcgi:} proto fcgi"
  fi
  if (($# > 3)); then _bind_extra=" ${*:4}"; fi
  mkdir -p "$TMP/haproxy"
  cat >"$_conf" <<EOF
global
  nbthread $CORES
  maxconn $(((NOFILE - 1000) / 2))
  log stdout format raw local0

defaults
$_defaults

${_fcgi_app}frontend fe
  bind 127.0.0.1:$_port$_defer$_bind_extra
  default_backend be

backend be
  balance roundrobin
$_servers
EOF
  local at=("${RUN[@]}")
  # `nice -n` adds to the caller's value.
  if [[ -n $PROXY_AT ]]; then at=(nice -n $((PROXY_AT - $(nice)))); fi
  "${at[@]}" haproxy -db -f "$_conf" >>"$TMP/haproxy/access.log" 2>"$TMP/haproxy/stderr.log" &
  _pid=$!
  PIDS+=("$_pid")
  if ! wait_listening "$_pid" "$_port"; then
    cat "$TMP/haproxy/stderr.log" >&2 || true
    die "haproxy did not start"
  fi
  printf -v "$1" '%s' "$_pid"
}

INVERSO_STATE="not built"
INVERSO_LABEL="" # what the report calls the binary, if not this checkout's build
# start_inverso VAR NAME PORT CACHE_SIZE [LINE...]: sets VAR to inverso's
# PID, or to "" if it could not start (its cells then read n/a). Each LINE
# is appended to its config file; a LINE setting targets replaces the
# plain backends (a key given twice is an error in inverso's file).
start_inverso() {
  local _var=$1 name=$2 port=$3 cache_size=$4 conf=$TMP/$2.conf _ipid
  shift 4
  printf -v "$_var" '%s' ""
  [[ $INVERSO_STATE == built ]] || return 0
  mkdir -p "$TMP/$name"
  local targets="targets = 127.0.0.1:$BACKEND1, 127.0.0.1:$BACKEND2" line
  for line in "$@"; do [[ $line == "targets ="* ]] && targets=""; done
  cat >"$conf" <<EOF
# written by scripts/bench.sh
bind = 127.0.0.1
port = $port
$targets
cache_size = $cache_size
connection_timeout = 120s
path_to_persistence =
path_to_log =
max_connections = $(((IDLE_CONNS > IDLE_TLS_CONNS ? IDLE_CONNS : IDLE_TLS_CONNS) + 1000))
worker_priority = $PROXY_AT
EOF
  if (($# > 0)); then printf '%s\n' "$@" >>"$conf"; fi
  # INVERSO_<KEY> variables would override the file: drop any that are set.
  local unset_env=() v
  for v in $(compgen -e); do [[ $v == INVERSO_* ]] && unset_env+=(-u "$v"); done
  "${RUN[@]}" env "${unset_env[@]}" RUST_LOG=warn "$INVERSO_BIN" --config "$conf" \
    >/dev/null 2>"$TMP/$name/stderr.log" &
  _ipid=$!
  PIDS+=("$_ipid")
  if ! wait_listening "$_ipid" "$port"; then
    local why="did not listen within 10s"
    if ! alive "$_ipid"; then
      local rc=0
      wait "$_ipid" || rc=$?
      why="exited with status $rc"
    fi
    log "$name $why; its cells read n/a. stderr:"
    tail -n 20 "$TMP/$name/stderr.log" >&2 || true
    local err
    err=$(tail -n 3 "$TMP/$name/stderr.log" | tr '\n' ' ')
    note "$name $why${err:+; stderr: $err}"
    stop_pid "$_ipid"
    return 0
  fi
  printf -v "$_var" '%s' "$_ipid"
}

build_inverso() {
  if [[ ${BENCH_SKIP_BUILD:-0} == 1 || -n ${BENCH_INVERSO_BIN:-} ]]; then
    log "not building; measuring $INVERSO_BIN"
    [[ -n ${BENCH_INVERSO_BIN:-} ]] && INVERSO_LABEL="given binary $(basename "$INVERSO_BIN")"
  else
    log "cargo build --release"
    if ! (cd "$REPO_ROOT" && cargo build --release) >"$OUT_DIR/build.log" 2>&1; then
      tail -n 15 "$OUT_DIR/build.log" >&2
      log "inverso did not build (log: target/bench/build.log); its cells read n/a"
      note "inverso did not build; see target/bench/build.log"
      INVERSO_STATE="build failed"
      return 0
    fi
  fi
  if [[ -x $INVERSO_BIN ]]; then
    INVERSO_STATE=built
  else
    note "no inverso binary at ${BENCH_INVERSO_BIN:-target/release/inverso}"
    INVERSO_STATE="no binary"
  fi
}

# ---------------------------------------------------------------- measuring

note() { echo "note: $*" >>"$OUT_DIR/info.txt"; }

truncate_logs() {
  local f
  for f in "$TMP"/*/access.log; do [[ -e $f ]] && : >"$f"; done
  return 0
}

# run_wrk MODE CELL SYSTEM REP PID URL CONNS [WRK_ARG...]
# PID is the process whose CPU time is counted ("-" for none; empty = the
# system is not running, the row reads n/a; BACKEND_PID in files mode). WRK_ARGs go to wrk as they are
# (-H "Connection: close"). Appends one row to runs.tsv. With APP_PID set
# (php-fpm, fastcgi mode), that process tree's CPU is counted too, apart
# (app_cpu_ticks; "-" without one).
run_wrk() {
  local mode=$1 cell=$2 system=$3 rep=$4 pid=$5 url=$6 conns=$7
  shift 7
  local -a args=(-t "$WRK_THREADS" -c "$conns" -d "${SECONDS_PER_RUN}s"
    --timeout "${WRK_TIMEOUT}s" -s "$SCRIPT_DIR/bench_wrk.lua" "$@")
  # requests ... timeout; then cpu_ticks, other_cpu_pct and app_cpu_ticks
  # are three more na
  local na=$'na\tna\tna\tna\tna\tna\tna\tna\tna\tna'
  if [[ -z $pid ]]; then
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$cell" "$system" "$rep" "$na" na na na \
      >>"$OUT_DIR/runs.tsv"
    return 0
  fi
  local t0=0 t1=0 b0 b1 w0 w1 m0 m1 a0=0 a1=0 app_ticks=- out line
  [[ $pid != - ]] && t0=$(cpu_ticks_tree "$pid")
  [[ -n $APP_PID ]] && a0=$(cpu_ticks_many "$APP_PID")
  b0=$(cpu_ticks_tree "$BACKEND_PID") m0=$(machine_ticks)
  children_ticks w0
  # timeout: wrk stops by itself after -d, this only bounds a hung wrk.
  out=$(timeout $((SECONDS_PER_RUN + WRK_TIMEOUT + 30)) "${RUN[@]}" wrk "${args[@]}" "$url" 2>&1) || true
  children_ticks w1
  m1=$(machine_ticks) b1=$(cpu_ticks_tree "$BACKEND_PID")
  if [[ -n $APP_PID ]]; then
    a1=$(cpu_ticks_many "$APP_PID")
    app_ticks=$((a1 - a0))
  fi
  local ticks=- backend_ticks=$((b1 - b0 + a1 - a0))
  if [[ $pid != - ]]; then
    t1=$(cpu_ticks_tree "$pid")
    ticks=$((t1 - t0))
  fi
  # files mode's direct row counts the backend as the system measured:
  # its time is then in ticks already.
  if [[ $pid == "$BACKEND_PID" ]]; then backend_ticks=0; fi
  # CPU the rest of the machine used meanwhile (other users' jobs, the
  # hypervisor's steal): busy time minus that of wrk, backends and proxy.
  local other
  other=$(awk -v m0="$m0" -v m1="$m1" -v ours=$((t1 - t0 + backend_ticks + w1 - w0)) 'BEGIN {
    split(m0, a, " "); split(m1, b, " "); total = b[2] - a[2]
    o = total > 0 ? (b[1] - a[1] - ours) * 100 / total : 0
    printf "%.0f", (o < 0 ? 0 : o) }')
  truncate_logs
  line=$(grep '^BENCH ' <<<"$out" || true)
  if [[ -z $line ]]; then
    log "wrk failed for $system $cell: $(tail -n 3 <<<"$out" | tr '\n' ' ')"
    note "wrk failed for $mode $cell $system (rep $rep)"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$cell" "$system" "$rep" "$na" na na na \
      >>"$OUT_DIR/runs.tsv"
    return 0
  fi
  # "BENCH k=v k=v ..." -> values in the column order of runs.tsv
  local -A f=()
  local kv
  for kv in ${line#BENCH }; do f[${kv%%=*}]=${kv#*=}; done
  printf '%s\t' "$mode" "$cell" "$system" "$rep" "${f[requests]}" "${f[duration_us]}" \
    "${f[bytes]}" "${f[p50_us]}" "${f[p99_us]}" "${f[connect]}" "${f[read]}" \
    "${f[write]}" "${f[status]}" "${f[timeout]}" >>"$OUT_DIR/runs.tsv"
  printf '%s\t%s\t%s\n' "$ticks" "$other" "$app_ticks" >>"$OUT_DIR/runs.tsv"
  local errs=$((f[connect] + f[read] + f[write] + f[status] + f[timeout]))
  log "$(printf '%-6s %-12s %-14s %9.0f req/s  p99 %6.2f ms  errors %d  other CPU %d%%' \
    "$mode" "$cell" "$system" \
    "$(awk -v r="${f[requests]}" -v d="${f[duration_us]}" 'BEGIN { print r / (d / 1e6) }')" \
    "$(awk -v p="${f[p99_us]}" 'BEGIN { print p / 1000 }')" "$errs" "$other")"
}

# Short unmeasured load: fills upstream keep-alive pools and caches, faults
# in memory, so that the first measured run is not penalised.
# warm_up URL [WRK_ARG...]
warm_up() {
  local url=$1
  shift
  timeout 30 "${RUN[@]}" wrk -t "$WRK_THREADS" -c 16 -d 1s "$@" "$url" >/dev/null 2>&1 || true
  truncate_logs
}

# Checks a system answers PATH with 200 and the right body size, so that a
# broken proxy cannot post fast numbers with short or wrong answers.
probe() {
  local system=$1 port=$2 path=$3 want=$4 got
  got=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' --max-time 5 \
    "http://127.0.0.1:$port$path" || true)
  if [[ $got != "200 $want" ]]; then
    log "warning: $system $path answered '$got', expected '200 $want'"
    note "$system $path answered '$got' instead of '200 $want'"
  fi
}

body_size() { case $1 in 1k) echo 1024 ;; 64k) echo 65536 ;; esac }

# probe_fetch RAW FILE URL [CURL_ARG...]: one GET of URL, read as the gzip
# and gunzip probes read it (its body into RAW, removed after): sets
# PROBE_HEADS (the head, without CRs), PROBE_CODE, PROBE_CE
# (Content-Encoding), PROBE_XC (X-Cache), PROBE_SIZE (body bytes sent),
# PROBE_DECODED (body bytes once gunzipped, when it says gzip) and
# PROBE_SAME (yes when those are FILE's bytes).
probe_fetch() {
  local raw=$1 file=$2 url=$3
  shift 3
  : >"$raw"
  PROBE_HEADS=$(curl -s -D - -o "$raw" "$@" --max-time 5 "$url" | tr -d '\r' || true)
  PROBE_CODE=$(awk 'NR == 1 { print $2 }' <<<"$PROBE_HEADS")
  PROBE_CE=$(awk -F': ' 'tolower($1) == "content-encoding" { print $2 }' <<<"$PROBE_HEADS")
  PROBE_XC=$(awk -F': ' 'tolower($1) == "x-cache" { print $2 }' <<<"$PROBE_HEADS")
  PROBE_SIZE=$(wc -c <"$raw")
  if [[ $PROBE_CE == gzip ]]; then
    gzip -dc <"$raw" >"$raw.decoded" 2>/dev/null || true
  else
    cp "$raw" "$raw.decoded"
  fi
  PROBE_DECODED=$(wc -c <"$raw.decoded")
  PROBE_SAME=no
  if cmp -s "$raw.decoded" "$file"; then PROBE_SAME=yes; fi
  rm -f "$raw" "$raw.decoded"
}

# gzip_probe SYSTEM PORT BODY (gzip mode): the first request, taking gzip,
# fills the cache; the second must be a hit, 200, Content-Encoding: gzip,
# whose body (curl without --compressed: as sent) decodes to the file the
# backend serves. What it saw goes to gzipcheck.tsv, with the compressed
# size; every failed check is a note in the report.
gzip_probe() {
  local system=$1 port=$2 body=$3 url raw=$TMP/gzip-probe-$1-$3 code ce xc size decoded
  local want same
  url=http://127.0.0.1:$port/c/$body.txt want=$(body_size "$body")
  curl -s -o /dev/null -H 'Accept-Encoding: gzip' --max-time 5 "$url" || true
  probe_fetch "$raw" "$TMP/www/c/$body.txt" "$url" -H 'Accept-Encoding: gzip'
  code=$PROBE_CODE ce=$PROBE_CE xc=$PROBE_XC size=$PROBE_SIZE
  decoded=$PROBE_DECODED same=$PROBE_SAME
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$system" "$body" "${code:-none}" "${ce:-none}" \
    "${xc:-none}" "$size" "$decoded" "$same" >>"$OUT_DIR/gzipcheck.tsv"
  log "gzip probe $system /c/$body.txt: status ${code:-none}, Content-Encoding '${ce:-none}', X-Cache '${xc:-none}', $size bytes sent, $decoded decoded (file: $want, same: $same)"
  if [[ $code != 200 ]]; then
    note "$system /c/$body.txt (gzip mode) answered status '${code:-none}' instead of 200"
  fi
  if [[ $ce != gzip ]]; then
    log "warning: $system /c/$body.txt was not compressed on the second request"
    note "$system /c/$body.txt was not compressed on a hit (Content-Encoding: '${ce:-none}')"
  fi
  if [[ $xc != HIT ]]; then
    log "warning: $system /c/$body.txt second request: X-Cache '${xc:-none}', expected HIT"
    note "$system /c/$body.txt was not a cache hit in gzip mode (X-Cache: '${xc:-none}')"
  fi
  if [[ $same != yes ]]; then
    log "warning: $system /c/$body.txt decoded to $decoded bytes that are not the file ($want)"
    note "$system /c/$body.txt decoded to $decoded bytes that are not the file's $want"
  fi
}

# files_probe SYSTEM PORT BODY (files mode): GET /c/BODY.txt must answer
# 200 with exactly the bytes of the file in $TMP/www/c, which every system
# serves (lines of text, so that bytes out of place show). What it saw goes
# to filescheck.tsv; a failed check is a note in the report.
files_probe() {
  local system=$1 port=$2 body=$3 raw=$TMP/files-probe-$1-$3 heads code cc etag size
  local same=no
  : >"$raw"
  heads=$(curl -s -D - -o "$raw" --max-time 5 "http://127.0.0.1:$port/c/$body.txt" |
    tr -d '\r' || true)
  code=$(awk 'NR == 1 { print $2 }' <<<"$heads")
  cc=$(awk -F': ' 'tolower($1) == "cache-control" { print $2 }' <<<"$heads")
  etag=$(awk -F': ' 'tolower($1) == "etag" { print $2 }' <<<"$heads")
  size=$(wc -c <"$raw")
  cmp -s "$raw" "$TMP/www/c/$body.txt" && same=yes
  rm -f "$raw"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$system" "$body" "${code:-none}" "$size" "$same" \
    "${cc:-none}" "${etag:-none}" >>"$OUT_DIR/filescheck.tsv"
  log "files probe $system /c/$body.txt: status ${code:-none}, $size bytes (file: $(body_size "$body"), same: $same), Cache-Control '${cc:-none}', ETag '${etag:-none}'"
  if [[ $code != 200 || $same != yes ]]; then
    log "warning: $system /c/$body.txt answered status '${code:-none}' with $size bytes, not 200 with the file"
    note "$system /c/$body.txt (files mode) answered status '${code:-none}' with $size bytes (the file's bytes: $same)"
  fi
}

# Warns (and notes in the report) if the machine is busy before we start:
# other jobs on these few cores disturb every figure.
check_quiet() {
  local m0 m1 busy
  m0=$(machine_ticks)
  sleep 2
  m1=$(machine_ticks)
  busy=$(awk -v m0="$m0" -v m1="$m1" 'BEGIN { split(m0, a, " "); split(m1, b, " ")
    t = b[2] - a[2]; printf "%.0f", (t > 0 ? (b[1] - a[1]) * 100 / t : 0) }')
  if ((busy > 10)); then
    log "warning: the machine is ${busy}% busy before the benchmark starts"
    note "the machine was ${busy}% busy before the benchmark started: figures are disturbed"
  fi
}

# ---------------------------------------------------------------- tls

TLS_DIR=""   # the certificate files (tls mode), made by make_certificate
TLS_FAILED=0 # 1: the tls mode stopped before measuring (its checks failed)

# A self-signed ECDSA P-256 certificate for localhost and 127.0.0.1, in
# $TLS_DIR: cert.pem and key.pem (nginx, inverso), and combined.pem, the
# chain and the key in one file (HAProxy's crt).
make_certificate() {
  TLS_DIR=$TMP/tls
  mkdir -p "$TLS_DIR"
  if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$TLS_DIR/key.pem" -out "$TLS_DIR/cert.pem" -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$TLS_DIR/openssl.log" 2>&1; then
    cat "$TLS_DIR/openssl.log" >&2
    die "openssl could not make the benchmark's certificate"
  fi
  cat "$TLS_DIR/cert.pem" "$TLS_DIR/key.pem" >"$TLS_DIR/combined.pem"
  chmod 600 "$TLS_DIR/key.pem" "$TLS_DIR/combined.pem"
  log "certificate: $(openssl x509 -in "$TLS_DIR/cert.pem" -noout -subject), key $(openssl pkey -in "$TLS_DIR/key.pem" -noout -text 2>/dev/null | awk '/^NIST CURVE/ { print $NF; exit }')"
}

# tls_probe SYSTEM PORT BODY (tls mode): GET /BODY over https must answer
# 200 with the body's size (curl -k), and a TLS client (scripts/bench_tls.py)
# records the protocol and cipher agreed and whether the system resumes a
# session offered back to it (tlscheck.tsv). Returns 1, having said why, if
# the system does not serve that over TLS.
tls_probe() {
  local system=$1 port=$2 body=$3 want got out
  want=$(body_size "$body")
  got=$(curl -k -s --proto =https -o /dev/null -w '%{http_code} %{size_download}' \
    --max-time 5 "https://127.0.0.1:$port/$body" || true)
  if [[ $got != "200 $want" ]]; then
    log "error: $system https://127.0.0.1:$port/$body (curl -k) answered '$got', expected '200 $want'"
    note "tls mode: $system /$body over https answered '$got' instead of '200 $want'"
    return 1
  fi
  if ! out=$(timeout 30 python3 "$SCRIPT_DIR/bench_tls.py" 127.0.0.1 "$port" "/$body" 2>&1); then
    log "error: $system: TLS check failed: $(tail -n 2 <<<"$out" | tr '\n' ' ')"
    note "tls mode: the TLS check of $system failed: $(tail -n 1 <<<"$out")"
    return 1
  fi
  local -A f=()
  local kv
  for kv in $out; do f[${kv%%=*}]=${kv#*=}; done
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$system" "$body" "${f[status]:-none}" \
    "${f[bytes]:-none}" "${f[version]:-none}" "${f[cipher]:-none}" "${f[resumed]:-none}" \
    >>"$OUT_DIR/tlscheck.tsv"
  log "tls probe $system /$body: curl -k '$got'; $out"
  if [[ ${f[status]:-} != 200 || ${f[bytes]:-} != "$want" ]]; then
    log "error: $system /$body over TLS (python ssl) answered status '${f[status]:-none}' with '${f[bytes]:-none}' bytes, expected 200 with $want"
    note "tls mode: $system /$body over TLS answered status '${f[status]:-none}' with '${f[bytes]:-none}' bytes"
    return 1
  fi
  if [[ ${f[resumed]:-} != yes ]]; then
    log "warning: $system did not resume a TLS session offered back to it"
    note "tls mode: $system did not resume a TLS session offered back to it: its close64 handshakes are all full ones"
  fi
}

# wrk_resumption (tls mode): how many of wrk's handshakes resume a session
# when every request closes its connection, seen by a check-only nginx
# (this one logs $ssl_session_reused; the measured one logs as in proxy
# mode) during 1 s of wrk, 4 connections. Writes tlsresume.tsv.
wrk_resumption() {
  local port pid name=tls-check conf=$TMP/tls-check.conf log_file n r protos
  pick_port port
  log_file=$TMP/$name/tls.log
  {
    nginx_common "$name"
    cat <<EOF
http {
$(nginx_http_common "$name")
  log_format tls '\$ssl_protocol \$ssl_session_reused';
  access_log $log_file tls;
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $TLS_DIR/cert.pem;
    ssl_certificate_key $TLS_DIR/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:CHECK:1m;
    location / { return 200 "ok\n"; }
  }
}
EOF
  } >"$conf"
  start_nginx pid "$name" "$conf" "$port"
  timeout 30 "${RUN[@]}" wrk -t 1 -c 4 -d 1s -H "Connection: close" \
    "https://127.0.0.1:$port/" >"$TMP/$name/wrk.out" 2>&1 || true
  stop_pid "$pid"
  n=$(wc -l <"$log_file" 2>/dev/null || echo 0)
  r=$(awk '$2 == "r"' "$log_file" 2>/dev/null | wc -l)
  protos=$(awk '{ print $1 }' "$log_file" 2>/dev/null | sort | uniq -c |
    awk '{ printf "%s%s %s", sep, $2, $1; sep = ", " }')
  printf 'wrk\t%s\t%s\t%s\n' "$n" "$r" "${protos:-none}" >>"$OUT_DIR/tlsresume.tsv"
  log "wrk, Connection: close: $r of $n TLS handshakes resumed a session (${protos:-none})"
  rm -f "$log_file"
}

# ---------------------------------------------------------------- backend-tls

BACKEND_TLS_DIR=""       # the authority and the backends' certificate
BACKEND_TLS_FAILED=0     # 1: the backend-tls mode stopped before measuring

# An ECDSA P-256 authority (ca.pem, self-signed, CA:TRUE) and the backends'
# ECDSA P-256 certificate it signs (cert.pem and key.pem: CA:FALSE,
# serverAuth, for localhost and 127.0.0.1), in $BACKEND_TLS_DIR: an
# authority and a leaf, as a deployment has them, rather than one
# self-signed certificate, which rustls (webpki) refuses as the end entity
# when it says CA:TRUE (openssl req -x509's default).
make_backend_certificate() {
  BACKEND_TLS_DIR=$TMP/backend-tls
  mkdir -p "$BACKEND_TLS_DIR"
  local d=$BACKEND_TLS_DIR
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth" "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" >"$d/leaf.ext"
  if ! {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout "$d/ca-key.pem" -out "$d/ca.pem" -days 2 -subj "/CN=inverso bench CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" &&
      openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$d/key.pem" -out "$d/leaf.csr" -subj /CN=localhost &&
      openssl x509 -req -in "$d/leaf.csr" -CA "$d/ca.pem" -CAkey "$d/ca-key.pem" \
        -set_serial "0x$(openssl rand -hex 8)" -days 2 -extfile "$d/leaf.ext" -out "$d/cert.pem" &&
      openssl verify -CAfile "$d/ca.pem" -verify_hostname localhost "$d/cert.pem"
  } >"$d/openssl.log" 2>&1; then
    cat "$d/openssl.log" >&2
    die "openssl could not make the backends' certificate"
  fi
  chmod 600 "$d/key.pem" "$d/ca-key.pem"
  log "backends' certificate: $(openssl x509 -in "$d/cert.pem" -noout -subject -ext subjectAltName | tr -s '\n ' ' '), issued by $(openssl x509 -in "$d/cert.pem" -noout -issuer)"
}

# The backend nginx's server block over TLS (printed, for start_backends),
# on $BACKEND1_TLS and $BACKEND2_TLS, serving what the plain one serves.
# It logs the first request of each connection only, so that a connection
# reused costs no log line: each line is a TLS connection some proxy
# opened, with nginx's connection number, whether the handshake resumed a
# session ("r") and the SNI the proxy sent.
backend_tls_server() {
  cat <<EOF
  log_format tlsconn '\$connection \$ssl_session_reused \$ssl_protocol \$ssl_server_name \$server_port';
  map \$connection_requests \$first_on_connection { 1 1; default 0; }
  server {
    listen 127.0.0.1:$BACKEND1_TLS ssl backlog=4096;
    listen 127.0.0.1:$BACKEND2_TLS ssl backlog=4096;
    ssl_certificate $BACKEND_TLS_DIR/cert.pem;
    ssl_certificate_key $BACKEND_TLS_DIR/key.pem;
    ssl_protocols TLSv1.3;
    ssl_session_cache shared:BACKEND:10m;
    access_log $BACKEND_TLS_LOG tlsconn if=\$first_on_connection;
    root $TMP/www;
    add_header X-Backend-TLS \$ssl_protocol always;
  }
EOF
}

# Lines in the backends' TLS connection log so far.
backend_tls_lines() {
  if [[ -e $BACKEND_TLS_LOG ]]; then wc -l <"$BACKEND_TLS_LOG"; else echo 0; fi
}

# backend_tls_established PID: the TLS connections to the backends that
# PID or its children (nginx's workers) hold open now (ss -p, as root).
backend_tls_established() {
  local pid=$1 pids
  # shellcheck disable=SC2046 # one word per child PID
  pids=$(printf '%s|' "$pid" $(pgrep -P "$pid" 2>/dev/null || true))
  ss -Htnp state established "( dport = :$BACKEND1_TLS or dport = :$BACKEND2_TLS )" 2>/dev/null |
    grep -Ec "pid=(${pids%|})," || true # grep -c: status 1 when it counts 0
}

# backend_tls_probe SYSTEM PORT BODY: GET /BODY over plain HTTP through the
# proxy must answer 200 with the body's size and X-Backend-TLS: TLSv1.3,
# which only the backends' ssl server block adds: the answer came to the
# proxy over TLS. The TLS connection the backend logged meanwhile, if one
# was opened, gives the SNI and resumption. Writes backendtlscheck.tsv;
# returns 1, having said why, on a wrong answer.
backend_tls_probe() {
  local system=$1 port=$2 body=$3 want got heads=$TMP/btls-probe-heads n0 opened sni="-" xb
  want=$(body_size "$body")
  n0=$(backend_tls_lines)
  : >"$heads"
  got=$(curl -s -D "$heads" -o /dev/null -w '%{http_code} %{size_download}' --max-time 5 \
    "http://127.0.0.1:$port/$body" || true)
  xb=$(tr -d '\r' <"$heads" | awk -F': ' 'tolower($1) == "x-backend-tls" { print $2 }')
  opened=$(($(backend_tls_lines) - n0))
  if ((opened > 0)); then
    sni=$(tail -n 1 "$BACKEND_TLS_LOG" | awk '{ print $4 }')
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$system" "$body" "${got% *}" "${got#* }" "${xb:-none}" \
    "$sni" >>"$OUT_DIR/backendtlscheck.tsv"
  log "backend-tls probe $system /$body: '$got', X-Backend-TLS '${xb:-none}', TLS connections opened $opened (SNI $sni)"
  if [[ $got != "200 $want" || $xb != TLSv1.3 ]]; then
    log "error: $system /$body answered '$got' with X-Backend-TLS '${xb:-none}', expected '200 $want' with TLSv1.3"
    note "backend-tls mode: $system /$body answered '$got' with X-Backend-TLS '${xb:-none}' instead of '200 $want' over TLSv1.3"
    return 1
  fi
}

# backend_tls_count CELL SYSTEM REP PID FROM: after a run, the TLS
# connections SYSTEM opened to the backends during it (the log's lines
# after line FROM), how many of them resumed a session, and how many it
# holds open now. Appends to backendtlsconns.tsv.
backend_tls_count() {
  local cell=$1 system=$2 rep=$3 pid=$4 from=$5 opened resumed held=na
  opened=$(($(backend_tls_lines) - from))
  resumed=$(tail -n +"$((from + 1))" "$BACKEND_TLS_LOG" 2>/dev/null | awk '$2 == "r"' | wc -l)
  [[ -n $pid ]] && held=$(backend_tls_established "$pid")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$cell" "$system" "$rep" "$opened" "$resumed" "$held" \
    >>"$OUT_DIR/backendtlsconns.tsv"
  log "$(printf '       %-12s %-14s TLS connections to backends: %d opened (%d resumed), %s open after' \
    "$cell" "$system" "$opened" "$resumed" "$held")"
}

# ---------------------------------------------------------------- auth

AUTH_FAILED=0 # 1: the auth mode stopped before measuring (its checks failed)

# auth_probe SYSTEM PORT (auth mode): GET /1k must answer 200 with its 1024
# bytes, and GET /whoami, sent with a forged `Remote-User: mallory`, tells
# which Remote-User the backend got: through nginx-auth and inverso-auth it
# must be 200 "ann", the service's (the service was asked, its field went
# on, the client's did not); through the proxies without auth it is the
# client's. Writes authcheck.tsv; returns 1, having said why, on a wrong
# answer.
auth_probe() {
  local system=$1 port=$2 got who raw=$TMP/auth-probe-$1 code
  got=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' --max-time 5 \
    "http://127.0.0.1:$port/1k" || true)
  : >"$raw"
  code=$(curl -s -o "$raw" -w '%{http_code}' -H 'Remote-User: mallory' --max-time 5 \
    "http://127.0.0.1:$port/whoami" || true)
  who=$(head -c 100 "$raw" | tr -d '\r\n')
  rm -f "$raw"
  printf '%s\t%s\t%s\t%s\t%s\n' "$system" "${got% *}" "${got#* }" "${code:-none}" \
    "${who:--}" >>"$OUT_DIR/authcheck.tsv"
  log "auth probe $system: /1k '$got'; /whoami (sent Remote-User: mallory) status ${code:-none}, the backend got Remote-User '${who}'"
  if [[ $got != "200 1024" ]]; then
    log "error: $system /1k answered '$got', expected '200 1024'"
    note "auth mode: $system /1k answered '$got' instead of '200 1024'"
    return 1
  fi
  if [[ $system == *-auth && ($code != 200 || $who != ann) ]]; then
    log "error: through $system the backend got Remote-User '$who' (status ${code:-none}), expected 'ann' from the service"
    note "auth mode: through $system the backend got Remote-User '$who' (status ${code:-none}) instead of the service's 'ann'"
    return 1
  fi
}

# auth_counters PORT: inverso's inverso_auth_requests_total from its admin
# listener, as "allowed denied failed" ("na na na" if it cannot be read);
# allowed counts those let through on a kept yes (auth_request_cache) too.
auth_counters() {
  curl -s --max-time 5 "http://127.0.0.1:$1/metrics" 2>/dev/null | awk '
    /^inverso_auth_requests_total\{/ {
      for (k in want) if (index($1, "\"" k "\"")) n[k] = $2
    }
    BEGIN { want["allowed"]; want["denied"]; want["failed"]; want["cached"] }
    END { printf "%s %s %s\n", n["allowed"] == "" ? "na" : n["allowed"] + n["cached"],
      n["denied"] == "" ? "na" : n["denied"], n["failed"] == "" ? "na" : n["failed"] }' || true
}

# ---------------------------------------------------------------- subfilter

SUBFILTER_FAILED=0 # 1: the subfilter mode stopped before measuring (its checks failed)

# subfilter_probe SYSTEM PORT BODY (subfilter mode): GET /BODY.html (no
# Accept-Encoding, as wrk sends none) must answer 200 with, through a
# system with the rules (its name ends in -sub), the rewritten page of
# $TMP/subfilter-want, and through one without, the page as the backend
# serves it. What curl got stays in $TMP/subfilter-probe/SYSTEM-BODY.html,
# so that subfilter_same can compare the two -sub systems' bytes. Writes
# subfiltercheck.tsv (with how many of the application's addresses are
# left in the body); returns 1, having said why, on a wrong answer.
subfilter_probe() {
  local system=$1 port=$2 body=$3 raw heads code ctype size want got=neither left
  mkdir -p "$TMP/subfilter-probe"
  raw=$TMP/subfilter-probe/$system-$body.html heads=$TMP/subfilter-probe/$system-$body.heads
  want=$TMP/www/$body.html
  [[ $system == *-sub ]] && want=$TMP/subfilter-want/$body.html
  : >"$raw"
  code=$(curl -s -D "$heads" -o "$raw" -w '%{http_code}' --max-time 5 \
    "http://127.0.0.1:$port/$body.html" || true)
  ctype=$(tr -d '\r' <"$heads" | awk -F': ' 'tolower($1) == "content-type" { print $2 }')
  size=$(wc -c <"$raw")
  if cmp -s "$raw" "$TMP/subfilter-want/$body.html"; then
    got=rewritten
  elif cmp -s "$raw" "$TMP/www/$body.html"; then
    got=as-served
  fi
  left=$( (grep -o -F -e "$SUB_FROM1" "$raw" || true) | wc -l)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$system" "$body" "${code:-none}" "$size" \
    "${ctype:-none}" "$got" "$left" >>"$OUT_DIR/subfiltercheck.tsv"
  log "subfilter probe $system /$body.html: status ${code:-none}, $size bytes ($got; addresses left in it: $left), Content-Type '${ctype:-none}'"
  if [[ $code != 200 ]] || ! cmp -s "$raw" "$want"; then
    log "error: $system /$body.html answered status '${code:-none}' with $size bytes ($got), expected 200 with the $(wc -c <"$want") bytes of the page $([[ $system == *-sub ]] && echo rewritten || echo "as served")"
    note "subfilter mode: $system /$body.html answered status '${code:-none}' with $size bytes ($got) instead of the page $([[ $system == *-sub ]] && echo rewritten || echo "as served")"
    return 1
  fi
}

# subfilter_same BODY: the bytes nginx-sub and inverso-sub sent for
# /BODY.html (subfilter_probe's files) must be the same. Writes
# subfiltersame.tsv; returns 1, having said where they part, if not.
subfilter_same() {
  local body=$1 a b same=yes where=""
  a=$TMP/subfilter-probe/nginx-sub-$body.html b=$TMP/subfilter-probe/inverso-sub-$body.html
  if ! where=$(cmp "$a" "$b" 2>&1); then same=no; fi
  printf '%s\t%s\t%s\t%s\n' "$body" "$(wc -c <"$a")" "$(wc -c <"$b")" "$same" \
    >>"$OUT_DIR/subfiltersame.tsv"
  log "subfilter probe /$body.html: nginx-sub and inverso-sub sent the same bytes: $same${where:+ ($where)}"
  if [[ $same != yes ]]; then
    note "subfilter mode: nginx-sub and inverso-sub sent different bytes for /$body.html: $where"
    return 1
  fi
}

# ---------------------------------------------------------------- upload

UPLOAD_FAILED=0 # 1: the upload mode stopped before measuring (its checks failed)
UPLOAD_SPOOL="" # inverso-spool's request_buffer_dir

upload_bytes() { case $1 in 64k) echo 65536 ;; 1m) echo 1048576 ;; esac }

# upload_probe SYSTEM PORT BODY (upload mode): POST /upload with the BODY
# bytes wrk sends ($TMP/upload-BODY; no Expect: 100-continue, as wrk sends
# none) must answer 200 with the backend's "cl=... te=...": how the body
# reached it, a Content-Length of its size or chunked. For inverso-spool,
# the spool directory must be empty afterwards (its files have no names).
# Writes uploadcheck.tsv; returns 1, having said why, on a wrong answer.
upload_probe() {
  local system=$1 port=$2 body=$3 raw=$TMP/upload-probe-$1-$3 code got framing left=-
  local want
  want=$(upload_bytes "$body")
  : >"$raw"
  code=$(curl -s -o "$raw" -w '%{http_code}' -H 'Expect:' \
    -H 'Content-Type: application/octet-stream' --data-binary "@$TMP/upload-$body" \
    --max-time 10 "http://127.0.0.1:$port/upload" || true)
  got=$(head -c 200 "$raw" | tr -d '\r\n')
  rm -f "$raw"
  framing=none
  case $got in
    "cl=$want te=") framing="length $want" ;;
    "cl= te=chunked") framing=chunked ;;
  esac
  if [[ $system == inverso-spool ]]; then left=$(find "$UPLOAD_SPOOL" -mindepth 1 | wc -l); fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$system" "$body" "${code:-none}" "$framing" "${got:--}" \
    "$left" >>"$OUT_DIR/uploadcheck.tsv"
  log "upload probe $system POST /upload ($want bytes): status ${code:-none}, the backend got '${got}' ($framing)$([[ $left != - ]] && echo ", entries left in the spool dir: $left")"
  if [[ $code != 200 || $framing == none ]]; then
    log "error: $system POST /upload ($want bytes) answered status '${code:-none}' with '$got', expected 200 with the backend's cl=$want (or te=chunked)"
    note "upload mode: $system POST /upload ($want bytes) answered status '${code:-none}' with '$got' instead of 200 and the whole body at the backend"
    return 1
  fi
  if [[ $left != - && $left != 0 ]]; then
    log "error: $system left $left entries in its spool dir after a POST"
    note "upload mode: $system left $left entries in its spool dir after a POST"
    return 1
  fi
}

# upload_on_disk SYSTEM PID PORT DIR (upload mode): one POST of the 1 MiB
# body sent slowly (curl --limit-rate 512k, about 2 s), meanwhile looking
# (every 0.1 s) among the open files of PID and its children (nginx's
# workers) for one in DIR: the body being read to disk. inverso-spool's
# file has no name: entries in DIR must stay none meanwhile (nginx's has
# one for the moment between its open and its unlink, which a look every
# 0.1 s is unlikely to see; counted, not checked). Writes uploaddisk.tsv;
# returns 1, having said why, if the POST failed or no file was seen, or
# inverso-spool's had a name.
upload_on_disk() {
  local system=$1 pid=$2 port=$3 dir=$4 client i p fd seen=no named=0 n code
  curl -s -o /dev/null -w '%{http_code}' -H 'Expect:' --limit-rate 512k \
    -H 'Content-Type: application/octet-stream' --data-binary "@$TMP/upload-1m" \
    --max-time 10 "http://127.0.0.1:$port/upload" >"$TMP/upload-slow-$system" 2>/dev/null &
  client=$!
  PIDS+=("$client")
  for ((i = 0; i < 100; i++)); do # at most 10 s: curl's --max-time
    for p in $pid $(pgrep -P "$pid" 2>/dev/null || true); do
      for fd in /proc/"$p"/fd/*; do
        [[ $(readlink "$fd" 2>/dev/null) == "$dir"/* ]] && seen=yes
      done
    done
    n=$(find "$dir" -mindepth 1 | wc -l)
    ((n > named)) && named=$n
    alive "$client" || break
    sleep 0.1
  done
  wait "$client" 2>/dev/null || true
  forget_pid "$client"
  code=$(cat "$TMP/upload-slow-$system" 2>/dev/null || true)
  printf '%s\t%s\t%s\t%s\n' "$system" "${code:-none}" "$seen" "$named" >>"$OUT_DIR/uploaddisk.tsv"
  log "upload probe $system, a 1 MiB POST at 512 KiB/s: status ${code:-none}; a file open in $(basename "$dir"): $seen; most entries seen in it: $named"
  if [[ $code != 200 || $seen != yes || ($system == inverso-spool && $named != 0) ]]; then
    log "error: $system: a slow 1 MiB POST answered '${code:-none}', a file open in its $(basename "$dir") dir: $seen, entries with a name: $named (expected 200, yes, 0)"
    note "upload mode: $system: a slow 1 MiB POST answered '${code:-none}', a file open in its $(basename "$dir") dir: $seen, entries with a name: $named (expected 200, yes, 0)"
    return 1
  fi
}

# ---------------------------------------------------------------- gunzip

GUNZIP_FAILED=0 # 1: the gunzip mode stopped before measuring (its checks failed)

# gunzip_probe SYSTEM PORT BODY (gunzip mode): GET /gz/BODY.txt three
# times. The first, taking no gzip (as wrk in the decoded cells), fills the
# cache with the backend's gzip-coded answer; the second, taking no gzip,
# must be a hit, 200, without Content-Encoding, its body the file's exact
# bytes (decoded by the proxy); the third, taking gzip (as wrk in the gzip
# cells), must be a hit, 200, Content-Encoding: gzip, its body (curl
# without --compressed: as sent) decoding to the file. What it saw goes to
# gunzipcheck.tsv; returns 1, having said why, on a wrong answer. A
# relayed system (its name ends in -relay: no cache) is checked the same
# way, except that its answers must carry no X-Cache at all: each comes
# from a backend, decoded as it is relayed.
gunzip_probe() {
  local system=$1 port=$2 body=$3 url client ok=0
  url=http://127.0.0.1:$port/gz/$body.txt
  curl -s -o /dev/null --max-time 5 "$url" || true
  for client in decoded gzip; do
    gunzip_check "$system" "$url" "$body" "$client" || ok=1
  done
  return "$ok"
}

# gunzip_check SYSTEM URL BODY CLIENT: one request of gunzip_probe's, CLIENT
# decoded (no Accept-Encoding) or gzip (Accept-Encoding: gzip).
gunzip_check() {
  local system=$1 url=$2 body=$3 client=$4 raw=$TMP/gunzip-probe-$1-$3-$4
  local code ce xc framing size decoded same want_ce=none ae=() want_xc=HIT want_what="a HIT"
  [[ $client == gzip ]] && want_ce=gzip ae=(-H 'Accept-Encoding: gzip')
  [[ $system == *-relay ]] && want_xc=none want_what="no X-Cache (relayed)"
  probe_fetch "$raw" "$TMP/www/c/$body.txt" "$url" ${ae[@]+"${ae[@]}"}
  code=$PROBE_CODE ce=$PROBE_CE xc=$PROBE_XC size=$PROBE_SIZE
  decoded=$PROBE_DECODED same=$PROBE_SAME
  framing=$(awk -F': ' 'tolower($1) == "content-length" { print "length " $2 }
    tolower($1) == "transfer-encoding" { print $2 }' <<<"$PROBE_HEADS" | paste -sd ' ')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$system" "$body" "$client" "${code:-none}" \
    "${ce:-none}" "${xc:-none}" "${framing:-none}" "$size" "$decoded" "$same" \
    >>"$OUT_DIR/gunzipcheck.tsv"
  log "gunzip probe $system /gz/$body.txt ($client client): status ${code:-none}, Content-Encoding '${ce:-none}', X-Cache '${xc:-none}', ${framing:-no framing field}, $size bytes sent, $decoded decoded (file: $(body_size "$body"), same: $same)"
  local problems=()
  [[ $code == 200 ]] || problems+=("status '${code:-none}'")
  [[ ${ce:-none} == "$want_ce" ]] || problems+=("Content-Encoding '${ce:-none}'")
  [[ ${xc:-none} == "$want_xc" ]] || problems+=("X-Cache '${xc:-none}'")
  [[ $same == yes ]] || problems+=("$decoded bytes decoded that are not the file's")
  if ((${#problems[@]} > 0)); then
    log "error: $system /gz/$body.txt ($client client, 2nd request): ${problems[*]}; expected 200, $want_what, Content-Encoding '$want_ce' and the file"
    note "gunzip mode: $system /gz/$body.txt ($client client) answered ${problems[*]}; expected 200, $want_what, Content-Encoding '$want_ce' and the file"
    return 1
  fi
}

# ---------------------------------------------------------------- fastcgi

FASTCGI_FAILED=0 # 1: the fastcgi mode measured nothing (php-fpm or every proxy failed)
FASTCGI_ROOT=""  # the docroot php-fpm runs the scripts from
FASTCGI_WANT=""  # what each script must print, one file per script

# make_fastcgi_scripts (fastcgi mode): small.php and big.php in
# FASTCGI_ROOT echo the bytes of gzip mode's 1k.txt and 64k.txt (text
# holding no quote or backslash: a single-quoted PHP string as it is);
# hello.php prints what the request told PHP, and "ok" for SCRIPT_FILENAME
# and DOCUMENT_ROOT when they are its own file and the docroot (no path of
# this machine in its answer). FASTCGI_WANT/NAME holds what each prints.
make_fastcgi_scripts() {
  FASTCGI_ROOT=$TMP/php/www FASTCGI_WANT=$TMP/php/want
  mkdir -p "$FASTCGI_ROOT" "$FASTCGI_WANT"
  local f name
  for f in 1k 64k; do
    name=small
    [[ $f == 64k ]] && name=big
    if grep -q "['\\]" "$TMP/www/c/$f.txt"; then die "$f.txt holds a quote or backslash"; fi
    cp "$TMP/www/c/$f.txt" "$FASTCGI_WANT/$name"
    {
      printf "<?php\necho '"
      cat "$TMP/www/c/$f.txt"
      printf "';\n"
    } >"$FASTCGI_ROOT/$name.php"
  done
  cat >"$FASTCGI_ROOT/hello.php" <<'EOF'
<?php
$s = $_SERVER;
$same = function ($path, $want) {
  return isset($path) && realpath($path) === $want ? 'ok' : 'wrong';
};
echo 'hello ', 6 * 7,
  ' method=', $s['REQUEST_METHOD'] ?? '-',
  ' uri=', $s['REQUEST_URI'] ?? '-',
  ' script=', $s['SCRIPT_NAME'] ?? '-',
  ' query=', $s['QUERY_STRING'] ?? '-',
  ' x=', $_GET['x'] ?? '-',
  ' script_filename=', $same($s['SCRIPT_FILENAME'] ?? null, __FILE__),
  ' document_root=', $same($s['DOCUMENT_ROOT'] ?? null, __DIR__), "\n";
EOF
  printf 'hello 42 method=GET uri=/hello.php?x=1 script=/hello.php query=x=1 x=1 script_filename=ok document_root=ok\n' \
    >"$FASTCGI_WANT/hello"
}

# start_php_fpm VAR POOL=ADDRESS... (fastcgi mode): one php-fpm master with
# a pool for each POOL (the same settings: see the header comment)
# listening on ADDRESS, 127.0.0.1:PORT or the path of a Unix socket; sets
# VAR to the master's PID, or returns 1, having said why, if it does not
# listen on every address.
start_php_fpm() {
  local _var=$1 dir=$TMP/php/fpm _pid pool addr i
  shift
  mkdir -p "$dir"
  {
    cat <<EOF
; written by scripts/bench.sh
[global]
pid = $dir/php-fpm.pid
error_log = $dir/error.log
log_level = notice
daemonize = no
EOF
    for pool in "$@"; do
      # listen.mode: nginx's workers, run by root, are another user.
      cat <<EOF

[${pool%%=*}]
listen = ${pool#*=}
listen.mode = 0666
listen.backlog = 4096
pm = static
pm.max_children = $FASTCGI_CHILDREN
pm.max_requests = 0
EOF
    done
  } >"$dir/php-fpm.conf"
  # -F: in the foreground, our child, stopped by its PID. Run as root,
  # php-fpm refuses to start its workers as root without -R.
  local as_root=()
  [[ $(id -u) == 0 ]] && as_root=(-R)
  "${RUN[@]}" "$PHP_FPM" -F ${as_root[@]+"${as_root[@]}"} -y "$dir/php-fpm.conf" \
    >"$dir/stdout.log" 2>&1 &
  _pid=$!
  PIDS+=("$_pid")
  for pool in "$@"; do
    addr=${pool#*=}
    if [[ $addr == /* ]]; then
      # The master binds every pool's socket before it starts a worker.
      for ((i = 0; i < 100; i++)); do
        [[ -S $addr ]] && break
        alive "$_pid" || break
        sleep 0.1
      done
      [[ -S $addr ]] && continue
    elif wait_listening "$_pid" "${addr##*:}"; then
      continue
    fi
    log "error: php-fpm did not listen on $addr (pool ${pool%%=*}); its log:"
    tail -n 10 "$dir/error.log" "$dir/stdout.log" >&2 || true
    note "fastcgi mode: php-fpm did not start: $(tail -n 2 "$dir/error.log" 2>/dev/null | tr '\n' ' ')"
    stop_pid "$_pid"
    return 1
  done
  printf -v "$_var" '%s' "$_pid"
}

# fastcgi_probe SYSTEM TRANSPORT PORT SCRIPT (fastcgi mode): GET
# /SCRIPT.php (hello with ?x=1) must answer 200 with the exact bytes the
# script prints (FASTCGI_WANT/SCRIPT). Writes fastcgicheck.tsv; returns 1,
# having said why, on a wrong answer.
fastcgi_probe() {
  local system=$1 transport=$2 port=$3 script=$4 raw heads code ctype framing size same=no path
  path=/$script.php
  [[ $script == hello ]] && path+='?x=1'
  mkdir -p "$TMP/fastcgi-probe"
  raw=$TMP/fastcgi-probe/$system-$transport-$script
  heads=$TMP/fastcgi-probe/$system-$transport-$script.heads
  : >"$raw"
  : >"$heads"
  code=$(curl -s -D "$heads" -o "$raw" -w '%{http_code}' --max-time 5 \
    "http://127.0.0.1:$port$path" || true)
  ctype=$(tr -d '\r' <"$heads" | awk -F': ' 'tolower($1) == "content-type" { print $2 }')
  framing=$(tr -d '\r' <"$heads" | awk -F': ' 'tolower($1) == "content-length" { print "length " $2 }
    tolower($1) == "transfer-encoding" { print $2 }' | paste -sd ' ')
  size=$(wc -c <"$raw")
  if cmp -s "$raw" "$FASTCGI_WANT/$script"; then same=yes; fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$system" "$transport" "$script" "${code:-none}" \
    "$size" "$same" "${framing:-none}" "${ctype:-none}" >>"$OUT_DIR/fastcgicheck.tsv"
  log "fastcgi probe $system ($transport) $path: status ${code:-none}, $size bytes (the script's: $same), ${framing:-no framing field}, Content-Type '${ctype:-none}'"
  if [[ $code != 200 || $same != yes ]]; then
    log "error: $system ($transport) $path answered status '${code:-none}' with $size bytes$([[ $same == yes ]] || echo " that are not what the script prints ($(wc -c <"$FASTCGI_WANT/$script") bytes)"); expected 200 and the script's output"
    if [[ $script == hello ]]; then
      log "  got:  $(head -c 300 "$raw" | tr -d '\r' | head -n 3)"
      log "  want: $(cat "$FASTCGI_WANT/$script")"
    fi
    note "fastcgi mode: $system ($transport) $path answered status '${code:-none}' with $size bytes (the script's output: $same); $system skipped over $transport"
    return 1
  fi
}

# fastcgi_held ADDR: the established connections to php-fpm at ADDR
# (127.0.0.1:PORT, or unix:PATH: counted on php-fpm's side, where the
# socket's path shows), from ss.
fastcgi_held() {
  local addr=$1
  if [[ $addr == unix:* ]]; then
    ss -Hxn 2>/dev/null | awk -v p="${addr#unix:}" '$2 == "ESTAB" && $5 == p { n++ } END { print n + 0 }'
  else
    ss -Htn state established "( dport = :${addr##*:} )" 2>/dev/null | awk 'END { print NR }'
  fi
}

# ---------------------------------------------------------------- tcp

TCP_FAILED=0     # 1: the tcp mode measured nothing (direct or every proxy failed its probe)
TCP_TLS_FAILED=0 # 1: the tcp-tls mode measured nothing (the same, over TLS)

# tcp_probe SYSTEM PORT BODY [tls] (tcp mode): GET /BODY through a TCP proxy
# must answer 200 with the file's exact bytes and the backend's own head,
# byte for byte but for its Date line (direct's, probed first: the two
# backend ports are one server block), nothing added or rewritten; and a
# second GET on the same connection (curl, two URLs) must reuse it, the
# relayed connection kept open between requests. Writes tcpcheck.tsv;
# returns 1, having said why, on a wrong answer. With tls (tcp-tls mode),
# the same over https (curl -k, HTTP/1.1) to every system but direct (plain
# HTTP, the head the others must give), and then a TLS client
# (scripts/bench_tls.py, as tls_probe) records the protocol and cipher
# agreed and whether the proxy resumes a session offered back to it; writes
# tcptlscheck.tsv instead.
tcp_probe() {
  local system=$1 port=$2 body=$3 tls=${4:-} raw heads code size connects
  local same=no head_same=no reused=no url=http://127.0.0.1:$2/$3 curl_tls=()
  local mode=tcp dir=$TMP/tcp-probe tsv=$OUT_DIR/tcpcheck.tsv tls_cols="" out=""
  if [[ $tls == tls ]]; then
    mode=tcp-tls dir=$TMP/tcp-tls-probe tsv=$OUT_DIR/tcptlscheck.tsv
    if [[ $system != direct ]]; then
      url=https://127.0.0.1:$2/$3 curl_tls=(-k --http1.1 --proto "=https")
    fi
  fi
  mkdir -p "$dir"
  raw=$dir/$system-$body heads=$dir/$system-$body.heads
  : >"$raw"
  : >"$heads"
  code=$(curl -s ${curl_tls[@]+"${curl_tls[@]}"} -D "$heads" -o "$raw" -w '%{http_code}' \
    --max-time 5 "$url" || true)
  size=$(wc -c <"$raw")
  if cmp -s "$raw" "$TMP/www/$body"; then same=yes; fi
  grep -av '^Date: ' "$heads" >"$heads.nodate" || true
  if [[ $system == direct ]]; then
    cp "$heads.nodate" "$dir/want-$body.head"
    head_same=yes
  elif [[ -s $heads.nodate ]] && cmp -s "$heads.nodate" "$dir/want-$body.head"; then
    head_same=yes
  fi
  # num_connects of each transfer: "1 0" when the second reused the first's.
  connects=$(curl -s ${curl_tls[@]+"${curl_tls[@]}"} -o /dev/null -o /dev/null \
    -w '%{num_connects} ' --max-time 5 "$url" "$url" || true)
  [[ $connects == "1 0 " ]] && reused=yes
  local -A f=()
  if [[ $tls == tls ]]; then
    if [[ $system == direct ]]; then
      f=([version]=- [cipher]=- [resumed]=-)
    elif out=$(timeout 30 python3 "$SCRIPT_DIR/bench_tls.py" 127.0.0.1 "$port" "/$body" 2>&1); then
      local kv
      for kv in $out; do f[${kv%%=*}]=${kv#*=}; done
      # What curl saw must be what this client saw.
      if [[ ${f[status]:-} != "$code" || ${f[bytes]:-} != "$size" ]]; then
        f[version]="${f[version]:-none}(status ${f[status]:-none}, ${f[bytes]:-none} bytes)"
        code="${code:-none}/python:${f[status]:-none}"
      fi
    else
      log "error: $system: TLS check failed: $(tail -n 2 <<<"$out" | tr '\n' ' ')"
      f=([version]=failed [cipher]=- [resumed]=-)
      code="${code:-none}/TLS check failed"
    fi
    tls_cols=$'\t'"${f[version]:-none}"$'\t'"${f[cipher]:-none}"$'\t'"${f[resumed]:-none}"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s%s\n' "$system" "$body" "${code:-none}" "$size" "$same" \
    "$head_same" "$reused" "$tls_cols" >>"$tsv"
  log "$mode probe $system /$body: status ${code:-none}, $size bytes (the file's: $same), head as direct's but Date: $head_same, 2nd request on the same connection: $reused${out:+; $out}"
  if [[ $code != 200 || $same != yes || $head_same != yes || $reused != yes ]]; then
    log "error: $system /$body answered status '${code:-none}' with $size bytes (the file's: $same), the backend's head: $head_same, a second request on its connection: $reused; expected 200, the file, the backend's head and the connection kept"
    if [[ $head_same != yes && $system != direct ]]; then
      diff <(tr -d '\r' <"$dir/want-$body.head") <(tr -d '\r' <"$heads.nodate") | head -n 10 >&2 || true
    fi
    note "$mode mode: $system /$body answered status '${code:-none}' with $size bytes (the file's: $same; the backend's head: $head_same; connection kept: $reused); $system skipped"
    return 1
  fi
  if [[ $tls == tls && $system != direct && ${f[resumed]:-} != yes ]]; then
    log "warning: $system did not resume a TLS session offered back to it"
    note "tcp-tls mode: $system did not resume a TLS session offered back to it: its close64 handshakes are all full ones"
  fi
}

# ---------------------------------------------------------------- udp

UDP_FAILED=0 # 1: the udp mode measured nothing (direct or every proxy failed its probe)
DNS_DIR=""   # the zone's hosts file and dnsperf's query file (udp mode)
DNS1="" DNS2="" DNS1_PID="" DNS2_PID="" # the two dnsmasq servers
readonly DNS_NAMES=300 # names in the zone, h1.bench.test ... h300.bench.test

# dns_address I: the address h<I>.bench.test has in the zone.
dns_address() { echo "10.53.$(($1 / 256)).$(($1 % 256))"; }

# make_dns_zone: the zone the servers answer (a hosts file, a distinct
# address per name, so that a wrong answer shows) and the query file
# dnsperf reads (an A query per name), in $DNS_DIR.
make_dns_zone() {
  local i
  DNS_DIR=$TMP/dns
  mkdir -p "$DNS_DIR"
  for ((i = 1; i <= DNS_NAMES; i++)); do
    printf '%s h%d.bench.test\n' "$(dns_address "$i")" "$i"
  done >"$DNS_DIR/hosts"
  for ((i = 1; i <= DNS_NAMES; i++)); do printf 'h%d.bench.test A\n' "$i"; done >"$DNS_DIR/queries"
}

# pick_udp_port VAR: pick_port's port, free for UDP on 127.0.0.1 too (the
# DNS servers take both; the proxies' UDP listeners need it).
pick_udp_port() {
  local _p _i
  for ((_i = 0; _i < 20; _i++)); do
    pick_port _p
    if python3 -c 'import socket,sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).bind(("127.0.0.1", int(sys.argv[1])))' \
      "$_p" 2>/dev/null; then
      printf -v "$1" '%s' "$_p"
      return 0
    fi
  done
  die "no port free for both TCP and UDP found"
}

# dns_ask PORT I: what dig gets for h<I>.bench.test's A record at
# 127.0.0.1:PORT (the address alone when answered; one try, 1 s). dig
# takes an answer only from the address and port it asked: a proxy that
# answered from another socket would time out here.
dns_ask() {
  { timeout 5 dig +short +time=1 +tries=1 -p "$1" @127.0.0.1 "h$2.bench.test" A 2>&1 || true; } |
    tr '\n' ' ' | sed 's/ $//'
}

# wait_udp_answering PID PORT: waits (bounded, some 10 to 60 s) until PORT
# answers h1.bench.test rightly, as long as PID lives. Fails otherwise.
wait_udp_answering() {
  local pid=$1 port=$2 i want
  want=$(dns_address 1)
  for ((i = 0; i < 50; i++)); do
    alive "$pid" || return 1
    [[ $(dns_ask "$port" 1) == "$want" ]] && return 0
    sleep 0.2
  done
  return 1
}

# start_dnsmasq VAR NAME PORT: a dnsmasq answering the zone on
# 127.0.0.1:PORT (UDP and TCP) from memory, no upstream, no query log, in
# the foreground (as nobody when run as root); sets VAR to its PID.
start_dnsmasq() {
  local _var=$1 name=$2 port=$3 _pid user=()
  mkdir -p "$TMP/$name"
  if [[ $(id -u) == 0 ]]; then user=(--user=nobody --group=nogroup); fi
  "${RUN[@]}" "$DNSMASQ" --keep-in-foreground --port="$port" --listen-address=127.0.0.1 \
    --bind-interfaces --no-resolv --no-hosts --addn-hosts="$DNS_DIR/hosts" \
    --local=/bench.test/ --pid-file="$TMP/$name/dnsmasq.pid" --log-facility=- \
    ${user[@]+"${user[@]}"} >"$TMP/$name/stderr.log" 2>&1 &
  _pid=$!
  PIDS+=("$_pid")
  if ! wait_udp_answering "$_pid" "$port"; then
    cat "$TMP/$name/stderr.log" >&2 || true
    die "$name (dnsmasq on 127.0.0.1:$port) did not start or does not answer the zone"
  fi
  printf -v "$_var" '%s' "$_pid"
}

start_dns_backends() {
  pick_udp_port DNS1
  pick_udp_port DNS2
  start_dnsmasq DNS1_PID dns1 "$DNS1"
  start_dnsmasq DNS2_PID dns2 "$DNS2"
  log "DNS servers (dnsmasq) on 127.0.0.1:$DNS1 and :$DNS2 (pids $DNS1_PID, $DNS2_PID), $DNS_NAMES names of bench.test"
}

# start_nginx_udp VAR NAME PORT (udp mode): nginx's stream module taking
# datagrams on 127.0.0.1:PORT and relaying each session's to one of the two
# DNS servers (round robin), a session ended by the answer to each of its
# queries (proxy_responses 1) or 5 s of quiet; a line logged per session.
# Sets VAR to its master's PID, or to "" if it did not start or answer.
start_nginx_udp() {
  local _var=$1 name=$2 port=$3 conf=$TMP/$2.conf _pid
  printf -v "$_var" '%s' ""
  {
    if [[ -n $NGINX_STREAM_LOAD ]]; then echo "$NGINX_STREAM_LOAD"; fi
    nginx_common "$name"
    if [[ -n $PROXY_AT ]]; then echo "worker_priority $PROXY_AT;"; fi
    cat <<NGINX
stream {
  log_format udp '\$remote_addr [\$time_local] \$protocol \$status \$bytes_sent '
                 '\$bytes_received \$session_time "\$upstream_addr"';
  access_log $TMP/$name/access.log udp buffer=64k;
  upstream dns {
    server 127.0.0.1:$DNS1;
    server 127.0.0.1:$DNS2;
  }
  server {
    listen 127.0.0.1:$port udp;
    proxy_pass dns;
    proxy_responses 1;
    proxy_timeout 5s;
  }
}
NGINX
  } >"$conf"
  "${RUN[@]}" nginx -p "$TMP/$name" -c "$conf" -e "$TMP/$name/error.log" \
    >"$TMP/$name/stdout.log" 2>&1 &
  _pid=$!
  PIDS+=("$_pid")
  if ! wait_udp_answering "$_pid" "$port"; then
    log "error: $name does not answer on udp port $port; its cells read n/a. error.log:"
    tail -n 20 "$TMP/$name/error.log" >&2 || true
    note "udp mode: $name did not start or did not answer on its udp port"
    stop_pid "$_pid"
    return 0
  fi
  printf -v "$_var" '%s' "$_pid"
}

# dnsperf_stats OUT: dnsperf's summary as "k=v" words: sent, completed,
# lost, noerror (answers with that rcode), qps, run_s, avg_s, min_s,
# max_s, stddev_s; a figure missing from OUT reads na.
dnsperf_stats() {
  awk '
    /Queries sent:/ { sent = $3 }
    /Queries completed:/ { completed = $3 }
    /Queries lost:/ { lost = $3 }
    /Response codes:/ { for (i = 3; i < NF; i++) if ($i == "NOERROR") noerror = $(i + 1) + 0 }
    /Run time \(s\):/ { run = $4 }
    /Queries per second:/ { qps = $4 }
    /Average Latency \(s\):/ { avg = $4; mn = $6; mx = $8; gsub(/[,)]/, "", mn); gsub(/[,)]/, "", mx) }
    /Latency StdDev \(s\):/ { sd = $4 }
    function v(x) { return x == "" ? "na" : x }
    END {
      if (completed != "" && noerror == "") noerror = 0
      printf "sent=%s completed=%s lost=%s noerror=%s qps=%s run_s=%s avg_s=%s min_s=%s max_s=%s stddev_s=%s\n",
        v(sent), v(completed), v(lost), v(noerror), v(qps), v(run), v(avg), v(mn), v(mx), v(sd)
    }' <<<"$1"
}

# udp_probe SYSTEM PORT (udp mode): three names of the zone (the first, one
# in the middle, the last) must be answered with their exact addresses
# (dig, one try each), then a 1 s dnsperf run (4 clients) must have every
# query answered NOERROR and none lost; it warms the path up too. Writes
# udpcheck.tsv; returns 1, having said why, on a wrong answer.
udp_probe() {
  local system=$1 port=$2 i got want right=0 wrong="" out kv
  for i in 1 $((DNS_NAMES / 2)) "$DNS_NAMES"; do
    got=$(dns_ask "$port" "$i") want=$(dns_address "$i")
    if [[ $got == "$want" ]]; then
      right=$((right + 1))
    else
      wrong+=" h$i.bench.test: '${got:-nothing}' (not $want);"
    fi
  done
  out=$(timeout 30 "${RUN[@]}" dnsperf -s 127.0.0.1 -p "$port" -d "$DNS_DIR/queries" -l 1 \
    -c 4 -T 1 -t 2 2>&1) || true
  local -A f=()
  for kv in $(dnsperf_stats "$out"); do f[${kv%%=*}]=${kv#*=}; done
  printf '%s\t%s/3\t%s\t%s\t%s\t%s\n' "$system" "$right" "${f[sent]}" "${f[completed]}" \
    "${f[noerror]}" "${f[lost]}" >>"$OUT_DIR/udpcheck.tsv"
  log "udp probe $system: $right/3 names answered rightly (dig); dnsperf 1 s: ${f[sent]} sent, ${f[completed]} answered, ${f[noerror]} NOERROR, ${f[lost]} lost"
  if ((right != 3)) || [[ ${f[sent]} == na || ${f[sent]} == 0 || ${f[completed]} != "${f[sent]}" ||
    ${f[noerror]} != "${f[sent]}" || ${f[lost]} != 0 ]]; then
    log "error: $system:${wrong:- every name right;} dnsperf: ${f[sent]} sent, ${f[completed]} answered, ${f[noerror]} NOERROR, ${f[lost]} lost; expected the zone's addresses and every query answered NOERROR"
    [[ ${f[sent]} == na ]] && tail -n 5 <<<"$out" >&2
    note "udp mode: $system answered $right/3 names rightly; of ${f[sent]} dnsperf queries ${f[completed]} answered, ${f[noerror]} NOERROR, ${f[lost]} lost; $system skipped"
    return 1
  fi
}

UDP_ADMIN="" # inverso-udp's admin port, for its stream's session count

# udp_sessions SYSTEM: sessions the proxy has ended so far (inverso: its
# stream's inverso_stream_connections_total, every class) or during the
# run (nginx: lines of its stream access log, which truncate_logs empties
# after each run; the last up to 64 KiB of lines may still be in its
# buffer, counted with the next run); na for direct or when unknown.
udp_sessions() {
  case $1 in
    inverso)
      [[ -n $UDP_ADMIN ]] || {
        echo na
        return 0
      }
      curl -s --max-time 5 "http://127.0.0.1:$UDP_ADMIN/metrics" 2>/dev/null | awk '
        /^inverso_stream_connections_total\{stream="dns"/ { n += $2; seen = 1 }
        END { print seen ? n : "na" }' || echo na
      ;;
    nginx) if [[ -f $TMP/nginx-udp/access.log ]]; then wc -l <"$TMP/nginx-udp/access.log"; else echo na; fi ;;
    *) echo na ;;
  esac
}

# run_dnsperf CELL SYSTEM REP PID PORT CLIENTS THREADS (udp mode): one
# measured dnsperf run of SECONDS_PER_RUN seconds, as fast as it goes (no
# -Q), to 127.0.0.1:PORT. PID is the proxy whose CPU time is counted ("-"
# for none: direct; empty: the system is not running, the row reads n/a).
# The DNS servers' CPU is counted apart, dnsperf's from `times`; the
# sessions the proxy ended during the run too (udp_sessions). Appends one
# row to udpruns.tsv.
run_dnsperf() {
  local cell=$1 system=$2 rep=$3 pid=$4 port=$5 clients=$6 threads=$7
  local na=$'na\tna\tna\tna\tna\tna\tna\tna\tna\tna\tna\tna\tna\tna\tna'
  if [[ -z $pid ]]; then
    printf 'udp\t%s\t%s\t%s\t%s\n' "$cell" "$system" "$rep" "$na" >>"$OUT_DIR/udpruns.tsv"
    return 0
  fi
  local t0=0 t1=0 b0 b1 w0 w1 m0 m1 out kv ticks=- s0 s1 sessions=na
  s0=$(udp_sessions "$system")
  [[ $pid != - ]] && t0=$(cpu_ticks_tree "$pid")
  b0=$(($(cpu_ticks_tree "$DNS1_PID") + $(cpu_ticks_tree "$DNS2_PID"))) m0=$(machine_ticks)
  children_ticks w0
  # timeout: dnsperf stops by itself after -l and its -t for the last
  # queries; this only bounds a hung one.
  out=$(timeout $((SECONDS_PER_RUN + 5 + 30)) "${RUN[@]}" dnsperf -s 127.0.0.1 -p "$port" \
    -d "$DNS_DIR/queries" -l "$SECONDS_PER_RUN" -t 5 -c "$clients" -T "$threads" 2>&1) || true
  children_ticks w1
  m1=$(machine_ticks) b1=$(($(cpu_ticks_tree "$DNS1_PID") + $(cpu_ticks_tree "$DNS2_PID")))
  if [[ $pid != - ]]; then
    t1=$(cpu_ticks_tree "$pid")
    ticks=$((t1 - t0))
  fi
  local other
  other=$(awk -v m0="$m0" -v m1="$m1" -v ours=$((t1 - t0 + b1 - b0 + w1 - w0)) 'BEGIN {
    split(m0, a, " "); split(m1, b, " "); total = b[2] - a[2]
    o = total > 0 ? (b[1] - a[1] - ours) * 100 / total : 0
    printf "%.0f", (o < 0 ? 0 : o) }')
  # Sessions that began in the run and ended by its end (dnsperf waits
  # for its last answers): inverso's count is a counter, nginx's log
  # lines are this run's alone.
  s1=$(udp_sessions "$system")
  if [[ $s1 =~ ^[0-9]+$ ]]; then
    case $system in
      inverso) [[ $s0 =~ ^[0-9]+$ ]] && sessions=$((s1 - s0)) ;;
      nginx) sessions=$s1 ;;
    esac
  fi
  truncate_logs
  local -A f=()
  for kv in $(dnsperf_stats "$out"); do f[${kv%%=*}]=${kv#*=}; done
  if [[ ${f[completed]} == na || ${f[qps]} == na ]]; then
    log "dnsperf failed for $system $cell: $(tail -n 3 <<<"$out" | tr '\n' ' ')"
    note "dnsperf failed for udp $cell $system (rep $rep)"
    printf 'udp\t%s\t%s\t%s\t%s\n' "$cell" "$system" "$rep" "$na" >>"$OUT_DIR/udpruns.tsv"
    return 0
  fi
  {
    printf 'udp\t%s\t%s\t%s' "$cell" "$system" "$rep"
    printf '\t%s' "${f[sent]}" "${f[completed]}" "${f[lost]}" "${f[noerror]}" "${f[qps]}" \
      "${f[run_s]}" "${f[avg_s]}" "${f[min_s]}" "${f[max_s]}" "${f[stddev_s]}" "$ticks" \
      $((b1 - b0)) $((w1 - w0)) "$other" "$sessions"
    printf '\n'
  } >>"$OUT_DIR/udpruns.tsv"
  log "$(printf '%-6s %-12s %-14s %9.0f q/s  avg %6.3f ms  max %7.2f ms  lost %d  sessions %s  other CPU %d%%' \
    udp "$cell" "$system" "${f[qps]}" \
    "$(awk -v a="${f[avg_s]}" 'BEGIN { print a * 1000 }')" \
    "$(awk -v a="${f[max_s]}" 'BEGIN { print a * 1000 }')" "${f[lost]}" "$sessions" "$other")"
}

# ---------------------------------------------------------------- modes

mode_proxy() {
  log "== proxy mode: ${SECONDS_PER_RUN}s per run, $REPS repetition(s)"
  local p_nginx p_haproxy p_inverso nginx_pid haproxy_pid inverso_pid
  pick_port p_nginx
  pick_port p_haproxy
  pick_port p_inverso
  start_nginx_proxy nginx_pid nginx-proxy "$p_nginx" 0
  start_haproxy haproxy_pid "$p_haproxy" plain
  start_inverso inverso_pid inverso-proxy "$p_inverso" 0

  local -A ports=([direct]=$BACKEND1 [nginx]=$p_nginx [haproxy]=$p_haproxy [inverso]=$p_inverso)
  # direct: no proxy process, no CPU to count ("-"); inverso may be missing ("").
  local -A pids=([direct]=- [nginx]=$nginx_pid [haproxy]=$haproxy_pid [inverso]=$inverso_pid)
  local systems=(direct nginx haproxy inverso) s body rep cell conns close=()
  for s in "${systems[@]}"; do
    [[ -n ${pids[$s]} ]] || continue
    for body in 1k 64k; do
      probe "$s" "${ports[$s]}" "/$body" "$(body_size "$body")"
      warm_up "http://127.0.0.1:${ports[$s]}/$body"
    done
  done

  for ((rep = 1; rep <= REPS; rep++)); do
    for body in 1k 64k; do
      for cell in ka16 ka64 ka256 close64; do
        conns=${cell//[a-z]/} close=()
        [[ $cell == close* ]] && close=(-H "Connection: close")
        for s in "${systems[@]}"; do
          run_wrk proxy "$body $cell" "$s" "$rep" "${pids[$s]}" \
            "http://127.0.0.1:${ports[$s]}/$body" "$conns" ${close[@]+"${close[@]}"}
        done
      done
    done
  done

  printf 'nginx\tproxy\t%s\t%s\n' "$(status_tree VmHWM "$nginx_pid")" \
    "$(status_tree Threads "$nginx_pid")" >>"$OUT_DIR/mem.tsv"
  printf 'haproxy\tproxy\t%s\t%s\n' "$(status_tree VmHWM "$haproxy_pid")" \
    "$(status_tree Threads "$haproxy_pid")" >>"$OUT_DIR/mem.tsv"
  if [[ -n $inverso_pid ]]; then
    printf 'inverso\tproxy\t%s\t%s\n' "$(status_tree VmHWM "$inverso_pid")" \
      "$(status_tree Threads "$inverso_pid")" >>"$OUT_DIR/mem.tsv"
    stop_pid "$inverso_pid"
  else
    printf 'inverso\tproxy\tna\tna\n' >>"$OUT_DIR/mem.tsv"
  fi
  stop_pid "$haproxy_pid"
  stop_pid "$nginx_pid"
}

mode_cache() {
  log "== cache mode: ${SECONDS_PER_RUN}s per run, $REPS repetition(s)"
  local p_nginx p_inverso nginx_pid inverso_pid s body rep hdr
  pick_port p_nginx
  pick_port p_inverso
  start_nginx_proxy nginx_pid nginx-cache "$p_nginx" 1
  start_inverso inverso_pid inverso-cache "$p_inverso" 256MiB
  local -A ports=([direct]=$BACKEND1 [nginx-cache]=$p_nginx [inverso-cache]=$p_inverso)
  local -A pids=([direct]=- [nginx-cache]=$nginx_pid [inverso-cache]=$inverso_pid)
  local systems=(direct nginx-cache inverso-cache)

  # Warm: the first request fills the cache; the second must be a hit.
  for s in nginx-cache inverso-cache; do
    [[ -n ${pids[$s]} ]] || continue
    for body in 1k 64k; do
      probe "$s" "${ports[$s]}" "/c/$body" "$(body_size "$body")"
      hdr=$(curl -s -D - -o /dev/null --max-time 5 "http://127.0.0.1:${ports[$s]}/c/$body" |
        tr -d '\r' | awk -F': ' 'tolower($1) == "x-cache" { print $2 }')
      printf '%s\t%s\t%s\n' "$s" "$body" "${hdr:-none}" >>"$OUT_DIR/cachecheck.tsv"
      if [[ $hdr != HIT ]]; then
        log "warning: $s /c/$body second request: X-Cache '$hdr', expected HIT"
        note "$s /c/$body was not a cache hit after warming (X-Cache: '${hdr:-none}')"
      fi
      warm_up "http://127.0.0.1:${ports[$s]}/c/$body"
    done
  done

  for ((rep = 1; rep <= REPS; rep++)); do
    for body in 1k 64k; do
      for s in "${systems[@]}"; do
        run_wrk cache "$body ka64 hit" "$s" "$rep" "${pids[$s]}" \
          "http://127.0.0.1:${ports[$s]}/c/$body" 64
      done
    done
  done

  printf 'nginx-cache\tcache\t%s\t%s\n' "$(status_tree VmHWM "$nginx_pid")" \
    "$(status_tree Threads "$nginx_pid")" >>"$OUT_DIR/mem.tsv"
  if [[ -n $inverso_pid ]]; then
    printf 'inverso-cache\tcache\t%s\t%s\n' "$(status_tree VmHWM "$inverso_pid")" \
      "$(status_tree Threads "$inverso_pid")" >>"$OUT_DIR/mem.tsv"
    stop_pid "$inverso_pid"
  fi
  stop_pid "$nginx_pid"
}

mode_gzip() {
  log "== gzip mode: ${SECONDS_PER_RUN}s per run, $REPS repetition(s)"
  local p_nginx p_inverso nginx_pid inverso_pid s body rep
  local ae=(-H "Accept-Encoding: gzip")
  pick_port p_nginx
  pick_port p_inverso
  start_nginx_proxy nginx_pid nginx-gzip "$p_nginx" 1 1
  start_inverso inverso_pid inverso-gzip "$p_inverso" 256MiB \
    "gzip = true" "gzip_comp_level = 1" "gzip_min_length = 256"
  # No direct row: the backend does not compress; it would send two to three
  # times the bytes, for no compression CPU at all.
  local -A ports=([nginx-gzip]=$p_nginx [inverso-gzip]=$p_inverso)
  local -A pids=([nginx-gzip]=$nginx_pid [inverso-gzip]=$inverso_pid)
  local systems=(nginx-gzip inverso-gzip)

  for s in "${systems[@]}"; do
    [[ -n ${pids[$s]} ]] || continue
    for body in 1k 64k; do
      gzip_probe "$s" "${ports[$s]}" "$body"
      warm_up "http://127.0.0.1:${ports[$s]}/c/$body.txt" "${ae[@]}"
    done
  done

  for ((rep = 1; rep <= REPS; rep++)); do
    for body in 1k 64k; do
      for s in "${systems[@]}"; do
        run_wrk gzip "$body ka64 gzip hit" "$s" "$rep" "${pids[$s]}" \
          "http://127.0.0.1:${ports[$s]}/c/$body.txt" 64 "${ae[@]}"
      done
    done
  done

  printf 'nginx-gzip\tgzip\t%s\t%s\n' "$(status_tree VmHWM "$nginx_pid")" \
    "$(status_tree Threads "$nginx_pid")" >>"$OUT_DIR/mem.tsv"
  if [[ -n $inverso_pid ]]; then
    printf 'inverso-gzip\tgzip\t%s\t%s\n' "$(status_tree VmHWM "$inverso_pid")" \
      "$(status_tree Threads "$inverso_pid")" >>"$OUT_DIR/mem.tsv"
    stop_pid "$inverso_pid"
  fi
  stop_pid "$nginx_pid"
}

mode_gunzip() {
  log "== gunzip mode: ${SECONDS_PER_RUN}s per run, $REPS repetition(s)"
  local p_nginx p_inverso nginx_pid inverso_pid s body rep client failed=()
  local p_nginx_relay p_inverso_relay nginx_relay_pid inverso_relay_pid
  pick_port p_nginx
  pick_port p_inverso
  pick_port p_nginx_relay
  pick_port p_inverso_relay
  start_nginx_proxy nginx_pid nginx-gunzip "$p_nginx" 1 0 0 0 0 0 1
  # The backends say Vary: Accept-Encoding: unread, one entry per URL.
  start_inverso inverso_pid inverso-gunzip "$p_inverso" 256MiB \
    "gunzip = true" "request_header.Accept-Encoding = gzip" "cache_ignore_headers = Vary"
  # The relayed pair: no cache, every request goes to a backend, which
  # compresses it, and its coded answer is decoded as it is relayed.
  start_nginx_proxy nginx_relay_pid nginx-gunzip-relay "$p_nginx_relay" 0 0 0 0 0 0 1
  start_inverso inverso_relay_pid inverso-gunzip-relay "$p_inverso_relay" 0 \
    "gunzip = true" "request_header.Accept-Encoding = gzip"
  # This mode is about inverso's gunzip: without it, nothing to compare
  # (start_inverso said why). No direct row: the backend would compress
  # at every request, which neither proxy does on a hit.
  [[ -n $inverso_pid ]] || failed+=(inverso-gunzip)
  [[ -n $inverso_relay_pid ]] || failed+=(inverso-gunzip-relay)
  local -A ports=([nginx-gunzip]=$p_nginx [inverso-gunzip]=$p_inverso
    [nginx-gunzip-relay]=$p_nginx_relay [inverso-gunzip-relay]=$p_inverso_relay)
  local -A pids=([nginx-gunzip]=$nginx_pid [inverso-gunzip]=$inverso_pid
    [nginx-gunzip-relay]=$nginx_relay_pid [inverso-gunzip-relay]=$inverso_relay_pid)
  local systems=(nginx-gunzip inverso-gunzip nginx-gunzip-relay inverso-gunzip-relay)
  # wrk's arguments for each kind of client: none for one that takes no
  # gzip (wrk sends no Accept-Encoding of its own).
  local -A takes=([decoded]="" [gzip]="Accept-Encoding: gzip")

  for s in "${systems[@]}"; do
    [[ -n ${pids[$s]} ]] || continue
    for body in 1k 64k; do
      if ! gunzip_probe "$s" "${ports[$s]}" "$body"; then
        [[ " ${failed[*]-} " == *" $s "* ]] || failed+=("$s")
      fi
    done
  done
  if ((${#failed[@]} > 0)); then
    local -A said=([nginx-gunzip]=nginx-gunzip/error.log [inverso-gunzip]=inverso-gunzip/stderr.log
      [nginx-gunzip-relay]=nginx-gunzip-relay/error.log
      [inverso-gunzip-relay]=inverso-gunzip-relay/stderr.log)
    for s in "${systems[@]}"; do
      [[ " ${failed[*]} " == *" $s "* && -n ${pids[$s]} && -s $TMP/${said[$s]} ]] || continue
      log "$s's ${said[$s]##*/}:"
      tail -n 10 "$TMP/${said[$s]}" >&2 || true
    done
    log "error: gunzip mode stopped, nothing measured: ${failed[*]} did not start or did not answer as expected (see above)"
    note "gunzip mode stopped before measuring: ${failed[*]} did not start or did not answer as expected"
    GUNZIP_FAILED=1
    for s in inverso-gunzip-relay nginx-gunzip-relay inverso-gunzip nginx-gunzip; do
      if [[ -n ${pids[$s]} ]]; then stop_pid "${pids[$s]}"; fi
    done
    return 0
  fi
  local hdr=() kind
  for s in "${systems[@]}"; do
    for body in 1k 64k; do
      for client in decoded gzip; do
        hdr=()
        [[ -n ${takes[$client]} ]] && hdr=(-H "${takes[$client]}")
        warm_up "http://127.0.0.1:${ports[$s]}/gz/$body.txt" ${hdr[@]+"${hdr[@]}"}
      done
    done
  done

  for ((rep = 1; rep <= REPS; rep++)); do
    for body in 1k 64k; do
      for client in decoded gzip; do
        hdr=()
        [[ -n ${takes[$client]} ]] && hdr=(-H "${takes[$client]}")
        for s in "${systems[@]}"; do
          kind=hit
          [[ $s == *-relay ]] && kind=relayed
          run_wrk gunzip "$body ka64 $client $kind" "$s" "$rep" "${pids[$s]}" \
            "http://127.0.0.1:${ports[$s]}/gz/$body.txt" 64 ${hdr[@]+"${hdr[@]}"}
        done
      done
    done
  done

  for s in "${systems[@]}"; do
    printf '%s\tgunzip\t%s\t%s\n' "$s" "$(status_tree VmHWM "${pids[$s]}")" \
      "$(status_tree Threads "${pids[$s]}")" >>"$OUT_DIR/mem.tsv"
  done
  stop_pid "$inverso_relay_pid"
  stop_pid "$nginx_relay_pid"
  stop_pid "$inverso_pid"
  stop_pid "$nginx_pid"
}

mode_files() {
  log "== files mode: ${SECONDS_PER_RUN}s per run, $REPS repetition(s)"
  local p_nginx p_inverso nginx_pid inverso_pid s body rep cell conns close=()
  pick_port p_nginx
  pick_port p_inverso
  start_nginx_files nginx_pid nginx-files "$p_nginx"
  # The directory is a word of the route's value: it must not hold a space.
  if [[ $TMP =~ [[:space:]] ]]; then
    log "the temp dir '$TMP' holds a space; inverso's files route cannot name it"
    note "files mode: the temp dir holds a space, so inverso was not started"
  else
    start_inverso inverso_pid inverso-files "$p_inverso" 0 \
      "route./c/ = files $TMP/www/c max_age=10m"
  fi
  # direct: the backend nginx, on the same files; its CPU is counted.
  local -A ports=([direct]=$BACKEND1 [nginx]=$p_nginx [inverso]=$p_inverso)
  local -A pids=([direct]=$BACKEND_PID [nginx]=$nginx_pid [inverso]=${inverso_pid:-})
  local systems=(direct nginx inverso)

  for s in "${systems[@]}"; do
    [[ -n ${pids[$s]} ]] || continue
    for body in 1k 64k; do
      files_probe "$s" "${ports[$s]}" "$body"
      warm_up "http://127.0.0.1:${ports[$s]}/c/$body.txt"
    done
  done

  for ((rep = 1; rep <= REPS; rep++)); do
    for body in 1k 64k; do
      for cell in ka64 close64; do
        conns=${cell//[a-z]/} close=()
        [[ $cell == close* ]] && close=(-H "Connection: close")
        for s in "${systems[@]}"; do
          run_wrk files "$body $cell" "$s" "$rep" "${pids[$s]}" \
            "http://127.0.0.1:${ports[$s]}/c/$body.txt" "$conns" ${close[@]+"${close[@]}"}
        done
      done
    done
  done

  printf 'nginx-files\tfiles\t%s\t%s\n' "$(status_tree VmHWM "$nginx_pid")" \
    "$(status_tree Threads "$nginx_pid")" >>"$OUT_DIR/mem.tsv"
  if [[ -n ${inverso_pid:-} ]]; then
    printf 'inverso-files\tfiles\t%s\t%s\n' "$(status_tree VmHWM "$inverso_pid")" \
      "$(status_tree Threads "$inverso_pid")" >>"$OUT_DIR/mem.tsv"
    stop_pid "$inverso_pid"
  fi
  stop_pid "$nginx_pid"
}

# start_inverso_tls VAR NAME PORT TLS_PORT (tls mode): inverso taking TLS
# on TLS_PORT with the benchmark's certificate (its plain PORT unused); sets
# VAR to its PID, or to "" if it could not start (its cells then read n/a).
start_inverso_tls() {
  local _tvar=$1 name=$2 port=$3 tls_port=$4 _tpid=""
  # A file name is a word of tls_certificates: it must not hold a space.
  if [[ $TLS_DIR =~ [[:space:]] ]]; then
    log "the temp dir '$TMP' holds a space; inverso's tls_certificates cannot name it"
    note "tls mode: the temp dir holds a space, so $name was not started"
  else
    start_inverso _tpid "$name" "$port" 0 "tls_port = $tls_port" \
      "tls_certificates = $TLS_DIR/cert.pem key=$TLS_DIR/key.pem"
  fi
  if [[ -n $_tpid ]] && ! wait_listening "$_tpid" "$tls_port"; then
    log "$name does not listen on its tls_port $tls_port; its cells read n/a. stderr:"
    tail -n 20 "$TMP/$name/stderr.log" >&2 || true
    note "$name did not listen on tls_port"
    stop_pid "$_tpid"
    _tpid=""
  fi
  printf -v "$_tvar" '%s' "$_tpid"
}

mode_tls() {
  log "== tls mode: ${SECONDS_PER_RUN}s per run, $REPS repetition(s)"
  local p_nginx p_haproxy p_inverso p_inverso_tls nginx_pid haproxy_pid inverso_pid="" s body
  local rep cell conns close=() failed=()
  make_certificate
  pick_port p_nginx
  pick_port p_haproxy
  pick_port p_inverso     # inverso's plain port, which nothing measures
  pick_port p_inverso_tls # its tls_port
  start_nginx_proxy nginx_pid nginx-tls "$p_nginx" 0 0 1
  start_haproxy haproxy_pid "$p_haproxy" plain ssl crt "$TLS_DIR/combined.pem"
  start_inverso_tls inverso_pid inverso-tls "$p_inverso" "$p_inverso_tls"

  # direct: the backend over plain HTTP, the ceiling; the others over https.
  local -A ports=([direct]=$BACKEND1 [nginx]=$p_nginx [haproxy]=$p_haproxy [inverso]=$p_inverso_tls)
  local -A pids=([direct]=- [nginx]=$nginx_pid [haproxy]=$haproxy_pid [inverso]=$inverso_pid)
  local -A schemes=([direct]=http [nginx]=https [haproxy]=https [inverso]=https)
  local systems=(direct nginx haproxy inverso)
  for s in "${systems[@]}"; do
    [[ -n ${pids[$s]} ]] || continue
    for body in 1k 64k; do
      if [[ $s == direct ]]; then
        probe "$s" "${ports[$s]}" "/$body" "$(body_size "$body")"
      elif ! tls_probe "$s" "${ports[$s]}" "$body"; then
        [[ " ${failed[*]-} " == *" $s "* ]] || failed+=("$s")
      fi
    done
  done
  if ((${#failed[@]} > 0)); then
    log "error: tls mode stopped, nothing measured: ${failed[*]} did not serve HTTPS as expected (see above)"
    note "tls mode stopped before measuring: ${failed[*]} did not serve HTTPS as expected"
    TLS_FAILED=1
    if [[ -n $inverso_pid ]]; then stop_pid "$inverso_pid"; fi
    stop_pid "$haproxy_pid"
    stop_pid "$nginx_pid"
    return 0
  fi
  wrk_resumption
  for s in "${systems[@]}"; do
    [[ -n ${pids[$s]} ]] || continue
    for body in 1k 64k; do
      warm_up "${schemes[$s]}://127.0.0.1:${ports[$s]}/$body"
    done
  done

  for ((rep = 1; rep <= REPS; rep++)); do
    for cell in "1k ka64" "64k ka64" "1k close64"; do
      body=${cell%% *} conns=${cell##*[a-z]} close=()
      [[ $cell == *close* ]] && close=(-H "Connection: close")
      for s in "${systems[@]}"; do
        run_wrk tls "$cell" "$s" "$rep" "${pids[$s]}" \
          "${schemes[$s]}://127.0.0.1:${ports[$s]}/$body" "$conns" ${close[@]+"${close[@]}"}
      done
    done
  done

  printf 'nginx\ttls\t%s\t%s\n' "$(status_tree VmHWM "$nginx_pid")" \
    "$(status_tree Threads "$nginx_pid")" >>"$OUT_DIR/mem.tsv"
  printf 'haproxy\ttls\t%s\t%s\n' "$(status_tree VmHWM "$haproxy_pid")" \
    "$(status_tree Threads "$haproxy_pid")" >>"$OUT_DIR/mem.tsv"
  if [[ -n $inverso_pid ]]; then
    printf 'inverso\ttls\t%s\t%s\n' "$(status_tree VmHWM "$inverso_pid")" \
      "$(status_tree Threads "$inverso_pid")" >>"$OUT_DIR/mem.tsv"
    stop_pid "$inverso_pid"
  else
    printf 'inverso\ttls\tna\tna\n' >>"$OUT_DIR/mem.tsv"
  fi
  stop_pid "$haproxy_pid"
  stop_pid "$nginx_pid"
  tls_idle
}

# tls_idle (tls mode, after its runs): memory per idle TLS keep-alive
# connection, as mode_idle measures plain ones: a fresh process of each
# proxy, set up as for the runs, one at a time, IDLE_TLS_CONNS connections
# to its TLS port (idle_tls.tsv). Fresh, so that what the load runs left
# in the allocators or in a thread pool does not lower the figure.
tls_idle() {
  log "== tls mode, idle: $IDLE_TLS_CONNS idle TLS keep-alive connections"
  local port plain pid
  pick_port plain # inverso's plain port, which nothing measures
  pick_port port
  start_inverso_tls pid inverso-tls-idle "$plain" "$port"
  measure_idle inverso "$pid" "$port" tls
  [[ -n $pid ]] && stop_pid "$pid"
  pick_port port
  start_nginx_proxy pid nginx-tls-idle "$port" 0 0 1
  measure_idle nginx "$pid" "$port" tls
  stop_pid "$pid"
  pick_port port
  start_haproxy pid "$port" plain ssl crt "$TLS_DIR/combined.pem"
  measure_idle haproxy "$pid" "$port" tls
  stop_pid "$pid"
}

mode_backend_tls() {
  log "== backend-tls mode: ${SECONDS_PER_RUN}s per run, $REPS repetition(s)"
  local p_nginx p_haproxy p_inverso nginx_pid haproxy_pid inverso_pid="" s body rep cell conns
  local close=() failed=() from
  pick_port p_nginx
  pick_port p_haproxy
  pick_port p_inverso
  # nginx and HAProxy die here, with their error log, if they cannot start.
  start_nginx_proxy nginx_pid nginx-btls "$p_nginx" 0 0 0 1
  start_haproxy haproxy_pid "$p_haproxy" tls
  # A file name is a word of the value: it must not hold a space.
  if [[ $BACKEND_TLS_DIR =~ [[:space:]] ]]; then
    log "the temp dir '$TMP' holds a space; inverso's backend_tls_ca cannot name it"
    note "backend-tls mode: the temp dir holds a space, so inverso was not started"
  else
    start_inverso inverso_pid inverso-btls "$p_inverso" 0 \
      "targets = 127.0.0.1:$BACKEND1_TLS tls tls_name=localhost, 127.0.0.1:$BACKEND2_TLS tls tls_name=localhost" \
      "backend_tls_ca = $BACKEND_TLS_DIR/ca.pem" "backend_tls_verify = on"
  fi
  # This mode is about inverso's TLS to backends: without it, nothing to
  # compare (start_inverso said why: no build, a refused key, ...).
  [[ -n $inverso_pid ]] || failed+=(inverso)

  # direct: the backend over plain HTTP, the ceiling; the proxies over TLS.
  local -A ports=([direct]=$BACKEND1 [nginx]=$p_nginx [haproxy]=$p_haproxy [inverso]=$p_inverso)
  local -A pids=([direct]=- [nginx]=$nginx_pid [haproxy]=$haproxy_pid [inverso]=$inverso_pid)
  local systems=(direct nginx haproxy inverso)
  for s in "${systems[@]}"; do
    [[ -n ${pids[$s]} ]] || continue
    for body in 1k 64k; do
      if [[ $s == direct ]]; then
        probe "$s" "${ports[$s]}" "/$body" "$(body_size "$body")"
      elif ! backend_tls_probe "$s" "${ports[$s]}" "$body"; then
        [[ " ${failed[*]-} " == *" $s "* ]] || failed+=("$s")
      fi
    done
  done
  if ((${#failed[@]} > 0)); then
    # What each failing proxy said about it (a refused certificate, most
    # often): nginx in its error log, HAProxy on stderr, inverso too.
    local -A said=([nginx]=nginx-btls/error.log [haproxy]=haproxy/stderr.log
      [inverso]=inverso-btls/stderr.log)
    for s in "${failed[@]}"; do
      # An inverso that did not start has been shown by start_inverso.
      [[ -n ${pids[$s]} && -s $TMP/${said[$s]} ]] || continue
      log "$s's ${said[$s]##*/}:"
      tail -n 10 "$TMP/${said[$s]}" >&2 || true
    done
    log "error: backend-tls mode stopped, nothing measured: ${failed[*]} did not start or did not proxy over TLS (see above)"
    note "backend-tls mode stopped before measuring: ${failed[*]} did not start or did not proxy over TLS"
    BACKEND_TLS_FAILED=1
    if [[ -n $inverso_pid ]]; then stop_pid "$inverso_pid"; fi
    stop_pid "$haproxy_pid"
    stop_pid "$nginx_pid"
    return 0
  fi
  # 64 connections (wrk takes the last -c): each proxy's pool then holds
  # the TLS connections a run needs before the first one.
  for s in "${systems[@]}"; do
    for body in 1k 64k; do
      warm_up "http://127.0.0.1:${ports[$s]}/$body" -c 64
    done
  done

  for ((rep = 1; rep <= REPS; rep++)); do
    for cell in "1k ka64" "64k ka64" "1k close64"; do
      body=${cell%% *} conns=${cell##*[a-z]} close=()
      [[ $cell == *close* ]] && close=(-H "Connection: close")
      for s in "${systems[@]}"; do
        from=$(backend_tls_lines)
        run_wrk backend-tls "$cell" "$s" "$rep" "${pids[$s]}" \
          "http://127.0.0.1:${ports[$s]}/$body" "$conns" ${close[@]+"${close[@]}"}
        [[ $s == direct ]] || backend_tls_count "$cell" "$s" "$rep" "${pids[$s]}" "$from"
      done
    done
  done

  local name
  for s in nginx haproxy inverso; do
    printf '%s\tbackend-tls\t%s\t%s\n' "$s" "$(status_tree VmHWM "${pids[$s]}")" \
      "$(status_tree Threads "${pids[$s]}")" >>"$OUT_DIR/mem.tsv"
  done
  for name in inverso haproxy nginx; do stop_pid "${pids[$name]}"; done
}

mode_auth() {
  log "== auth mode: ${SECONDS_PER_RUN}s per run, $REPS repetition(s)"
  local p_nginx p_nginx_auth p_inverso p_inverso_auth p_admin nginx_pid nginx_auth_pid
  local inverso_pid="" inverso_auth_pid="" s rep failed=() c0 c1 wrk_reqs
  pick_port p_nginx
  pick_port p_nginx_auth
  pick_port p_inverso
  pick_port p_inverso_auth
  pick_port p_admin # inverso-auth's admin listener: its auth_request counters
  start_nginx_proxy nginx_pid nginx-noauth "$p_nginx" 0
  start_nginx_proxy nginx_auth_pid nginx-auth "$p_nginx_auth" 0 0 0 0 1
  start_inverso inverso_pid inverso-noauth "$p_inverso" 0
  start_inverso inverso_auth_pid inverso-auth "$p_inverso_auth" 0 \
    "pool.sso = 127.0.0.1:$AUTH_SERVICE" "auth_request = sso /verify" \
    "auth_request_headers = Remote-User" "admin_port = $p_admin" \
    ${BENCH_AUTH_CACHE:+"auth_request_cache = $BENCH_AUTH_CACHE"}
  # This mode is about inverso's auth_request: without it, nothing to
  # compare (start_inverso said why).
  [[ -n $inverso_auth_pid ]] || failed+=(inverso-auth)

  local -A ports=([nginx]=$p_nginx [nginx-auth]=$p_nginx_auth [inverso]=$p_inverso
    [inverso-auth]=$p_inverso_auth)
  local -A pids=([nginx]=$nginx_pid [nginx-auth]=$nginx_auth_pid [inverso]=$inverso_pid
    [inverso-auth]=$inverso_auth_pid)
  local systems=(nginx nginx-auth inverso inverso-auth)
  for s in "${systems[@]}"; do
    [[ -n ${pids[$s]} ]] || continue
    if ! auth_probe "$s" "${ports[$s]}"; then failed+=("$s"); fi
  done
  if ((${#failed[@]} > 0)); then
    local -A said=([nginx]=nginx-noauth/error.log [nginx-auth]=nginx-auth/error.log
      [inverso]=inverso-noauth/stderr.log [inverso-auth]=inverso-auth/stderr.log)
    for s in "${failed[@]}"; do
      [[ -n ${pids[$s]} && -s $TMP/${said[$s]} ]] || continue
      log "$s's ${said[$s]##*/}:"
      tail -n 10 "$TMP/${said[$s]}" >&2 || true
    done
    log "error: auth mode stopped, nothing measured: ${failed[*]} did not start or did not answer as expected (see above)"
    note "auth mode stopped before measuring: ${failed[*]} did not start or did not answer as expected"
    AUTH_FAILED=1
    for s in inverso-auth inverso nginx-auth nginx; do
      if [[ -n ${pids[$s]} ]]; then stop_pid "${pids[$s]}"; fi
    done
    return 0
  fi
  # 64 connections (wrk takes the last -c): the proxies' pools to the
  # backends and to the service then hold what a run needs.
  for s in "${systems[@]}"; do
    [[ -n ${pids[$s]} ]] || continue
    warm_up "http://127.0.0.1:${ports[$s]}/1k" -c 64
  done

  c0=$(auth_counters "$p_admin")
  for ((rep = 1; rep <= REPS; rep++)); do
    for s in "${systems[@]}"; do
      run_wrk auth "1k ka64" "$s" "$rep" "${pids[$s]}" "http://127.0.0.1:${ports[$s]}/1k" 64
    done
  done
  c1=$(auth_counters "$p_admin")

  # inverso-auth's questions during the runs: as many allowed as wrk got
  # answers (a few more: those cut short when a run ends), none refused
  # and none failed.
  wrk_reqs=$(awk -F'\t' '$1 == "auth" && $3 == "inverso-auth" && $5 != "na" { n += $5 }
    END { print n + 0 }' "$OUT_DIR/runs.tsv")
  local -a a0 a1
  read -ra a0 <<<"$c0"
  read -ra a1 <<<"$c1"
  local allowed=na denied=na failed_n=na
  if [[ ${a0[0]} != na && ${a1[0]} != na ]]; then
    allowed=$((a1[0] - a0[0])) denied=$((a1[1] - a0[1])) failed_n=$((a1[2] - a0[2]))
  fi
  printf 'inverso-auth\t%s\t%s\t%s\t%s\n' "$allowed" "$denied" "$failed_n" "$wrk_reqs" \
    >>"$OUT_DIR/authcount.tsv"
  log "inverso-auth during the runs: $allowed allowed, $denied denied, $failed_n failed; wrk counted $wrk_reqs responses"
  if [[ $allowed == na ]]; then
    note "auth mode: inverso-auth's inverso_auth_requests_total could not be read"
  elif ((denied + failed_n > 0 || allowed < wrk_reqs)); then
    log "warning: inverso-auth: $denied questions denied and $failed_n failed, $allowed allowed for $wrk_reqs responses"
    note "auth mode: inverso-auth's service questions during the runs: $allowed allowed, **$denied denied, $failed_n failed**, for $wrk_reqs responses"
  fi

  for s in "${systems[@]}"; do
    if [[ -n ${pids[$s]} ]]; then
      printf '%s\tauth\t%s\t%s\n' "$s" "$(status_tree VmHWM "${pids[$s]}")" \
        "$(status_tree Threads "${pids[$s]}")" >>"$OUT_DIR/mem.tsv"
    else
      printf '%s\tauth\tna\tna\n' "$s" >>"$OUT_DIR/mem.tsv"
    fi
  done
  for s in inverso-auth inverso nginx-auth nginx; do
    if [[ -n ${pids[$s]} ]]; then stop_pid "${pids[$s]}"; fi
  done
}

mode_subfilter() {
  log "== subfilter mode: ${SECONDS_PER_RUN}s per run, $REPS repetition(s)"
  local p_nginx p_nginx_sub p_inverso p_inverso_sub nginx_pid nginx_sub_pid
  local inverso_pid="" inverso_sub_pid="" s body rep failed=() f
  local -A page
  local kv
  for f in 1k 64k; do
    log "subfilter page $f.html: ${SUBFILTER_PAGES[$f]}"
    page=()
    for kv in ${SUBFILTER_PAGES[$f]}; do page[${kv%%=*}]=${kv#*=}; done
    printf '%s\t%s\t%s\t%s\t%s\n' "$f" "${page[bytes]}" "${page[rewritten_bytes]}" \
      "${page[from1]}" "${page[from2]}" >>"$OUT_DIR/subfilterpages.tsv"
  done
  pick_port p_nginx
  pick_port p_nginx_sub
  pick_port p_inverso
  pick_port p_inverso_sub
  start_nginx_proxy nginx_pid nginx-nosub "$p_nginx" 0
  start_nginx_proxy nginx_sub_pid nginx-sub "$p_nginx_sub" 0 0 0 0 0 1
  start_inverso inverso_pid inverso-nosub "$p_inverso" 0
  start_inverso inverso_sub_pid inverso-sub "$p_inverso_sub" 0 \
    "sub_filter = '$SUB_FROM1' '$SUB_TO1', '$SUB_FROM2' '$SUB_TO2'" \
    "sub_filter_once = false" "sub_filter_types = text/html"
  # This mode is about inverso's sub_filter: without it, nothing to
  # compare (start_inverso said why).
  [[ -n $inverso_sub_pid ]] || failed+=(inverso-sub)

  local -A ports=([nginx]=$p_nginx [nginx-sub]=$p_nginx_sub [inverso]=$p_inverso
    [inverso-sub]=$p_inverso_sub)
  local -A pids=([nginx]=$nginx_pid [nginx-sub]=$nginx_sub_pid [inverso]=$inverso_pid
    [inverso-sub]=$inverso_sub_pid)
  local systems=(nginx nginx-sub inverso inverso-sub)
  for s in "${systems[@]}"; do
    [[ -n ${pids[$s]} ]] || continue
    for body in 1k 64k; do
      if ! subfilter_probe "$s" "${ports[$s]}" "$body"; then
        [[ " ${failed[*]-} " == *" $s "* ]] || failed+=("$s")
      fi
    done
  done
  if ((${#failed[@]} == 0)); then
    for body in 1k 64k; do
      subfilter_same "$body" || failed+=("nginx-sub/inverso-sub ($body.html differs)")
    done
  fi
  if ((${#failed[@]} > 0)); then
    local -A said=([nginx]=nginx-nosub/error.log [nginx-sub]=nginx-sub/error.log
      [inverso]=inverso-nosub/stderr.log [inverso-sub]=inverso-sub/stderr.log)
    for s in "${systems[@]}"; do
      [[ " ${failed[*]} " == *" $s "* && -n ${pids[$s]} && -s $TMP/${said[$s]} ]] || continue
      log "$s's ${said[$s]##*/}:"
      tail -n 10 "$TMP/${said[$s]}" >&2 || true
    done
    log "error: subfilter mode stopped, nothing measured: ${failed[*]} did not start or did not answer as expected (see above)"
    note "subfilter mode stopped before measuring: ${failed[*]} did not start or did not answer as expected"
    SUBFILTER_FAILED=1
    for s in inverso-sub inverso nginx-sub nginx; do
      if [[ -n ${pids[$s]} ]]; then stop_pid "${pids[$s]}"; fi
    done
    return 0
  fi
  # 64 connections (wrk takes the last -c): the proxies' pools to the
  # backends then hold what a run needs.
  for s in "${systems[@]}"; do
    [[ -n ${pids[$s]} ]] || continue
    for body in 1k 64k; do
      warm_up "http://127.0.0.1:${ports[$s]}/$body.html" -c 64
    done
  done

  for ((rep = 1; rep <= REPS; rep++)); do
    for body in 1k 64k; do
      for s in "${systems[@]}"; do
        run_wrk subfilter "$body ka64" "$s" "$rep" "${pids[$s]}" \
          "http://127.0.0.1:${ports[$s]}/$body.html" 64
      done
    done
  done

  for s in "${systems[@]}"; do
    if [[ -n ${pids[$s]} ]]; then
      printf '%s\tsubfilter\t%s\t%s\n' "$s" "$(status_tree VmHWM "${pids[$s]}")" \
        "$(status_tree Threads "${pids[$s]}")" >>"$OUT_DIR/mem.tsv"
    else
      printf '%s\tsubfilter\tna\tna\n' "$s" >>"$OUT_DIR/mem.tsv"
    fi
  done
  for s in inverso-sub inverso nginx-sub nginx; do
    if [[ -n ${pids[$s]} ]]; then stop_pid "${pids[$s]}"; fi
  done
}

mode_upload() {
  log "== upload mode: ${SECONDS_PER_RUN}s per run, $REPS repetition(s)"
  local p_nginx p_inverso p_spool nginx_pid inverso_pid="" spool_pid="" s body rep cell conns
  local failed=() left
  pick_port p_nginx
  pick_port p_inverso
  pick_port p_spool
  # The bodies curl sends in the probes: the bytes wrk sends (bench_wrk.lua).
  for body in 64k 1m; do
    head -c "$(upload_bytes "$body")" /dev/zero | tr '\0' 'u' >"$TMP/upload-$body"
  done
  start_nginx_proxy nginx_pid nginx-upload "$p_nginx" 0 0 0 0 0 0 0 1
  start_inverso inverso_pid inverso-upload "$p_inverso" 0 "max_body_size = 2MiB"
  UPLOAD_SPOOL=$TMP/inverso-spool/spool
  mkdir -p "$UPLOAD_SPOOL"
  start_inverso spool_pid inverso-spool "$p_spool" 0 "max_body_size = 2MiB" \
    "request_buffer_dir = $UPLOAD_SPOOL"
  # This mode is about inverso's request_buffer_dir: without it, nothing to
  # compare (start_inverso said why).
  [[ -n $spool_pid ]] || failed+=(inverso-spool)

  local -A ports=([direct]=$BACKEND1 [nginx]=$p_nginx [inverso]=$p_inverso
    [inverso-spool]=$p_spool)
  # direct: no proxy process, no CPU to count ("-").
  local -A pids=([direct]=- [nginx]=$nginx_pid [inverso]=$inverso_pid
    [inverso-spool]=$spool_pid)
  local systems=(direct nginx inverso inverso-spool)
  for s in "${systems[@]}"; do
    [[ -n ${pids[$s]} ]] || continue
    for body in 64k 1m; do
      if ! upload_probe "$s" "${ports[$s]}" "$body"; then
        [[ " ${failed[*]-} " == *" $s "* ]] || failed+=("$s")
      fi
    done
  done
  upload_on_disk nginx "$nginx_pid" "$p_nginx" "$TMP/nginx-upload/client_body" ||
    failed+=("nginx (slow POST)")
  if [[ -n $spool_pid ]]; then
    upload_on_disk inverso-spool "$spool_pid" "$p_spool" "$UPLOAD_SPOOL" ||
      failed+=("inverso-spool (slow POST)")
  fi
  if ((${#failed[@]} > 0)); then
    local -A said=([nginx]=nginx-upload/error.log [inverso]=inverso-upload/stderr.log
      [inverso-spool]=inverso-spool/stderr.log)
    for s in nginx inverso inverso-spool; do
      [[ " ${failed[*]} " == *" $s "* && -n ${pids[$s]} && -s $TMP/${said[$s]} ]] || continue
      log "$s's ${said[$s]##*/}:"
      tail -n 10 "$TMP/${said[$s]}" >&2 || true
    done
    log "error: upload mode stopped, nothing measured: ${failed[*]} did not start or did not answer as expected (see above)"
    note "upload mode stopped before measuring: ${failed[*]} did not start or did not answer as expected"
    UPLOAD_FAILED=1
    for s in inverso-spool inverso nginx; do
      if [[ -n ${pids[$s]} ]]; then stop_pid "${pids[$s]}"; fi
    done
    return 0
  fi
  # 64 connections (wrk takes the last -c): the proxies' pools to the
  # backends then hold what a run needs. POSTs, as measured: bench_wrk.lua
  # reads BENCH_WRK_POST_BYTES.
  for s in "${systems[@]}"; do
    [[ -n ${pids[$s]} ]] || continue
    for body in 64k 1m; do
      BENCH_WRK_POST_BYTES=$(upload_bytes "$body") \
        warm_up "http://127.0.0.1:${ports[$s]}/upload" -s "$SCRIPT_DIR/bench_wrk.lua" -c 64
    done
  done

  for ((rep = 1; rep <= REPS; rep++)); do
    for body in 64k 1m; do
      for cell in ka16 ka64; do
        conns=${cell//[a-z]/}
        for s in "${systems[@]}"; do
          BENCH_WRK_POST_BYTES=$(upload_bytes "$body") \
            run_wrk upload "$body $cell" "$s" "$rep" "${pids[$s]}" \
            "http://127.0.0.1:${ports[$s]}/upload" "$conns"
        done
      done
    done
  done

  # Every body spooled is gone once its request is done: nothing left.
  left=na
  if [[ -n $spool_pid ]]; then left=$(find "$UPLOAD_SPOOL" -mindepth 1 | wc -l); fi
  printf 'inverso-spool\tafter the runs\t%s\n' "$left" >>"$OUT_DIR/uploadspool.tsv"
  log "inverso-spool's spool dir after the runs: $left entries"
  if [[ $left != 0 ]]; then
    note "upload mode: inverso-spool's spool dir held **$left** entries after the runs"
  fi

  for s in nginx inverso inverso-spool; do
    if [[ -n ${pids[$s]} ]]; then
      printf '%s\tupload\t%s\t%s\n' "$s" "$(status_tree VmHWM "${pids[$s]}")" \
        "$(status_tree Threads "${pids[$s]}")" >>"$OUT_DIR/mem.tsv"
    else
      printf '%s\tupload\tna\tna\n' "$s" >>"$OUT_DIR/mem.tsv"
    fi
  done
  for s in inverso-spool inverso nginx; do
    if [[ -n ${pids[$s]} ]]; then stop_pid "${pids[$s]}"; fi
  done
}

mode_fastcgi() {
  log "== fastcgi mode: ${SECONDS_PER_RUN}s per run, $REPS repetition(s)"
  make_fastcgi_scripts
  local fpm_version opcache hv transport
  # awk reads all: a reader that stops early would fail the pipe (pipefail).
  fpm_version=$("$PHP_FPM" -v 2>/dev/null | awk 'NR == 1 { print $1, $2 }' || true)
  opcache=$("$PHP_FPM" -i 2>/dev/null | awk -F' => ' '$1 == "opcache.enable" { print $2 }' || true)
  note "fastcgi mode: $fpm_version ($(basename "$PHP_FPM")), Debian's php.ini for FPM, opcache.enable ${opcache:-n/a}; one master, a pool per proxy, each pm = static with $FASTCGI_CHILDREN children"
  # fcgi-app came with HAProxy 2.1.
  FASTCGI_HAPROXY=1
  hv=$(haproxy -v | awk 'NR == 1 { print $3 }')
  if ! printf '%s\n' 2.1 "${hv%%-*}" | sort -C -V; then
    FASTCGI_HAPROXY=0
    log "error: HAProxy $hv has no fcgi-app (2.1 and later); haproxy skipped"
    note "fastcgi mode: HAProxy $hv has no fcgi-app (2.1 and later); haproxy skipped"
  fi
  FASTCGI_MEASURED=0
  for transport in tcp unix; do
    fastcgi_round "$transport" "$fpm_version" "${opcache:-n/a}"
  done
  if ((FASTCGI_MEASURED == 0)); then
    log "error: fastcgi mode measured nothing: php-fpm did not start, or no proxy answered what the scripts print (see above)"
    note "fastcgi mode measured nothing: php-fpm did not start, or no proxy answered what the scripts print"
    FASTCGI_FAILED=1
  fi
}

FASTCGI_HAPROXY=1  # 0: this HAProxy has no fcgi-app
FASTCGI_MEASURED=0 # rounds of fastcgi mode that measured a proxy

# fastcgi_round TRANSPORT FPM_VERSION OPCACHE (fastcgi mode): php-fpm with a
# pool per proxy on TRANSPORT (tcp: a 127.0.0.1 port each; unix: a Unix
# socket each, in the temp dir), the three proxies in front, each checked
# and then measured, the cells "BODY kaN TRANSPORT"; all stopped after.
fastcgi_round() {
  local transport=$1 p_nginx p_haproxy p_inverso fpm_pid="" s body script rep cell conns ok
  local nginx_pid="" haproxy_pid="" inverso_pid="" passed=() port
  local -A fcgi=() # each proxy's pool: its address, as nginx and inverso write it
  log "-- fastcgi mode over $transport"
  pick_port p_nginx
  pick_port p_haproxy
  pick_port p_inverso
  local pools=()
  for s in nginx haproxy inverso; do
    if [[ $transport == tcp ]]; then
      pick_port port
      fcgi[$s]=127.0.0.1:$port
      pools+=("$s=127.0.0.1:$port")
    else
      fcgi[$s]=unix:$TMP/php/fpm/$s.sock
      pools+=("$s=$TMP/php/fpm/$s.sock")
    fi
  done
  if ! start_php_fpm fpm_pid "${pools[@]}"; then
    log "error: fastcgi mode over $transport: php-fpm did not start, nothing measured (see above)"
    return 0
  fi
  log "php-fpm ($2, opcache.enable $3) pid $fpm_pid: pools nginx ${fcgi[nginx]}, haproxy ${fcgi[haproxy]}, inverso ${fcgi[inverso]}, $FASTCGI_CHILDREN children each"
  start_nginx_fastcgi nginx_pid "nginx-fastcgi-$transport" "$p_nginx" "${fcgi[nginx]}"
  if [[ $FASTCGI_HAPROXY == 1 ]]; then
    # HAProxy writes a Unix socket unix@PATH.
    local ha=${fcgi[haproxy]}
    [[ $ha == unix:* ]] && ha=unix@${ha#unix:}
    start_haproxy haproxy_pid "$p_haproxy" "fcgi:$ha"
  fi
  # fastcgi_keep_conn: kept connections, as nginx's and HAProxy's (its
  # default is a connection per request). No max_conns, as the others have
  # none: the pool has children enough (inverso warns of it).
  start_inverso inverso_pid "inverso-fastcgi-$transport" "$p_inverso" 0 \
    "targets = ${fcgi[inverso]} fastcgi" "fastcgi_root = $FASTCGI_ROOT" \
    "fastcgi_index = index.php" "fastcgi_keep_conn = true"

  local -A ports=([nginx]=$p_nginx [haproxy]=$p_haproxy [inverso]=$p_inverso)
  local -A pids=([nginx]=$nginx_pid [haproxy]=$haproxy_pid [inverso]=$inverso_pid)
  local -A said=([nginx]=nginx-fastcgi-$transport/error.log [haproxy]=haproxy/stderr.log
    [inverso]=inverso-fastcgi-$transport/stderr.log)
  local systems=(nginx haproxy inverso)
  # A proxy that does not answer what the scripts print is skipped (its rows
  # n/a), not the mode: so the mode runs with an inverso without FastCGI.
  for s in "${systems[@]}"; do
    if [[ -z ${pids[$s]} ]]; then
      log "error: $s did not start; skipped"
      printf '%s\t%s\t-\tnot started\t-\t-\t-\t-\n' "$s" "$transport" >>"$OUT_DIR/fastcgicheck.tsv"
      continue
    fi
    ok=1
    for script in small big hello; do
      fastcgi_probe "$s" "$transport" "${ports[$s]}" "$script" || ok=0
    done
    if ((ok == 0)); then
      log "error: $s does not answer what the scripts print over $transport; skipped. Its ${said[$s]##*/} and php-fpm's log:"
      tail -n 10 "$TMP/${said[$s]}" "$TMP/php/fpm/error.log" >&2 || true
      stop_pid "${pids[$s]}"
      pids[$s]=""
      continue
    fi
    passed+=("$s")
  done
  if ((${#passed[@]} > 0)); then
    FASTCGI_MEASURED=$((FASTCGI_MEASURED + 1))
    # 64 connections (wrk takes the last -c): the proxies' pools to php-fpm
    # then hold what a run needs.
    for s in "${passed[@]}"; do
      for script in small big; do
        warm_up "http://127.0.0.1:${ports[$s]}/$script.php" -c 64
      done
    done

    APP_PID=$fpm_pid
    for ((rep = 1; rep <= REPS; rep++)); do
      for body in 1k 64k; do
        script=small
        [[ $body == 64k ]] && script=big
        for cell in ka16 ka64; do
          conns=${cell//[a-z]/}
          for s in "${systems[@]}"; do
            run_wrk fastcgi "$body $cell $transport" "$s" "$rep" "${pids[$s]}" \
              "http://127.0.0.1:${ports[$s]}/$script.php" "$conns"
          done
        done
      done
    done
    APP_PID=""
    # Connections each proxy keeps to its pool after the runs: as many as a
    # run's clients, or so, when they are kept and reused; none otherwise.
    local held
    for s in "${passed[@]}"; do
      held=$(fastcgi_held "${fcgi[$s]}")
      printf '%s\t%s\t%s\n' "$s" "$transport" "$held" >>"$OUT_DIR/fastcgiconns.tsv"
      log "fastcgi $s ($transport): $held connections to its php-fpm pool open after the runs"
    done
  fi

  for s in "${systems[@]}"; do
    if [[ -n ${pids[$s]} ]]; then
      printf '%s\tfastcgi %s\t%s\t%s\n' "$s" "$transport" "$(status_tree VmHWM "${pids[$s]}")" \
        "$(status_tree Threads "${pids[$s]}")" >>"$OUT_DIR/mem.tsv"
    else
      printf '%s\tfastcgi %s\tna\tna\n' "$s" "$transport" >>"$OUT_DIR/mem.tsv"
    fi
  done
  for s in inverso haproxy nginx; do
    if [[ -n ${pids[$s]} ]]; then stop_pid "${pids[$s]}"; fi
  done
  stop_pid "$fpm_pid"
}

# tcp mode: HTTP relayed at layer 4, each client connection to one of the
# two backends (round robin), its bytes copied both ways: nginx's stream
# module, HAProxy's `mode tcp` and inverso's `stream.web`; direct as the
# ceiling. Each checked first (tcp_probe); one that fails is skipped, its
# rows n/a.
mode_tcp() {
  relay_at_layer4 tcp
}

# tcp-tls mode: HTTPS ended at layer 4, each client's TLS session made by
# the proxy with tls mode's certificate, its decrypted bytes relayed to one
# of the two backends (round robin): nginx's stream module (`listen ...
# ssl`), HAProxy's `mode tcp` (`bind ... ssl crt`) and inverso's
# `stream.web = default listen=... tls`; direct (plain HTTP to the backend)
# as the ceiling. Each checked first (tcp_probe ... tls); one that fails is
# skipped, its rows n/a.
mode_tcp_tls() {
  relay_at_layer4 tcp-tls
}

# relay_at_layer4 MODE (tcp or tcp-tls): the two modes' one body. tcp-tls
# differs in the proxies' set-up (each ends TLS with tls mode's
# certificate), the probe (over https), the scheme wrk and the warm-up use
# (direct stays plain HTTP) and its last cell (64 KiB with "Connection:
# close" where tcp measures 256 connections).
relay_at_layer4() {
  local mode=$1
  log "== $mode mode: ${SECONDS_PER_RUN}s per run, $REPS repetition(s)"
  local p_nginx p_haproxy p_inverso p_inverso_http nginx_pid haproxy_pid inverso_pid=""
  local s body rep cell kind conns close=() ok passed=() nothing=0
  local tls="" over="" scheme=http check=tcpcheck.tsv not_started='-\t-\t-\t-'
  local cells=("1k ka64" "64k ka64" "1k close64" "1k ka256")
  if [[ $mode == tcp-tls ]]; then
    tls=tls over=" over TLS" scheme=https check=tcptlscheck.tsv not_started='-\t-\t-\t-\t-\t-\t-'
    cells=("1k ka64" "64k ka64" "1k close64" "64k close64")
  fi
  nginx_stream_module || die "nginx has no stream module (libnginx-mod-stream)"
  [[ -z $tls || -n $TLS_DIR ]] || make_certificate
  pick_port p_nginx
  pick_port p_haproxy
  pick_port p_inverso
  pick_port p_inverso_http
  if [[ -z $tls ]]; then
    start_nginx_stream nginx_pid nginx-tcp "$p_nginx"
    start_haproxy haproxy_pid "$p_haproxy" tcp
    # Its HTTP port listens (start_inverso waits for it) but takes nothing.
    start_inverso inverso_pid inverso-tcp "$p_inverso_http" 0 \
      "stream.web = default listen=127.0.0.1:$p_inverso"
  else
    start_nginx_stream nginx_pid nginx-tcp-tls "$p_nginx" tls
    start_haproxy haproxy_pid "$p_haproxy" tcp ssl crt "$TLS_DIR/combined.pem"
    # A file name is a word of tls_certificates: it must not hold a space.
    if [[ $TLS_DIR =~ [[:space:]] ]]; then
      log "the temp dir '$TMP' holds a space; inverso's tls_certificates cannot name it"
      note "tcp-tls mode: the temp dir holds a space, so inverso-tcp-tls was not started"
    else
      # Its HTTP port listens (start_inverso waits for it) but takes
      # nothing; no tls_port: the stream alone takes TLS.
      start_inverso inverso_pid inverso-tcp-tls "$p_inverso_http" 0 \
        "tls_certificates = $TLS_DIR/cert.pem key=$TLS_DIR/key.pem" \
        "stream.web = default listen=127.0.0.1:$p_inverso tls"
    fi
  fi
  if [[ -n $inverso_pid ]] && ! wait_listening "$inverso_pid" "$p_inverso"; then
    log "error: inverso-$mode does not listen on its stream's port; its cells read n/a. stderr:"
    tail -n 20 "$TMP/inverso-$mode/stderr.log" >&2 || true
    note "$mode mode: inverso-$mode did not listen on its stream's port (stream.web${tls:+ ... tls})"
    stop_pid "$inverso_pid"
    inverso_pid=""
  fi

  local -A ports=([direct]=$BACKEND1 [nginx]=$p_nginx [haproxy]=$p_haproxy [inverso]=$p_inverso)
  local -A pids=([direct]=- [nginx]=$nginx_pid [haproxy]=$haproxy_pid [inverso]=$inverso_pid)
  # direct: the backend over plain HTTP, the ceiling; the others as the mode says.
  local -A schemes=([direct]=http [nginx]=$scheme [haproxy]=$scheme [inverso]=$scheme)
  local -A said=([nginx]=nginx-$mode/error.log [haproxy]=haproxy/stderr.log
    [inverso]=inverso-$mode/stderr.log)
  local systems=(direct nginx haproxy inverso)
  # direct first: its head is what the proxies must pass on as it is.
  for s in "${systems[@]}"; do
    if [[ -z ${pids[$s]} ]]; then
      log "error: $s did not start; skipped"
      printf "%s\t-\tnot started\t$not_started\n" "$s" >>"$OUT_DIR/$check"
      continue
    fi
    ok=1
    for body in 1k 64k; do
      tcp_probe "$s" "${ports[$s]}" "$body" $tls || ok=0
    done
    if ((ok == 0)); then
      if [[ $s == direct ]]; then
        log "error: $mode mode: the backends do not answer as expected; nothing measured"
        note "$mode mode measured nothing: the backends did not answer as expected"
        nothing=1
        break
      fi
      log "error: $s does not relay the backend's bytes$over; skipped. Its ${said[$s]##*/}:"
      tail -n 10 "$TMP/${said[$s]}" >&2 || true
      stop_pid "${pids[$s]}"
      pids[$s]=""
      continue
    fi
    [[ $s == direct ]] || passed+=("$s")
  done
  if ((nothing == 0 && ${#passed[@]} == 0)); then
    log "error: $mode mode: no proxy relayed the backend's bytes$over; nothing measured"
    note "$mode mode measured nothing: no proxy relayed the backend's bytes$over"
    nothing=1
  fi

  if ((nothing == 0)); then
    for s in direct "${passed[@]}"; do
      for body in 1k 64k; do
        warm_up "${schemes[$s]}://127.0.0.1:${ports[$s]}/$body"
      done
    done
    for ((rep = 1; rep <= REPS; rep++)); do
      for cell in "${cells[@]}"; do
        body=${cell%% *} kind=${cell#* }
        conns=${kind//[a-z]/} close=()
        [[ $kind == close* ]] && close=(-H "Connection: close")
        for s in "${systems[@]}"; do
          run_wrk "$mode" "$cell" "$s" "$rep" "${pids[$s]}" \
            "${schemes[$s]}://127.0.0.1:${ports[$s]}/$body" "$conns" ${close[@]+"${close[@]}"}
        done
      done
    done
  fi
  case $mode in
    tcp) TCP_FAILED=$nothing ;;
    tcp-tls) TCP_TLS_FAILED=$nothing ;;
  esac

  for s in nginx haproxy inverso; do
    if [[ -n ${pids[$s]} ]]; then
      printf '%s\t%s\t%s\t%s\n' "$s" "$mode" "$(status_tree VmHWM "${pids[$s]}")" \
        "$(status_tree Threads "${pids[$s]}")" >>"$OUT_DIR/mem.tsv"
    else
      printf '%s\t%s\tna\tna\n' "$s" "$mode" >>"$OUT_DIR/mem.tsv"
    fi
  done
  for s in inverso haproxy nginx; do
    if [[ -n ${pids[$s]} ]]; then stop_pid "${pids[$s]}"; fi
  done
}

# udp mode: DNS over UDP, dnsperf asking for names of the zone through
# nginx's stream module (`listen ... udp`, proxy_responses 1) and inverso's
# `stream.dns = default listen=... udp responses=1 timeout=5s`, each in
# front of the two dnsmasq servers (round robin); direct (dnsperf to one of
# them) as the ceiling. No HAProxy: its community edition proxies no UDP.
# Each checked first (udp_probe); one that fails is skipped, its rows n/a.
mode_udp() {
  log "== udp mode: ${SECONDS_PER_RUN}s per run, $REPS repetition(s)"
  local p_nginx p_inverso p_inverso_http p_admin nginx_pid inverso_pid="" s rep cell passed=()
  local clients threads
  nginx_stream_module || die "nginx has no stream module (libnginx-mod-stream)"
  find_dnsmasq
  [[ -n $DNSMASQ ]] || die "no dnsmasq (dnsmasq-base)"
  make_dns_zone
  start_dns_backends
  note "udp mode: $(dnsperf -h 2>&1 | awk '/^Version/ { print "dnsperf " $2; exit }'), $("$DNSMASQ" --version | awk 'NR == 1 { print $1, $3 }'); HAProxy has no row: its community edition proxies no UDP"
  pick_udp_port p_nginx
  pick_udp_port p_inverso
  pick_port p_inverso_http
  pick_port p_admin
  start_nginx_udp nginx_pid nginx-udp "$p_nginx"
  # Its HTTP port listens (start_inverso waits for it) but takes nothing;
  # the pool (`default`) is `targets`: the DNS servers. The admin port
  # tells how many sessions its stream ended (/metrics).
  start_inverso inverso_pid inverso-udp "$p_inverso_http" 0 \
    "targets = 127.0.0.1:$DNS1, 127.0.0.1:$DNS2" \
    "stream.dns = default listen=127.0.0.1:$p_inverso udp responses=1 timeout=5s" \
    "admin_port = $p_admin"
  if [[ -n $inverso_pid ]]; then UDP_ADMIN=$p_admin; fi
  if [[ -n $inverso_pid ]] && ! wait_udp_answering "$inverso_pid" "$p_inverso"; then
    log "error: inverso-udp does not answer on its stream's udp port; its cells read n/a. stderr:"
    tail -n 20 "$TMP/inverso-udp/stderr.log" >&2 || true
    note "udp mode: inverso-udp did not answer on its stream's port (stream.dns ... udp)"
    stop_pid "$inverso_pid"
    inverso_pid=""
  fi

  local -A ports=([direct]=$DNS1 [nginx]=$p_nginx [inverso]=$p_inverso)
  local -A pids=([direct]=- [nginx]=$nginx_pid [inverso]=$inverso_pid)
  local -A said=([nginx]=nginx-udp/error.log [inverso]=inverso-udp/stderr.log)
  local systems=(direct nginx inverso)
  for s in "${systems[@]}"; do
    if [[ -z ${pids[$s]} ]]; then
      log "error: $s did not start; skipped"
      printf '%s\tnot started\t-\t-\t-\t-\n' "$s" >>"$OUT_DIR/udpcheck.tsv"
      continue
    fi
    if ! udp_probe "$s" "${ports[$s]}"; then
      if [[ $s == direct ]]; then
        log "error: udp mode: the DNS servers do not answer as expected; nothing measured"
        note "udp mode measured nothing: the DNS servers did not answer as expected"
        UDP_FAILED=1
        break
      fi
      log "error: $s does not relay the DNS answers; skipped. Its ${said[$s]##*/}:"
      tail -n 10 "$TMP/${said[$s]}" >&2 || true
      stop_pid "${pids[$s]}"
      pids[$s]=""
      continue
    fi
    [[ $s == direct ]] || passed+=("$s")
  done
  if ((UDP_FAILED == 0 && ${#passed[@]} == 0)); then
    log "error: udp mode: no proxy relayed the DNS answers; nothing measured"
    note "udp mode measured nothing: no proxy relayed the DNS answers"
    UDP_FAILED=1
  fi

  if ((UDP_FAILED == 0)); then
    # The probe's 1 s dnsperf run was each path's warm-up; its sessions'
    # log lines go.
    truncate_logs
    for ((rep = 1; rep <= REPS; rep++)); do
      # dnsperf's -c (client sockets) and -T (threads) of each cell.
      for cell in "c1 T1" "c64 T2"; do
        clients=${cell%% *} threads=${cell#* }
        for s in "${systems[@]}"; do
          run_dnsperf "$clients" "$s" "$rep" "${pids[$s]}" "${ports[$s]}" \
            "${clients#c}" "${threads#T}"
        done
      done
    done
  fi

  local warnings
  for s in nginx inverso; do
    if [[ -n ${pids[$s]} ]]; then
      printf '%s\tudp\t%s\t%s\n' "$s" "$(status_tree VmHWM "${pids[$s]}")" \
        "$(status_tree Threads "${pids[$s]}")" >>"$OUT_DIR/mem.tsv"
    else
      printf '%s\tudp\tna\tna\n' "$s" >>"$OUT_DIR/mem.tsv"
    fi
  done
  # What the proxies said meanwhile (a target counted failed, sessions
  # dropped at max_connections): a note, so that lost queries have a why.
  for s in nginx inverso; do
    [[ -n ${pids[$s]} && -s $TMP/${said[$s]} ]] || continue
    warnings=$(grep -c . "$TMP/${said[$s]}" || true)
    if ((warnings > 0)); then
      log "udp mode: $s wrote $warnings line(s) to its ${said[$s]##*/}; the last:"
      tail -n 5 "$TMP/${said[$s]}" >&2 || true
      note "udp mode: $s wrote $warnings line(s) to its ${said[$s]##*/}, the last: $(tail -n 1 "$TMP/${said[$s]}" | cut -c1-300)"
    fi
  done
  for s in inverso nginx; do
    if [[ -n ${pids[$s]} ]]; then stop_pid "${pids[$s]}"; fi
  done
  stop_pid "$DNS2_PID"
  stop_pid "$DNS1_PID"
}

# measure_idle SYSTEM PID PORT [tls]: RSS of the process tree before and
# while IDLE_CONNS idle keep-alive connections are open (idle.tsv); with
# tls, IDLE_TLS_CONNS idle TLS connections to a TLS port (idle_tls.tsv).
measure_idle() {
  local system=$1 pid=$2 port=$3 tls=${4:-}
  local conns=$IDLE_CONNS tsv=$OUT_DIR/idle.tsv scheme=http tls_arg=() kind=idle
  if [[ $tls == tls ]]; then
    conns=$IDLE_TLS_CONNS tsv=$OUT_DIR/idle_tls.tsv scheme=https tls_arg=(--tls) kind=idle-tls
  fi
  if [[ -z $pid ]]; then
    printf '%s\t%s\tna\tna\tna\tna\tna\tna\tna\n' "$system" "$conns" >>"$tsv"
    return 0
  fi
  local state=$TMP/$kind-$system before after tb ta ready done_ i client
  mkdir -p "$state"
  warm_up "$scheme://127.0.0.1:$port/1k"
  sleep 1
  before=$(status_tree VmRSS "$pid") tb=$(status_tree Threads "$pid")
  python3 "$SCRIPT_DIR/bench_idle.py" 127.0.0.1 "$port" "$conns" /1k "$state" \
    --hold 300 ${tls_arg[@]+"${tls_arg[@]}"} &
  client=$!
  PIDS+=("$client")
  for ((i = 0; i < 1800; i++)); do # up to 180 s to open them all
    [[ -e $state/ready ]] && break
    alive "$client" || break
    sleep 0.1
  done
  ready=$(cat "$state/ready" 2>/dev/null || echo "ok=0 failed=$conns")
  sleep 2 # let lazily started threads and buffers settle
  after=$(status_tree VmRSS "$pid") ta=$(status_tree Threads "$pid")
  touch "$state/release"
  for ((i = 0; i < 300; i++)); do
    [[ -e $state/done ]] && break
    alive "$client" || break
    sleep 0.1
  done
  done_=$(cat "$state/done" 2>/dev/null || echo "still_open=na")
  stop_pid "$client"
  local ok=${ready#ok=} failed
  ok=${ok%% *} failed=${ready##*failed=}
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$system" "$conns" "$ok" "$failed" \
    "${done_#still_open=}" "$before" "$after" "$tb" "$ta" >>"$tsv"
  log "$kind $system: $ok open, $failed failed, RSS $before -> $after KiB"
}

mode_idle() {
  log "== idle mode: $IDLE_CONNS idle keep-alive connections"
  local p_nginx p_haproxy p_inverso pid
  pick_port p_nginx
  pick_port p_haproxy
  pick_port p_inverso
  # Fresh processes, one at a time, so that each is measured alone.
  start_inverso pid inverso-idle "$p_inverso" 0
  measure_idle inverso "$pid" "$p_inverso"
  [[ -n $pid ]] && stop_pid "$pid"
  start_nginx_proxy pid nginx-idle "$p_nginx" 0
  measure_idle nginx "$pid" "$p_nginx"
  stop_pid "$pid"
  start_haproxy pid "$p_haproxy" plain
  measure_idle haproxy "$pid" "$p_haproxy"
  stop_pid "$pid"
}

# ---------------------------------------------------------------- main

main() {
  install_deps
  # Thousands of idle connections, each possibly with an upstream socket.
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  NOFILE=$(ulimit -n)
  [[ $NOFILE == unlimited ]] && NOFILE=65536
  # The most idle connections this mode holds open at once: idle mode's
  # plain ones or tls mode's TLS ones (never both together).
  local idle_n=0
  case $MODE in idle | all) idle_n=$IDLE_CONNS ;; esac
  if [[ $MODE == tls || $MODE == all ]] && ((IDLE_TLS_CONNS > idle_n)); then
    idle_n=$IDLE_TLS_CONNS
  fi
  ((NOFILE > 2 * idle_n + 1000)) ||
    log "warning: open-file limit $NOFILE is low for $idle_n idle connections"

  mkdir -p "$OUT_DIR"
  rm -f "$OUT_DIR"/{runs,mem,idle,idle_tls,cachecheck,gzipcheck,filescheck,tlscheck,tlsresume,backendtlscheck,backendtlsconns,authcheck,authcount,subfilterpages,subfiltercheck,subfiltersame,gunzipcheck,uploadcheck,uploaddisk,uploadspool,fastcgicheck,fastcgiconns,tcpcheck,tcptlscheck,udpruns,udpcheck}.tsv \
    "$OUT_DIR/info.txt" "$OUT_DIR/results.md"
  printf 'mode\tcell\tsystem\trep\trequests\tduration_us\tbytes\tp50_us\tp99_us\tconnect\tread\twrite\tstatus\ttimeout\tcpu_ticks\tother_cpu_pct\tapp_cpu_ticks\n' \
    >"$OUT_DIR/runs.tsv"
  printf 'system\tmode\tpeak_rss_kib\tthreads\n' >"$OUT_DIR/mem.tsv"
  printf 'system\tbody\tx_cache\n' >"$OUT_DIR/cachecheck.tsv"
  printf 'system\tbody\tstatus\tcontent_encoding\tx_cache\tsent_bytes\tdecoded_bytes\tsame_as_file\n' \
    >"$OUT_DIR/gzipcheck.tsv"
  printf 'system\tbody\tstatus\tbytes\tsame_as_file\tcache_control\tetag\n' \
    >"$OUT_DIR/filescheck.tsv"
  printf 'system\tbody\tstatus\tbytes\tversion\tcipher\tresumed\n' >"$OUT_DIR/tlscheck.tsv"
  printf 'client\thandshakes\tresumed\tprotocols\n' >"$OUT_DIR/tlsresume.tsv"
  printf 'system\tbody\tstatus\tbytes\tx_backend_tls\tsni\n' >"$OUT_DIR/backendtlscheck.tsv"
  printf 'cell\tsystem\trep\topened\tresumed\testablished_after\n' >"$OUT_DIR/backendtlsconns.tsv"
  printf 'system\tstatus\tbytes\twhoami_status\tremote_user\n' >"$OUT_DIR/authcheck.tsv"
  printf 'system\tallowed\tdenied\tfailed\twrk_requests\n' >"$OUT_DIR/authcount.tsv"
  printf 'system\tbody\tstatus\tbytes\tcontent_type\tbody_was\taddresses_left\n' \
    >"$OUT_DIR/subfiltercheck.tsv"
  printf 'body\tnginx_sub_bytes\tinverso_sub_bytes\tsame\n' >"$OUT_DIR/subfiltersame.tsv"
  printf 'body\tbytes\trewritten_bytes\taddresses\thead_ends\n' >"$OUT_DIR/subfilterpages.tsv"
  printf 'system\tbody\tclient\tstatus\tcontent_encoding\tx_cache\tframing\tsent_bytes\tdecoded_bytes\tsame_as_file\n' \
    >"$OUT_DIR/gunzipcheck.tsv"
  printf 'system\tbody\tstatus\tframing\tbackend_got\tspool_left\n' >"$OUT_DIR/uploadcheck.tsv"
  printf 'system\tstatus\tfile_seen\tnamed_entries\n' >"$OUT_DIR/uploaddisk.tsv"
  printf 'system\twhen\tentries\n' >"$OUT_DIR/uploadspool.tsv"
  printf 'system\ttransport\tscript\tstatus\tbytes\tsame_as_script\tframing\tcontent_type\n' \
    >"$OUT_DIR/fastcgicheck.tsv"
  printf 'system\ttransport\theld\n' >"$OUT_DIR/fastcgiconns.tsv"
  printf 'system\tbody\tstatus\tbytes\tsame_as_file\thead_as_direct\treused\n' \
    >"$OUT_DIR/tcpcheck.tsv"
  printf 'system\tbody\tstatus\tbytes\tsame_as_file\thead_as_direct\treused\tversion\tcipher\tresumed\n' \
    >"$OUT_DIR/tcptlscheck.tsv"
  printf 'mode\tcell\tsystem\trep\tsent\tcompleted\tlost\tnoerror\tqps\trun_s\tavg_s\tmin_s\tmax_s\tstddev_s\tcpu_ticks\tdns_cpu_ticks\tclient_cpu_ticks\tother_cpu_pct\tsessions\n' \
    >"$OUT_DIR/udpruns.tsv"
  printf 'system\tnames_right\tsent\tcompleted\tnoerror\tlost\n' >"$OUT_DIR/udpcheck.tsv"
  local f
  for f in idle idle_tls; do
    printf 'system\tconns\tok\tfailed\tstill_open\trss_before_kib\trss_after_kib\tthreads_before\tthreads_after\n' \
      >"$OUT_DIR/$f.tsv"
  done

  build_inverso

  TMP=$(mktemp -d "${TMPDIR:-/tmp}/inverso-bench.XXXXXX")
  # Run as root, nginx's workers switch to an unprivileged user: they must be
  # able to read the content (mktemp -d makes the dir 0700).
  chmod 755 "$TMP"
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  make_content
  # The backends take TLS too for the mode that measures proxying to them
  # over it; other modes leave those ports alone.
  case $MODE in backend-tls | all) BACKEND_TLS_WANTED=1 ;; esac
  # The sign-in service, and /whoami, only for the mode that asks it.
  case $MODE in auth | all) AUTH_WANTED=1 ;; esac
  # POSTs to /upload, read whole by the backends, only for the mode that
  # sends them.
  case $MODE in upload | all) UPLOAD_WANTED=1 ;; esac
  start_backends
  check_quiet

  local rev
  rev=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  {
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); mode: $MODE; ${SECONDS_PER_RUN}s per run; $REPS repetition(s); wrk $WRK_THREADS threads; nice $NICE; proxies' nice ${PROXY_AT:-(same)}"
    echo "machine: $CORES cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), Linux $(uname -r)"
    echo "versions: inverso ${INVERSO_LABEL:-$rev} ($INVERSO_STATE), $(nginx -v 2>&1 | sed 's/.*: //'), HAProxy $(haproxy -v | awk 'NR == 1 { print $3 }'), $(wrk -v 2>&1 | awk 'NR == 1 { print $1, $2 }')"
    echo "clock ticks/s: $CLK_TCK"
    echo "note: all on 127.0.0.1; backends: one nginx on two ports serving static files (access_log off). wrk, proxy and backends share the same $CORES cores."
    echo "note: inverso's access log (stdout) goes to /dev/null; nginx logs to a file (buffer=64k); HAProxy logs to its stdout, redirected to a file."
    echo "note: errors = wrk's connect/read/write/timeout errors plus responses >= 400; p50/p99 are exact (wrk done() callback); figures are medians over repetitions, errors are summed."
    echo "note: other CPU % = share of the machine's CPU (incl. hypervisor steal) used during the run by anything but wrk, the backends and the proxy measured; high values mean the figures are disturbed. Under such load, inverso (a thread per connection) was seen to keep more of the CPU than nginx and HAProxy: compare systems only on runs where it is low (BENCH_NICE=-10 helps on a shared machine)."
    echo "note: CPU µs/req = utime+stime of the proxy's processes over the run / requests; RSS of nginx sums master and workers."
  } >>"$OUT_DIR/info.txt" # >>: keeps the notes build_inverso may have written

  case $MODE in
    proxy) mode_proxy ;;
    cache) mode_cache ;;
    gzip) mode_gzip ;;
    gunzip) mode_gunzip ;;
    idle) mode_idle ;;
    files) mode_files ;;
    tls) mode_tls ;;
    backend-tls) mode_backend_tls ;;
    auth) mode_auth ;;
    subfilter) mode_subfilter ;;
    upload) mode_upload ;;
    fastcgi) mode_fastcgi ;;
    tcp) mode_tcp ;;
    tcp-tls) mode_tcp_tls ;;
    udp) mode_udp ;;
    all)
      mode_proxy
      mode_idle
      mode_cache
      mode_gzip
      mode_gunzip
      mode_files
      mode_tls
      mode_backend_tls
      mode_auth
      mode_subfilter
      mode_upload
      mode_fastcgi
      mode_tcp
      mode_tcp_tls
      mode_udp
      ;;
  esac

  python3 "$SCRIPT_DIR/bench_report.py" "$OUT_DIR"
  log "report written to target/bench/results.md"
  ((TLS_FAILED == 0)) || die "the tls mode stopped before measuring (its checks failed; see above)"
  ((BACKEND_TLS_FAILED == 0)) ||
    die "the backend-tls mode stopped before measuring (a proxy did not start or did not proxy over TLS; see above)"
  ((AUTH_FAILED == 0)) ||
    die "the auth mode stopped before measuring (a proxy did not start or did not ask the service; see above)"
  ((SUBFILTER_FAILED == 0)) ||
    die "the subfilter mode stopped before measuring (a proxy did not start or did not answer the pages as expected; see above)"
  ((GUNZIP_FAILED == 0)) ||
    die "the gunzip mode stopped before measuring (a proxy did not start or did not answer decoded cache hits or relayed answers as expected; see above)"
  ((UPLOAD_FAILED == 0)) ||
    die "the upload mode stopped before measuring (a proxy did not start, did not take the POSTs or did not read a body to disk as expected; see above)"
  ((FASTCGI_FAILED == 0)) ||
    die "the fastcgi mode stopped before measuring (php-fpm did not start, or no proxy answered what the scripts print; see above)"
  ((TCP_FAILED == 0)) ||
    die "the tcp mode stopped before measuring (the backends, or every proxy, did not answer the backend's exact bytes; see above)"
  ((TCP_TLS_FAILED == 0)) ||
    die "the tcp-tls mode stopped before measuring (the backends, or every proxy, did not answer the backend's exact bytes over TLS; see above)"
  ((UDP_FAILED == 0)) ||
    die "the udp mode stopped before measuring (the DNS servers, or every proxy, did not answer the zone's names; see above)"
}

main "$@"
