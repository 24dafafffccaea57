-- Shared by the quota scripts (quota.lua, quota_flush.lua, quota_settle.lua) and
-- request.lua: prepended to each when it is loaded (see store.rs).
-- missing_share(key, inst): the reply for a counter without this instance's share
-- ({-1, 0} when the counter is missing, {-2, used} when it was rebuilt without it), or
-- nil when the share is there. check_and_add(key, inst, cost, cap): quota.lua's
-- check-and-add of one call (see there for the reply).
local function missing_share(key, inst)
  if redis.call('HEXISTS', key, inst) == 1 then
    return nil
  end
  if redis.call('EXISTS', key) == 0 then
    return {-1, 0}
  end
  return {-2, tonumber(redis.call('HGET', key, 'used') or '0')}
end


local function check_and_add(key, inst, cost, cap)
  local missing = missing_share(key, inst)
  if missing then
    return missing
  end
  local used = tonumber(redis.call('HGET', key, 'used') or '0')
  if cap >= 0 and used + cost > cap then
    return {0, used}
  end
  redis.call('HINCRBY', key, inst, cost)
  return {1, redis.call('HINCRBY', key, 'used', cost)}
end
