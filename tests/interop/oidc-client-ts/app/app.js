// A public client in the browser: oidc-client-ts does discovery, the authorization code
// flow with PKCE and the token request itself, from this page's origin (so CORS decides
// whether it may read the answers), then calls userinfo with the access token.
/* global oidc, AUTHSVC */
const origin = window.location.origin
const manager = new oidc.UserManager({
  authority: AUTHSVC.authority,
  client_id: AUTHSVC.clientId,
  redirect_uri: `${origin}/callback.html`,
  post_logout_redirect_uri: `${origin}/index.html`,
  response_type: 'code',
  scope: 'openid profile email',
  loadUserInfo: true,
  userStore: new oidc.WebStorageStateStore({ store: window.sessionStorage })
})

function show (result) {
  document.getElementById('result').textContent = JSON.stringify(result)
  document.body.dataset.result = JSON.stringify(result)
}

async function callback () {
  try {
    const user = await manager.signinRedirectCallback()
    const response = await fetch(AUTHSVC.userinfo, {
      headers: { Authorization: `Bearer ${user.access_token}` }
    })
    const userinfo = await response.json()
    show({
      ok: true,
      sub: user.profile.sub,
      email: user.profile.email,
      preferred_username: user.profile.preferred_username,
      userinfo_sub: userinfo.sub,
      scope: user.scope,
      has_refresh_token: Boolean(user.refresh_token)
    })
  } catch (error) {
    show({ ok: false, error: String(error) })
  }
}

if (document.body.dataset.page === 'callback') {
  callback()
} else {
  document.getElementById('sign-in').addEventListener('click', () => manager.signinRedirect())
  document.getElementById('sign-out').addEventListener('click', () => manager.signoutRedirect())
}
