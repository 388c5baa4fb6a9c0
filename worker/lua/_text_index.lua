-- The error-text index (worker/deadletters/textindex.py): a letter's terms listed or unlisted
-- with the letter. A term is {kind, vocabulary field, vocabulary text}; its set of letter ids
-- is KEYS[first + i - 1]. A term whose last letter leaves leaves the vocabulary too.
local function text_index(add, id, sigs, nums, first, terms_json)
  if terms_json == '' then return end
  for i, term in ipairs(cjson.decode(terms_json)) do
    local key = KEYS[first + i - 1]
    if add then
      redis.call('SADD', key, id)
      if term[1] == 's' then redis.call('HSETNX', sigs, term[2], term[3])
      else redis.call('ZADD', nums, 0, term[3]) end
    elseif redis.call('SREM', key, id) == 1 and redis.call('EXISTS', key) == 0 then
      if term[1] == 's' then redis.call('HDEL', sigs, term[2])
      else redis.call('ZREM', nums, term[3]) end
    end
  end
end
