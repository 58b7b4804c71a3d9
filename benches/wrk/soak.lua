-- Session churn at a flat live state (the soak of benches/soak.py): every login is followed
-- by one /auth/me with its access token, one refresh of its refresh token and a logout with
-- the refreshed access token, which ends the session. Responses come back on whichever
-- connection finishes first, so the steps are linked by queues of tokens rather than by
-- connection: a login's answer queues its tokens; a refresh's answer queues its new access
-- token for the logout. Every request() is two pipelined requests (wrk fixes the pipeline
-- depth from the first call): the /auth/me and the refresh of one session go together on one
-- connection, which answers them in order, so a session's logout (queued only once the
-- refresh has answered) can never overtake its /auth/me; otherwise a logout or a login with a
-- login. The queues are served first, so the live sessions stay about twice the connections.
-- BENCH_USERS accounts soak<k>@bench.example.org take turns; BENCH_PASSWORD.
local users = tonumber(os.getenv("BENCH_USERS") or "1")
local pw = os.getenv("BENCH_PASSWORD")
local me, logout, refreshing = {}, {}, {}
local n = 0
local counts = { login = 0, me = 0, refresh = 0, logout = 0 }
local jsonh = { ["Content-Type"] = "application/json", ["User-Agent"] = "gatehouse-bench" }

local function pop(q)
  local t = q[#q]
  q[#q] = nil
  return t
end

local function login()
  n = n + 1
  counts.login = counts.login + 1
  wrk.thread:set("login", counts.login)
  local k = 1 + ((tonumber(id) or 0) * 7919 + n) % users
  return wrk.format("POST", "/auth/login", jsonh,
    '{"email":"soak' .. k .. '@bench.example.org","password":"' .. pw .. '"}')
end

function request()
  if #me > 0 then
    local s = pop(me)
    counts.me = counts.me + 1
    counts.refresh = counts.refresh + 1
    wrk.thread:set("me", counts.me)
    wrk.thread:set("refresh", counts.refresh)
    refreshing[s.rt:match("^([^.]+)%.") or ""] = true
    return wrk.format("GET", "/auth/me",
        { ["Authorization"] = "Bearer " .. s.access, ["User-Agent"] = "gatehouse-bench" })
      .. wrk.format("POST", "/auth/refresh", jsonh, '{"refresh_token":"' .. s.rt .. '"}')
  end
  if #logout > 0 then
    counts.logout = counts.logout + 1
    wrk.thread:set("logout", counts.logout)
    return wrk.format("POST", "/auth/logout",
      { ["Authorization"] = "Bearer " .. pop(logout), ["User-Agent"] = "gatehouse-bench" }, "")
      .. login()
  end
  return login() .. login()
end

function response(status, headers, body)
  if status ~= 200 then return end
  local access = body:match('"access_token"%s*:%s*"([^"]+)"')
  local rt = body:match('"refresh_token"%s*:%s*"([^"]+)"')
  if not (access and rt) then return end
  -- A refresh token is "<session id>.<secret>": an answer for a session being refreshed is
  -- the refresh's, whose access token ends the session; any other is a new login's.
  local sid = rt:match("^([^.]+)%.")
  if sid and refreshing[sid] then
    refreshing[sid] = nil
    logout[#logout + 1] = access
  else
    me[#me + 1] = { access = access, rt = rt }
  end
end

local base_done = done
function done(summary, latency, requests)
  local c = { login = 0, me = 0, refresh = 0, logout = 0 }
  for _, t in ipairs(threads) do
    for k, _ in pairs(c) do c[k] = c[k] + (tonumber(t:get(k)) or 0) end
  end
  io.write(string.format('BENCH_EXTRA {"logins":%d,"me":%d,"refreshes":%d,"logouts":%d}\n',
    c.login, c.me, c.refresh, c.logout))
  base_done(summary, latency, requests)
end
