-- wrk script for scripts/bench.sh: no per-request Lua (that would slow wrk),
-- only a summary at the end, as one machine-readable line with exact
-- percentiles (in microseconds) and every error counter wrk keeps.
-- "status" counts responses with a status >= 400 (wrk's "Non-2xx or 3xx").
--
-- BENCH_WRK_POST_BYTES=N in the environment (upload mode): every request is
-- a POST with a body of N bytes ("u" repeated), set here once, as wrk's
-- post example does; wrk builds the request once, with a Content-Length.
-- Unset (every other mode): wrk's GET without a body, as before.
local post_bytes = tonumber(os.getenv("BENCH_WRK_POST_BYTES") or "")
if post_bytes then
  wrk.method = "POST"
  wrk.body = string.rep("u", post_bytes)
  wrk.headers["Content-Type"] = "application/octet-stream"
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d bytes=%d p50_us=%d p99_us=%d " ..
    "connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
