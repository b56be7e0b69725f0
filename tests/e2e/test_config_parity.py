"""Configuration validated once (#15): `clarity config check` refuses exactly
what `clarity serve` refuses, over every variable; the templates in config/
pass both; unknown variables that look like Clarity's are warned about by
serve and refused by `config check --strict`; LOG_FORMAT=text is for people."""
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from harness import BIN, Server, production_keys, run_cli

ROOT = os.environ.get("CLARITY_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))

# One invalid value per variable, or None where any text is a valid value
# (names, versions, URLs of services only reached at run time). A variable
# added to the configuration without a row here fails test_every_variable.
BAD = {
    "ENVIRONMENT": "prod", "DEBUG": "maybe", "LOG_LEVEL": "TRACE",
    "GOOGLE_CLOUD_PROJECT": None, "GOOGLE_CLOUD_REGION": None, "CLOUD_RUN_SERVICE": None,
    "FIREBASE_PROJECT_ID": None,  # with OIDC_*: the auth helper's (#17) rules
    "FIREBASE_AUTH_DOMAIN": None, "VERTEX_AI_LOCATION": None, "ML_MODEL_ENDPOINT": None,
    "ACTIGRAPHY_MODEL_VERSION": None,
    "CORS_ORIGINS": '["https://a.example.com/path"]', "HOST": "localhost", "PORT": "65536",
    "DATABASE_URL": "mysql://x", "SHUTDOWN_GRACE_SECONDS": "-1", "RESTART_TIMEOUT_SECONDS": "0",
    "MAX_REQUEST_BYTES": "100", "HTTP_THREADS": "0",
    "HTTP_MAX_CONNECTIONS": "0", "HTTP_MAX_CONNECTIONS_PER_IP": "-1", "HTTP_HEADER_TIMEOUT_SECONDS": "0",
    "ACCESS_LOG_BUFFERED": "sometimes",
    "JWT_PRIVATE_KEY": "not a key", "JWT_ISSUER": None, "JWT_AUDIENCE": None,
    "ACCESS_TOKEN_TTL_SECONDS": "5", "ENCRYPTION_KEY": "c2hvcnQ=",
    "OIDC_JWKS_URL": None, "OIDC_JWKS_FILE": None,
    "OIDC_ISSUERS": "nope",  # refused by oidc_new, which both run (serve: exit 1, after its log line)
    "OIDC_PROVIDERS": "nope",  # refused by oidc_login_new, which both run
    "OIDC_REDIRECT_BASE": "https://clarity.example.com",  # refused without OIDC_PROVIDERS
    "SMTP_URL": None, "SMTP_FROM": None, "SMTP_USERNAME": None, "SMTP_PASSWORD": None,
    "IMPORT_STALE_SECONDS": "0", "RAW_UPLOAD_RETENTION_DAYS": "-1", "SAMPLE_BLOCK_FORMAT": "3",
    "TRUSTED_PROXIES": '["proxy.local"]', "LOCKOUT_THRESHOLD": "0", "LOCKOUT_WINDOW_SECONDS": "0",
    "LOCKOUT_SECONDS": "0", "RATE_LIMITS": "auth=5", "DOCS_ENABLED": "sometimes",
    "DOCS_ASSETS_DIR": None, "WEB_APP_ENABLED": "sometimes", "MAX_IMPORT_BYTES": "1", "MAX_METRICS_PER_UPLOAD": "0",
    "PASSWORD_HASH_PROFILE": "fast", "WORKER_THREADS": "65", "WORKER_LEASE_SECONDS": "0",
    "PAT_MODEL_PATH": "/nonexistent/pat.h5", "PAT_MODEL_SHA256": "abc",
    "PAT_STANDARDIZATION": "per-minute:x.csv", "INSIGHT_GENERATOR": "gpt",
    "PIPELINE_TEST_FAULT": "explode=1", "GEMINI_API_KEY": None, "GEMINI_MODEL": None,
    "LLM_BASE_URL": "localhost:8080", "LLM_API_KEY": None, "LLM_MODEL": None,
    "CHAT_MAX_MESSAGE_BYTES": "1", "CHAT_MESSAGES_PER_MINUTE": "0", "CHAT_MAX_CONNECTIONS_PER_USER": "0",
    "CHAT_HEARTBEAT_SECONDS": "0", "CHAT_IDLE_TIMEOUT_SECONDS": "0", "CHAT_MAX_DATA_POINTS": "20161",
    "CHAT_MAX_CONNECTIONS": "0",
    "LOG_FORMAT": "xml", "METRICS_TOKEN": "short", "HEALTH_CANARY_SECONDS": "1",
}

# Values that depend on another variable: refused together.
BAD_PAIRS = [
    {"INSIGHT_GENERATOR": "gemini"},  # without GEMINI_API_KEY
    {"INSIGHT_GENERATOR": "openai", "LLM_API_KEY": "k", "LLM_MODEL": "m"},  # without LLM_BASE_URL
    {"PAT_MODEL_PATH": "/etc/hostname"},  # without PAT_STANDARDIZATION
    {"ENVIRONMENT": "production", "PIPELINE_TEST_FAULT": "delay_ms=5"},
    {"ENVIRONMENT": "production", "DEBUG": "true"},
]


def base_env(work):
    return {"HOME": work, "PORT": "0", "HOST": "127.0.0.1", "HTTP_THREADS": "2",
            "DATABASE_URL": "sqlite:" + os.path.join(work, "clarity.db"),
            "PASSWORD_HASH_PROFILE": "interactive", "WORKER_THREADS": "0"}


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ready(port):
    import http.client
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", "/readiness")
        return c.getresponse().status == 200
    except OSError:
        return False


def serve_until_listening(env, cwd, timeout=30):
    """Start `clarity serve`; returns (exit status or None when it listened
    (logged `listening`, or answered /readiness on a non-zero PORT), stderr)."""
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for key in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if key in os.environ:
            e[key] = os.environ[key]
    e.update(env)
    p = subprocess.Popen([BIN, "serve"], env=e, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = b""
    os.set_blocking(p.stderr.fileno(), False)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            chunk = p.stderr.read()
            if chunk:
                err += chunk
            if b'"message":"listening"' in err or b" INFO listening " in err or \
                    (env.get("PORT", "0") != "0" and ready(int(env["PORT"]))):
                return None, err.decode("utf-8", "replace")
            if p.poll() is not None:
                rest = p.stderr.read()
                err += rest or b""
                return p.returncode, err.decode("utf-8", "replace")
            time.sleep(0.02)
        raise AssertionError("serve neither listened nor exited: " + err.decode("utf-8", "replace"))
    finally:
        if p.poll() is None:
            p.terminate()
            p.wait(30)
        p.stderr.close()


class Parity(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="clarity-parity-")

    def tearDown(self):
        shutil.rmtree(self.work, ignore_errors=True)

    def assert_both_refuse(self, extra):
        env = base_env(self.work)
        if extra.get("ENVIRONMENT") in ("staging", "production"):
            env.update(production_keys())
        env.update(extra)
        code, _, err = run_cli(["config", "check"], env=env, cwd=self.work)
        self.assertEqual(code, 2, (extra, err))
        line = [l for l in err.splitlines() if "invalid configuration" in l]
        self.assertEqual(len(line), 1, err)
        scode, serr = serve_until_listening(env, self.work)
        # Configuration errors stop serve before anything starts (exit 2, the
        # same line); the external-identity set-up refuses later (exit 1) with
        # the same reason in its log line.
        self.assertIn(scode, (1, 2), (extra, "serve started", serr))
        if scode == 2:
            self.assertIn(line[0], serr, extra)
        else:
            self.assertIn(line[0].split("invalid configuration: ", 1)[1], serr.replace('\\"', '"'), extra)

    def test_every_variable(self):
        code, out, err = run_cli(["config", "check"], env=base_env(self.work), cwd=self.work)
        self.assertEqual(code, 0, err)
        names = [l.split("=", 1)[0] for l in out.splitlines() if "=" in l]
        self.assertEqual(sorted(names), sorted(BAD), "a variable without a row in BAD (or a stale row)")
        for name, value in BAD.items():
            if value is not None:
                with self.subTest(name=name):
                    self.assert_both_refuse({name: value})
        for pair in BAD_PAIRS:
            with self.subTest(pair=pair):
                self.assert_both_refuse(pair)

    def test_what_check_accepts_serve_starts(self):
        """Non-default valid values of the structured variables together:
        config check passes and serve reaches `listening`."""
        env = base_env(self.work)
        env.update({
            "RATE_LIMITS": "auth=10/60,upload=5/30", "TRUSTED_PROXIES": '["10.0.0.1","::1"]',
            "INSIGHT_GENERATOR": "openai", "LLM_BASE_URL": "http://127.0.0.1:9/v1", "LLM_API_KEY": "k",
            "LLM_MODEL": "m", "PAT_STANDARDIZATION": "global:1.5:2", "PIPELINE_TEST_FAULT": "delay_ms=1",
            "CORS_ORIGINS": '["https://a.example.com"]', "METRICS_TOKEN": "0123456789abcdef0123",
            "HEALTH_CANARY_SECONDS": "60", "DEBUG": "true", "LOG_FORMAT": "json",
            "FIREBASE_PROJECT_ID": "demo", "OIDC_JWKS_URL":
                "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com",
        })
        code, _, err = run_cli(["config", "check", "--strict"], env=env, cwd=self.work)
        self.assertEqual(code, 0, err)
        scode, serr = serve_until_listening(env, self.work)
        self.assertIsNone(scode, serr)


class Templates(unittest.TestCase):
    def test_templates_pass_check_and_serve(self):
        keys = production_keys()
        for env_name in ("development", "staging", "production"):
            with self.subTest(env=env_name):
                work = tempfile.mkdtemp(prefix="clarity-template-")
                try:
                    shutil.copy(os.path.join(ROOT, "config", "env." + env_name),
                                os.path.join(work, ".env." + env_name))
                    env = {"ENVIRONMENT": env_name, "HOME": work, "PORT": "0", "HOST": "127.0.0.1",
                           "LOG_LEVEL": "INFO", "LOG_FORMAT": "json", "WORKER_THREADS": "0",
                           "DATABASE_URL": "sqlite:" + os.path.join(work, "clarity.db")}
                    if env_name != "development":
                        for name, value in keys.items():
                            path = os.path.join(work, name.lower())
                            with open(path, "w") as f:
                                f.write(value)
                            env[name + "_FILE"] = path
                        env["METRICS_TOKEN"] = "0123456789abcdef0123"
                    code, out, err = run_cli(["config", "check", "--strict"], env=env, cwd=work)
                    self.assertEqual(code, 0, err)
                    self.assertIn("(.env file)", out)
                    if env_name != "development":
                        code, _, err = run_cli(["migrate", "up"], env=env, cwd=work)
                        self.assertEqual(code, 0, err)
                    scode, serr = serve_until_listening(env, work)
                    self.assertIsNone(scode, serr)
                finally:
                    shutil.rmtree(work, ignore_errors=True)


class UnknownVariables(unittest.TestCase):
    def test_serve_warns_strict_check_refuses(self):
        work = tempfile.mkdtemp(prefix="clarity-unknown-")
        try:
            env = base_env(work)
            env.update({"DATABSE_URL": "postgres://x", "FIRESTORE_PROJECT_ID": "p", "CLOUD_RUN_REGION": "r"})
            code, _, err = run_cli(["config", "check"], env=env, cwd=work)
            self.assertEqual(code, 0, err)
            self.assertIn("warning: DATABSE_URL: not read: did you mean DATABASE_URL?", err)
            code, _, err = run_cli(["config", "check", "--strict"], env=env, cwd=work)
            self.assertEqual(code, 2, err)
            self.assertIn("3 unknown variables", err)
            self.assertIn("CLOUD_RUN_REGION: not read: the region is GOOGLE_CLOUD_REGION", err)
            srv = Server(env={k: v for k, v in env.items() if k not in ("HOME", "DATABASE_URL")})
            try:
                warned = [r for r in srv.logs() if r.get("message") == "unknown variable that looks like Clarity's"]
                self.assertEqual(sorted(r["variable"] for r in warned),
                                 ["CLOUD_RUN_REGION", "DATABSE_URL", "FIRESTORE_PROJECT_ID"])
            finally:
                srv.stop()
        finally:
            shutil.rmtree(work, ignore_errors=True)


class TextLogs(unittest.TestCase):
    def test_log_format_text(self):
        work = tempfile.mkdtemp(prefix="clarity-text-")
        try:
            env = base_env(work)
            env["LOG_FORMAT"] = "text"
            code, err = serve_until_listening(env, work)
            self.assertIsNone(code, err)
            line = [l for l in err.splitlines() if " listening " in l][0]
            self.assertRegex(line, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO listening host=127\.0\.0\.1 "
                                   r"port=\d+ environment=development")
            self.assertFalse(any(l.startswith("{") for l in err.splitlines()), err)
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
