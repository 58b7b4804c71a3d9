-- Bulk creation for the memory scenario: BENCH_FILL=register posts new accounts
-- fill<k>@bench.example.org (k = 1 .. BENCH_COUNT: wrk
-- calls request() once more than it sends, and that first call is k = 0); BENCH_FILL=login logs in as fill<k>@..., k cycling over
-- BENCH_USERS existing accounts (each login is a new live session). Each thread stops after
-- BENCH_COUNT / threads successful answers and drops a file in BENCH_DONE_DIR.
local mode = os.getenv("BENCH_FILL")
local users = tonumber(os.getenv("BENCH_USERS") or "1")
local pw = os.getenv("BENCH_PASSWORD")
local n, ok, limit = 0, 0, 0
local jsonh = { ["Content-Type"] = "application/json", ["User-Agent"] = "gatehouse-bench" }

function init(args)
  local threads = NTHREADS
  limit = math.floor(tonumber(os.getenv("BENCH_COUNT")) / threads)
end

function request()
  n = n + 1
  local body
  if mode == "register" then
    local k = (tonumber(id) or 0) + NTHREADS * (n - 1)
    body = '{"email":"fill' .. k .. '@bench.example.org","password":"' .. pw .. '"}'
    return wrk.format("POST", "/auth/register", jsonh, body)
  end
  local k = 1 + (n * 7919) % users
  body = '{"email":"fill' .. k .. '@bench.example.org","password":"' .. pw .. '"}'
  return wrk.format("POST", "/auth/login", jsonh, body)
end

function response(status, headers, body)
  if status == 200 or status == 201 then
    ok = ok + 1
    wrk.thread:set("ok", ok)
    if ok == limit then
      -- wrk runs until -d even when every thread has stopped: run.py waits for these files
      -- and then ends wrk with SIGINT (which still prints the summary).
      local f = io.open(os.getenv("BENCH_DONE_DIR") .. "/done-" .. tostring(id), "w")
      f:write(tostring(ok)); f:close()
      wrk.thread:stop()
    end
  end
end
