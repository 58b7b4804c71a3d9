#!/usr/bin/env python3
"""A relying party built on Python's authlib (with requests), driving gatehouse's OpenID
Connect provider the way an app does. Started by tests/oidc_rp.rs; runnable by hand:

    python3 tests/oidc/authlib_rp.py --issuer http://127.0.0.1:8080 --client-id app \
        --client-secret S --auth-method client_secret_basic --alg RS256 \
        --redirect-uri http://127.0.0.1:9/cb --post-logout-uri http://127.0.0.1:9/bye \
        --email ada@example.org --password '...' --groups family,media

The "browser" is a requests.Session that follows the provider's redirects and posts the
plain HTML login and consent forms, as a person's browser would (with an Origin header).
Everything else is authlib: the authorization URL with state, nonce and PKCE S256, the code
exchange (client_secret_basic, client_secret_post or none), the id_token validated against
the JWKS, refresh, revocation (RFC 7009) and introspection (RFC 7662). Each step prints
`ok: ...`; the first failure prints `FAIL: ...` and exits 1.
"""

import argparse
import base64
import json
import secrets
import sys
import warnings
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

warnings.filterwarnings("ignore")  # authlib.jose's deprecation notice

import requests  # noqa: E402
import traceback  # noqa: E402

from authlib.integrations.base_client.errors import OAuthError  # noqa: E402
from authlib.integrations.requests_client import OAuth2Session  # noqa: E402
from authlib.jose import JsonWebKey, jwt  # noqa: E402
from authlib.oidc.core import CodeIDToken  # noqa: E402

TIMEOUT = 10


class Failure(Exception):
    pass


def check(cond, what, detail=""):
    if not cond:
        detail = str(detail)
        raise Failure(what + (": " + (detail[:700] + " ..." if len(detail) > 700 else detail) if detail else ""))


def ok(what):
    print(f"ok: {what}", flush=True)


class Forms(HTMLParser):
    """The forms of a page: action, method, fields (inputs with a name and value) and submit
    buttons (name, value, text)."""

    def __init__(self):
        super().__init__()
        self.forms = []
        self._button = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "method": a.get("method", "get").lower(),
                               "fields": {}, "inputs": [], "buttons": []})
        elif not self.forms:
            return
        elif tag == "input":
            f = self.forms[-1]
            f["inputs"].append(a)
            kind = a.get("type", "text").lower()
            if kind == "submit":
                f["buttons"].append({"name": a.get("name"), "value": a.get("value", ""), "text": a.get("value", "")})
            elif a.get("name") and kind not in ("checkbox", "radio"):
                f["fields"][a["name"]] = a.get("value", "")
            elif a.get("name") and "checked" in a:
                f["fields"][a["name"]] = a.get("value", "on")
        elif tag == "button":
            self._button = {"name": a.get("name"), "value": a.get("value", ""), "text": "",
                            "type": a.get("type", "submit").lower()}
        elif tag in ("textarea", "select") and a.get("name"):
            self.forms[-1]["fields"].setdefault(a["name"], "")

    def handle_data(self, data):
        if self._button is not None:
            self._button["text"] += data

    def handle_endtag(self, tag):
        if tag == "button" and self._button is not None:
            if self._button["type"] == "submit" and self.forms:
                self._button["text"] = self._button["text"].strip()
                self.forms[-1]["buttons"].append(self._button)
            self._button = None


def forms_of(html):
    p = Forms()
    p.feed(html)
    return p.forms


