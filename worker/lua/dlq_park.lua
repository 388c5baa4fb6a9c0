-- Park a letter: store it, index it, count it and audit it, unless it is here already (a
-- redelivered message's update, or a letter imported before) or its id is taken. Run through
-- park() in worker/deadletters/changes.py.
--
-- KEYS[1] letters hash
-- KEYS[2] the hash that recognizes the letter again: by-update (update id -> letter id) for
--         a parked update, imported (origin -> letter id) for an imported letter
-- KEYS[3] by-order sorted set   KEYS[4] counts hash
-- KEYS[5] audit stream          KEYS[6] the metrics' dead-letter actions hash
-- KEYS[7...] the letter's index sorted sets
-- ARGV[1] letter id             ARGV[2] the letter's field in KEYS[2]
-- ARGV[3] letter body (compressed JSON)      ARGV[4] by-order member
-- ARGV[5] reason counter field  ARGV[6] status counter field
-- ARGV[7] merchant counter field
-- ARGV[8] audit entry as a JSON list of field/value pairs ('' for none)
-- ARGV[9] a letter id under which the letter is here already ('' for none): an imported
--         letter's id in the store it was exported from
-- ARGV[10] the audit entry's field in KEYS[6] ('' for none)
-- Returns {outcome, id}: 'parked', 'duplicate' (with the letter already here) or 'taken'
-- (the id is another letter's).
local existing = redis.call('HGET', KEYS[2], ARGV[2])
if existing then return {'duplicate', existing} end
if ARGV[9] ~= '' and redis.call('HEXISTS', KEYS[1], ARGV[9]) == 1 then
  return {'duplicate', ARGV[9]}
end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return {'taken', ARGV[1]} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], 0, ARGV[4])
for i = 7, #KEYS do redis.call('ZADD', KEYS[i], 0, ARGV[1]) end
for _, f in ipairs({'total', ARGV[5], ARGV[6], ARGV[7]}) do redis.call('HINCRBY', KEYS[4], f, 1) end
if ARGV[8] ~= '' then redis.call('XADD', KEYS[5], '*', unpack(cjson.decode(ARGV[8]))) end
if ARGV[10] ~= '' then redis.call('HINCRBY', KEYS[6], ARGV[10], 1) end
return {'parked', ARGV[1]}
