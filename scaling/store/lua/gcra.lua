-- The limiter's atomic step on Redis; mirrors scaling/store/gcra.py exactly
-- (the store contract tests hold the two together).
-- KEYS[1]: limiter hash {cd, ws, wc, pc, thr, wt, rej, n429, t1..tN}
-- ARGV[1] op: 'acquire' | 'refund' | 'cooldown' | 'snapshot'
-- ARGV[2] now; then per op (see below). Floats travel as strings.
local k = KEYS[1]
local op = ARGV[1]
local now = tonumber(ARGV[2])

local function num(v) if v then return tonumber(v) else return 0 end end
local function fmt(x) return string.format('%.6f', x) end

local function expire(window, n)
  local latest = math.max(now, num(redis.call('HGET', k, 'cd')))
  for i = 1, n do latest = math.max(latest, num(redis.call('HGET', k, 't' .. i))) end
  local ttl = latest + 2 * window - now
  redis.call('PEXPIRE', k, math.max(1000, math.ceil(ttl * 1000) + 300000))
end

if op == 'acquire' then
  -- ARGV[3] max_wait, ARGV[4] n, then n x (interval, capacity, cost, window).
  -- One HMGET and one HSET: this is the hot path.
  local max_wait = tonumber(ARGV[3])
  local n = tonumber(ARGV[4])
  local names = {'cd', 'ws', 'wc', 'pc'}
  for i = 1, n do names[4 + i] = 't' .. i end
  local got = redis.call('HMGET', k, unpack(names))
  local cd, ws, wc, pc = num(got[1]), num(got[2]), num(got[3]), num(got[4])
  local send_at = math.max(now, cd)
  local tats, rates = {}, {}
  local maxw = 0
  for i = 1, n do
    local b = 4 + (i - 1) * 4
    local r = {tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])}
    rates[i] = r
    maxw = math.max(maxw, r[4])
    tats[i] = num(got[4 + i])
    send_at = math.max(send_at, math.max(tats[i], now) + (r[3] - r[2]) * r[1])
  end
  local wait = send_at - now
  local latest = math.max(now, cd)
  if wait > max_wait then
    redis.call('HINCRBY', k, 'rej', 1)
    for i = 1, n do latest = math.max(latest, tats[i]) end
    redis.call('PEXPIRE', k, math.max(1000, math.ceil((latest + 2 * maxw - now) * 1000) + 300000))
    return {0, fmt(wait), fmt(send_at), fmt(cd)}
  end
  local w1 = rates[1][4]
  local bucket = send_at - math.fmod(send_at, w1)
  if bucket > ws then
    if bucket - ws == w1 then pc = wc else pc = 0 end
    wc = 0
    ws = bucket
  end
  wc = wc + rates[1][3]
  local out = {'ws', fmt(ws), 'wc', fmt(wc), 'pc', fmt(pc)}
  for i = 1, n do
    local t = math.max(tats[i], send_at) + rates[i][3] * rates[i][1]
    latest = math.max(latest, t)
    out[#out + 1] = 't' .. i
    out[#out + 1] = fmt(t)
  end
  redis.call('HSET', k, unpack(out))
  if wait > 0 then
    redis.call('HINCRBY', k, 'thr', 1)
    redis.call('HINCRBYFLOAT', k, 'wt', wait)
  end
  redis.call('PEXPIRE', k, math.max(1000, math.ceil((latest + 2 * maxw - now) * 1000) + 300000))
  local used = pc * math.max(0, 1 - (send_at - ws) / w1) + wc
  if send_at < ws then used = pc end
  return {1, fmt(wait), fmt(send_at), fmt(cd), fmt(used)}
elseif op == 'refund' then
  -- ARGV[3] n, then n x (units, interval)
  if redis.call('EXISTS', k) == 0 then return 0 end
  local n = tonumber(ARGV[3])
  for i = 1, n do
    local units = tonumber(ARGV[2 + i * 2])
    local interval = tonumber(ARGV[3 + i * 2])
    local t = redis.call('HGET', k, 't' .. i)
    if t and units > 0 then
      redis.call('HSET', k, 't' .. i, fmt(math.max(tonumber(t) - units * interval, now)))
    elseif t and units < 0 then
      redis.call('HSET', k, 't' .. i, fmt(math.max(tonumber(t), now) - units * interval))
    end
  end
  return 1
elseif op == 'cooldown' then
  -- ARGV[3] until, ARGV[4] window, ARGV[5] '0': hold sends without counting a 429 (a re-seed)
  local untl = tonumber(ARGV[3])
  local cd = math.max(num(redis.call('HGET', k, 'cd')), untl)
  redis.call('HSET', k, 'cd', fmt(cd))
  local i = 1
  while true do
    local t = redis.call('HGET', k, 't' .. i)
    if not t then break end
    redis.call('HSET', k, 't' .. i, fmt(math.max(tonumber(t), untl)))
    i = i + 1
  end
  if ARGV[5] ~= '0' then
    redis.call('HINCRBY', k, 'n429', 1)
  end
  expire(tonumber(ARGV[4]), i - 1)
  return fmt(cd)
elseif op == 'snapshot' then
  -- ARGV[3] window. Read-only: computes the roll without writing it.
  local window = tonumber(ARGV[3])
  local r = redis.call('HMGET', k, 'ws', 'wc', 'pc', 'cd', 'thr', 'wt', 'rej', 'n429')
  local ws, wc, pc = num(r[1]), num(r[2]), num(r[3])
  local bucket = now - math.fmod(now, window)
  if bucket > ws then
    if bucket - ws == window then pc = wc else pc = 0 end
    wc = 0
    ws = bucket
  end
  local used = pc * math.max(0, 1 - (now - ws) / window) + wc
  if now < ws then used = pc end
  local maxtat = 0
  local i = 1
  while true do
    local t = redis.call('HGET', k, 't' .. i)
    if not t then break end
    maxtat = math.max(maxtat, tonumber(t))
    i = i + 1
  end
  return {fmt(used), fmt(math.max(0, maxtat - now)), fmt(num(r[4])), tostring(num(r[5])), fmt(num(r[6])),
          tostring(num(r[7])), tostring(num(r[8]))}
end
return redis.error_reply('unknown op ' .. op)
