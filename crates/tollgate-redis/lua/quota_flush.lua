-- Adds calls an instance counted locally (while Redis was unreachable or slow, or
-- batched) to a company's quota counter (see quota.lua), once: the batch id is
-- remembered, so a flush retried after a lost reply is counted once. An instance sends
-- one batch at a time per counter and retries it until acknowledged.
--
-- A batch also carries the calls whose reply this instance never got (a timeout, a
-- connection lost after the call was sent): Redis may have counted them. Each is looked
-- up in the instance's call-id bitmap; one Redis did count is taken back (its cost
-- subtracted, a notice claim it won released), since the instance counted it locally
-- (it is in the batch's calls) or refused it. Either way its bit is left set, so the
-- call arriving later still (it waited in a socket buffer) is refused by quota.lua and
-- counts nothing. So every call is in the counter once, whatever became of its reply.
--
-- KEYS[1]  the counter; KEYS[2], KEYS[3] the warning's and the overage's claim keys
-- KEYS[4..] the call-id bitmaps the uncertain calls are in
-- ARGV[1]  the instance id
-- ARGV[2]  the batch id
-- ARGV[3]  calls in the batch
-- ARGV[4]  the warning threshold (-1: none); ARGV[5] the limit
-- ARGV[6]  when the claim keys expire, Unix seconds; ARGV[7] the batch's claim value
-- ARGV[8]  how long the bitmaps are kept, seconds (as quota.lua's ARGV[5])
-- ARGV[9]  u, the number of uncertain calls; then four per call: its bitmap (index
--          into KEYS[4..], from 1), its bit, its cost, its id (its claim value)
--
-- Returns {status, used, won, taken_back}: status 1 added, 2 already added (a retry:
-- won is then what the batch claimed when it was added),
-- -1/-2 as in quota.lua (the instance re-seeds from its ledger, which holds these calls
-- too); won as in quota.lua; taken_back the uncertain calls Redis had counted.
local inst = 'i:' .. ARGV[1]
local missing = missing_share(KEYS[1], inst)
if missing then
  return {missing[1], missing[2], 0, 0}
end
local flushed = 'f:' .. ARGV[1]
if redis.call('HGET', KEYS[1], flushed) == ARGV[2] then
  -- A retry: what the batch claimed then (its reply may be what was lost).
  local won = 0
  if redis.call('GET', KEYS[2]) == ARGV[7] then
    won = won + 1
  end
  if redis.call('GET', KEYS[3]) == ARGV[7] then
    won = won + 2
  end
  return {2, tonumber(redis.call('HGET', KEYS[1], 'used') or '0'), won, 0}
end
local add = tonumber(ARGV[3])
local back = 0
for i = 1, tonumber(ARGV[9]) do
  local b = 9 + (i - 1) * 4
  local ids = KEYS[3 + tonumber(ARGV[b + 1])]
  if redis.call('SETBIT', ids, ARGV[b + 2], 1) == 1 then
    add = add - tonumber(ARGV[b + 3])
    back = back + 1
    for k = 2, 3 do
      if redis.call('GET', KEYS[k]) == ARGV[b + 4] then
        redis.call('DEL', KEYS[k])
      end
    end
  end
end
for k = 4, #KEYS do
  redis.call('EXPIRE', KEYS[k], ARGV[8])
end
redis.call('HSET', KEYS[1], flushed, ARGV[2])
redis.call('HINCRBY', KEYS[1], inst, add)
local used = redis.call('HINCRBY', KEYS[1], 'used', add)
return {1, used, claim_crossed(KEYS[2], KEYS[3], used, tonumber(ARGV[4]), tonumber(ARGV[5]),
  ARGV[7], ARGV[6]), back}
