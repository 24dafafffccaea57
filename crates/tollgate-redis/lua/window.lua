-- Sliding-window counter for one key, decided atomically on the server: the same
-- estimate and the same answers as tollgate-core's SlidingWindow, in microseconds.
--
-- Integer arithmetic only (Lua numbers are doubles, exact below 2^53): windows are
-- aligned to the Unix epoch and numbered now / W; the Rust side refuses windows where
-- 4 * limit * W does not stay below 2^53, which bounds every product below.
--
-- KEYS[1]  the key's state "w:p:c:W": window number, previous and current window
--          counts, and the window length they count in; absent = no requests in the
--          last two windows (it expires then). A state of another window length (the
--          limit was changed) is read as absent, like the in-memory backend, which starts
--          such a limit fresh on reload.
-- ARGV[1]  "a" acquire or "p" peek
-- ARGV[2]  cost, in units (<= limit)
-- ARGV[3]  window length W, microseconds
-- ARGV[4]  limit, units per window
-- ARGV[5]  now in Unix microseconds, or "" for the server's clock (TIME)
-- ARGV[6]  extra time to live, milliseconds
--
-- Returns {allowed, remaining, retry_after_us, reset_after_us,
--          before_w, before_p, before_c, after_w, after_p, after_c} (w = 0: absent).
local now = now_us(ARGV[5])
local cost = tonumber(ARGV[2])
local W = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local w = idiv(now, W)
local elapsed = now - w * W

local sw, sp, sc = 0, 0, 0
local raw = redis.call('GET', KEYS[1])
if raw then
  local a, b, c, d = string.match(raw, '^(%d+):(%d+):(%d+):(%d+)$')
  if tonumber(d) == W then
    sw, sp, sc = tonumber(a), tonumber(b), tonumber(c)
  else
    raw = false
  end
end

-- The view of the state at now.
local vw, el, prev, cur = w, elapsed, 0, 0
if raw then
  if sw == w then
    prev, cur = sp, sc
  elseif sw == w - 1 then
    prev, cur = sc, 0
  elseif sw > w then
    -- The clock went back: decide at the start of the window the state saw.
    vw, el, prev, cur = sw, 0, sp, sc
  end
end

local lw = limit * W
local used = prev * (W - el) + cur * W
local want = used + cost * W
local function since(t)
  return math.max(t - now, 0)
end

if want <= lw then
  local ncur = cur + cost
  local reset = 0
  if ncur > 0 then
    reset = since((vw + 2) * W)
  elseif prev > 0 then
    reset = since((vw + 1) * W)
  end
  local aw, ap, ac = sw, sp, sc
  if cost > 0 and ARGV[1] == 'a' then
    aw, ap, ac = vw, prev, ncur
    local ttl = idiv(since((vw + 2) * W) + 999, 1000) + tonumber(ARGV[6])
    redis.call('SET', KEYS[1], string.format('%d:%d:%d:%d', aw, ap, ac, W), 'PX', math.max(ttl, 1))
  end
  return {1, idiv(lw - want, W), 0, reset, sw, sp, sc, aw, ap, ac}
end

-- Denied: the earliest time the cost fits, assuming no other traffic.
local at
if cur + cost <= limit then
  -- Blocked by the previous window's weight, which decays during this window.
  local e = W - idiv((limit - cur - cost) * W, prev)
  if e < W then at = vw * W + e else at = (vw + 1) * W end
else
  -- Must wait for the next window, where this window's count decays.
  local e = W - idiv((limit - cost) * W, cur)
  if e < W then at = (vw + 1) * W + e else at = (vw + 2) * W end
end
local reset
if cur > 0 then reset = since((vw + 2) * W) else reset = since((vw + 1) * W) end
return {0, idiv(math.max(lw - used, 0), W), math.max(since(at), 1), reset,
  sw, sp, sc, sw, sp, sc}
