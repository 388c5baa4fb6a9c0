-- Add an audit entry that goes with no change to a letter, and list it under its run. Run
-- through DeadLetterStore.record() in worker/deadletters/store.py.
--
-- KEYS[1] audit stream          KEYS[2] the audit run's list of entry ids
-- ARGV the entry's field/value pairs
-- Returns the entry's id.
local entry = redis.call('XADD', KEYS[1], '*', unpack(ARGV))
redis.call('RPUSH', KEYS[2], entry)
return entry
