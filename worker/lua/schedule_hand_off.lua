-- Hand published entries off to the in-flight set. Run by Schedule.hand_off (schedule.py);
-- the pump's claim does the same in its own step (schedule_claim.lua).
--
-- KEYS[1] schedule sorted set   KEYS[2] in-flight sorted set
-- ARGV[1] presumed lost at      ARGV[2...] members
-- Returns 1.
local CHUNK = 200
for first = 2, #ARGV, CHUNK do
  local last = math.min(first + CHUNK - 1, #ARGV)
  local scored = {}
  for i = first, last do
    scored[#scored + 1] = ARGV[1]
    scored[#scored + 1] = ARGV[i]
  end
  redis.call('ZREM', KEYS[1], unpack(ARGV, first, last))
  redis.call('ZADD', KEYS[2], unpack(scored))
end
return 1
