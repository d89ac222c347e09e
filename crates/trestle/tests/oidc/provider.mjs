// A real OpenID provider for Trestle's sign-in tests: the certified npm
// `oidc-provider`, with one confidential client and one user, on
// 127.0.0.1 over plain HTTP (development only). Its login and consent
// pages are oidc-provider's own development interactions (any password).
//
// Environment: OIDC_PORT, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET,
// OIDC_REDIRECT_URIS (comma separated; the client is a "native" one, so a
// loopback URI matches on any port), OIDC_KEY_ID (the signing key's id: a
// new id on a restart is a key rotation). Prints "oidc-provider ready".
import Provider from 'oidc-provider';
import { generateKeyPair, exportJWK } from 'jose';

const env = (k) => {
  const v = process.env[k];
  if (!v) { console.error(`${k} is not set`); process.exit(2); }
  return v;
};
const port = Number(env('OIDC_PORT'));
const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const jwk = { ...(await exportJWK(privateKey)), kid: env('OIDC_KEY_ID'), alg: 'RS256', use: 'sig' };

// Login name -> claims. The subject differs from the user name on purpose.
const accounts = {
  'ada-4711': {
    preferred_username: 'ada',
    name: 'Ada Lovelace',
    email: 'ada@uni.example',
    email_verified: true,
    groups: ['hpc-users', 'genomics-pis'],
    uid_number: 12001,
  },
  'eve-0001': {
    preferred_username: 'eve',
    email: 'eve@uni.example',
    groups: ['chess-club'],
  },
};

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: env('OIDC_CLIENT_ID'),
    client_secret: env('OIDC_CLIENT_SECRET'),
    application_type: 'native',
    redirect_uris: env('OIDC_REDIRECT_URIS').split(','),
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [jwk] },
  scopes: ['openid', 'profile', 'email', 'groups', 'unix'],
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
    unix: ['uid_number'],
  },
  async findAccount(ctx, id) {
    const a = accounts[id];
    if (!a) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...a }; } };
  },
  pkce: { required: () => true },
  cookies: { keys: ['trestle-test-cookie-key'] },
  features: { devInteractions: { enabled: true } },
});
provider.proxy = false;
provider.on('server_error', (ctx, err) => console.error('server_error', err));
provider.listen(port, '127.0.0.1', () => console.log('oidc-provider ready'));
