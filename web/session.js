/*
 * session.js: the dashboard's side of authorization.
 * Owns: moving a token given in the page address (?token=…, what `make demo`
 * prints) into the aegis_token cookie (SameSite=Strict, Path=/, Secure over
 * HTTPS, expiring with the token) and out of the address bar and history, so
 * every EventSource and run request of the page carries it; and asking the
 * bridge why a stream was refused (EventSource itself never tells).
 * Runs when loaded, before dashboard.js opens any stream.
 */
(function () {
  "use strict";

  var TOKEN_RE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

  /* the token's exp claim (seconds), or null; the bridge verifies, this only sizes the cookie */
  function tokenExp(token) {
    try {
      var part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      while (part.length % 4) part += "=";
      var exp = JSON.parse(atob(part)).exp;
      return typeof exp === "number" ? exp : null;
    } catch (e) {
      return null;
    }
  }

  function adoptToken() {
    var url = new URL(window.location.href);
    var token = url.searchParams.get("token");
    if (token === null) return;
    url.searchParams.delete("token");
    window.history.replaceState(window.history.state, "", url.pathname + url.search + url.hash);
    if (!TOKEN_RE.test(token)) {
      console.warn("aegis: the token in the page address is not a JWT; ignored");
      return;
    }
    var exp = tokenExp(token);
    var cookie = "aegis_token=" + token + "; Path=/; SameSite=Strict";
    if (window.location.protocol === "https:") cookie += "; Secure";
    if (exp !== null) cookie += "; Max-Age=" + Math.max(0, Math.floor(exp - Date.now() / 1000));
    document.cookie = cookie;
  }

  /* refusal(url): a promise of the HTTP status the bridge answers for url now
   * (401, 403, 503…; 0 when unreachable); a stream that opens is dropped at once */
  function refusal(url) {
    var ctrl = new AbortController();
    return fetch(url, { credentials: "same-origin", cache: "no-store", signal: ctrl.signal })
      .then(function (r) { ctrl.abort(); return r.status; }, function () { return 0; });
  }

  adoptToken();
  window.aegisSession = { refusal: refusal };
})();
