-- Accept an update: check its version against the ledger, record it, and schedule its
-- message, all in one step so that a version is never recorded without its message (which
-- would make every older message "superseded" by a state that never arrives) nor the other
-- way round. It also leaves one token in the wake list, which a worker's pump waiting for
-- work pops (BLPOP); the list never holds more than one. Run through Ledger.run_accept or
-- Ledger.queue_accept (ledger.py).
--
-- KEYS[1] order hash            KEYS[2] schedule sorted set
-- KEYS[3] update-id marker      KEYS[4] wake list
-- ARGV[1] version as decimal text ('0': assign the order's next one)
-- ARGV[2] due time (the schedule score)
-- ARGV[3] message text before the version    ARGV[4] message text after the version
-- ARGV[5] marker TTL in milliseconds
-- ARGV[6] '1' to accept a version equal to the newest (a replay), else '0'
-- KEYS[5] (the HTTP API only) the receipt hash of the update id (worker/web/receipts.py)
-- ARGV[7] its request's fingerprint   ARGV[8] merchant   ARGV[9] order-ref   ARGV[10] now
-- Returns {status, version}: status is 'enqueued', 'duplicate', 'superseded', or 'full' (the
-- order is at the highest version, 2^63-1, and none was given); the version as decimal text.
-- With a receipt, also 'conflict': the update id was taken by another request (nothing done).
-- Versions are decimal text throughout (worker/lua/_versions.lua says why).

-- #include versions

-- The version after v, as text: the last digits that are 9 become 0 and carry one.
local function following(v)
  local i = #v
  while i > 0 and string.byte(v, i) == 57 do i = i - 1 end
  if i == 0 then return '1' .. string.rep('0', #v) end
  return string.sub(v, 1, i - 1) .. string.char(string.byte(v, i) + 1) .. string.rep('0', #v - i)
end

local HIGHEST = '9223372036854775807'

-- The common case costs four calls: the versions (one HMGET), the marker (SET NX, which
-- also tells a repeated update id), the version, the schedule; the wake token only when the
-- list is empty (a pump waits on it), so a busy system pays one LLEN for it. A marker is
-- read (GET) only when the update id was seen or the update is refused.
local receipt = KEYS[5]
if receipt then
  local held = redis.call('HGET', receipt, 'fingerprint')
  if held and held ~= ARGV[7] then return {'conflict', '0'} end
  if not held then
    redis.call('HSET', receipt, 'fingerprint', ARGV[7], 'merchant', ARGV[8],
      'order_ref', ARGV[9], 'accepted_at', ARGV[10])
    redis.call('PEXPIRE', receipt, ARGV[5])
  end
end
local versions = redis.call('HMGET', KEYS[1], 'enqueued', 'delivered')
local enq = canonical(versions[1])
local dlv = canonical(versions[2])
local newest = enq
if less(enq, dlv) then newest = dlv end
local v = ARGV[1]
local refused
if v == '0' then
  if not less(newest, HIGHEST) then refused = 'full' else v = following(newest) end
elseif less(v, newest) or (v == newest and ARGV[6] ~= '1') or not less(dlv, v) then
  refused = 'superseded'
end
if refused then
  -- A repeated update id answers 'duplicate' whatever its version says now.
  local seen = redis.call('GET', KEYS[3])
  if seen then return {'duplicate', seen} end
  if receipt and refused == 'superseded' then
    redis.call('HSET', receipt, 'superseded_version', newest)
  end
  return {refused, newest}
end
if not redis.call('SET', KEYS[3], v, 'NX', 'PX', ARGV[5]) then
  return {'duplicate', redis.call('GET', KEYS[3])}
end
redis.call('HSET', KEYS[1], 'enqueued', v)
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3] .. v .. ARGV[4])
if redis.call('LLEN', KEYS[4]) == 0 then redis.call('LPUSH', KEYS[4], 1) end
return {'enqueued', v}
