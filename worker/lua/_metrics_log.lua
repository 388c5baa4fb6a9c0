-- The metrics log, shared by the scripts that count an outcome: worker/scripts.py copies this
-- file in where a script names it.
--
-- Counting an update into the metrics hashes one by one (HINCRBY, HINCRBYFLOAT) costs a
-- command per counter, seven for a delivered update. Instead a script appends one entry per
-- update to a list (RPUSH) and, once the list holds `fold_at` entries, folds them all into
-- the hashes: one HMGET and one HSET per hash, whatever the number of counters. The entry is
-- written in the same step as the outcome it counts, so the counts stay exact; the collector
-- reads the hashes and the entries not yet folded together, adding them up in the same order
-- as the fold, so that a sum never reads lower after a fold than before it (worker/metrics.py,
-- with_log).
--
-- Counting never stops the step it rides in: a call that fails here (a metrics key of the
-- wrong type, say) is skipped with redis.pcall, and an entry that does not read is left out.
--
-- log_key: the list. hashes: the metrics hashes, in the order the entries number them.
-- An entry is a JSON list of [hash number, field, amount] (amounts are counts, or seconds for
-- the fields that sum them).
local function log_metrics(log_key, entry, fold_at, hashes)
  local length = redis.pcall('RPUSH', log_key, entry)
  if type(length) ~= 'number' or length < fold_at then return end
  local sums = {}
  for _, text in ipairs(redis.call('LRANGE', log_key, 0, -1)) do
    local ok, items = pcall(cjson.decode, text)
    if ok and type(items) == 'table' then
      for _, item in ipairs(items) do
        if type(item) == 'table' and hashes[item[1]] and type(item[2]) == 'string'
            and type(item[3]) == 'number' then
          local fields = sums[item[1]]
          if not fields then fields = {}; sums[item[1]] = fields end
          fields[item[2]] = (fields[item[2]] or 0) + item[3]
        end
      end
    end
  end
  for number, fields in pairs(sums) do
    local names = {}
    for name in pairs(fields) do names[#names + 1] = name end
    local current = redis.pcall('HMGET', hashes[number], unpack(names))
    if not current.err then
      local pairs_out = {}
      for i, name in ipairs(names) do
        pairs_out[#pairs_out + 1] = name
        -- %.17g: counts stay plain digits (HINCRBY still adds to them), sums keep every bit.
        pairs_out[#pairs_out + 1] =
          string.format('%.17g', (tonumber(current[i]) or 0) + fields[name])
      end
      redis.pcall('HSET', hashes[number], unpack(pairs_out))
    end
  end
  redis.call('DEL', log_key)
end
