-- Check-and-add on a company's shared quota counter for one period.
--
-- KEYS[1]  the counter, a hash: "used" = the company's calls this period (all
--          instances); "i:<instance>" = what each instance contributed (its seed plus
--          its calls), so a counter that vanished can be rebuilt from each instance's
--          durable ledger; "f:<instance>" = the last batch id flushed (see quota_flush);
--          "n" = how many instances have a share (see quota_seed)
-- KEYS[2]  this process's call ids for the counter: a bitmap, one bit per call (the
--          call's sequence number within the key's chunk), set when the call is counted
-- KEYS[3]  the warning's claim key, KEYS[4] the overage's (see claim_crossed)
-- ARGV[1]  the instance id
-- ARGV[2]  cost
-- ARGV[3]  hard cap (calls above it are refused), or -1 for none
-- ARGV[4]  the call's bit in KEYS[2]; ARGV[5] how long KEYS[2] is kept, seconds
-- ARGV[6]  the warning threshold (-1: none); ARGV[7] the limit
-- ARGV[8]  the call's id (the claim keys' value when it claims a notice)
-- ARGV[9]  when the claim keys expire, Unix seconds
--
-- Returns {status, used, won, shares}: status 1 counted (used after the call), 0
-- refused over the hard cap (nothing counted), -1 the counter is missing, -2 it exists
-- without this instance's share (it was rebuilt after a loss by another instance). On
-- -1/-2 the caller seeds its share (quota_seed) and calls again. won: the notices this
-- call claimed (1 warning, 2 overage); shares: the instances with a share. All values
-- stay far below 2^53.
return check_and_add(KEYS[1], 'i:' .. ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]),
  KEYS[2], ARGV[4], ARGV[5], KEYS[3], KEYS[4], tonumber(ARGV[6]), tonumber(ARGV[7]),
  ARGV[8], ARGV[9])
