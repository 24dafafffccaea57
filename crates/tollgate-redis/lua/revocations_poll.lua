-- Reads the fleet's revocation changes after `last`, or its whole set.
-- KEYS: set (hash), log (stream), epoch (string).
-- ARGV: this instance's epoch ("" before the first read), a fresh random epoch (set if
--       Redis holds none), the last log id read ("0-0" before the first), how many
--       entries at most, "full" to read the whole set anyway.
-- Returns {"full", epoch, created (1: this call set the epoch), last log id, {field,
-- value, ...}} when the epoch is not the instance's, "full" was asked, or the log was
-- trimmed past `last` (entries may be lost); else {"delta", epoch, 0, {id, field,
-- value, ...}}. A full read also deletes suspensions that ended over a minute ago (on
-- the server's clock).
local epoch = redis.call('GET', KEYS[3])
local created = 0
if not epoch then
  epoch = ARGV[2]
  redis.call('SET', KEYS[3], epoch)
  created = 1
end

local function parse_id(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function older(a, b) -- a < b
  local am, as = parse_id(a)
  local bm, bs = parse_id(b)
  return am < bm or (am == bm and as < bs)
end

local full = epoch ~= ARGV[1] or ARGV[5] == 'full'
if not full and ARGV[3] ~= '0-0' then
  local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
  if #first == 0 or older(ARGV[3], first[1][1]) then
    -- The log is gone (deleted) or every entry up to ours was trimmed: some after it
    -- may have been too.
    full = true
  end
end

if full then
  local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  local id = '0-0'
  if #last > 0 then
    id = last[1][1]
  end
  local t = redis.call('TIME')
  local cutoff = (tonumber(t[1]) - 60) * 1e9
  local all = redis.call('HGETALL', KEYS[1])
  local out = {}
  for i = 1, #all, 2 do
    local until_ns = string.match(all[i + 1], '^(%d+):')
    if until_ns and tonumber(until_ns) < cutoff then
      redis.call('HDEL', KEYS[1], all[i])
    else
      out[#out + 1] = all[i]
      out[#out + 1] = all[i + 1]
    end
  end
  return {'full', epoch, created, id, out}
end

local entries = redis.call('XRANGE', KEYS[2], '(' .. ARGV[3], '+', 'COUNT', tonumber(ARGV[4]))
local out = {}
for _, e in ipairs(entries) do
  local f, v = '', ''
  for j = 1, #e[2], 2 do
    if e[2][j] == 'f' then f = e[2][j + 1] elseif e[2][j] == 'v' then v = e[2][j + 1] end
  end
  out[#out + 1] = e[1]
  out[#out + 1] = f
  out[#out + 1] = v
end
return {'delta', epoch, 0, out}
