-- Shared by every scenario script (run.py prepends it). Settings come from environment
-- variables so that one script serves gatehouse and the peers alike:
--   BENCH_METHOD, BENCH_PATH, BENCH_BODY, BENCH_CTYPE  the request (static scenarios)
--   BENCH_AUTH      the Authorization header value, if any
--   BENCH_HEADERS   more request headers, "Name: value" entries separated by " | " (the
--                   forward-auth scenario's X-Forwarded-Method/-Proto/-Host/-Uri)
--   BENCH_DELAY_MS  mean pause (ms, fractional) before each request on a connection: pacing
--                   for the "half of peak" and "under a login flood" runs (wrk 4.1 has no
--                   rate flag; each connection waits this long, then sends and waits for
--                   the answer)
-- done() prints one line "BENCH_JSON {...}" that run.py parses.
NTHREADS = tonumber(os.getenv("BENCH_THREADS") or "1")
local threads = {}
local nthreads = 0

function setup(thread)
  thread:set("id", nthreads)
  nthreads = nthreads + 1
  table.insert(threads, thread)
end

wrk.headers["User-Agent"] = "gatehouse-bench"
if os.getenv("BENCH_METHOD") then wrk.method = os.getenv("BENCH_METHOD") end
if os.getenv("BENCH_PATH") then wrk.path = os.getenv("BENCH_PATH") end
if os.getenv("BENCH_BODY") then wrk.body = os.getenv("BENCH_BODY") end
if os.getenv("BENCH_CTYPE") then wrk.headers["Content-Type"] = os.getenv("BENCH_CTYPE") end
if os.getenv("BENCH_AUTH") then wrk.headers["Authorization"] = os.getenv("BENCH_AUTH") end
if os.getenv("BENCH_HEADERS") then
  for entry in (os.getenv("BENCH_HEADERS") .. " | "):gmatch("(.-) | ") do
    local name, value = entry:match("^%s*([^:]+):%s*(.-)%s*$")
    if name then wrk.headers[name] = value end
  end
end

local pace = tonumber(os.getenv("BENCH_DELAY_MS") or "")
if pace and pace > 0 then
  local whole = math.floor(pace)
  local frac = pace - whole
  function delay()
    if math.random() < frac then return whole + 1 end
    return whole
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local extra = 0
  for _, t in ipairs(threads) do extra = extra + (tonumber(t:get("starved")) or 0) end
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"errors_connect":%d,"errors_read":%d,' ..
    '"errors_write":%d,"errors_status":%d,"errors_timeout":%d,"starved":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout, extra,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
