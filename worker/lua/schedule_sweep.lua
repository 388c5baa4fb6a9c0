-- Schedule again, due now, the in-flight entries presumed lost, while the Celery queue is
-- empty. Run by Schedule.sweep (schedule.py).
--
-- KEYS[1] in-flight sorted set  KEYS[2] schedule sorted set
-- KEYS[3] Celery queue list
-- ARGV[1] now                   ARGV[2] entries to move at most
-- Returns how many entries moved.
if redis.call('LLEN', KEYS[3]) > 0 then return 0 end
local lost = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(lost) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('ZADD', KEYS[2], ARGV[1], member)
end
return #lost
