-- Settles a reservation on a company's quota counter (see quota.lua): a reservation
-- was counted like a call of its held cost; a commit replaces the held cost by the final
-- cost, once per idempotency key and period across the fleet (a later commit with the
-- same key only releases its hold); a refund releases the hold. Each settlement is
-- applied once: its id is remembered, so a settlement retried after a lost reply (or
-- sent again after an outage) changes nothing the second time.
--
-- KEYS[1]  the counter
-- ARGV[1]  the instance id
-- ARGV[2]  the settlement's id (unique)
-- ARGV[3]  the cost held
-- ARGV[4]  the final cost of a commit (an integer below 2^63), or "" for a refund
-- ARGV[5]  the commit's idempotency key
--
-- Returns {status, used}: 1 applied (a commit whose key was new, or a refund), 2 applied
-- as a duplicate commit (the hold released, nothing counted), 3 applied before (a
-- retry), -1/-2 as in quota.lua (seed this instance's share and send it again). The
-- counts go through HINCRBY with the arguments as given, and `used` is returned as the
-- string Redis holds, so no value passes through a Lua double.
local inst = 'i:' .. ARGV[1]
local missing = missing_share(KEYS[1], inst)
if missing then
  return missing
end
if redis.call('HSETNX', KEYS[1], 's:' .. ARGV[1] .. ':' .. ARGV[2], 1) == 0 then
  return {3, redis.call('HGET', KEYS[1], 'used') or '0'}
end
local status = 1
if ARGV[4] ~= '' then
  if redis.call('HSETNX', KEYS[1], 'c:' .. ARGV[5], 1) == 1 then
    redis.call('HINCRBY', KEYS[1], inst, ARGV[4])
    redis.call('HINCRBY', KEYS[1], 'used', ARGV[4])
  else
    status = 2
  end
end
if ARGV[3] ~= '0' then
  redis.call('HINCRBY', KEYS[1], inst, '-' .. ARGV[3])
  redis.call('HINCRBY', KEYS[1], 'used', '-' .. ARGV[3])
end
return {status, redis.call('HGET', KEYS[1], 'used') or '0'}
