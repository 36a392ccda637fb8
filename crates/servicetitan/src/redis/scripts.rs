//! The Lua scripts run in Redis: admission, cooldown, compare-and-delete.

// Admission: KEYS = [log, cooldown]; ARGV = [calls (0: cooldown only), window µs, now µs or "", member].
// Returns 0 when admitted (recorded), else the µs until a slot may free.
pub(super) const ADMIT: &str = r#"
local now
if ARGV[3] ~= '' then
  now = tonumber(ARGV[3])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local cool = tonumber(redis.call('GET', KEYS[2]) or '0')
if cool > now then return math.ceil(cool - now) end
local calls = tonumber(ARGV[1])
if calls <= 0 then return 0 end
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - window))
local n = redis.call('ZCARD', KEYS[1])
if n < calls then
  redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], n - calls, n - calls, 'WITHSCORES')
return math.max(1, math.ceil(tonumber(oldest[2]) + window - now))
"#;

// KEYS = [cooldown]; ARGV = [pause µs, now µs or ""]. Never shortens a pause in force.
pub(super) const COOL_DOWN: &str = r#"
local now
if ARGV[2] ~= '' then
  now = tonumber(ARGV[2])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local pause = tonumber(ARGV[1])
local untl = now + pause
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if untl > cur then
  redis.call('SET', KEYS[1], string.format('%.0f', untl), 'PX', math.ceil(pause / 1000) + 1)
end
return 0
"#;

// KEYS = [key]; ARGV = [expected value]. Deletes only if the value is still the expected one:
// a lock only by its owner, a token only if no other process replaced it.
pub(super) const COMPARE_AND_DELETE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;
