-- Key/value primitives with logical expiry. Each key is a hash {v = value, x = expires_at}.
-- ARGV[1] is the operation; `now` comes from the caller's clock so virtual time works.
-- The physical PEXPIRE is only garbage collection: ttl plus slack, never shorter.
local op = ARGV[1]
local k = KEYS[1]
local now = tonumber(ARGV[2])
local SLACK_MS = 300000

local function live()
  local r = redis.call('HMGET', k, 'v', 'x')
  if not r[1] then return nil end
  if r[2] and r[2] ~= '' and tonumber(r[2]) <= now then return nil end
  return r[1]
end

local function store(v, ttl)
  redis.call('DEL', k)
  if ttl == '' then
    redis.call('HSET', k, 'v', v)
  else
    local t = tonumber(ttl)
    redis.call('HSET', k, 'v', v, 'x', string.format('%.6f', now + t))
    redis.call('PEXPIRE', k, math.max(1, math.ceil(t * 1000)) + SLACK_MS)
  end
end

if op == 'get' then
  return live()
elseif op == 'set' then
  store(ARGV[3], ARGV[4])
  return 1
elseif op == 'incr' then
  local cur = live()
  if not cur then
    store(ARGV[3], ARGV[4])
    return tonumber(ARGV[3])
  end
  return redis.call('HINCRBY', k, 'v', tonumber(ARGV[3]))
elseif op == 'add' then
  if live() then return 0 end
  store(ARGV[3], ARGV[4])
  return 1
elseif op == 'cas' then
  -- ARGV: expected, new ('' with ARGV[6]=='1' means delete), ttl
  if live() ~= ARGV[3] then return 0 end
  if ARGV[6] == '1' then
    redis.call('DEL', k)
  else
    store(ARGV[4], ARGV[5])
  end
  return 1
end
return redis.error_reply('unknown op ' .. op)
