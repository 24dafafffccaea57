-- GCRA (virtual scheduling) for one key, decided atomically on the server.
--
-- Integer arithmetic only. Lua numbers are doubles, exact for integers below 2^53:
-- times are Unix MICROseconds (about 1.8e15 today) and the Rust side refuses rates whose
-- tolerance does not leave room below 2^53, so every sum and product below is exact.
-- Integer division goes through idiv (prelude.lua), which corrects the double quotient.
--
-- KEYS[1]  the key's state "<tat>:<T>": its theoretical arrival time (TAT), Unix
--          microseconds, and the emission interval it was written under; absent = a
--          full bucket (the key expires when its TAT passes). A state written under
--          another interval (the limit was changed) keeps its backlog in cost units:
--          ceil((tat - now) / T_old) units, re-expressed in the new interval, like the
--          in-memory backend's carry-over on reload.
-- ARGV[1]  "a" acquire (take the cost when allowed) or "p" peek (take nothing)
-- ARGV[2]  cost, in units
-- ARGV[3]  emission interval T, microseconds (>= 1)
-- ARGV[4]  tolerance tau = burst * T, microseconds
-- ARGV[5]  now in Unix microseconds, or "" to use the server's clock (TIME)
-- ARGV[6]  extra time to live, milliseconds (0 on the server's clock)
--
-- Returns {allowed, remaining, retry_after_us, reset_after_us, before, after}:
-- before/after are the TAT before (re-expressed in T) and after the call (0 = absent),
-- for undo.
local now = now_us(ARGV[5])
local cost = tonumber(ARGV[2])
local T = tonumber(ARGV[3])
local tau = tonumber(ARGV[4])
local stored = 0
local raw = redis.call('GET', KEYS[1])
if raw then
  local a, b = string.match(raw, '^(%d+):(%d+)$')
  stored = tonumber(a)
  local t_old = tonumber(b)
  if t_old ~= T and stored > now then
    stored = now + idiv(stored - now + t_old - 1, t_old) * T
  end
end
local tat = math.max(stored, now)
local new_tat = tat + cost * T
local line = now + tau
if new_tat <= line then
  local after = stored
  if cost > 0 and ARGV[1] == 'a' then
    local ttl = idiv(new_tat - now + 999, 1000) + tonumber(ARGV[6])
    redis.call('SET', KEYS[1], string.format('%d:%d', new_tat, T), 'PX', math.max(ttl, 1))
    after = new_tat
  end
  return {1, idiv(line - new_tat, T), 0, new_tat - now, stored, after}
end
return {0, idiv(math.max(line - tat, 0), T), new_tat - line, tat - now, stored, stored}
