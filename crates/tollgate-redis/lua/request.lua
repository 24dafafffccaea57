-- All of one request's rate limits, and its quota call, decided atomically in one
-- round trip: the limits in the policy's order, all or nothing. Nothing is written
-- unless every enforced limit allows the request and the quota (if any) counts it; a
-- shadow limit that denies is reported and written nothing, like the engine's
-- limit-by-limit path. Prepended after prelude.lua, gcra_fn.lua, window_fn.lua and
-- quota_prelude.lua (see store.rs). On Redis Cluster every key must hash to one slot:
-- the caller sends only requests whose keys share a hash tag (see keys.rs).
--
-- KEYS[1..n]  the limits' states (see gcra_fn.lua, window_fn.lua)
-- KEYS[n+1]   the company's quota counter (see quota.lua), when the quota is asked,
--             then its call-id bitmap and its two claim keys (KEYS[2..4] of quota.lua)
-- ARGV[1]     now in Unix microseconds, or "" for the server's clock (TIME)
-- ARGV[2]     extra time to live, milliseconds
-- ARGV[3]     n, the number of limits
-- ARGV[4..]   five per limit: "g" (GCRA) or "w" (sliding window); "1" enforced or
--             "0" shadow; cost; then T and tau (GCRA) or W and limit (window), in
--             microseconds as in gcra.lua and window.lua
-- then        with the quota: the instance id, the quota cost, the hard cap (-1: none),
--             then ARGV[4..9] of quota.lua (the call's bit, the bitmap's time to live,
--             the warning, the limit, the call's id, the claims' expiry)
--
-- Returns {{committed, decided, quota_status, quota_used, won, shares}, reply_1, ...,
-- reply_decided}:
-- the replies of the limits decided (gcra.lua's or window.lua's), which stop at the first
-- enforced limit that denies; committed 1 when the writes were made. quota_status is
-- quota.lua's (1 counted, 0 refused over the hard cap, -1/-2 this instance's share is
-- missing: seed and call again), or 9 when the quota was not asked; won and shares as
-- in quota.lua.
local now = now_us(ARGV[1])
local extra_ttl = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local out = {{0, 0, 9, 0, 0, 0}}
local writes = {}
for i = 1, n do
  local b = 3 + (i - 1) * 5
  local cost, p1, p2 = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4]), tonumber(ARGV[b + 5])
  local reply, write
  if ARGV[b + 1] == 'g' then
    reply, write = gcra(KEYS[i], true, cost, p1, p2, now, extra_ttl)
  else
    reply, write = window(KEYS[i], true, cost, p1, p2, now, extra_ttl)
  end
  out[i + 1] = reply
  out[1][2] = i
  if reply[1] == 1 then
    if write then
      writes[#writes + 1] = write
    end
  elseif ARGV[b + 2] == '1' then
    return out
  end
end
local q = KEYS[n + 1]
if q then
  local b = 3 + n * 5
  local r = check_and_add(q, 'i:' .. ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]),
    KEYS[n + 2], ARGV[b + 4], ARGV[b + 5], KEYS[n + 3], KEYS[n + 4], tonumber(ARGV[b + 6]),
    tonumber(ARGV[b + 7]), ARGV[b + 8], ARGV[b + 9])
  out[1][3], out[1][4], out[1][5], out[1][6] = r[1], r[2], r[3], r[4]
  if r[1] ~= 1 then
    return out
  end
end
for _, w in ipairs(writes) do
  redis.call('SET', w[1], w[2], 'PX', w[3])
end
out[1][1] = 1
return out
