-- POST /auth/token, grant_type=authorization_code: each pre-made code with its PKCE
-- verifier exactly once, the client authenticating with HTTP Basic (client_secret_basic).
-- Arguments: the pool (code TAB verifier per line), wrk's thread count, the Authorization
-- header, the redirect URI.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local next_code, authorization, redirect_uri

function init(args)
  next_code = common.once(common.records(args[1]), tonumber(args[2]))
  authorization, redirect_uri = args[3], args[4]
end

function request()
  local code = next_code()
  if code == nil then
    return common.exhausted()
  end
  return common.post_form("/auth/token", {
    { "grant_type", "authorization_code" },
    { "code", code[1] },
    { "redirect_uri", redirect_uri },
    { "code_verifier", code[2] },
  }, { Authorization = authorization })
end
