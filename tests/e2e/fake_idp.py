"""A fake OpenID Connect provider on loopback for the sign-in tests (issue 20).

It serves what a real provider serves for the authorization-code flow:
  /.well-known/openid-configuration   the discovery document
  /authorize                          checks the request (response_type=code,
                                      client_id, redirect_uri, PKCE S256, state,
                                      nonce) and redirects back with a code
  /token                              checks grant_type, the code (single use),
                                      redirect_uri, client authentication and
                                      the PKCE verifier against the challenge,
                                      then issues an RS256 ID token signed with
                                      its own key (tokens.RsaIssuer)
  /jwks                               its JWK Set
Knobs (attributes) make it misbehave for the negative tests: `deny` (answer
error=access_denied), `claims` (the next ID token's claims: sub, email,
email_verified, or overrides such as aud, nonce, exp), `token_mode` ("ok",
"down": 503, "slow": sleep `slow_s` first, "invalid_grant": 400).
"""
import base64
import hashlib
import http.server
import json
import secrets
import threading
import time
import urllib.parse

from tokens import RsaIssuer


class FakeIdp:
    def __init__(self, host="127.0.0.1", client_id="clarity-web", client_secret="s3cret-value"):
        self.rsa = RsaIssuer(kid="fake-idp-1")
        self.client_id = client_id
        self.client_secret = client_secret
        self.deny = False
        self.claims = {}
        self.token_mode = "ok"
        self.slow_s = 8
        self.codes = {}
        self.authorize_requests = []
        self.token_requests = []
        self.problems = []  # requests the provider had to refuse (a client bug)
        self.lock = threading.Lock()
        idp = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def send(self, status, body=b"", ctype="application/json", headers=None):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                u = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(u.query))
                if u.path == "/.well-known/openid-configuration":
                    self.send(200, json.dumps(idp.discovery()).encode())
                elif u.path == "/jwks":
                    self.send(200, json.dumps(idp.rsa.jwks).encode())
                elif u.path == "/authorize":
                    self.authorize(q)
                elif u.path == "/_control":  # the browser test's knob: /_control?deny=1
                    idp.deny = q.get("deny") == "1"
                    self.send(200, b"{}")
                else:
                    self.send(404, b"{}")

            def authorize(self, q):
                with idp.lock:
                    idp.authorize_requests.append(q)
                bad = None
                if q.get("response_type") != "code":
                    bad = "response_type"
                elif q.get("client_id") != idp.client_id:
                    bad = "client_id"
                elif q.get("code_challenge_method") != "S256" or len(q.get("code_challenge", "")) != 43:
                    bad = "pkce"
                elif not q.get("state") or not q.get("nonce") or "openid" not in q.get("scope", "").split():
                    bad = "state/nonce/scope"
                elif not q.get("redirect_uri", "").endswith("/callback"):
                    bad = "redirect_uri"
                if bad:
                    idp.problems.append("authorize: " + bad)
                    self.send(400, json.dumps({"error": "invalid_request", "what": bad}).encode())
                    return
                sep = "&" if "?" in q["redirect_uri"] else "?"
                if idp.deny:
                    loc = q["redirect_uri"] + sep + urllib.parse.urlencode(
                        {"error": "access_denied", "state": q["state"]})
                else:
                    code = secrets.token_urlsafe(24)
                    with idp.lock:
                        idp.codes[code] = {"nonce": q["nonce"], "challenge": q["code_challenge"],
                                           "redirect_uri": q["redirect_uri"], "claims": dict(idp.claims)}
                    loc = q["redirect_uri"] + sep + urllib.parse.urlencode({"code": code, "state": q["state"]})
                self.send(302, b"", "text/plain", {"Location": loc})

            def do_POST(self):
                u = urllib.parse.urlsplit(self.path)
                n = int(self.headers.get("Content-Length", "0"))
                form = dict(urllib.parse.parse_qsl(self.rfile.read(n).decode()))
                if u.path != "/token":
                    self.send(404, b"{}")
                    return
                with idp.lock:
                    idp.token_requests.append({"form": form, "authorization": self.headers.get("Authorization")})
                if idp.token_mode == "down":
                    self.send(503, b'{"error":"temporarily_unavailable"}')
                    return
                if idp.token_mode == "slow":
                    time.sleep(idp.slow_s)
                if idp.token_mode == "invalid_grant":
                    self.send(400, b'{"error":"invalid_grant"}')
                    return
                err = idp.check_token_request(form, self.headers.get("Authorization"))
                if err:
                    idp.problems.append("token: " + err)
                    self.send(400, json.dumps({"error": "invalid_grant", "what": err}).encode())
                    return
                grant = idp.codes.pop(form["code"])
                claims = {"aud": idp.client_id, "nonce": grant["nonce"], "sub": "fake-user-1",
                          "email": "person@example.org", "email_verified": True, "name": "Fake Person"}
                claims.update(grant["claims"])
                tok = idp.rsa.token(idp.issuer, claims.pop("sub"), **claims)
                body = {"access_token": "fake-at-" + secrets.token_hex(8), "token_type": "Bearer",
                        "expires_in": 3600, "id_token": tok}
                self.send(200, json.dumps(body).encode(), headers={"Cache-Control": "no-store"})

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.issuer = "http://%s:%d" % (host, self.port)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def discovery(self):
        return {"issuer": self.issuer, "authorization_endpoint": self.issuer + "/authorize",
                "token_endpoint": self.issuer + "/token", "jwks_uri": self.issuer + "/jwks",
                "response_types_supported": ["code"], "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"], "code_challenge_methods_supported": ["S256"]}

    def check_token_request(self, form, authorization):
        if form.get("grant_type") != "authorization_code":
            return "grant_type"
        grant = self.codes.get(form.get("code", ""))
        if grant is None:
            return "unknown or used code"
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return "redirect_uri"
        want = "Basic " + base64.b64encode(("%s:%s" % (self.client_id, self.client_secret)).encode()).decode()
        if authorization != want:
            return "client authentication"
        v = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(v.encode()).digest()).rstrip(b"=").decode()
        if not (43 <= len(v) <= 128) or challenge != grant["challenge"]:
            return "PKCE verifier"
        return None

    def provider_config(self, name="test", label="Test IdP", **extra):
        d = {"name": name, "label": label, "issuer": self.issuer, "client_id": self.client_id,
             "client_secret": self.client_secret}
        d.update(extra)
        return d

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.rsa.close()
