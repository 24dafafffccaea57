-- Shared by the quota scripts (quota.lua, quota_flush.lua, quota_settle.lua) and
-- request.lua: prepended to each when it is loaded (see store.rs).
-- missing_share(key, inst): the reply for a counter without this instance's share
-- ({-1, 0} when the counter is missing, {-2, used} when it was rebuilt without it), or
-- nil when the share is there.
-- claim_crossed(kw, ko, used, warn, limit, who, exat): claims the notices a counter at
-- `used` has reached (the warning at `warn`, -1 for none; the overage above `limit`),
-- each once for the fleet: `SET NX` of the claim keys `kw`/`ko` to `who`, expiring at
-- `exat` (Unix seconds, after the period). Returns the claims won: 1 warning, 2 overage.
-- check_and_add(key, inst, cost, cap, ids, bit, ttl, kw, ko, warn, limit, who, exat):
-- quota.lua's check-and-add of one call (see there for the reply); a counted call sets
-- bit `bit` of the bitmap `ids` (this process's call ids, kept `ttl` seconds), so that
-- a call whose reply was lost can be found at the next flush (quota_flush.lua). A call
-- whose bit is set already was decided before (a late or repeated arrival of a call the
-- flush has settled, see quota_flush.lua): it is refused and counts nothing, so it is
-- never counted twice (and a combined request carrying it writes nothing).
local function missing_share(key, inst)
  if redis.call('HEXISTS', key, inst) == 1 then
    return nil
  end
  if redis.call('EXISTS', key) == 0 then
    return {-1, 0}
  end
  return {-2, tonumber(redis.call('HGET', key, 'used') or '0')}
end

local function claim_crossed(kw, ko, used, warn, limit, who, exat)
  local won = 0
  if warn >= 0 and used >= warn and redis.call('SET', kw, who, 'NX', 'EXAT', exat) then
    won = won + 1
  end
  if used > limit and redis.call('SET', ko, who, 'NX', 'EXAT', exat) then
    won = won + 2
  end
  return won
end

local function check_and_add(key, inst, cost, cap, ids, bit, ttl, kw, ko, warn, limit, who, exat)
  local missing = missing_share(key, inst)
  if missing then
    return {missing[1], missing[2], 0, 0}
  end
  local used = tonumber(redis.call('HGET', key, 'used') or '0')
  local shares = tonumber(redis.call('HGET', key, 'n') or '1')
  if redis.call('GETBIT', ids, bit) == 1 then
    return {0, used, 0, shares}
  end
  if cap >= 0 and used + cost > cap then
    return {0, used, 0, shares}
  end
  redis.call('HINCRBY', key, inst, cost)
  redis.call('SETBIT', ids, bit, 1)
  redis.call('EXPIRE', ids, ttl)
  used = redis.call('HINCRBY', key, 'used', cost)
  return {1, used, claim_crossed(kw, ko, used, warn, limit, who, exat), shares}
end
