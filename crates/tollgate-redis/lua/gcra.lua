-- GCRA for one key, decided atomically on the server (the decision is gcra_fn.lua's).
--
-- KEYS[1]  the key's state (see gcra_fn.lua)
-- ARGV[1]  "a" acquire (take the cost when allowed) or "p" peek (take nothing)
-- ARGV[2]  cost, in units
-- ARGV[3]  emission interval T, microseconds (>= 1)
-- ARGV[4]  tolerance tau = burst * T, microseconds
-- ARGV[5]  now in Unix microseconds, or "" to use the server's clock (TIME)
-- ARGV[6]  extra time to live, milliseconds (0 on the server's clock)
--
-- Returns gcra()'s reply: {allowed, remaining, retry_after_us, reset_after_us, before,
-- after}.
local reply, write = gcra(KEYS[1], ARGV[1] == 'a', tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4]), now_us(ARGV[5]), tonumber(ARGV[6]))
if write then
  redis.call('SET', write[1], write[2], 'PX', write[3])
end
return reply
