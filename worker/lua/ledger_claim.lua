-- A worker's step before sending, in one round trip: is the update parked already, is its
-- version still the one to send (the rule of ledger.decide, which
-- tests/worker/test_ledger_claim.py keeps in step with this script), and if so take the
-- order's send lock. Taking the lock in the same step as the check means the check needs no
-- repeating under the lock, and a stale message never holds the lock, not even briefly (which
-- would make the newest version wait). An outcome decided here is final, so the message's
-- in-flight entry (schedule.py) goes in the same step. Run by Ledger.claim (ledger.py).
--
-- KEYS[1] order hash            KEYS[2] the order's send lock
-- KEYS[3] dead letters' update-id hash       KEYS[4] in-flight sorted set
-- ARGV[1] update id             ARGV[2] version as decimal text
-- ARGV[3] lock token            ARGV[4] lock TTL in milliseconds
-- ARGV[5] the message's in-flight member ('' for none)
-- KEYS[5] (optional) the update's outcome record (worker/outcome_records.py), written when
-- the update is superseded: ARGV[6] its TTL in milliseconds, ARGV[7] now, ARGV[8] merchant,
-- ARGV[9] order-ref, ARGV[10] enqueued at, ARGV[11] attempts so far
-- Returns 'parked', 'duplicate', 'superseded', 'busy' or 'send'.
--
-- Versions are decimal text throughout (worker/lua/_versions.lua says why).

-- #include versions

local found
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then
  found = 'parked'
else
  local versions = redis.call('HMGET', KEYS[1], 'enqueued', 'delivered')
  local enq = canonical(versions[1])
  local dlv = canonical(versions[2])
  local v = ARGV[2]
  if v == dlv then found = 'duplicate'
  elseif less(v, enq) or less(v, dlv) then
    found = 'superseded'
    if KEYS[5] then
      local newest = enq
      if less(enq, dlv) then newest = dlv end
      redis.call('HSET', KEYS[5], 'outcome', 'superseded', 'at', ARGV[7], 'merchant', ARGV[8],
        'order_ref', ARGV[9], 'version', v, 'enqueued_at', ARGV[10], 'attempts', ARGV[11],
        'status', '', 'next_try_at', '', 'letter_id', '', 'reason', '', 'superseded_by', newest)
      redis.call('PEXPIRE', KEYS[5], ARGV[6])
    end
  elseif redis.call('SET', KEYS[2], ARGV[3], 'NX', 'PX', ARGV[4]) then return 'send'
  else return 'busy' end
end
redis.call('ZREM', KEYS[4], ARGV[5])
return found
