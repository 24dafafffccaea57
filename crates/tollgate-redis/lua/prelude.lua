-- Shared by the rate scripts: prepended to each when it is loaded (see store.rs), since
-- a Redis script cannot load another.
--
-- idiv(a, b): floor(a / b) for integers below 2^53, exact: the double quotient is
-- corrected by one either way.
local function idiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then
    q = q - 1
  elseif (q + 1) * b <= a then
    q = q + 1
  end
  return q
end

-- now_us(arg): the caller's time in Unix microseconds, or the server's clock (TIME)
-- when `arg` is ''.
local function now_us(arg)
  if arg == '' then
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000000 + tonumber(t[2])
  end
  return tonumber(arg)
end

