-- Token exchanges (client_secret_basic, PKCE verifier), each code once. BENCH_TOKENS names a
-- file of codes from oidc_mint.lua, one a line; each wrk thread takes every n-th line. A
-- thread whose queue runs dry counts it in `starved` and sends a dead code (a 400).
-- BENCH_TOKEN_PATH, BENCH_BASIC and BENCH_TOKEN_BODY as in oidc_flow.lua.
local q, head, tail = {}, 1, 0
starved = 0
local token_path = os.getenv("BENCH_TOKEN_PATH")
local token_body = os.getenv("BENCH_TOKEN_BODY")
local th = { ["Authorization"] = "Basic " .. os.getenv("BENCH_BASIC"), ["User-Agent"] = "gatehouse-bench",
             ["Content-Type"] = "application/x-www-form-urlencoded" }

function init(args)
  local n, mine = NTHREADS, tonumber(id) or 0
  local i = 0
  for line in io.lines(os.getenv("BENCH_TOKENS")) do
    if line ~= "" then
      if i % n == mine then tail = tail + 1; q[tail] = line end
      i = i + 1
    end
  end
end

function request()
  local c = "exhausted"
  if head <= tail then
    c = q[head]; q[head] = nil; head = head + 1
  else
    starved = starved + 1
    wrk.thread:set("starved", starved)
  end
  return wrk.format("POST", token_path, th, (token_body:gsub("CODE", c)))
end
