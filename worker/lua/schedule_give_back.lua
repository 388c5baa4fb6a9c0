-- Schedule in-flight entries again: entries a worker took but did not start, due now (and a
-- waiting pump is woken); entries whose publish failed, due when their claim's lease ends;
-- an update whose processing failed unexpectedly, due after a backoff. Run by
-- Schedule.give_back and Schedule.put_back (schedule.py).
--
-- KEYS[1] in-flight sorted set  KEYS[2] schedule sorted set
-- KEYS[3] wake list
-- ARGV[1] due at                ARGV[2] '1': wake a waiting pump
-- ARGV[3...] members
-- Returns 1.
for i = 3, #ARGV do
  redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[i])
end
if ARGV[2] == '1' then
  redis.call('LPUSH', KEYS[3], 1)
  redis.call('LTRIM', KEYS[3], 0, 0)
end
return 1
