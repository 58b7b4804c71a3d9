-- Whole OpenID Connect authorization-code flows, as a signed-in browser and a confidential
-- client make them: GET the authorization request with the browser's cookies (an implicit-
-- consent client: the answer is a redirect with a code), then POST the code to the token
-- endpoint (client_secret_basic, PKCE verifier). request() sends a token exchange whenever a
-- code is waiting, else a new authorization request; a flow counts once its token response
-- is 200 with an id_token.
--   BENCH_AUTHORIZE   path and query of the authorization request (fixed state, nonce and
--                     PKCE challenge: the benchmark measures the provider, not the RP)
--   BENCH_COOKIES     a file of signed-in browsers' Cookie headers for that path, one a line
--   BENCH_TOKEN_PATH  the token endpoint's path
--   BENCH_BASIC       base64 of client_id:client_secret
--   BENCH_TOKEN_BODY  the form body, CODE standing for the code
local authorize = os.getenv("BENCH_AUTHORIZE")
local token_path = os.getenv("BENCH_TOKEN_PATH")
local token_body = os.getenv("BENCH_TOKEN_BODY")
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
local th = { ["Authorization"] = "Basic " .. os.getenv("BENCH_BASIC"), ["User-Agent"] = "gatehouse-bench",
             ["Content-Type"] = "application/x-www-form-urlencoded" }
local codes, head, tail = {}, 1, 0
flows, minted, failed = 0, 0, 0

function request()
  if head <= tail then
    local c = codes[head]; codes[head] = nil; head = head + 1
    return wrk.format("POST", token_path, th, (token_body:gsub("CODE", c)))
  end
  return wrk.format("GET", authorize, next_cookie(), nil)
end

function response(status, headers, body)
  if status == 302 or status == 303 then
    local loc = headers["Location"] or headers["location"] or ""
    local c = loc:match("[?&]code=([^&]+)")
    if c then
      tail = tail + 1; codes[tail] = c
      minted = minted + 1; wrk.thread:set("minted", minted)
      return
    end
  elseif status == 200 and body:find('"id_token"', 1, true) then
    flows = flows + 1; wrk.thread:set("flows", flows)
    return
  end
  failed = failed + 1; wrk.thread:set("failed", failed)
end

local base_done = done
function done(summary, latency, requests)
  local f, m, x = 0, 0, 0
  for _, t in ipairs(threads) do
    f = f + (tonumber(t:get("flows")) or 0)
    m = m + (tonumber(t:get("minted")) or 0)
    x = x + (tonumber(t:get("failed")) or 0)
  end
  io.write(string.format('BENCH_EXTRA {"flows":%d,"codes":%d,"failed":%d}\n', f, m, x))
  base_done(summary, latency, requests)
end
