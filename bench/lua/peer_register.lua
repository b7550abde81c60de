-- The peer's POST /auth/register with a new account per request (it takes no username).
-- Arguments: a prefix unique to this run and the password to use.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local prefix, password
local n = 0

function init(args)
  prefix = args[1]
  password = args[2]
end

function request()
  n = n + 1
  return common.post_json("/auth/register", string.format(
    '{"email": "%st%dn%d@bench.example.com", "password": "%s"}', prefix, thread_id, n, password))
end
