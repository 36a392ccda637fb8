//! The Lua scripts run in Redis: admission, cooldown, token reads, the fetch lock, compare-and-delete.
//!
//! Whoever can write to Redis can put anything under our keys: a string where a number belongs,
//! a list where a string belongs, a cooldown of a year, admissions dated next century, a lock
//! that never expires. The scripts read every such value defensively: garbage is dropped,
//! never an error that would stall callers until Redis "answers again", and every wait they
//! hand back is bounded by the caller.

// Admission: KEYS = [log, cooldown]; ARGV = [calls (0: cooldown only), period µs, now µs or "",
// member, longest cooldown µs to honour (0: none), hold µs, longest hold µs].
// Returns {0, 0} when admitted (recorded), else {µs to wait, 1 if for the cooldown else 0}.
//
// The log holds one member per admission, scored with its admission time and named
// "<process>-<n>/<hold µs>": the slot is held until admission + period + hold, where the hold
// is what the process that admitted it said: its margin, the longest hold while the call is
// unanswered, then what it measured (SETTLE). A member without a readable hold (written by an
// older version) is held for this caller's margin; no hold counts for more than the longest
// hold. Members found expired are dropped, so the log stays about N long.
//
// A cooldown longer than the caller's bound is cut to it (see RedisLimiter); admissions dated
// more than a span (period + longest hold) ahead were not recorded on this clock and are
// dropped, and so are all but the newest of more members than admissions could have made, so
// that no slot is held longer than a span and no admission reads an unbounded log; the wait
// for a slot is at most one span.
pub(super) const ADMIT: &str = r#"
local now
if ARGV[3] ~= '' then
  now = tonumber(ARGV[3])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local longest = tonumber(ARGV[5])
if longest > 0 then
  local raw = redis.pcall('GET', KEYS[2])
  local cool = nil
  if type(raw) == 'string' then cool = tonumber(raw) end
  if raw and cool == nil then
    redis.call('DEL', KEYS[2])
  elseif cool and cool == cool and cool > now then
    return {math.ceil(math.min(cool - now, longest)), 1}
  end
end
local calls = tonumber(ARGV[1])
if calls <= 0 then return {0, 0} end
local period = tonumber(ARGV[2])
local hold = tonumber(ARGV[6])
local longest_hold = tonumber(ARGV[7])
local span = period + longest_hold
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'zset' and kind ~= 'none' then redis.call('DEL', KEYS[1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - span))
redis.call('ZREMRANGEBYSCORE', KEYS[1], '(' .. string.format('%.0f', now + span), '+inf')
local n = redis.call('ZCARD', KEYS[1])
local most = calls * (math.ceil(span / math.max(period, 1)) + 2) + 64
if n > most then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - most - 1)
  n = most
end
local admit = n < calls
local ends = {}
if not admit then
  local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  local gone = {}
  for i = 1, #entries, 2 do
    local h = tonumber(string.match(entries[i], '/(%d+)$')) or hold
    if h > longest_hold then h = longest_hold end
    local e = tonumber(entries[i + 1]) + period + h
    if e > now then ends[#ends + 1] = e else gone[#gone + 1] = entries[i] end
  end
  if #gone > 0 then redis.call('ZREM', KEYS[1], unpack(gone)) end
  admit = #ends < calls
end
if admit then
  redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.ceil(span / 1000) + 1000)
  return {0, 0}
end
table.sort(ends)
return {math.min(span, math.max(1, math.ceil(ends[#ends - calls + 1] - now))), 0}
"#;

// KEYS = [log]; ARGV = [member as admitted, the same member with its measured hold]. Renames the
// member, keeping its admission time; a member no longer in the log stays out.
pub(super) const SETTLE: &str = r#"
local score = redis.pcall('ZSCORE', KEYS[1], ARGV[1])
if type(score) ~= 'string' then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], score, ARGV[2])
return 1
"#;

// KEYS = [cooldown]; ARGV = [pause µs, now µs or ""]. Never shortens a pause in force; a value
// that is not a number is no pause.
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
local raw = redis.pcall('GET', KEYS[1])
local cur = nil
if type(raw) == 'string' then cur = tonumber(raw) end
if cur == nil or cur ~= cur or untl > cur then
  redis.call('SET', KEYS[1], string.format('%.0f', untl), 'PX', math.ceil(pause / 1000) + 1)
end
return 0
"#;

// KEYS = [token]; ARGV = [longest length]. The stored value if it is a string no longer than
// that, else nothing (a miss): a planted value of another type or of megabytes is not read.
pub(super) const GET_TOKEN: &str = r#"
local raw = redis.pcall('GET', KEYS[1])
if type(raw) ~= 'string' or #raw > tonumber(ARGV[1]) then return false end
return raw
"#;

// KEYS = [lock]; ARGV = [owner, ttl ms]. 1 if this owner now holds the lock, else 0. A lock held
// for longer than one ttl from now (or forever: planted, never ours) is cut to one ttl, so that
// no lock makes the others wait more than that.
pub(super) const LOCK_FETCH: &str = r#"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
local left = redis.call('PTTL', KEYS[1])
if left == -1 or left > tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"#;

// KEYS = [key]; ARGV = [expected value]. Deletes only if the value is still the expected one:
// a lock only by its owner, a token only if no other process replaced it.
pub(super) const COMPARE_AND_DELETE: &str = r#"
if redis.pcall('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;
