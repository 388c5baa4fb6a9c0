-- A worker's step after sending, once the outcome is recorded (a retry scheduled, a letter
-- parked): record a delivered version (it only ever grows), release the lock if this worker
-- still holds it, and drop the message's in-flight entry. Run by Ledger.finish (ledger.py).
--
-- KEYS[1] order hash            KEYS[2] the order's send lock
-- KEYS[3] in-flight sorted set
-- ARGV[1] delivered version as decimal text ('0': none)
-- ARGV[2] lock token            ARGV[3] the message's in-flight member
-- Returns 1.
--
-- Versions are decimal text throughout (worker/lua/_versions.lua says why).

-- #include versions

local v = ARGV[1]
if v ~= '0' and less(canonical(redis.call('HGET', KEYS[1], 'delivered')), v) then
  redis.call('HSET', KEYS[1], 'delivered', v)
end
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
redis.call('ZREM', KEYS[3], ARGV[3])
return 1
