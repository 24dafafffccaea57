-- Check-and-add on a company's shared quota counter for one period.
--
-- KEYS[1]  the counter, a hash: "used" = the company's calls this period (all
--          instances); "i:<instance>" = what each instance contributed (its seed plus
--          its calls), so a counter that vanished can be rebuilt from each instance's
--          durable ledger; "f:<instance>" = the last batch id flushed (see quota_flush)
-- ARGV[1]  the instance id
-- ARGV[2]  cost
-- ARGV[3]  hard cap (calls above it are refused), or -1 for none
--
-- Returns {status, used}: 1 counted (used after the call), 0 refused over the hard cap
-- (nothing counted), -1 the counter is missing, -2 it exists without this instance's
-- share (it was rebuilt after a loss by another instance). On -1/-2 the caller seeds
-- its share (quota_seed) and calls again. All values stay far below 2^53.
local inst = 'i:' .. ARGV[1]
local missing = missing_share(KEYS[1], inst)
if missing then
  return missing
end
local cost = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local used = tonumber(redis.call('HGET', KEYS[1], 'used') or '0')
if cap >= 0 and used + cost > cap then
  return {0, used}
end
redis.call('HINCRBY', KEYS[1], inst, cost)
return {1, redis.call('HINCRBY', KEYS[1], 'used', cost)}
