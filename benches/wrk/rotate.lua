-- Refresh-token rotation, each token used once. BENCH_TOKENS names a file of starting tokens,
-- one per line; each wrk thread takes every n-th line into its own queue. request() pops a
-- token, response() pushes the successor parsed from the body. BENCH_ROTATE says the dialect:
--   gatehouse:  POST BENCH_PATH {"refresh_token": t}      -> {"refresh_token": successor}
--   pocketbase: POST BENCH_PATH, Authorization: t         -> {"token": successor}
-- A thread whose queue runs dry counts it in `starved` and sends a dead token (a 401).
local q, head, tail = {}, 1, 0
starved = 0
local mode = os.getenv("BENCH_ROTATE") or "gatehouse"
local path = os.getenv("BENCH_PATH")
local field = (mode == "pocketbase") and '"token"%s*:%s*"([^"]+)"' or '"refresh_token"%s*:%s*"([^"]+)"'

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

local jsonh = { ["Content-Type"] = "application/json", ["User-Agent"] = "gatehouse-bench" }

function request()
  local tok = "exhausted"
  if head <= tail then
    tok = q[head]; q[head] = nil; head = head + 1
  else
    starved = starved + 1
    wrk.thread:set("starved", starved)
  end
  if mode == "pocketbase" then
    return wrk.format("POST", path, { ["Authorization"] = tok, ["User-Agent"] = "gatehouse-bench" }, "")
  end
  return wrk.format("POST", path, jsonh, '{"refresh_token":"' .. tok .. '"}')
end

function response(status, headers, body)
  if status == 200 then
    local t = body:match(field)
    if t then tail = tail + 1; q[tail] = t end
  end
end
