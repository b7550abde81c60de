-- GET /users/me with the access tokens of the pre-registered users, round-robin.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local next_user

function init(args)
  next_user = common.cursor(common.records(args[1]))
end

function request()
  local user = next_user()
  return wrk.format("GET", "/users/me", { Authorization = "Bearer " .. user[3] })
end
