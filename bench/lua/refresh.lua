-- POST /auth/refresh with the refresh tokens of the pre-registered users, round-robin.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local next_user

function init(args)
  next_user = common.cursor(common.records(args[1]))
end

function request()
  local user = next_user()
  return common.post_json("/auth/refresh", string.format('{"refresh_token": "%s"}', user[4]))
end
