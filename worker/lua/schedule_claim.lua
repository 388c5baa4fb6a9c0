-- Claim due entries for as many tasks as the Celery queue has room for: each claimed entry
-- is hidden until the lease ends (its score moves there). Run by Schedule.claim_due
-- (schedule.py).
--
-- KEYS[1] schedule sorted set   KEYS[2] Celery queue list
-- ARGV[1] now                   ARGV[2] lease ends at
-- ARGV[3] task slots            ARGV[4] updates per task at most
-- ARGV[5] entries one claim takes at most
-- Returns {free slots, claimed members...}; no member is claimed when no slot is free.
local free = tonumber(ARGV[3]) - redis.call('LLEN', KEYS[2])
if free <= 0 then return {0} end
local limit = math.min(free * tonumber(ARGV[4]), tonumber(ARGV[5]))
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, limit)
for _, member in ipairs(due) do redis.call('ZADD', KEYS[1], 'XX', ARGV[2], member) end
table.insert(due, 1, free)
return due
