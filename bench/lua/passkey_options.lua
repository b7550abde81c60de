-- POST /auth/passkey/options: the first request of a passkey sign-in (a new challenge).
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function request()
  return wrk.format("POST", "/auth/passkey/options")
end
