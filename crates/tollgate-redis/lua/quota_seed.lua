-- Seeds this instance's share of a company's quota counter from its durable ledger
-- (see quota.lua). Idempotent: a share already present is left alone, so a retried
-- seed counts once.
--
-- KEYS[1]  the counter
-- ARGV[1]  the instance id
-- ARGV[2]  the instance's own count for the period (from its ledger)
-- ARGV[3]  when the counter expires, Unix seconds (after the period's end)
--
-- "n" counts the instances with a share (each share is seeded once per counter).
--
-- Returns {seeded, used, existed}: seeded 1 if the share was added, existed 1 if the
-- counter was there before (rebuilt by another instance).
local inst = 'i:' .. ARGV[1]
local existed = redis.call('EXISTS', KEYS[1])
if redis.call('HEXISTS', KEYS[1], inst) == 1 then
  return {0, tonumber(redis.call('HGET', KEYS[1], 'used') or '0'), existed}
end
redis.call('HSET', KEYS[1], inst, ARGV[2])
redis.call('HINCRBY', KEYS[1], 'n', 1)
local used = redis.call('HINCRBY', KEYS[1], 'used', ARGV[2])
redis.call('EXPIREAT', KEYS[1], ARGV[3])
return {1, used, existed}
