-- Schedule in-flight entries again, due now, that a worker took but did not start, and wake
-- a waiting pump. Run by Schedule.give_back (schedule.py).
--
-- KEYS[1] in-flight sorted set  KEYS[2] schedule sorted set
-- KEYS[3] wake list
-- ARGV[1] now                   ARGV[2...] members
-- Returns 1.
for i = 2, #ARGV do
  redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[i])
end
redis.call('LPUSH', KEYS[3], 1)
redis.call('LTRIM', KEYS[3], 0, 0)
return 1
