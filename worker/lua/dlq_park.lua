-- Park a letter: store it, index it, count it and audit it, unless it is here already (a
-- redelivered message's update, or a letter imported before) or its id is taken. Run through
-- park() in worker/deadletters/changes.py.
--
-- KEYS[1] letters hash
-- KEYS[2] the hash that recognizes the letter again: by-update (update id -> letter id) for
--         a parked update, imported (origin -> letter id) for an imported letter
-- KEYS[3] by-order sorted set   KEYS[4] counts hash
-- KEYS[5] audit stream          KEYS[6] text index's ready flag
-- KEYS[7] text index's signatures hash       KEYS[8] text index's numbers sorted set
-- KEYS[9] the audit run's list of entry ids
-- KEYS[10 .. 9 + ARGV[10]] the letter's index sorted sets
-- KEYS[10 + ARGV[10] ...] the sets of its text-index terms, in the order of ARGV[11]
-- KEYS[#KEYS] the metrics' dead-letter actions hash (the last key)
-- ARGV[1] letter id             ARGV[2] the letter's field in KEYS[2]
-- ARGV[3] letter body (compressed JSON)      ARGV[4] by-order member
-- ARGV[5] reason counter field  ARGV[6] status counter field
-- ARGV[7] merchant counter field
-- ARGV[8] audit entry as a JSON list of field/value pairs ('' for none)
-- ARGV[9] a letter id under which the letter is here already ('' for none): an imported
--         letter's id in the store it was exported from
-- ARGV[10] how many index sorted sets       ARGV[11] text-index terms as a JSON list
-- ARGV[12] the audit entry's field in KEYS[#KEYS] ('' for none)
-- ARGV[13] '1' when KEYS[#KEYS - 1] is the parked update's order hash in the ledger, whose
--          field 'parked' tells the worker's claim to check this store
--          (worker/lua/ledger_step.lua); else '0'
-- Returns {outcome, id}: 'parked', 'duplicate' (with the letter already here) or 'taken'
-- (the id is another letter's).

-- #include text_index

local existing = redis.call('HGET', KEYS[2], ARGV[2])
if existing then return {'duplicate', existing} end
if ARGV[9] ~= '' and redis.call('HEXISTS', KEYS[1], ARGV[9]) == 1 then
  return {'duplicate', ARGV[9]}
end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return {'taken', ARGV[1]} end
-- The first letter of a store is listed from the start: its text index is complete.
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('SET', KEYS[6], '1') end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], 0, ARGV[4])
local indexes = tonumber(ARGV[10])
for i = 10, 9 + indexes do redis.call('ZADD', KEYS[i], 0, ARGV[1]) end
text_index(true, ARGV[1], KEYS[7], KEYS[8], 10 + indexes, ARGV[11])
for _, f in ipairs({'total', ARGV[5], ARGV[6], ARGV[7]}) do redis.call('HINCRBY', KEYS[4], f, 1) end
if ARGV[8] ~= '' then
  local entry = redis.call('XADD', KEYS[5], '*', unpack(cjson.decode(ARGV[8])))
  redis.call('RPUSH', KEYS[9], entry)
  if ARGV[12] ~= '' then redis.call('HINCRBY', KEYS[#KEYS], ARGV[12], 1) end
end
if ARGV[13] == '1' then redis.call('HSET', KEYS[#KEYS - 1], 'parked', '1') end
return {'parked', ARGV[1]}
