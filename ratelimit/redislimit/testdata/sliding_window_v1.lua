-- Sliding window of counters for one key: the same algorithm as the memory
-- limiter (ratelimit/window.go), on the Redis server's clock in
-- microseconds. The key is one string: bucket width, newest bucket index
-- and ARGV[4] counters, packed; a fixed size whatever the limit and rate.
-- ARGV[6] > 0 adds that many requests without deciding anything.
--
-- The script runs on Redis's one thread for every decision, so it works
-- on the unpacked array in place (c[1] width, c[2] newest bucket,
-- c[3 .. slots + 2] the counters, bucket i's at c[i mod slots + 3]) and
-- packs that same array back: no second table, no copies.
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local width = tonumber(ARGV[2])
local ttl = ARGV[3]
local slots = tonumber(ARGV[4])
local now = tonumber(ARGV[5])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local fmod = math.fmod
local format = '<i8i8' .. string.rep('I4', slots)

-- Lua numbers are doubles: fmod is exact, so the bucket index is too.
local b = (now - fmod(now, width)) / width
local newest = b

local c
local raw = redis.call('GET', key)
if raw then
  c = {struct.unpack(format, raw)}
  c[slots + 3] = nil -- unpack's last value is the position after the string
  if c[1] ~= width then
    -- The key's period changed: keep every counted request as made now.
    local total = 0
    for i = 3, slots + 2 do
      total = total + c[i]
      c[i] = 0
    end
    c[fmod(b, slots) + 3] = total
  elseif b <= c[2] then
    newest = c[2]
  else
    for i = c[2] + 1, math.min(b, c[2] + slots) do c[fmod(i, slots) + 3] = 0 end
  end
else
  c = {0, 0}
  for i = 3, slots + 2 do c[i] = 0 end
end
c[1], c[2] = width, newest

local total = 0
for i = 3, slots + 2 do total = total + c[i] end

-- When need counted requests have left the window: bucket i is counted
-- until bucket i + slots begins.
local function freesAt(need)
  local left = 0
  for i = newest - slots + 1, newest do
    left = left + c[fmod(i, slots) + 3]
    if left >= need then return (i + slots) * width end
  end
  return (newest + slots) * width
end

local n = fmod(newest, slots) + 3
local seed = tonumber(ARGV[6])
if seed > 0 then
  -- Requests allowed elsewhere (an instance's count from a Redis outage)
  -- join the newest bucket whatever the limit.
  c[n] = c[n] + seed
  redis.call('SET', key, struct.pack(format, unpack(c)), 'PX', ttl)
  return {1, total + seed, now, freesAt(1)}
end
if total < limit then
  c[n] = c[n] + 1
  redis.call('SET', key, struct.pack(format, unpack(c)), 'PX', ttl)
  return {1, total + 1, now, freesAt(1)}
end
return {0, total, now, freesAt(total - limit + 1)}
