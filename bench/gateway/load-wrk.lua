-- wrk script for bench/gateway: GET lookups cycling over the paths in $BENCH_PATHS, each request with its own
-- pre-generated munge credential from $BENCH_CREDENTIALS (used once, in file order; munged refuses a replay).
-- Run with one thread (-t1) pinned to one core. When the credentials run out the thread stops sending, so the rate
-- printed is then an underestimate, and "exhausted" says so. Prints one JSON line like load.mjs.
-- Loaded at the top level, so that the main state (which runs done()) knows how many credentials there are too.
local paths, credentials = {}, {}
local next_path, next_credential = 0, 0
for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
for line in io.lines(os.getenv("BENCH_CREDENTIALS")) do credentials[#credentials + 1] = line end

request = function()
  next_credential = next_credential + 1
  if next_credential > #credentials then
    wrk.thread:stop()
    next_credential = #credentials
  end
  next_path = next_path % #paths + 1
  return wrk.format("GET", paths[next_path], { ["authentication"] = credentials[next_credential] })
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"rps":%d,"p50":%.2f,"p99":%.2f,"max":%.2f,"non2xx":%d,"errors":%d,"duration":%.2f,"exhausted":%s}\n',
    summary.requests, math.floor(summary.requests / (summary.duration / 1e6) + 0.5),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.status, e.connect + e.read + e.write + e.timeout, summary.duration / 1e6,
    tostring(summary.requests >= #credentials)))
end