class Browser:
    """A person's browser, reduced to what the provider's pages need."""

    def __init__(self, issuer, email, password, consent="allow"):
        self.s = requests.Session()
        self.s.headers["User-Agent"] = "gatehouse-oidc-test authlib-rp"
        self.s.headers["Accept"] = "text/html,application/xhtml+xml,*/*;q=0.8"
        self.issuer = issuer
        self.email, self.password, self.consent = email, password, consent
        self.pages = []  # what it went through: ("login"|"consent"|"confirm", url)

    def submit(self, url, form, extra):
        data = dict(form["fields"])
        data.update(extra)
        action = urljoin(url, form["action"] or url)
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
        headers = {"Origin": origin, "Referer": url}
        if form["method"] == "post":
            return self.s.post(action, data=data, headers=headers, allow_redirects=False, timeout=TIMEOUT)
        return self.s.get(action, params=data, headers=headers, allow_redirects=False, timeout=TIMEOUT)

    def go(self, url, until, max_hops=12):
        """Follows redirects and fills the pages from `url` until a redirect to a URL that
        starts with `until`; returns that URL."""
        r = self.s.get(url, allow_redirects=False, timeout=TIMEOUT)
        for _ in range(max_hops):
            if r.status_code in (301, 302, 303, 307, 308):
                loc = urljoin(r.url, r.headers["Location"])
                if loc.startswith(until):
                    return loc
                r = self.s.get(loc, allow_redirects=False, timeout=TIMEOUT)
                continue
            check(r.status_code == 200, f"a page on the way to {until}", f"{r.status_code} at {r.url}: {r.text[:600]}")
            forms = forms_of(r.text)
            login = next((f for f in forms if "password" in f["fields"] or
                          any(i.get("type") == "password" for i in f["inputs"])), None)
            consent = next((f for f in forms if any(b.get("name") == "decision" for b in f["buttons"])), None)
            if login is not None:
                self.pages.append(("login", r.url))
                check(any(b["text"] == "Sign in" for b in login["buttons"]), "the login form's button says Sign in",
                      login["buttons"])
                r = self.submit(r.url, login, {"email": self.email, "password": self.password})
            elif consent is not None:
                self.pages.append(("consent", r.url))
                wanted = [b for b in consent["buttons"] if b["name"] == "decision" and b["value"] == self.consent]
                check(wanted, f"a consent button decision={self.consent}", consent["buttons"])
                r = self.submit(r.url, consent, {"decision": self.consent})
            elif len(forms) == 1 and forms[0]["method"] == "post":
                # A confirmation page (e.g. RP-initiated logout): its one button.
                self.pages.append(("confirm", r.url))
                f = forms[0]
                extra = {}
                if f["buttons"] and f["buttons"][0].get("name"):
                    extra[f["buttons"][0]["name"]] = f["buttons"][0]["value"]
                r = self.submit(r.url, f, extra)
            else:
                raise Failure(f"a page with no form to fill at {r.url}: {r.text[:800]}")
        raise Failure(f"more than {max_hops} hops on the way to {until}")


