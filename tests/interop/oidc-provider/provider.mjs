// panva's oidc-provider (OpenID Certified), as the upstream provider authsvc's tests sign
// in with. Configured from PROVIDER_CONFIG (JSON): {"port", "client": {client_id,
// client_secret, redirect_uris}, "accounts": {id: claims}}. Its own development login and
// consent pages (devInteractions) sign in whichever account id is typed as the login.
import Provider from 'oidc-provider';

const config = JSON.parse(process.env.PROVIDER_CONFIG);
const issuer = `http://127.0.0.1:${config.port}`;

const provider = new Provider(issuer, {
  clients: [{
    ...config.client,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  // Every authorization request must carry an S256 code challenge (RFC 7636).
  pkce: { required: () => true },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
  },
  async findAccount(ctx, id) {
    const claims = config.accounts[id];
    if (!claims) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...claims }; } };
  },
  cookies: { keys: ['authsvc-interop-tests-only'] },
  features: { devInteractions: { enabled: true } },
});
provider.proxy = false;

provider.listen(config.port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
