// A relying party built on panva's openid-client (OpenID Certified) against a running
// authsvc: discovery, the authorization code flow with PKCE (the sign-in on the hosted
// /login page driven like a browser: cookies, the form's anti-CSRF token), ID-token
// validation, userinfo, refresh, and RP-initiated logout. Prints one JSON line of what
// it saw; any failure exits non-zero with the error on stderr.
//
// Environment: ISSUER, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, POST_LOGOUT_REDIRECT_URI,
// USERNAME, PASSWORD.
import * as client from 'openid-client'

const env = (name) => {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set`)
  return value
}
const issuer = env('ISSUER')
const redirectUri = env('REDIRECT_URI')

// A browser's cookie jar, enough for one host.
const jar = new Map()
const remember = (response) => {
  for (const line of response.headers.getSetCookie()) {
    const [pair, ...attributes] = line.split(';')
    const eq = pair.indexOf('=')
    const name = pair.slice(0, eq).trim()
    const value = pair.slice(eq + 1).trim()
    const expired = attributes.some((a) => /^\s*max-age=0\s*$/i.test(a)) || value === '""' || value === ''
    if (expired) jar.delete(name)
    else jar.set(name, value)
  }
}
const cookieHeader = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ')

async function browse (url, init = {}) {
  const response = await fetch(new URL(url, issuer), {
    ...init,
    redirect: 'manual',
    headers: { ...(init.headers ?? {}), cookie: cookieHeader() }
  })
  remember(response)
  return response
}

// Follows redirects on authsvc; returns the first response that leaves it (or a page).
async function follow (response) {
  for (let i = 0; i < 10; i++) {
    const location = response.headers.get('location')
    if (![302, 303].includes(response.status) || !location) return response
    const next = new URL(location, issuer)
    if (next.origin !== new URL(issuer).origin) return response
    response = await browse(next)
  }
  throw new Error('too many redirects')
}

async function signInOnThePage (loginPage) {
  const html = await loginPage.text()
  const csrf = html.match(/name="csrf_token" value="([^"]+)"/)[1]
  const returnTo = new URL(loginPage.url).searchParams.get('return_to')
  const form = new URLSearchParams({
    csrf_token: csrf,
    identifier: env('USERNAME'),
    password: env('PASSWORD'),
    return_to: returnTo
  })
  return browse('/login', {
    method: 'POST',
    body: form,
    headers: { 'content-type': 'application/x-www-form-urlencoded' }
  })
}

// authsvc is served over http on a loopback address in this test.
const insecure = { execute: [client.allowInsecureRequests] }
const config = await client.discovery(
  new URL(issuer), env('CLIENT_ID'), env('CLIENT_SECRET'), undefined, insecure
)

const codeVerifier = client.randomPKCECodeVerifier()
const codeChallenge = await client.calculatePKCECodeChallenge(codeVerifier)
const nonce = client.randomNonce()
const state = client.randomState()
const authorizationUrl = client.buildAuthorizationUrl(config, {
  redirect_uri: redirectUri,
  scope: 'openid email profile',
  code_challenge: codeChallenge,
  code_challenge_method: 'S256',
  nonce,
  state
})

let response = await follow(await browse(authorizationUrl))
const loginUrl = response.url
if (!loginUrl.includes('/login')) throw new Error(`expected the sign-in page, got ${response.status} ${loginUrl}`)
response = await follow(await signInOnThePage(response))
const callback = response.headers.get('location')
if (!callback?.startsWith(redirectUri)) throw new Error(`expected the redirect URI, got ${response.status} ${callback}`)

const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
  pkceCodeVerifier: codeVerifier,
  expectedNonce: nonce,
  expectedState: state,
  idTokenExpected: true
})
const claims = tokens.claims()
const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub)
const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token)
const refreshedClaims = refreshed.claims()

const endSession = client.buildEndSessionUrl(config, {
  id_token_hint: refreshed.id_token,
  post_logout_redirect_uri: env('POST_LOGOUT_REDIRECT_URI'),
  state: 'signed-out'
})
const loggedOut = await browse(endSession)
let userinfoAfterLogout = 'accepted'
try {
  await client.fetchUserInfo(config, refreshed.access_token, claims.sub)
} catch (error) {
  userinfoAfterLogout = error.code ?? error.name
}

console.log(JSON.stringify({
  issuer: config.serverMetadata().issuer,
  iss: new URL(callback).searchParams.get('iss'),
  sub: claims.sub,
  email: claims.email,
  amr: claims.amr,
  userinfo,
  refreshed_sub: refreshedClaims.sub,
  refreshed_auth_time_same: refreshedClaims.auth_time === claims.auth_time,
  logout_status: loggedOut.status,
  logout_location: loggedOut.headers.get('location'),
  userinfo_after_logout: userinfoAfterLogout
}))
