-- Gives back what an allowed sliding-window acquire took (see window.lua).
--
-- KEYS[1]  the key's state "w:p:c:W" (see window.lua)
-- ARGV[1]  cost taken
-- ARGV[2]  window length W, microseconds
-- ARGV[3..5]  the state before the acquire: w, p, c (w = 0: absent)
-- ARGV[6..8]  the state the acquire wrote: w, p, c
-- ARGV[9]  now in Unix microseconds, or "" for the server's clock
-- ARGV[10] extra time to live, milliseconds
--
-- If nobody touched the key since, the state before is put back exactly; otherwise the
-- cost is taken back from the current window's count, then the previous one's.
local now = now_us(ARGV[9])
local W = tonumber(ARGV[2])
local raw = redis.call('GET', KEYS[1])
if not raw then
  return 0
end
local a, b, c, d = string.match(raw, '^(%d+):(%d+):(%d+):(%d+)$')
if tonumber(d) ~= W then
  -- Counted in another window length (the limit changed): fresh under this one.
  return 0
end
local sw, sp, sc = tonumber(a), tonumber(b), tonumber(c)
local nw, np, nc
if sw == tonumber(ARGV[6]) and sp == tonumber(ARGV[7]) and sc == tonumber(ARGV[8]) then
  nw, np, nc = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
  if nw == 0 then
    redis.call('DEL', KEYS[1])
    return 1
  end
else
  local w = idiv(now, W)
  local prev, cur = 0, 0
  nw = w
  if sw == w then
    prev, cur = sp, sc
  elseif sw == w - 1 then
    prev, cur = sc, 0
  elseif sw > w then
    nw, prev, cur = sw, sp, sc
  end
  if prev == 0 and cur == 0 then
    return 0
  end
  local cost = tonumber(ARGV[1])
  local from_cur = math.min(cur, cost)
  local from_prev = math.min(prev, cost - from_cur)
  np, nc = prev - from_prev, cur - from_cur
end
local ttl = idiv(math.max((nw + 2) * W - now, 0) + 999, 1000) + tonumber(ARGV[10])
redis.call('SET', KEYS[1], string.format('%d:%d:%d:%d', nw, np, nc, W), 'PX', math.max(ttl, 1))
return 1
