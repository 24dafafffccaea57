-- Sliding-window counter for one key: window(key, acquire, cost, W, limit, now,
-- extra_ttl) decides with the same estimate and the same answers as tollgate-core's
-- SlidingWindow, in microseconds, and returns its reply and the write an acquire makes
-- (nil when it writes nothing), for the caller to apply (window.lua at once,
-- request.lua once every limit of the request passed). Prepended after prelude.lua.
--
-- Integer arithmetic only (Lua numbers are doubles, exact below 2^53): windows are
-- aligned to the Unix epoch and numbered now / W; the Rust side refuses windows where
-- 4 * limit * W does not stay below 2^53, which bounds every product below.
--
-- key        the key's state "w:p:c:W": window number, previous and current window
--            counts, and the window length they count in; absent = no requests in the
--            last two windows (it expires then). A state of another window length (the
--            limit was changed) is read as absent, like the in-memory backend, which
--            starts such a limit fresh on reload.
-- acquire    take the cost when allowed (false: peek)
-- cost       in units (<= limit)
-- W          window length, microseconds
-- limit      units per window
-- now        Unix microseconds
-- extra_ttl  extra time to live, milliseconds
--
-- The reply is {allowed, remaining, retry_after_us, reset_after_us, before_w, before_p,
-- before_c, after_w, after_p, after_c} (w = 0: absent); the write {key, value, ttl_ms}.
local function window(key, acquire, cost, W, limit, now, extra_ttl)
  local w = idiv(now, W)
  local elapsed = now - w * W

  local sw, sp, sc = 0, 0, 0
  local raw = redis.call('GET', key)
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
    local aw, ap, ac, write = sw, sp, sc, nil
    if cost > 0 and acquire then
      aw, ap, ac = vw, prev, ncur
      local ttl = idiv(since((vw + 2) * W) + 999, 1000) + extra_ttl
      write = {key, string.format('%d:%d:%d:%d', aw, ap, ac, W), math.max(ttl, 1)}
    end
    return {1, idiv(lw - want, W), 0, reset, sw, sp, sc, aw, ap, ac}, write
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
    sw, sp, sc, sw, sp, sc}, nil
end
