-- Writes this instance's revocation changes to the fleet's set and log, in order.
-- KEYS: set (hash), log (stream), epoch (string).
-- ARGV: expected epoch, log length (approximate MAXLEN), then pairs of
--       fingerprint (32 hex digits) and value ("<until ns or ->:<bit>:<key ref>"
--       for a revocation, "x" for a restoration).
-- Returns {1, id of the last log entry} or, when the epoch is not the expected one
-- (Redis lost the fleet's state since this instance read it), {0, ""}: nothing written.
local epoch = redis.call('GET', KEYS[3])
if epoch ~= ARGV[1] then
  return {0, ''}
end
local id = ''
for i = 3, #ARGV, 2 do
  if ARGV[i + 1] == 'x' then
    redis.call('HDEL', KEYS[1], ARGV[i])
  else
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
  id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'f', ARGV[i], 'v', ARGV[i + 1])
end
return {1, id}
