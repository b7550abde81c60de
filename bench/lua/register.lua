-- POST /auth/register with a new account per request. Arguments: a prefix unique to this
-- run (so a second run does not collide with the first) and the password to use.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local prefix, password
local n = 0

function init(args)
  prefix = args[1]
  password = args[2]
end

function request()
  n = n + 1
  local name = string.format("%st%dn%d", prefix, thread_id, n)
  return common.post_json("/auth/register", string.format(
    '{"email": "%s@bench.example.com", "username": "%s", "password": "%s"}',
    name, name, password))
end
