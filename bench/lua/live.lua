-- GET /health/live. Optional argument: a pause in milliseconds before each request, so the
-- probe run beside the login load samples latency without competing for the CPU itself.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local pause_ms = 0

function init(args)
  pause_ms = tonumber(args[1] or "0") or 0
end

function request()
  return wrk.format("GET", "/health/live")
end

function delay()
  return pause_ms
end
