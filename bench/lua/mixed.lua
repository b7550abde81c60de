-- The traffic of signed-in clients: per 23 requests, 1 login, 20 GET /users/me, 2 refresh.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local next_user
local plan = {}
local step = 0

function init(args)
  next_user = common.cursor(common.records(args[1]))
  plan[#plan + 1] = "login"
  for half = 1, 2 do
    for _ = 1, 10 do
      plan[#plan + 1] = "me"
    end
    plan[#plan + 1] = "refresh"
  end
  step = (thread_id or 0) * 5 % #plan
end

function request()
  step = step % #plan + 1
  local user = next_user()
  local kind = plan[step]
  if kind == "login" then
    return common.post_json("/auth/login",
      string.format('{"email": "%s", "password": "%s"}', user[1], user[2]))
  elseif kind == "refresh" then
    return common.post_json("/auth/refresh", string.format('{"refresh_token": "%s"}', user[4]))
  end
  return wrk.format("GET", "/users/me", { Authorization = "Bearer " .. user[3] })
end
