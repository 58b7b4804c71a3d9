-- Successful logins spread over BENCH_USERS accounts login<k>@bench.example.org (k = 0 ..
-- BENCH_USERS-1, all with the same password), so that no single account piles up sessions.
-- BENCH_BODY_FMT is the body with %EMAIL% where the email goes (JSON or a form).
local users = tonumber(os.getenv("BENCH_USERS") or "1")
local fmt = os.getenv("BENCH_BODY_FMT")
local path = os.getenv("BENCH_PATH")
local headers = { ["Content-Type"] = os.getenv("BENCH_CTYPE"), ["User-Agent"] = "gatehouse-bench" }
local n = 0

function request()
  n = n + 1
  local email = "login" .. ((n * NTHREADS + (tonumber(id) or 0)) % users) .. "@bench.example.org"
  local body = fmt:gsub("%%EMAIL%%", email)
  return wrk.format("POST", path, headers, body)
end
