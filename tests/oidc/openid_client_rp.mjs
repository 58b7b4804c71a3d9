// A relying party built on openid-client 6 (npm, panva; OpenID Certified), driving
// gatehouse's OpenID Connect provider. Started by tests/oidc_rp.rs; runnable by hand after
// `npm ci` in tests/oidc:
//
//   node tests/oidc/openid_client_rp.mjs --issuer http://127.0.0.1:8080 --client-id app \
//     --client-secret S --auth-method client_secret_basic --alg RS256 \
//     --redirect-uri http://127.0.0.1:9/cb --post-logout-uri http://127.0.0.1:9/bye \
//     --email ada@example.org --password '...' --groups family,media
//
// openid-client does discovery, the authorization URL (PKCE S256, state, nonce), the code
// exchange with its own checks of the authorization response (state, iss per RFC 9207) and of
// the id_token (signature against the JWKS, iss, aud, exp, nonce, alg), userinfo (sub must
// match), refresh, introspection, revocation and the end-session URL. The "browser" is fetch
// with a cookie jar that follows the provider's redirects and posts its HTML forms. Plain
// http on loopback needs `allowInsecureRequests`. Each step prints `ok: ...`; the first
// failure prints `FAIL: ...` and exits 1.
import * as oidc from 'openid-client';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, cur, i, all) => {
    if (cur.startsWith('--')) acc.push([cur.slice(2), all[i + 1] === undefined || all[i + 1].startsWith('--') ? 'true' : all[i + 1]]);
    return acc;
  }, []),
);
const need = (k) => {
  if (args[k] === undefined) throw new Error(`--${k} is required`);
  return args[k];
};

class Failure extends Error {}
function check(cond, what, detail) {
  if (!cond) {
    let d = detail === undefined ? '' : typeof detail === 'string' ? detail : JSON.stringify(detail);
    if (d.length > 700) d = `${d.slice(0, 700)} ...`;
    throw new Failure(d ? `${what}: ${d}` : what);
  }
}
const ok = (what) => console.log(`ok: ${what}`);

