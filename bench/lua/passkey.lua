-- POST /auth/passkey: each pre-made body (a synced passkey's assertion answering its own
-- challenge, signed by the orchestrator) exactly once.
-- Arguments: the pool (one JSON body per line), wrk's thread count.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local next_body

function init(args)
  next_body = common.once(common.records(args[1]), tonumber(args[2]))
end

function request()
  local body = next_body()
  if body == nil then
    return common.exhausted()
  end
  return common.post_json("/auth/passkey", body[1])
end
