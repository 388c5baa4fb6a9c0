-- Hand published entries off to the in-flight set. Run by Schedule.hand_off (schedule.py).
--
-- KEYS[1] schedule sorted set   KEYS[2] in-flight sorted set
-- ARGV[1] presumed lost at      ARGV[2...] members
-- Returns 1.
for i = 2, #ARGV do
  redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[i])
end
return 1
