-- List letters in the error-text index (``cartsync dlq reindex``), each only if it is still
-- stored as read: one removed or changed meanwhile was unlisted or listed by that change.
-- Run through add_text_terms() in worker/deadletters/changes.py.
--
-- KEYS[1] letters hash          KEYS[2] text index's signatures hash
-- KEYS[3] text index's numbers sorted set
-- KEYS[4 ...] the sets of the letters' terms, letter after letter, in the order of ARGV
-- ARGV[1] a letter's id       ARGV[2] its token (sha1 of the body as read)
-- ARGV[3] its terms as a JSON list; then the next letter's three, and so on
-- Returns how many letters were listed.

-- #include text_index

local listed, first = 0, 4
for i = 1, #ARGV, 3 do
  local body = redis.call('HGET', KEYS[1], ARGV[i])
  local count = #cjson.decode(ARGV[i + 2])
  if body and redis.sha1hex(body) == ARGV[i + 1] then
    text_index(true, ARGV[i], KEYS[2], KEYS[3], first, ARGV[i + 2])
    listed = listed + 1
  end
  first = first + count
end
return listed
