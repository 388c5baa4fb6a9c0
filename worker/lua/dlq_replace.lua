-- Store a changed copy of a letter, if it is still as read. Run through replace() in
-- worker/deadletters/changes.py.
--
-- KEYS[1] letters hash          KEYS[2] audit stream
-- KEYS[3] text index's signatures hash       KEYS[4] text index's numbers sorted set
-- KEYS[5] the audit run's list of entry ids
-- KEYS[6 .. 5 + ARGV[5]] the sets of the text-index terms the letter leaves (ARGV[6])
-- KEYS[6 + ARGV[5] ...] the sets of every text-index term of the copy (ARGV[7])
-- KEYS[#KEYS] the metrics' dead-letter actions hash (the last key)
-- ARGV[1] letter id             ARGV[2] token: sha1 of the body as read
-- ARGV[3] new body              ARGV[4] audit entry as a JSON list ('' for none)
-- ARGV[5] how many terms it leaves           ARGV[6], ARGV[7] terms as JSON lists
-- ARGV[8] the audit entry's field in KEYS[#KEYS] ('' for none)
-- Returns 'replaced', 'gone' or 'changed'.

-- #include text_index

local body = redis.call('HGET', KEYS[1], ARGV[1])
if not body then return 'gone' end
if redis.sha1hex(body) ~= ARGV[2] then return 'changed' end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
local left = tonumber(ARGV[5])
text_index(false, ARGV[1], KEYS[3], KEYS[4], 6, ARGV[6])
text_index(true, ARGV[1], KEYS[3], KEYS[4], 6 + left, ARGV[7])
if ARGV[4] ~= '' then
  local entry = redis.call('XADD', KEYS[2], '*', unpack(cjson.decode(ARGV[4])))
  redis.call('RPUSH', KEYS[5], entry)
  if ARGV[#ARGV] ~= '' then redis.call('HINCRBY', KEYS[#KEYS], ARGV[#ARGV], 1) end
end
return 'replaced'
