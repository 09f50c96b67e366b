-- wrk script for scripts/bench.sh: no per-request Lua (that would slow wrk),
-- only a summary at the end, as one machine-readable line with exact
-- percentiles (in microseconds) and every error counter wrk keeps.
-- "status" counts responses with a status >= 400 (wrk's "Non-2xx or 3xx").
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d bytes=%d p50_us=%d p99_us=%d " ..
    "connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
