-- Store a changed copy of a letter, if it is still as read. Run through replace() in
-- worker/deadletters/changes.py.
--
-- KEYS[1] letters hash          KEYS[2] audit stream
-- KEYS[3] the metrics' dead-letter actions hash
-- ARGV[1] letter id             ARGV[2] token: sha1 of the body as read
-- ARGV[3] new body              ARGV[4] audit entry as a JSON list ('' for none)
-- ARGV[5] the audit entry's field in KEYS[3] ('' for none)
-- Returns 'replaced', 'gone' or 'changed'.
local body = redis.call('HGET', KEYS[1], ARGV[1])
if not body then return 'gone' end
if redis.sha1hex(body) ~= ARGV[2] then return 'changed' end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if ARGV[4] ~= '' then redis.call('XADD', KEYS[2], '*', unpack(cjson.decode(ARGV[4]))) end
if ARGV[5] ~= '' then redis.call('HINCRBY', KEYS[3], ARGV[5], 1) end
return 'replaced'
