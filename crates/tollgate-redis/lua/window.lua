-- Sliding-window counter for one key, decided atomically on the server (the decision is
-- window_fn.lua's).
--
-- KEYS[1]  the key's state (see window_fn.lua)
-- ARGV[1]  "a" acquire or "p" peek
-- ARGV[2]  cost, in units (<= limit)
-- ARGV[3]  window length W, microseconds
-- ARGV[4]  limit, units per window
-- ARGV[5]  now in Unix microseconds, or "" for the server's clock (TIME)
-- ARGV[6]  extra time to live, milliseconds
--
-- Returns window()'s reply: {allowed, remaining, retry_after_us, reset_after_us,
-- before_w, before_p, before_c, after_w, after_p, after_c}.
local reply, write = window(KEYS[1], ARGV[1] == 'a', tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4]), now_us(ARGV[5]), tonumber(ARGV[6]))
if write then
  redis.call('SET', write[1], write[2], 'PX', write[3])
end
return reply
