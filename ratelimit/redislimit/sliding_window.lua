-- Sliding-window log for one key: a sorted set of the allowed requests,
-- scored by their time in microseconds on the Redis server's clock.
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

-- The window is (now - period, now]: a request exactly one period old is out.
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - period)
local count = redis.call('ZCARD', key)

local allowed = 0
if count < limit then
  -- Members are built from TIME's strings: Lua 5.1 would print the number
  -- in exponent form and lose digits.
  redis.call('ZADD', key, now, t[1] .. '.' .. t[2] .. '.' .. ARGV[4])
  redis.call('PEXPIRE', key, ARGV[3])
  count = count + 1
  allowed = 1
end

-- The window frees a request when only limit - 1 logged requests are left
-- in it: when the (count - limit)-th oldest leaves (the oldest when full).
local index = math.max(count - limit, 0)
local first = redis.call('ZRANGE', key, index, index, 'WITHSCORES')
local reset = now + period
if first[2] then reset = tonumber(first[2]) + period end

return {allowed, count, now, reset}
