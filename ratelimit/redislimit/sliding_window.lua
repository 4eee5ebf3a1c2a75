-- Sliding window of counters for one key: the same algorithm as the memory
-- limiter (ratelimit/window.go), on the Redis server's clock in
-- microseconds. The key is one string of a fixed size whatever the limit
-- and rate, little-endian:
--
--   bytes   1-8    bucket width (µs)
--   bytes   9-16   newest bucket index
--   bytes  17-116  25 counters, bucket i's at 17 + 4 * (i mod 25)
--   bytes 117-124  the counters' sum
--   bytes 125-132  the oldest bucket with a request counted (when any)
--
-- ARGV[1] limit, ARGV[2] bucket width, ARGV[3] the time, or -1 for the
-- server's clock, ARGV[4] > 0 adds that many requests without deciding.
--
-- The script runs on Redis's one thread for every decision, so a decision
-- reads and writes only what changes: the sum and the oldest bucket are
-- kept, not recomputed from all 25 counters, and the new string is the old
-- one with the changed bytes spliced in.
--
-- Bytes 1-116 are the whole string an earlier keygate wrote (no sum, no
-- oldest). That version still reads this one's first 116 bytes right and
-- writes back 116, so during a rolling upgrade both run on one key: a
-- 116-byte string has its sum and oldest bucket recomputed once.
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local width = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local SLOTS, SIZE, MAX = 25, 132, 4294967295
local fmod, sub, rep, pack, unpack = math.fmod, string.sub, string.rep, struct.pack, struct.unpack

-- Lua numbers are doubles: fmod is exact, so the bucket index is too.
-- Bucket i's counter starts at byte 17 + 4 * fmod(i, SLOTS). (Written out
-- where used: a local function would be a new closure on every call.)
local b = (now - fmod(now, width)) / width

local raw = redis.call('GET', key)
local newest, total, oldest
if raw and #raw >= 116 then
  local w
  w, newest = unpack('<i8i8', raw)
  if #raw == SIZE then
    total, oldest = unpack('<i8i8', raw, 117)
  else
    total = 0
    for i = newest - SLOTS + 1, newest do total = total + unpack('<I4', raw, 17 + 4 * fmod(i, SLOTS)) end
    oldest = newest - SLOTS -- not known: looked for below
  end
  if w ~= width then
    -- The key's period changed: keep every counted request as made now.
    total = math.min(total, MAX)
    raw = rep('\0', 16 + 4 * fmod(b, SLOTS)) .. pack('<I4', total) .. rep('\0', 4 * (SLOTS - 1 - fmod(b, SLOTS)))
    newest, oldest = b, b
  elseif b >= newest + SLOTS then
    raw, newest, total = nil, b, 0
  elseif b > newest then
    -- Buckets newest+1 .. b left the window: drop their counts.
    for i = newest + 1, b do total = total - unpack('<I4', raw, 17 + 4 * fmod(i, SLOTS)) end
    local from, to = 17 + 4 * fmod(newest + 1, SLOTS), 17 + 4 * fmod(b, SLOTS)
    if from <= to then
      raw = sub(raw, 1, from - 1) .. rep('\0', to + 4 - from) .. sub(raw, to + 4, 116)
    else
      raw = sub(raw, 1, 16) .. rep('\0', to - 13) .. sub(raw, to + 4, from - 1) .. rep('\0', 117 - from)
    end
    newest = b
  end
else
  newest, total = b, 0
end
if not raw then raw = rep('\0', 116) end
if total == 0 then
  oldest = newest
elseif oldest <= newest - SLOTS then
  -- The oldest counted bucket left the window: find the next.
  oldest = newest - SLOTS + 1
  while oldest < newest and unpack('<I4', raw, 17 + 4 * fmod(oldest, SLOTS)) == 0 do oldest = oldest + 1 end
end

local n = tonumber(ARGV[4])
if n <= 0 then
  if total >= limit then
    -- Refused: the next request passes when total-limit+1 of the counted
    -- ones have left. Bucket i is counted until bucket i + SLOTS begins.
    local need, left = total - limit + 1, 0
    for i = oldest, newest do
      left = left + unpack('<I4', raw, 17 + 4 * fmod(i, SLOTS))
      if left >= need then return {0, total, now, (i + SLOTS) * width} end
    end
    return {0, total, now, (newest + SLOTS) * width}
  end
  n = 1
end
-- Allowed, or n > 0 requests allowed elsewhere (an instance's count from a
-- Redis outage) joining the newest bucket whatever the limit. Only that
-- counter, the header and the tail change.
local p = 17 + 4 * fmod(newest, SLOTS)
local c = unpack('<I4', raw, p)
local after = math.min(c + n, MAX)
total = total + after - c
raw = pack('<i8i8c0I4c0i8i8', width, newest, sub(raw, 17, p - 1), after, sub(raw, p + 4, 116), total, oldest)
redis.call('SET', key, raw, 'PX', math.floor(width * SLOTS / 1000) + 1)
-- A request that passed learns when the oldest counted one leaves.
return {1, total, now, (oldest + SLOTS) * width}
