-- tollgate in nginx/OpenResty: one engine per worker process, every worker on one
-- host-shared state, so that nginx with N workers enforces the policy's limits once
-- (not N times).
--
--   init_worker_by_lua_block {
--     require("tollgate_nginx").init_worker({
--       policy = "/etc/tollgate/policy.toml",   -- the policy file
--       state  = "/dev/shm/tollgate-gw",        -- the shared state every worker attaches
--       header = "/usr/include/tollgate.h",     -- the declarations LuaJIT reads
--       lib    = nil,                           -- nil: libtollgate.so.N by soname
--     })
--   }
--   access_by_lua_block { require("tollgate_nginx").access() }
--
-- The request's fields: the token from `Authorization: Bearer <token>` (or `X-Api-Key`),
-- the tenant from `X-Tenant`, the client address, the URI as the route, the method.
-- A refusal answers 429 (limited, quota), 403 (revoked, unknown key, terminated) or 503
-- (a store unavailable), each with the RateLimit-Policy / RateLimit / Retry-After
-- headers; an allowed request gets RateLimit-Policy and RateLimit and goes on. With a
-- quota, X-Tollgate-Quota-Used gives the company's usage this period.
--
-- nginx replaces workers on reload (HUP) and when one dies: a new worker builds its
-- engine on the same state, so the used capacity of every key survives both.

local ffi = require("ffi")

local M = {}

local tg, engine
local request, decision
local value, n = nil, nil

local function fail(msg)
  ngx.log(ngx.ERR, "tollgate: ", msg)
end

function M.init_worker(opts)
  -- tollgate_ffi.lua is found through lua_package_path (see nginx.conf.in).
  tg = require("tollgate_ffi").load(opts.header, opts.lib)
  local out = ffi.new("tollgate_engine*[1]")
  local err, err_n = ffi.new("char[1024]"), ffi.new("size_t[1]")
  local state = opts.state or ""
  local rc = tg.tollgate_engine_from_file_shared(opts.policy, #opts.policy, state, #state,
    out, err, 1024, err_n)
  if rc ~= tg.TOLLGATE_RESULT_OK then
    -- The message is cut to the buffer (err_n is its whole length).
    fail(ffi.string(err, math.min(tonumber(err_n[0]), 1023)))
    return
  end
  engine = ffi.gc(out[0], tg.tollgate_engine_free)
  request = ffi.new("tollgate_request")
  decision = ffi.new("tollgate_decision")
  value, n = ffi.new("char[256]"), ffi.new("size_t[1]")
end

local function set(field, s)
  if s then
    request[field].ptr, request[field].len = s, #s
  end
end

local function header(which)
  if tg.tollgate_engine_header(engine, decision, which, value, 256, n) == tg.TOLLGATE_RESULT_OK then
    ngx.header[ffi.string(tg.tollgate_header_name(which))] = ffi.string(value, n[0])
  end
end

function M.access()
  if not engine then
    return ngx.exit(ngx.HTTP_SERVICE_UNAVAILABLE)
  end
  local h = ngx.req.get_headers()
  local auth = h["authorization"]
  local token = (type(auth) == "string" and auth:match("^[Bb]earer%s+(%S+)$")) or h["x-api-key"]
  if type(token) ~= "string" then token = nil end
  local tenant = h["x-tenant"]
  if type(tenant) ~= "string" then tenant = nil end
  local method, route, client = ngx.req.get_method(), ngx.var.uri, ngx.var.remote_addr
  -- Zeroed: absent fields, the class's cost, the engine's clock. The strings stay
  -- alive in these locals during the call, which does not yield.
  ffi.fill(request, ffi.sizeof(request))
  set("token", token)
  set("tenant", tenant)
  set("method", method)
  set("route", route)
  set("client", client)
  local rc = tg.tollgate_engine_decide_request(engine, request, decision)
  if rc ~= tg.TOLLGATE_RESULT_OK then
    fail("decide: " .. ffi.string(tg.tollgate_result_name(rc)))
    return ngx.exit(ngx.HTTP_BAD_REQUEST)
  end
  header(tg.TOLLGATE_HEADER_POLICY)
  header(tg.TOLLGATE_HEADER_RATELIMIT)
  if decision.quota.limit > 0 then
    -- The company's usage this period, across every worker of the host.
    ngx.header["X-Tollgate-Quota-Used"] = tostring(tonumber(decision.quota.used))
  end
  if decision.allowed then
    return
  end
  header(tg.TOLLGATE_HEADER_RETRY_AFTER)
  local r = decision.reason
  if r == tg.TOLLGATE_REASON_REVOKED or r == tg.TOLLGATE_REASON_UNKNOWN_KEY
      or r == tg.TOLLGATE_REASON_TERMINATED then
    return ngx.exit(ngx.HTTP_FORBIDDEN)
  elseif r == tg.TOLLGATE_REASON_UNAVAILABLE or r == tg.TOLLGATE_REASON_JOURNAL_FAILING then
    return ngx.exit(ngx.HTTP_SERVICE_UNAVAILABLE)
  end
  return ngx.exit(429)
end

return M
