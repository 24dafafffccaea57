-- Shared by quota.lua and quota_flush.lua: prepended to each when it is loaded (see
-- store.rs). missing_share(key, inst): the reply for a counter without this instance's
-- share ({-1, 0} when the counter is missing, {-2, used} when it was rebuilt without
-- it), or nil when the share is there.
local function missing_share(key, inst)
  if redis.call('HEXISTS', key, inst) == 1 then
    return nil
  end
  if redis.call('EXISTS', key) == 0 then
    return {-1, 0}
  end
  return {-2, tonumber(redis.call('HGET', key, 'used') or '0')}
end

