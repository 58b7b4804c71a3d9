-- Authorization requests of a signed-in browser (implicit-consent client), each answered with
-- a redirect carrying a code; the codes are written, one a line, to BENCH_CODES_OUT.<thread>
-- for oidc_exchange.lua. BENCH_AUTHORIZE and BENCH_COOKIE as in oidc_flow.lua.
local authorize = os.getenv("BENCH_AUTHORIZE")
local ah = { ["Cookie"] = os.getenv("BENCH_COOKIE"), ["User-Agent"] = "gatehouse-bench",
             ["Accept"] = "text/html" }
local out
minted = 0

function request()
  return wrk.format("GET", authorize, ah, nil)
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
