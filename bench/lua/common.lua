-- Shared by every scenario: reading the data file the orchestrator wrote, a per-thread id
-- for round-robin offsets, and one machine-readable summary line at the end.

local common = {}

local threads = {}
local next_id = 0

-- Runs in the main state once per wrk thread, before that thread's init().
function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

-- Non-empty lines of a file, each split on tabs.
function common.records(path)
  local records = {}
  for line in io.lines(path) do
    if line ~= "" then
      local fields = {}
      for field in string.gmatch(line, "[^\t]+") do
        fields[#fields + 1] = field
      end
      records[#records + 1] = fields
    end
  end
  assert(#records > 0, "no records in " .. path)
  return records
end

-- A cursor over records; threads start at different offsets so they do not move in step.
function common.cursor(records)
  local n = #records
  local i = (thread_id or 0) * math.floor(n / 7 + 1) % n
  return function()
    i = i % n + 1
    return records[i]
  end
end

-- Each record once, for requests that work once (an authorization code, a WebAuthn
-- challenge): thread t of `threads` takes records t+1, t+1+threads, ... in order (the file
-- holds the oldest first); nil once its share is used up.
function common.once(records, threads)
  local i = (thread_id or 0) + 1 - threads
  return function()
    i = i + threads
    return records[i]
  end
end

-- What request() sends once its share is used up: nothing reused. The thread stops (wrk
-- keeps counting time, so the orchestrator sizes the pool for the whole run and says so
-- when it fell short); the health check it returns is never answered to wrk.
function common.exhausted()
  wrk.thread:stop()
  return wrk.format("GET", "/health/live")
end

function common.post_json(path, body, headers)
  headers = headers or {}
  headers["Content-Type"] = "application/json"
  return wrk.format("POST", path, headers, body)
end

local function form_escape(value)
  return (string.gsub(value, "[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

-- An application/x-www-form-urlencoded POST of ordered {name, value} pairs.
function common.post_form(path, fields, headers)
  local encoded = {}
  for _, pair in ipairs(fields) do
    encoded[#encoded + 1] = form_escape(pair[1]) .. "=" .. form_escape(pair[2])
  end
  headers = headers or {}
  headers["Content-Type"] = "application/x-www-form-urlencoded"
  return wrk.format("POST", path, headers, table.concat(encoded, "&"))
end

-- wrk counts a status >= 400 in errors.status; the orchestrator reads this line.
function done(summary, latency, requests)
  local percentiles = {}
  for _, p in ipairs({ 50, 75, 90, 99, 99.9 }) do
    percentiles[#percentiles + 1] = string.format('"%s": %d', tostring(p), latency:percentile(p))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"min": %d, "max": %d, "mean": %.1f, "stdev": %.1f, "percentiles": {%s}}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.max, latency.mean, latency.stdev, table.concat(percentiles, ", ")))
end

return common
