// gatehouse: passkey ceremonies for the login and account pages (served as
// /static/webauthn.js under `script-src 'self'`; the pages work without it, passkeys aside).
// The server's options come as JSON with base64url binary fields; WebAuthn wants buffers.
(function () {
  "use strict";

  function decode(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) { b64 += "="; }
    var raw = atob(b64), bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
    return bytes.buffer;
  }

  function encode(buffer) {
    var bytes = new Uint8Array(buffer), raw = "";
    for (var i = 0; i < bytes.length; i++) { raw += String.fromCharCode(bytes[i]); }
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function ids(list) {
    return (list || []).map(function (c) { return Object.assign({}, c, { id: decode(c.id) }); });
  }

  function creationOptions(options) {
    var pk = Object.assign({}, options.publicKey);
    pk.challenge = decode(pk.challenge);
    pk.user = Object.assign({}, pk.user, { id: decode(pk.user.id) });
    pk.excludeCredentials = ids(pk.excludeCredentials);
    return { publicKey: pk };
  }

  function requestOptions(options) {
    var pk = Object.assign({}, options.publicKey);
    pk.challenge = decode(pk.challenge);
    pk.allowCredentials = ids(pk.allowCredentials);
    return { publicKey: pk };
  }

  function credential(c) {
    var r = c.response, out = {
      id: c.id, rawId: encode(c.rawId), type: c.type,
      extensions: c.getClientExtensionResults ? c.getClientExtensionResults() : {},
      response: { clientDataJSON: encode(r.clientDataJSON) }
    };
    if (r.attestationObject) {
      out.response.attestationObject = encode(r.attestationObject);
      if (r.getTransports) { out.response.transports = r.getTransports(); }
    }
    if (r.authenticatorData) {
      out.response.authenticatorData = encode(r.authenticatorData);
      out.response.signature = encode(r.signature);
      out.response.userHandle = r.userHandle ? encode(r.userHandle) : null;
    }
    return out;
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Auth-Mode": "cookie" },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (json) {
        if (!r.ok) { throw new Error(json.detail || ("the server answered " + r.status)); }
        return json;
      });
    });
  }

  function fail(id, error) {
    var box = document.getElementById(id);
    if (!box) { return; }
    box.textContent = error && error.name === "NotAllowedError"
      ? "The passkey request was cancelled or timed out. Try again."
      : "That did not work: " + (error && error.message ? error.message : error);
    box.hidden = false;
  }

  // Sign in with a passkey (alone, or as a login's second step with data-mfa-token).
  document.querySelectorAll("[data-passkey-signin]").forEach(function (button) {
    button.addEventListener("click", function () {
      var root = button.dataset.root, token = button.dataset.mfaToken;
      var start = token ? { mfa_token: token } : {};
      button.disabled = true;
      post(root + "auth/passkey/options", start).then(function (options) {
        return navigator.credentials.get(requestOptions(options)).then(function (c) {
          var body = { ceremony: options.ceremony, credential: credential(c) };
          if (token) { body.mfa_token = token; }
          return post(root + "auth/passkey/login", body);
        });
      }).then(function () {
        window.location.assign(button.dataset.next);
      }).catch(function (e) {
        button.disabled = false;
        fail("passkey-error", e);
      });
    });
  });

  // Add a passkey (the account page's form: a name and the current password).
  document.querySelectorAll("form[data-passkey-register]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var root = form.dataset.root, button = form.querySelector("button");
      var start = { name: form.elements.name.value, password: form.elements.password.value };
      button.disabled = true;
      post(root + "auth/mfa/passkeys/options", start).then(function (options) {
        return navigator.credentials.create(creationOptions(options)).then(function (c) {
          return post(root + "auth/mfa/passkeys", { ceremony: options.ceremony, credential: credential(c) });
        });
      }).then(function (added) {
        var codes = added.recovery_codes || [];
        if (!codes.length) { window.location.assign(form.dataset.next); return; }
        // The first second factor: its recovery codes are shown once, here.
        var list = document.getElementById("new-recovery-codes");
        codes.forEach(function (code) {
          var item = document.createElement("li");
          item.textContent = code;
          list.appendChild(item);
        });
        document.getElementById("new-recovery").hidden = false;
        form.hidden = true;
      }).catch(function (e) {
        button.disabled = false;
        fail("passkey-add-error", e);
      });
    });
  });
})();