// --- the browser ---
const jar = new Map();
function keepCookies(res) {
  for (const line of res.headers.getSetCookie()) {
    const [pair, ...attrs] = line.split(';');
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    const path = (attrs.map((a) => a.trim()).find((a) => a.toLowerCase().startsWith('path=')) ?? 'path=/').slice(5);
    const gone = value === '' || attrs.some((a) => /^\s*max-age=0\s*$/i.test(a));
    const key = `${name}|${path}`;
    if (gone) jar.delete(key); else jar.set(key, { name, value, path });
  }
}
function cookieHeader(url) {
  const path = new URL(url).pathname;
  return [...jar.values()]
    .filter((c) => path === c.path || path.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
    .map((c) => `${c.name}=${c.value}`)
    .join('; ');
}
async function browse(url, init = {}) {
  const headers = { 'user-agent': 'gatehouse-oidc-test openid-client-rp', accept: 'text/html,*/*;q=0.8', ...init.headers };
  const cookie = cookieHeader(url);
  if (cookie) headers.cookie = cookie;
  const res = await fetch(url, { ...init, headers, redirect: 'manual' });
  keepCookies(res);
  return res;
}

const decode = (s) => s.replace(/&(#x?[0-9a-f]+|amp|lt|gt|quot|apos);/gi, (m, e) => {
  const named = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }[e.toLowerCase()];
  if (named) return named;
  return String.fromCodePoint(e[1].toLowerCase() === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
});
function attrsOf(tag) {
  const out = {};
  for (const m of tag.matchAll(/([a-zA-Z_:-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g)) {
    out[m[1].toLowerCase()] = decode(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return out;
}
function formsOf(html) {
  const forms = [];
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const a = attrsOf(m[1]);
    const form = { action: a.action ?? '', method: (a.method ?? 'get').toLowerCase(), fields: {}, password: false, buttons: [] };
    for (const i of m[2].matchAll(/<input\b([^>]*)>/gi)) {
      const ia = attrsOf(i[1]);
      const type = (ia.type ?? 'text').toLowerCase();
      if (type === 'password') form.password = true;
      if (type === 'submit') form.buttons.push({ name: ia.name, value: ia.value ?? '', text: ia.value ?? '' });
      else if (ia.name && !['checkbox', 'radio'].includes(type)) form.fields[ia.name] = ia.value ?? '';
    }
    for (const b of m[2].matchAll(/<button\b([^>]*)>([\s\S]*?)<\/button>/gi)) {
      const ba = attrsOf(b[1]);
      if ((ba.type ?? 'submit').toLowerCase() === 'submit') {
        form.buttons.push({ name: ba.name, value: ba.value ?? '', text: decode(b[2].replace(/<[^>]*>/g, '')).trim() });
      }
    }
    forms.push(form);
  }
  return forms;
}

const pages = [];
async function submit(pageUrl, form, extra) {
  const action = new URL(form.action || pageUrl, pageUrl).href;
  const body = new URLSearchParams({ ...form.fields, ...extra });
  const headers = { origin: new URL(pageUrl).origin, referer: pageUrl };
  if (form.method === 'post') {
    return browse(action, { method: 'POST', body, headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' } });
  }
  const u = new URL(action);
  for (const [k, v] of body) u.searchParams.set(k, v);
  return browse(u.href, { headers });
}
async function go(url, until, email, password) {
  let res = await browse(url);
  let at = url;
  for (let hop = 0; hop < 12; hop += 1) {
    if ([301, 302, 303, 307, 308].includes(res.status)) {
      const loc = new URL(res.headers.get('location'), at).href;
      if (loc.startsWith(until)) return loc;
      at = loc;
      res = await browse(loc);
      continue;
    }
    const html = await res.text();
    check(res.status === 200, `a page on the way to ${until}`, `${res.status} at ${at}: ${html}`);
    const forms = formsOf(html);
    const login = forms.find((f) => f.password);
    const consent = forms.find((f) => f.buttons.some((b) => b.name === 'decision'));
    if (login) {
      pages.push('login');
      check(login.buttons.some((b) => b.text === 'Sign in'), 'the login button says Sign in', login.buttons);
      res = await submit(at, login, { email, password });
    } else if (consent) {
      pages.push('consent');
      check(consent.buttons.some((b) => b.name === 'decision' && b.value === 'allow'), 'an Allow button', consent.buttons);
      res = await submit(at, consent, { decision: 'allow' });
    } else if (forms.length === 1 && forms[0].method === 'post') {
      pages.push('confirm');
      const b = forms[0].buttons[0];
      res = await submit(at, forms[0], b?.name ? { [b.name]: b.value } : {});
    } else {
      throw new Failure(`a page with no form to fill at ${at}: ${html.slice(0, 800)}`);
    }
  }
  throw new Failure(`too many hops on the way to ${until}`);
}

// --- the relying party ---
async function main() {
  const issuer = need('issuer');
  const clientId = need('client-id');
  const method = args['auth-method'] ?? 'client_secret_basic';
  const secret = args['client-secret'];
  const alg = args.alg ?? 'RS256';
  const redirectUri = need('redirect-uri');
  const postLogout = need('post-logout-uri');
  const email = need('email');
  const password = need('password');
  const groups = (args.groups ?? '').split(',').filter(Boolean).sort();
  const explicit = (args.consent ?? 'explicit') === 'explicit';
  const reference = args['reference-op'] === 'true';
  const scope = 'openid email profile groups offline_access';

  const auth = { client_secret_basic: oidc.ClientSecretBasic, client_secret_post: oidc.ClientSecretPost }[method];
  const config = await oidc.discovery(
    new URL(issuer),
    clientId,
    { id_token_signed_response_alg: alg, ...(secret && method !== 'none' ? { client_secret: secret } : {}) },
    auth ? auth(secret) : oidc.None(),
    { execute: [oidc.allowInsecureRequests] },
  );
  const meta = config.serverMetadata();
  check(meta.issuer === issuer, 'discovery: issuer', meta.issuer);
  check(meta.authorization_response_iss_parameter_supported === true, 'discovery: RFC 9207 advertised');
  ok(`discovery (openid-client ${method})`);

  const flow = async (expectPages) => {
    const codeVerifier = oidc.randomPKCECodeVerifier();
    const codeChallenge = await oidc.calculatePKCECodeChallenge(codeVerifier);
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const params = {
      redirect_uri: redirectUri, scope, code_challenge: codeChallenge, code_challenge_method: 'S256', state, nonce,
    };
    if (reference) params.prompt = 'consent';
    const url = oidc.buildAuthorizationUrl(config, params);
    if (process.env.RP_DEBUG) console.log(url.href);
    pages.length = 0;
    const callback = await go(url.href, redirectUri, email, password);
    check(reference || JSON.stringify(pages) === JSON.stringify(expectPages), `pages ${expectPages}`, pages);
    check(new URL(callback).searchParams.get('iss') === issuer, 'iss in the authorization response', callback);
    const tokens = await oidc.authorizationCodeGrant(config, new URL(callback), {
      pkceCodeVerifier: codeVerifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true,
    });
    return tokens;
  };

  const tokens = await flow(explicit ? ['login', 'consent'] : ['login']);
  const claims = tokens.claims();
  check(claims.email === email, 'id_token email', claims);
  check(JSON.stringify([...(claims.groups ?? [])].sort()) === JSON.stringify(groups), `id_token groups ${groups}`, claims);
  check(tokens.refresh_token, 'a refresh token for offline_access', { scope: tokens.scope, pages });
  ok(`authorizationCodeGrant with PKCE, state and nonce; id_token ${alg} checked by openid-client (sub ${claims.sub})`);

  const info = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub);
  check(info.email === email, 'userinfo email', info);
  check(JSON.stringify([...(info.groups ?? [])].sort()) === JSON.stringify(groups), 'userinfo groups', info);
  ok('fetchUserInfo (sub checked)');

  const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token);
  check(refreshed.refresh_token && refreshed.refresh_token !== tokens.refresh_token, 'the refresh token rotates', refreshed);
  check((await oidc.fetchUserInfo(config, refreshed.access_token, claims.sub)).sub === claims.sub, 'userinfo after refresh');
  ok('refreshTokenGrant rotates');

  if (method !== 'none') {
    const active = await oidc.tokenIntrospection(config, refreshed.access_token);
    check(active.active === true && active.sub === claims.sub && active.client_id === clientId, 'introspection: active', active);
    ok('tokenIntrospection: active, with sub and client_id');
  }
  await oidc.tokenRevocation(config, refreshed.refresh_token, { token_type_hint: 'refresh_token' });
  try {
    await oidc.refreshTokenGrant(config, refreshed.refresh_token);
    throw new Failure('a revoked refresh token still refreshes');
  } catch (e) {
    if (e instanceof Failure) throw e;
    check(e.error === 'invalid_grant', 'a revoked refresh token: invalid_grant', `${e.name} ${e.error} ${e.message}`);
  }
  if (method !== 'none') {
    const gone = await oidc.tokenIntrospection(config, refreshed.refresh_token);
    check(gone.active === false, 'introspection of the revoked refresh token: inactive', gone);
  }
  ok('tokenRevocation of the refresh token; it no longer refreshes');

  const again = await flow([]);
  ok('a second authorization without a page (signed in, consent remembered)');
  const state = oidc.randomState();
  const end = oidc.buildEndSessionUrl(config, {
    id_token_hint: again.id_token, post_logout_redirect_uri: postLogout, state,
  });
  pages.length = 0;
  const back = await go(end.href, postLogout, email, password);
  check(new URL(back).searchParams.get('state') === state, 'end session: back with the state', back);
  check(back.split('?')[0] === postLogout, 'end session: at the post_logout_redirect_uri', back);
  ok(`buildEndSessionUrl: back at the post_logout_redirect_uri with state (pages: ${pages.join(', ') || 'none'})`);
  console.log('openid-client RP: all steps passed');
}

main().catch((e) => {
  console.log(e?.stack ?? String(e));
  console.log(`FAIL: ${e?.name}: ${e?.message} ${e?.error ?? ''} ${e?.cause ? JSON.stringify(e.cause) : ''}`);
  process.exit(1);
});
