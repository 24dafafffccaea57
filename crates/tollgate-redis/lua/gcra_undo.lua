-- Gives back what an allowed GCRA acquire took (see gcra_fn.lua for units and limits,
-- prepended with prelude.lua).
--
-- KEYS[1]  the key's state "<tat>:<T>" (see gcra.lua)
-- ARGV[1]  cost taken
-- ARGV[2]  emission interval T, microseconds
-- ARGV[3]  the TAT before the acquire (0 = absent)
-- ARGV[4]  the TAT the acquire wrote
-- ARGV[5]  now in Unix microseconds, or "" for the server's clock
-- ARGV[6]  extra time to live, milliseconds
--
-- If nobody touched the key since, the state before is put back exactly; otherwise the
-- cost is refunded (the TAT moves back by cost * T, never before now).
local now = now_us(ARGV[5])
local T = tonumber(ARGV[2])
local cur = gcra_stored(KEYS[1], T, now)
local next
if cur == tonumber(ARGV[4]) then
  next = tonumber(ARGV[3])
else
  next = math.max(cur - tonumber(ARGV[1]) * T, math.min(cur, now))
end
if next == cur then
  return 0
end
if next <= now then
  redis.call('DEL', KEYS[1])
else
  local ttl = idiv(next - now + 999, 1000) + tonumber(ARGV[6])
  redis.call('SET', KEYS[1], string.format('%d:%d', next, T), 'PX', math.max(ttl, 1))
end
return 1
