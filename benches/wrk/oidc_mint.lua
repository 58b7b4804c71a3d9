-- Authorization requests of a signed-in browser (implicit-consent client), each answered with
-- a redirect carrying a code; the codes are written, one a line, to BENCH_CODES_OUT.<thread>
-- for oidc_exchange.lua. BENCH_AUTHORIZE and BENCH_COOKIES as in oidc_flow.lua.
local authorize = os.getenv("BENCH_AUTHORIZE")
-- BENCH_COOKIES names a file of signed-in browsers' Cookie headers, one a line: the
-- authorization requests take them in turn.
local cookies = {}
for line in io.lines(os.getenv("BENCH_COOKIES")) do
  if line ~= "" then cookies[#cookies + 1] = line end
end
local turn = 0
local ah = { ["User-Agent"] = "gatehouse-bench", ["Accept"] = "text/html" }
local function next_cookie()
  turn = turn % #cookies + 1
  ah["Cookie"] = cookies[turn]
  return ah
end
local out
minted = 0

function request()
  return wrk.format("GET", authorize, next_cookie(), nil)
end

function response(status, headers, body)
  local loc = headers["Location"] or headers["location"] or ""
  local c = loc:match("[?&]code=([^&]+)")
  if c then
    if not out then out = io.open(os.getenv("BENCH_CODES_OUT") .. "." .. (id or 0), "w") end
    out:write(c, "\n"); out:flush()
    minted = minted + 1; wrk.thread:set("minted", minted)
  end
end
