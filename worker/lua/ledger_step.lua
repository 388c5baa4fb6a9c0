-- A worker's step on the ledger, in one round trip: finish the attempt it has just sent (if
-- any), then claim the next update of its task (if any), then drop the in-flight entries
-- (worker/schedule.py) of the messages its task has finished (if any). Each part is optional;
-- run by Ledger.step (ledger.py), which says why they ride together.
--
-- KEYS[1] the metrics log      KEYS[2..6] the five metrics hashes its entries number
--                              (worker/lua/_metrics_log.lua)
-- ARGV[1], ARGV[2], ARGV[3] whether the finish, the claim and the drop part are present
--                              ('1' or '0')
-- ARGV[4] how many entries the metrics log holds before it is folded
-- The parts present follow, with their keys and arguments, in this order:
--
-- Finish (3 keys, 5 arguments): record a delivered version, release the order's send lock if
-- this worker still holds it, write the update's outcome record, count the outcome.
--   keys: order hash, the order's send lock, the update's outcome record
--   args: delivered version as decimal text ('0': none), lock token, outcome record as JSON
--         ('' for none), its TTL in milliseconds, metrics entry ('' for none)
--
-- Claim (4 keys, 8 arguments): is the update parked already, is its version still the one to
-- send (the rule of ledger.decide, which tests/worker/test_ledger_claim.py keeps in step with
-- this script), and if so take the order's send lock. Taking the lock in the same step as
-- the check means the check needs no repeating under the lock, and a stale message never
-- holds the lock, not even briefly (which would make the newest version wait).
--   keys: order hash, the order's send lock, dead letters' by-update hash, the update's
--         outcome record (written when the update is superseded)
--   args: update id, version as decimal text, lock token (the lock holds token:version),
--         lock TTL in milliseconds, the superseded outcome record as JSON without its closing
--         brace ('' to write none), its TTL in milliseconds, '1' to count an outcome decided
--         here (parked, duplicate, superseded) in the metrics log, '1' to look among the dead
--         letters whatever the order's flag says (while a worker of a release before the
--         flag may still park: DeadLetterStore.flag_parked_orders)
--
-- Drop (1 key, the rest of the arguments): the in-flight sorted set, and the members to drop.
--
-- Returns the claim's finding ('parked', 'duplicate', 'superseded', 'busy' or 'send'), or
-- '' without a claim part.
--
-- Versions are decimal text throughout (worker/lua/_versions.lua says why).

-- #include versions
-- #include metrics_log

local metrics_log, metrics_hashes = KEYS[1], {KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]}
local fold_at = tonumber(ARGV[4])
local k, a = 7, 5

if ARGV[1] == '1' then
  local order, lock, record = KEYS[k], KEYS[k + 1], KEYS[k + 2]
  local v, token, record_json, record_ttl = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local entry = ARGV[a + 4]
  k, a = k + 3, a + 5
  -- The lock holds the claim's token and version (token:version).
  local held = redis.call('GET', lock)
  if held and string.sub(held, 1, #token + 1) == token .. ':' then redis.call('DEL', lock) end
  if v ~= '0' then
    if held == token .. ':' .. v then
      -- Held since the claim that found v newer than any version delivered, the lock kept
      -- every other delivery of this order out since: no need to read the ledger again.
      redis.call('HSET', order, 'delivered', v)
    elseif less(canonical(redis.call('HGET', order, 'delivered')), v) then
      -- The lock ran out while sending (or v is not the version claimed): record v only if
      -- nothing newer was delivered meanwhile.
      redis.call('HSET', order, 'delivered', v)
    end
  end
  if record_json ~= '' then redis.call('SET', record, record_json, 'PX', record_ttl) end
  if entry ~= '' then log_metrics(metrics_log, entry, fold_at, metrics_hashes) end
end

local found = ''
if ARGV[2] == '1' then
  local order, lock, parked, record = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local update_id, v, token, lock_ttl = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local record_head, record_ttl, count = ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]
  local look_always = ARGV[a + 7] == '1'
  k, a = k + 4, a + 8
  -- The dead letters are looked at only for an order one of whose updates was parked (the
  -- park sets the order's field 'parked': worker/lua/dlq_park.lua).
  local ledger = redis.call('HMGET', order, 'enqueued', 'delivered', 'parked')
  if (ledger[3] or look_always) and redis.call('HEXISTS', parked, update_id) == 1 then
    found = 'parked'
  else
    local enq = canonical(ledger[1])
    local dlv = canonical(ledger[2])
    if v == dlv then found = 'duplicate'
    elseif less(v, enq) or less(v, dlv) then
      found = 'superseded'
      if record_head ~= '' then
        local newest = enq
        if less(enq, dlv) then newest = dlv end
        redis.call('SET', record, record_head .. ',"superseded_by":' .. newest .. '}', 'PX', record_ttl)
      end
    elseif redis.call('SET', lock, token .. ':' .. v, 'NX', 'PX', lock_ttl) then found = 'send'
    else found = 'busy' end
  end
  if count == '1' then
    local counted = {parked = 'duplicate|already_dead_lettered', duplicate = 'duplicate|',
      superseded = 'superseded|'}
    if counted[found] then
      log_metrics(metrics_log, '[[1,"' .. counted[found] .. '",1]]', fold_at, metrics_hashes)
    end
  end
end

if ARGV[3] == '1' then
  local inflight = KEYS[k]
  if #ARGV >= a then redis.call('ZREM', inflight, unpack(ARGV, a)) end
end

return found
