"""The server-side write rule of the online store, as one Lua script.

Newest-event-time-wins must be decided atomically next to the data: a read-compare-write from
the client would race with a concurrent (or replayed) writer. One script call applies a whole
batch, shipped as ONE column-wise JSON argument, so the client does no per-row work (no
per-row command, no per-row argument packing): that is what makes >200k rows/s reachable.

Payload: {"k": [hash key, ...], "t": [event_time_us, ...], "x": [expire_at_ms, ...] (absent =
no expiry), "f": [feature name, ...], "v": [[value per row] per feature]} where a JSON null value
deletes the field. Times travel as decimal strings: Lua numbers are doubles and ``redis.call``
would print big ones in exponent form. An update whose event time equals the stored one is
applied (a replay writes the same values).

Keys travel inside the payload rather than as KEYS: fine on a single Redis (the embedded and
docker-compose modes). On Redis Cluster a batch would have to be split per hash slot with keys
declared; that is not implemented.
"""

from __future__ import annotations

TS_FIELD = "__ts"

WRITE_NEWEST_WINS = f"""
local b = cjson.decode(ARGV[1])
local keys, ts, exp, names, cols = b.k, b.t, b.x, b.f, b.v
local null = cjson.null
local nf = #names
local written = 0
for i = 1, #keys do
  local key = keys[i]
  local current = redis.call('HGET', key, '{TS_FIELD}')
  if (not current) or tonumber(current) <= tonumber(ts[i]) then
    local args = {{key, '{TS_FIELD}', ts[i]}}
    local dels = nil
    for j = 1, nf do
      local v = cols[j][i]
      if v == null then
        if dels == nil then dels = {{key}} end
        dels[#dels + 1] = names[j]
      else
        args[#args + 1] = names[j]
        args[#args + 1] = v
      end
    end
    redis.call('HSET', unpack(args))
    if dels ~= nil then redis.call('HDEL', unpack(dels)) end
    if exp ~= nil then redis.call('PEXPIREAT', key, exp[i]) end
    written = written + 1
  end
end
return written
"""
