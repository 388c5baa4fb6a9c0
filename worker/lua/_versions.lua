-- Versions as decimal text, shared by the scripts that compare them: worker/scripts.py copies
-- this file in where a script names it (see that module).
--
-- Versions stay decimal text, never Lua numbers: those are doubles, exact only up to 2^53,
-- and a version goes up to 2^63-1 (a microsecond timestamp is past 2^53). Text of digits
-- without leading zeros compares as a number by length first, then digit by digit.

-- A stored version as such text. A version written as a Lua number by an older release may
-- read '1e+20': it becomes the digits of that number.
local function canonical(stored)
  if not stored then return '0' end
  if string.find(stored, '^%d+$') then return (string.gsub(stored, '^0+(%d)', '%1')) end
  local n = tonumber(stored) or 0
  if n ~= n or n < 0 or n == math.huge then n = 0 end
  return string.format('%.0f', n)
end

-- a < b for versions as text (string.byte, not '<': Lua compares strings by the locale).
local function less(a, b)
  if #a ~= #b then return #a < #b end
  for i = 1, #a do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return false
end
