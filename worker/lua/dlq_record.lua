-- Add an audit entry that goes with no change to a letter, and list it under its run. Run
-- through DeadLetterStore.record() in worker/deadletters/store.py.
--
-- KEYS[1] audit stream          KEYS[2] the audit run's list of entry ids
-- KEYS[3] the metrics' dead-letter actions hash
-- ARGV[1] the entry's field in KEYS[3] ('' for none)
-- ARGV[2...] the entry's field/value pairs
-- Returns the entry's id.
local entry = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
redis.call('RPUSH', KEYS[2], entry)
if ARGV[1] ~= '' then redis.call('HINCRBY', KEYS[3], ARGV[1], 1) end
return entry
