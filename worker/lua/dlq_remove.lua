-- Remove a letter, its index entries and its counts, if it is still as read; optionally
-- remember the version a forced replay of it sent. Run through remove() in
-- worker/deadletters/changes.py.
--
-- A damaged letter is removed from where the store found it: a part of its place that is
-- unknown comes as '' (no update-id entry, no by-order member, no counter) and its indexes
-- are only those found (its text-index terms are unknown: what they leave behind names a
-- letter that is gone, which a search passes over). Counters go down only when the letter
-- was in the index of every letter, which is where parking counted it.
--
-- KEYS[1] letters hash          KEYS[2] by-update hash
-- KEYS[3] by-order sorted set   KEYS[4] counts hash
-- KEYS[5] audit stream          KEYS[6] forced hash
-- KEYS[7] text index's signatures hash       KEYS[8] text index's numbers sorted set
-- KEYS[9] the audit run's list of entry ids
-- KEYS[10] the index of every letter
-- KEYS[11 .. 9 + ARGV[11]] the letter's other index sorted sets
-- KEYS[10 + ARGV[11] ...] the sets of its text-index terms, in the order of ARGV[12]
-- KEYS[#KEYS] the metrics' dead-letter actions hash (the last key)
-- ARGV[1] letter id
-- ARGV[2] token: sha1 of the body as read ('' to remove whatever is stored)
-- ARGV[3] update id ('' for none)            ARGV[4] by-order member ('' for none)
-- ARGV[5] reason counter field  ARGV[6] status counter field
-- ARGV[7] merchant counter field             ('' for none)
-- ARGV[8] audit entry as a JSON list of field/value pairs ('' for none)
-- ARGV[9] forced field ('' for none)         ARGV[10] forced version
-- ARGV[11] how many index sorted sets        ARGV[12] text-index terms as a JSON list
-- ARGV[13] the audit entry's field in KEYS[#KEYS] ('' for none)
-- Returns 'removed', 'gone' or 'changed'.

-- #include versions
-- #include text_index

local body = redis.call('HGET', KEYS[1], ARGV[1])
if not body then return 'gone' end
if ARGV[2] ~= '' and redis.sha1hex(body) ~= ARGV[2] then return 'changed' end
redis.call('HDEL', KEYS[1], ARGV[1])
if ARGV[3] ~= '' and redis.call('HGET', KEYS[2], ARGV[3]) == ARGV[1] then
  redis.call('HDEL', KEYS[2], ARGV[3])
end
if ARGV[4] ~= '' then redis.call('ZREM', KEYS[3], ARGV[4]) end
local counted = redis.call('ZREM', KEYS[10], ARGV[1]) == 1
local indexes = tonumber(ARGV[11])
for i = 11, 9 + indexes do redis.call('ZREM', KEYS[i], ARGV[1]) end
text_index(false, ARGV[1], KEYS[7], KEYS[8], 10 + indexes, ARGV[12])
if counted then
  for _, f in ipairs({'total', ARGV[5], ARGV[6], ARGV[7]}) do
    if f ~= '' and redis.call('HINCRBY', KEYS[4], f, -1) <= 0 then redis.call('HDEL', KEYS[4], f) end
  end
end
if ARGV[9] ~= '' then
  if less(redis.call('HGET', KEYS[6], ARGV[9]) or '0', ARGV[10]) then
    redis.call('HSET', KEYS[6], ARGV[9], ARGV[10])
  end
end
if ARGV[8] ~= '' then
  local entry = redis.call('XADD', KEYS[5], '*', unpack(cjson.decode(ARGV[8])))
  redis.call('RPUSH', KEYS[9], entry)
  if ARGV[#ARGV] ~= '' then redis.call('HINCRBY', KEYS[#KEYS], ARGV[#ARGV], 1) end
end
return 'removed'
