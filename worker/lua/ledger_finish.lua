-- A worker's step after sending, once the outcome is recorded (a retry scheduled, a letter
-- parked): record a delivered version (it only ever grows), release the lock if this worker
-- still holds it, and drop the message's in-flight entry. Run by Ledger.finish (ledger.py).
--
-- KEYS[1] order hash            KEYS[2] the order's send lock
-- KEYS[3] in-flight sorted set
-- ARGV[1] delivered version as decimal text ('0': none)
-- ARGV[2] lock token            ARGV[3] the message's in-flight member
-- Returns 1.
--
-- Versions stay decimal text, never Lua numbers (exact only up to 2^53): see
-- ledger_accept.lua, whose canonical and less these are.

local function canonical(stored)
  if not stored then return '0' end
  if string.find(stored, '^%d+$') then return (string.gsub(stored, '^0+(%d)', '%1')) end
  local n = tonumber(stored) or 0
  if n ~= n or n < 0 or n == math.huge then n = 0 end
  return string.format('%.0f', n)
end

local function less(a, b)
  if #a ~= #b then return #a < #b end
  for i = 1, #a do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return false
end

local v = ARGV[1]
if v ~= '0' and less(canonical(redis.call('HGET', KEYS[1], 'delivered')), v) then
  redis.call('HSET', KEYS[1], 'delivered', v)
end
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
redis.call('ZREM', KEYS[3], ARGV[3])
return 1
