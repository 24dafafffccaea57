-- Adds calls an instance counted locally (while Redis was unreachable, or batched) to
-- a company's quota counter (see quota.lua), once: the batch id is remembered, so a
-- flush retried after a lost reply is counted once. An instance sends one batch at a
-- time per counter and retries it until acknowledged.
--
-- KEYS[1]  the counter
-- ARGV[1]  the instance id
-- ARGV[2]  the batch id
-- ARGV[3]  calls in the batch
--
-- Returns {status, used}: 1 added, 2 already added (a retry), -1/-2 as in quota.lua
-- (the instance re-seeds from its ledger, which holds these calls too).
local inst = 'i:' .. ARGV[1]
local missing = missing_share(KEYS[1], inst)
if missing then
  return missing
end
local flushed = 'f:' .. ARGV[1]
if redis.call('HGET', KEYS[1], flushed) == ARGV[2] then
  return {2, tonumber(redis.call('HGET', KEYS[1], 'used') or '0')}
end
redis.call('HSET', KEYS[1], flushed, ARGV[2])
redis.call('HINCRBY', KEYS[1], inst, ARGV[3])
return {1, redis.call('HINCRBY', KEYS[1], 'used', ARGV[3])}
