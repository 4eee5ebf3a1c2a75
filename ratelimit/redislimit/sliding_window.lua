-- Sliding window of counters for one key: the same algorithm as the memory
-- limiter (ratelimit/window.go), on the Redis server's clock in
-- microseconds. The key is one string: bucket width, newest bucket index
-- and ARGV[4] counters, packed; a fixed size whatever the limit and rate.
-- ARGV[6] > 0 adds that many requests without deciding anything.
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

local format = '<i8i8' .. string.rep('I4', slots)

-- Lua numbers are doubles: fmod is exact, so the bucket index is too.
local function bucket(at)
  return (at - math.fmod(at, width)) / width
end

local function slot(i)
  return math.fmod(i, slots) + 1
end

local b = bucket(now)
local counts = {}
for i = 1, slots do counts[i] = 0 end
local newest = b

local raw = redis.call('GET', key)
if raw then
  local v = {struct.unpack(format, raw)}
  local oldWidth, oldNewest = v[1], v[2]
  if oldWidth ~= width then
    -- The key's period changed: keep every counted request as made now.
    local total = 0
    for i = 1, slots do total = total + v[i + 2] end
    counts[slot(b)] = total
  else
    for i = 1, slots do counts[i] = v[i + 2] end
    if b <= oldNewest then
      newest = oldNewest
    else
      local last = math.min(b, oldNewest + slots)
      for i = oldNewest + 1, last do counts[slot(i)] = 0 end
    end
  end
end

local total = 0
for i = 1, slots do total = total + counts[i] end

-- When need counted requests have left the window: bucket i is counted
-- until bucket i + slots begins.
local function freesAt(need)
  local left = 0
  for i = newest - slots + 1, newest do
    left = left + counts[slot(i)]
    if left >= need then return (i + slots) * width end
  end
  return (newest + slots) * width
end

local allowed = 0
local reset
local seed = tonumber(ARGV[6])
if seed > 0 then
  -- Requests allowed elsewhere (an instance's count from a Redis outage)
  -- join the newest bucket whatever the limit.
  counts[slot(newest)] = counts[slot(newest)] + seed
  total = total + seed
  redis.call('SET', key, struct.pack(format, width, newest, unpack(counts)), 'PX', ttl)
  return {1, total, now, freesAt(1)}
end
if total < limit then
  counts[slot(newest)] = counts[slot(newest)] + 1
  total = total + 1
  allowed = 1
  redis.call('SET', key, struct.pack(format, width, newest, unpack(counts)), 'PX', ttl)
  reset = freesAt(1)
else
  reset = freesAt(total - limit + 1)
end

return {allowed, total, now, reset}
