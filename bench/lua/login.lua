-- POST /auth/login, round-robin over the pre-registered users (email, password).
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local next_user

function init(args)
  next_user = common.cursor(common.records(args[1]))
end

function request()
  local user = next_user()
  return common.post_json("/auth/login",
    string.format('{"email": "%s", "password": "%s"}', user[1], user[2]))
end
