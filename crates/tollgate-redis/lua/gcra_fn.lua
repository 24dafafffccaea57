-- gcra_stored(key, T, now): the key's TAT in the interval T (0 = absent), for gcra()
-- and gcra_undo.lua.
local function gcra_stored(key, T, now)
  local raw = redis.call('GET', key)
  if not raw then
    return 0
  end
  local a, b = string.match(raw, '^(%d+):(%d+)$')
  local stored, t_old = tonumber(a), tonumber(b)
  if t_old ~= T and stored > now then
    -- Written under another interval (the limit changed): in this one's units.
    stored = now + idiv(stored - now + t_old - 1, t_old) * T
  end
  return stored
end

-- GCRA (virtual scheduling) for one key: gcra(key, acquire, cost, T, tau, now, extra_ttl)
-- decides, and returns its reply and the write an acquire makes (nil when it writes
-- nothing), for the caller to apply: gcra.lua at once, request.lua once every limit of
-- the request passed. Prepended after prelude.lua (see store.rs).
--
-- Integer arithmetic only. Lua numbers are doubles, exact for integers below 2^53:
-- times are Unix MICROseconds (about 1.8e15 today) and the Rust side refuses rates whose
-- tolerance does not leave room below 2^53, so every sum and product below is exact.
-- Integer division goes through idiv (prelude.lua), which corrects the double quotient.
--
-- key        the key's state "<tat>:<T>": its theoretical arrival time (TAT), Unix
--            microseconds, and the emission interval it was written under; absent = a
--            full bucket (the key expires when its TAT passes). A state written under
--            another interval (the limit was changed) keeps its backlog in cost units:
--            ceil((tat - now) / T_old) units, re-expressed in the new interval, like the
--            in-memory backend's carry-over on reload.
-- acquire    take the cost when allowed (false: peek, take nothing)
-- cost       in units
-- T          emission interval, microseconds (>= 1)
-- tau        tolerance, burst * T, microseconds
-- now        Unix microseconds
-- extra_ttl  extra time to live of the key, milliseconds (0 on the server's clock)
--
-- The reply is {allowed, remaining, retry_after_us, reset_after_us, before, after}:
-- before/after are the TAT before (re-expressed in T) and after the call (0 = absent),
-- for undo. The write is {key, value, ttl_ms}.

local function gcra(key, acquire, cost, T, tau, now, extra_ttl)
  local stored = gcra_stored(key, T, now)
  local tat = math.max(stored, now)
  local new_tat = tat + cost * T
  local line = now + tau
  if new_tat <= line then
    local after, write = stored, nil
    if cost > 0 and acquire then
      local ttl = idiv(new_tat - now + 999, 1000) + extra_ttl
      write = {key, string.format('%d:%d', new_tat, T), math.max(ttl, 1)}
      after = new_tat
    end
    return {1, idiv(line - new_tat, T), 0, new_tat - now, stored, after}, write
  end
  return {0, idiv(math.max(line - tat, 0), T), new_tat - line, tat - now, stored, stored}, nil
end