def b64url_json(part):
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--issuer", required=True)
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--client-secret")
    ap.add_argument("--auth-method", default="client_secret_basic",
                    choices=["client_secret_basic", "client_secret_post", "none"])
    ap.add_argument("--alg", default="RS256")
    ap.add_argument("--redirect-uri", required=True)
    ap.add_argument("--post-logout-uri", required=True)
    ap.add_argument("--email", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--groups", default="", help="the user's groups, comma-separated")
    ap.add_argument("--consent", default="explicit", choices=["explicit", "implicit"])
    ap.add_argument("--scope", default="openid email profile groups offline_access")
    ap.add_argument("--reference-op", action="store_true",
                    help="against benches/oidc/op.mjs (node oidc-provider), to check this script: "
                         "skips what only gatehouse's contract promises (refresh grace, offline_access "
                         "without prompt=consent)")
    a = ap.parse_args()
    try:
        run(a)
    except Exception as e:  # noqa: BLE001 - any failure is reported as one line, with its type
        traceback.print_exc()
        print(f"FAIL: {type(e).__name__}: {e}", flush=True)
        sys.exit(1)
    print("authlib RP: all steps passed", flush=True)


def run(a):
    issuer = a.issuer
    public = a.auth_method == "none"
    meta = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=TIMEOUT)
    check(meta.status_code == 200, "discovery answers 200", meta.status_code)
    meta = meta.json()
    check(meta["issuer"] == issuer, "discovery's issuer is public_url", meta["issuer"])
    for field in ["authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
                  "end_session_endpoint", "revocation_endpoint", "introspection_endpoint"]:
        check(meta.get(field, "").startswith(issuer + "/"), f"discovery names {field} under the issuer",
              meta.get(field))
    check(meta.get("response_types_supported") == ["code"], "response_types_supported is [code]",
          meta.get("response_types_supported"))
    check(meta.get("code_challenge_methods_supported") == ["S256"], "PKCE S256 only",
          meta.get("code_challenge_methods_supported"))
    check({"authorization_code", "refresh_token"} <= set(meta.get("grant_types_supported", [])), "grant types")
    check({"client_secret_basic", "client_secret_post", "none"} <= set(meta.get("token_endpoint_auth_methods_supported", [])),
          "token endpoint auth methods", meta.get("token_endpoint_auth_methods_supported"))
    check("RS256" in meta.get("id_token_signing_alg_values_supported", []), "RS256 supported")
    check(a.alg in meta.get("id_token_signing_alg_values_supported", []), f"{a.alg} supported")
    check(meta.get("subject_types_supported") == ["public"], "subject_types_supported")
    check(meta.get("authorization_response_iss_parameter_supported") is True, "RFC 9207 advertised")
    for s in ["openid", "email", "profile", "groups", "offline_access"]:
        check(s in meta.get("scopes_supported", []), f"scope {s} supported")
    for c in ["sub", "email", "groups"]:
        check(c in meta.get("claims_supported", []), f"claim {c} supported")
    ok("discovery")

    jwks = requests.get(meta["jwks_uri"], timeout=TIMEOUT).json()
    check(jwks.get("keys"), "the JWKS has keys", jwks)
    check(all(k.get("kid") for k in jwks["keys"]), "every JWK has a kid", jwks)
    check(not any("d" in k for k in jwks["keys"]), "no private key material in the JWKS")
    keyset = JsonWebKey.import_key_set(jwks)
    ok(f"JWKS with {len(jwks['keys'])} keys ({', '.join(sorted({k['kty'] for k in jwks['keys']}))})")

    groups = sorted(g for g in a.groups.split(",") if g)

    def session(**kw):
        return OAuth2Session(client_id=a.client_id, client_secret=None if public else a.client_secret,
                             token_endpoint_auth_method=a.auth_method,
                             revocation_endpoint_auth_method=a.auth_method,
                             scope=a.scope, redirect_uri=a.redirect_uri, code_challenge_method="S256", **kw)

    browser = Browser(issuer, a.email, a.password)

    def code_flow(expect_pages):
        """One authorization: returns (client session, token, nonce)."""
        client = session()
        state, nonce, verifier = secrets.token_urlsafe(16), secrets.token_urlsafe(16), secrets.token_urlsafe(48)
        extra = {"prompt": "consent"} if a.reference_op else {}
        url, _ = client.create_authorization_url(meta["authorization_endpoint"], state=state, nonce=nonce,
                                                 code_verifier=verifier, **extra)
        check("code_challenge=" in url and "code_challenge_method=S256" in url, "authlib sent PKCE S256", url)
        browser.pages.clear()
        callback = browser.go(url, a.redirect_uri)
        seen = [p for p, _ in browser.pages]
        check(seen == expect_pages or a.reference_op, f"pages on the way: {expect_pages}", seen)
        q = parse_qs(urlsplit(callback).query)
        check("error" not in q, "no error in the callback", callback)
        check(q.get("state") == [state], "state comes back", callback)
        check(q.get("iss") == [issuer], "iss in the authorization response (RFC 9207)", callback)
        token = client.fetch_token(meta["token_endpoint"], authorization_response=callback, state=state,
                                   code_verifier=verifier)
        check(token.get("token_type", "").lower() == "bearer", "token_type Bearer", token)
        check(isinstance(token.get("expires_in"), int) and token["expires_in"] > 0, "expires_in", token)
        check(token.get("access_token") and token.get("id_token"), "access_token and id_token", token)
        if "offline_access" in a.scope.split():
            check(token.get("refresh_token"), "a refresh_token for offline_access", token)
        else:
            check(not token.get("refresh_token"), "no refresh_token without offline_access", token)
        return client, token, nonce

    # 1. The first authorization: login, consent (explicit clients), code, tokens.
    first_pages = ["login", "consent"] if a.consent == "explicit" else ["login"]
    client, token, nonce = code_flow(first_pages)
    ok(f"code flow with PKCE through {' and '.join(first_pages)}; code exchanged with {a.auth_method}")

    header = b64url_json(token["id_token"].split(".")[0])
    check(header.get("alg") == a.alg, f"the id_token is signed {a.alg}", header)
    check(header.get("kid") in {k["kid"] for k in jwks["keys"]}, "its kid is in the JWKS", header)
    claims = jwt.decode(token["id_token"], keyset, claims_cls=CodeIDToken,
                        claims_options={"iss": {"essential": True, "value": issuer},
                                        "sub": {"essential": True}, "aud": {"essential": True},
                                        "exp": {"essential": True}, "iat": {"essential": True},
                                        "auth_time": {"essential": not a.reference_op}},
                        claims_params={"nonce": nonce, "client_id": a.client_id,
                                       "access_token": token["access_token"]})
    claims.validate(leeway=5)
    check(claims["aud"] == a.client_id or claims["aud"] == [a.client_id], "aud is the client id", claims["aud"])
    check(claims.get("nonce") == nonce, "the nonce is in the id_token")
    check(a.reference_op or "pwd" in claims.get("amr", []), "amr says pwd", claims.get("amr"))
    check(claims.get("email") == a.email and claims.get("email_verified") in (True, False), "email claims", claims)
    check(isinstance(claims.get("name"), str) and isinstance(claims.get("preferred_username"), str),
          "profile claims", claims)
    check(sorted(claims.get("groups", [])) == groups, f"groups claim {groups}", claims.get("groups"))
    check(claims["exp"] > claims["iat"] >= claims.get("auth_time", 0) - 5, "exp > iat >= auth_time", claims)
    sub = claims["sub"]
    ok(f"id_token validated by authlib against the JWKS ({a.alg}): sub {sub}, groups {claims.get('groups')}")

    for method in ("GET", "POST"):
        r = client.request(method, meta["userinfo_endpoint"], timeout=TIMEOUT)
        check(r.status_code == 200, f"userinfo {method}", f"{r.status_code} {r.text}")
        info = r.json()
        check(info.get("sub") == sub, "userinfo sub equals the id_token's", info)
        check(info.get("email") == a.email, "userinfo email", info)
        check(sorted(info.get("groups", [])) == groups, "userinfo groups", info)
    ok("userinfo GET and POST")

    def introspect(tok, hint=None):
        r = client.introspect_token(meta["introspection_endpoint"], token=tok, token_type_hint=hint)
        check(r.status_code == 200, "introspection answers 200", f"{r.status_code} {r.text}")
        return r.json()

    def userinfo_status(access):
        return requests.get(meta["userinfo_endpoint"], headers={"Authorization": f"Bearer {access}"},
                            timeout=TIMEOUT).status_code

    def refresh(rt):
        return session().refresh_token(meta["token_endpoint"], refresh_token=rt)

    def refresh_fails(rt, what):
        try:
            t = refresh(rt)
        except OAuthError as e:
            check(e.error == "invalid_grant", f"{what}: invalid_grant", e.error)
            return
        raise Failure(f"{what}: the refresh succeeded: {t}")

    if not public:
        info = introspect(token["access_token"], "access_token")
        check(info.get("active") is True, "the access token is active", info)
        check(info.get("sub") == sub and info.get("client_id") == a.client_id, "introspection sub, client_id", info)
        check("openid" in info.get("scope", "").split(), "introspection scope", info)
        check(info.get("exp", 0) > 0, "introspection exp", info)
        ok("introspection of an access token (RFC 7662)")

    # 2. Refresh: rotation, the grace for the token rotated last, reuse of an older one.
    r0 = token["refresh_token"]
    t1 = refresh(r0)
    r1 = t1.get("refresh_token")
    check(r1 and r1 != r0, "refresh rotates the refresh token", t1)
    check(t1.get("access_token") and t1["access_token"] != token["access_token"], "a new access token", t1)
    check(userinfo_status(t1["access_token"]) == 200, "the refreshed access token works")
    if t1.get("id_token"):
        c = jwt.decode(t1["id_token"], keyset, claims_cls=CodeIDToken,
                       claims_options={"iss": {"value": issuer}}, claims_params={"client_id": a.client_id})
        c.validate(leeway=5)
        check(c["sub"] == sub, "the refreshed id_token names the same sub")
    t2 = refresh(r1)
    r2 = t2["refresh_token"]
    check(r2 not in (r0, r1), "a second rotation")
    ok("refresh rotates (twice)")
    if not a.reference_op:
        t2b = refresh(r1)
        check(t2b.get("refresh_token") == r2,
              "within refresh_reuse_grace the token rotated last gets the same successor", t2b)
        ok("a repeat of the token rotated last within the grace window gets the same successor")
    refresh_fails(r0, "replaying a refresh token from two rotations ago")
    refresh_fails(r2, "after reuse detection, the newest refresh token")
    check(userinfo_status(t2["access_token"]) == 401, "after reuse detection, userinfo refuses the access token")
    if not public:
        check(introspect(t2["access_token"]).get("active") is False, "after reuse detection, introspection: inactive")
    ok("reuse of an old refresh token: invalid_grant, and the whole grant is revoked")

    # 3. Revocation (RFC 7009). The browser session lives on and consent is remembered: no
    # page this time.
    client, token, _ = code_flow([])
    ok("a second authorization: no login (same browser session), consent remembered")
    r = client.revoke_token(meta["revocation_endpoint"], token=token["access_token"], token_type_hint="access_token")
    check(r.status_code == 200, "revoking the access token answers 200", f"{r.status_code} {r.text}")
    check(userinfo_status(token["access_token"]) == 401, "a revoked access token: userinfo 401")
    if not public:
        check(introspect(token["access_token"]).get("active") is False, "a revoked access token is inactive")
    r = client.revoke_token(meta["revocation_endpoint"], token=token["refresh_token"], token_type_hint="refresh_token")
    check(r.status_code == 200, "revoking the refresh token answers 200", f"{r.status_code} {r.text}")
    refresh_fails(token["refresh_token"], "a revoked refresh token")
    r = client.revoke_token(meta["revocation_endpoint"], token="not-a-token-at-all")
    check(r.status_code == 200, "revoking an unknown token answers 200 (RFC 7009 2.2)", f"{r.status_code} {r.text}")
    ok("revocation of access and refresh tokens (RFC 7009)")

    # 4. RP-initiated logout with id_token_hint, post_logout_redirect_uri and state.
    client, token, _ = code_flow([])
    state = secrets.token_urlsafe(12)
    url = meta["end_session_endpoint"] + "?" + urlencode({
        "id_token_hint": token["id_token"], "post_logout_redirect_uri": a.post_logout_uri,
        "state": state, "client_id": a.client_id})
    browser.pages.clear()
    back = browser.go(url, a.post_logout_uri)
    q = parse_qs(urlsplit(back).query)
    check(back.split("?")[0] == a.post_logout_uri, "back at the post_logout_redirect_uri", back)
    check(q.get("state") == [state], "with the state", back)
    ok(f"RP-initiated logout redirected to the post_logout_redirect_uri with state (pages: {[p for p, _ in browser.pages] or 'none'})")
    probe = session()
    url, _ = probe.create_authorization_url(meta["authorization_endpoint"], state="s", nonce="n",
                                            code_verifier=secrets.token_urlsafe(48))
    r = browser.s.get(url, allow_redirects=False, timeout=TIMEOUT)
    signin = f"{issuer}/interaction/" if a.reference_op else f"{issuer}/login?rd="
    check(r.status_code in (302, 303) and urljoin(url, r.headers.get("Location", "")).startswith(signin),
          "after logout the browser must sign in again", f"{r.status_code} {r.headers.get('Location')}")
    ok("the browser session ended")


if __name__ == "__main__":
    main()
