-- The peer's POST /auth/jwt/login (OAuth2 password form: username = the email), round-robin
-- over its pre-registered users (email, password).
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local next_user

function init(args)
  next_user = common.cursor(common.records(args[1]))
end

function request()
  local user = next_user()
  return common.post_form("/auth/jwt/login", { { "username", user[1] }, { "password", user[2] } })
end
