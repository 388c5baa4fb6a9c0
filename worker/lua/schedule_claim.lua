-- Claim due entries for as many tasks as the Celery queue has room for. Run by
-- Schedule.claim_due (schedule.py).
--
-- With a watch time (ARGV[6]), the claimed entries are handed off at once: they leave the
-- schedule for the in-flight set, watched until then (what Schedule.hand_off does, in the
-- same step, so that a pump pays one round trip per look). Without one, each claimed entry is
-- hidden until the lease ends (its score moves there).
--
-- Whatever the number of entries, a claim makes at most four calls (LLEN, ZRANGEBYSCORE,
-- and one ZREM and one ZADD naming every entry, in chunks of CHUNK), not one or two per entry.
--
-- KEYS[1] schedule sorted set   KEYS[2] Celery queue list
-- KEYS[3] in-flight sorted set
-- ARGV[1] now                   ARGV[2] lease ends at
-- ARGV[3] task slots            ARGV[4] updates per task at most
-- ARGV[5] entries one claim takes at most
-- ARGV[6] watched in flight until ('' for none: hide for the lease instead)
-- Returns {free slots, claimed members...}; no member is claimed when no slot is free.
local CHUNK = 200
local free = tonumber(ARGV[3]) - redis.call('LLEN', KEYS[2])
if free <= 0 then return {0} end
local limit = math.min(free * tonumber(ARGV[4]), tonumber(ARGV[5]))
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, limit)
local score = ARGV[2]
if ARGV[6] ~= '' then score = ARGV[6] end
for first = 1, #due, CHUNK do
  local last = math.min(first + CHUNK - 1, #due)
  local scored = {}
  for i = first, last do
    scored[#scored + 1] = score
    scored[#scored + 1] = due[i]
  end
  if ARGV[6] ~= '' then
    redis.call('ZREM', KEYS[1], unpack(due, first, last))
    redis.call('ZADD', KEYS[3], unpack(scored))
  else
    redis.call('ZADD', KEYS[1], 'XX', unpack(scored))
  end
end
table.insert(due, 1, free)
return due
