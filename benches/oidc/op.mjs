// The reference OpenID Connect provider for benches/run.py: node's oidc-provider (panva,
// OpenID Certified), configured like gatehouse's benchmark client. Settings from the
// environment:
//   OP_PORT, OP_ISSUER (http://127.0.0.1:PORT), OP_CLIENT_ID, OP_CLIENT_SECRET, OP_REDIRECT_URI,
//   OP_USER_EMAIL, OP_USER_PASSWORD, OP_CONSENT ("implicit": granted at the first sign-in,
//   "explicit": a consent page like gatehouse's), OP_ALG (the client's id_token algorithm:
//   RS256, the default, or EdDSA or ES256)
// One confidential client (client_secret_basic), PKCE S256 required, code flow only, RS256
// (or OP_ALG) id_tokens, one user with the claims gatehouse issues. Its storage is oidc-provider's default
// in-memory adapter: nothing is written durably (gatehouse commits every grant to its store).
// The interaction pages are plain HTML forms shaped like gatehouse's (labelled email and
// password, a "Sign in" button; a consent form with decision=allow|deny), so the same
// scripted browser signs in to both.
import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const env = (k, d) => process.env[k] ?? d;
const port = Number(env('OP_PORT', '3000'));
const issuer = env('OP_ISSUER', `http://127.0.0.1:${port}`);
const clientId = env('OP_CLIENT_ID', 'bench');
const clientSecret = env('OP_CLIENT_SECRET', 'bench-secret-0123456789abcdef');
const redirectUri = env('OP_REDIRECT_URI', 'http://127.0.0.1:9/cb');
const postLogout = env('OP_POST_LOGOUT_URI', 'http://127.0.0.1:9/bye');
const userEmail = env('OP_USER_EMAIL', 'bench@bench.example.org');
const userPassword = env('OP_USER_PASSWORD', 'correct horse battery staple');
const consent = env('OP_CONSENT', 'implicit');
const accountId = '6b1c3c52-4f0e-4c7e-9a59-3f1f0d6f2a10';

const alg = env('OP_ALG', 'RS256');
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const keys = [{ ...privateKey.export({ format: 'jwk' }), kid: 'bench-rs256', use: 'sig', alg: 'RS256' }];
// An elliptic-curve client gets a key of its own beside the RSA one, as gatehouse has.
if (alg === 'EdDSA' || alg === 'ES256') {
  const ec = alg === 'EdDSA'
    ? generateKeyPairSync('ed25519').privateKey
    : generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  keys.push({ ...ec.export({ format: 'jwk' }), kid: `bench-${alg.toLowerCase()}`, use: 'sig', alg });
}

// oidc-provider's own development adapter is an LRU of 1000 entries: under load it forgets
// codes and tokens it issued a moment ago. This one is a plain Map with expiry (still in
// memory, still nothing durable), so that no request fails for the adapter's sake.
const stores = new Map();
const grantIndex = new Map();
class MapAdapter {
  constructor(name) {
    this.name = name;
    if (!stores.has(name)) stores.set(name, new Map());
    this.store = stores.get(name);
  }

  async upsert(id, payload, expiresIn) {
    const expires = expiresIn ? Date.now() + expiresIn * 1000 : Infinity;
    this.store.set(id, { payload, expires });
    if (payload.grantId) {
      if (!grantIndex.has(payload.grantId)) grantIndex.set(payload.grantId, []);
      grantIndex.get(payload.grantId).push([this.name, id]);
    }
  }

  async find(id) {
    const e = this.store.get(id);
    if (!e) return undefined;
    if (e.expires < Date.now()) {
      this.store.delete(id);
      return undefined;
    }
    return e.payload;
  }

  async findByUid(uid) {
    for (const [id, e] of this.store) if (e.payload.uid === uid) return this.find(id);
    return undefined;
  }

  async findByUserCode(userCode) {
    for (const [id, e] of this.store) if (e.payload.userCode === userCode) return this.find(id);
    return undefined;
  }

  async consume(id) {
    const e = this.store.get(id);
    if (e) e.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    this.store.delete(id);
  }

  async revokeByGrantId(grantId) {
    for (const [name, id] of grantIndex.get(grantId) ?? []) stores.get(name)?.delete(id);
    grantIndex.delete(grantId);
  }
}

const provider = new Provider(issuer, {
  adapter: MapAdapter,
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    post_logout_redirect_uris: [postLogout],
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    id_token_signed_response_alg: alg,
  }],
  jwks: { keys },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  async findAccount(_ctx, id) {
    if (id !== accountId) return undefined;
    return {
      accountId: id,
      async claims() {
        return {
          sub: id, email: userEmail, email_verified: true, name: 'bench', preferred_username: userEmail,
          groups: ['bench'],
        };
      },
    };
  },
  responseTypes: ['code'],
  conformIdTokenClaims: false,
  rotateRefreshToken: true,
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    revocation: { enabled: true },
    introspection: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  ttl: { AuthorizationCode: 60, AccessToken: 900, IdToken: 900, Session: 86400, Grant: 86400, Interaction: 600 },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = `<!doctype html><title>Error</title><p>${String(out.error)}: ${String(out.error_description ?? '')}</p>`;
  },
});

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title, body) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title></head><body>${body}</body></html>`;
}

async function readForm(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString()));
}

async function grantAll(details) {
  const grant = new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
  const missing = details.prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  if (missing.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }
  return grant.save();
}

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { uid, prompt } = details;
  if (req.method === 'GET') {
    res.setHeader('content-type', 'text/html; charset=utf-8');
    if (prompt.name === 'login') {
      res.end(page('Sign in', `<form method="post" action="/interaction/${uid}">
<label for="email">Email</label><input id="email" name="email" type="email">
<label for="password">Password</label><input id="password" name="password" type="password">
<button type="submit">Sign in</button></form>`));
      return;
    }
    if (consent === 'implicit') {
      const grantId = await grantAll(details);
      await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
      return;
    }
    res.end(page('Allow access', `<form method="post" action="/interaction/${uid}">
<p>${esc(details.params.client_id)} asks for ${esc(details.params.scope)}</p>
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button></form>`));
    return;
  }
  const form = await readForm(req);
  if (prompt.name === 'login') {
    if (form.email !== userEmail || form.password !== userPassword) {
      res.statusCode = 200;
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end(page('Sign in', '<p>The email or password is wrong.</p>'));
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId, amr: ['pwd'] } }, { mergeWithLastSubmission: false });
    return;
  }
  if (form.decision !== 'allow') {
    await provider.interactionFinished(req, res, { error: 'access_denied' }, { mergeWithLastSubmission: false });
    return;
  }
  const grantId = await grantAll(details);
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

const callback = provider.callback();
const server = createServer((req, res) => {
  if (req.url === '/healthz') {
    res.end('ok');
    return;
  }
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((err) => {
      res.statusCode = 500;
      res.end(String(err));
    });
    return;
  }
  callback(req, res);
});
server.keepAliveTimeout = 30000;
server.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening addr=127.0.0.1:${port} issuer=${issuer}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
