"""Forge and sign JWTs for tests with the openssl CLI (stdlib has no ECDSA):
valid tokens with chosen claims, and every kind of bad one."""
import base64
import hashlib
import json
import os
import subprocess
import tempfile


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _der_ecdsa_to_raw(der):
    # SEQUENCE { INTEGER r, INTEGER s } -> r || s, 32 bytes each (RFC 7518 §3.4)
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7f)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        v = der[i + 2:i + 2 + n].lstrip(b"\x00")
        out += v.rjust(32, b"\x00")
        i += 2 + n
    return out


class Signer:
    """An EC P-256 key in a PEM file, signing ES256 like the server does."""

    def __init__(self, pem):
        self.pem = pem
        fd, self.path = tempfile.mkstemp(suffix=".pem")
        with os.fdopen(fd, "w") as f:
            f.write(pem)
        der = subprocess.run(["openssl", "pkey", "-in", self.path, "-pubout", "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self.kid = b64url(hashlib.sha256(der).digest()[:12])

    def sign(self, header, payload):
        h = b64url(json.dumps(header, separators=(",", ":")).encode())
        p = b64url(json.dumps(payload, separators=(",", ":")).encode())
        signing_input = (h + "." + p).encode()
        der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.path], input=signing_input,
                             check=True, capture_output=True).stdout
        return h + "." + p + "." + b64url(_der_ecdsa_to_raw(der))

    def token(self, sub, role="patient", iss="clarity", aud="clarity-api", iat=None, exp=None, **extra):
        import time
        now = int(time.time())
        claims = {"iss": iss, "aud": aud, "sub": sub, "role": role, "iat": iat if iat is not None else now,
                  "exp": exp if exp is not None else now + 3600, "jti": "test"}
        claims.update(extra)
        return self.sign({"alg": "ES256", "typ": "JWT", "kid": self.kid}, claims)

    def close(self):
        os.unlink(self.path)


def alg_none(sub, kid):
    import time
    now = int(time.time())
    h = b64url(json.dumps({"alg": "none", "kid": kid}).encode())
    p = b64url(json.dumps({"iss": "clarity", "aud": "clarity-api", "sub": sub, "iat": now,
                           "exp": now + 3600}).encode())
    return h + "." + p + "."


def tamper(token):
    """Change the payload's role to admin and keep the signature."""
    h, p, s = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    claims["role"] = "admin"
    return h + "." + b64url(json.dumps(claims).encode()) + "." + s


class RsaIssuer:
    """An external identity provider for tests: an RSA key of its own, its JWK
    Set, and RS256 tokens signed like Firebase, Cognito or any OIDC provider."""

    def __init__(self, kid="idp-key-1"):
        self.dir = tempfile.mkdtemp(prefix="clarity-idp-")
        self.kid = kid
        self.key = os.path.join(self.dir, "rsa.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                        "-out", self.key], check=True, capture_output=True)
        mod = subprocess.run(["openssl", "rsa", "-in", self.key, "-noout", "-modulus"], check=True,
                             capture_output=True).stdout.decode().strip().split("=", 1)[1]
        self.jwks = {"keys": [{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                               "n": b64url(bytes.fromhex(mod)), "e": b64url((65537).to_bytes(3, "big"))}]}
        self.jwks_path = os.path.join(self.dir, "jwks.json")
        with open(self.jwks_path, "w") as f:
            json.dump(self.jwks, f)

    def sign(self, claims, kid=None):
        h = b64url(json.dumps({"alg": "RS256", "kid": kid or self.kid, "typ": "JWT"}).encode())
        p = b64url(json.dumps(claims).encode())
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key], input=(h + "." + p).encode(),
                             check=True, capture_output=True).stdout
        return h + "." + p + "." + b64url(sig)

    def token(self, iss, sub, **claims):
        import time
        now = int(time.time())
        c = {"iss": iss, "sub": sub, "iat": now, "exp": now + 3600, "auth_time": now - 5}
        c.update(claims)
        return self.sign({k: v for k, v in c.items() if v is not None})

    def close(self):
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)
