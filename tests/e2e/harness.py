"""Start the real `clarity` binary on a loopback port and talk to it.

Used by the end-to-end tests (run by ctest with CLARITY_BIN set). Each server
gets its own temporary working directory and SQLite database, and PORT=0 so
the kernel picks a free port; the port is read from the "listening" log line.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

BIN = os.environ.get("CLARITY_BIN", "build/release/clarity")


class Server:
    def __init__(self, env=None, start=True, timeout=20.0, migrate=False, workdir=None):
        # workdir: reuse another server's directory (and database), e.g. to
        # restart after a crash; it is then not removed by stop().
        self.keep_dir = workdir is not None
        self.dir = workdir or tempfile.mkdtemp(prefix="clarity-e2e-")
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.dir,
            "PORT": "0",
            "HOST": "127.0.0.1",
            "DATABASE_URL": "sqlite:" + os.path.join(self.dir, "clarity.db"),
            "LOG_LEVEL": "INFO",
            "HTTP_THREADS": "2",
            "PASSWORD_HASH_PROFILE": "interactive",
        }
        for key in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if key in os.environ:
                self.env[key] = os.environ[key]
        if env:
            self.env.update(env)
        self.proc = None
        self.port = None
        self.lines = []
        self._lock = threading.Lock()
        if migrate:
            # Staging and production refuse pending migrations: deploys
            # run `clarity migrate up` first, and so do these tests.
            rc, out, err = run_cli(["migrate", "up"], env=self.env, cwd=self.dir)
            if rc != 0:
                raise RuntimeError("clarity migrate up failed: " + err)
        if start:
            self.start(timeout)

    def start(self, timeout=20.0):
        self.proc = subprocess.Popen(
            [BIN, "serve"], cwd=self.dir, env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.time() + timeout
        while time.time() < deadline:
            for rec in self.logs():
                if rec.get("message") == "listening":
                    self.port = rec["port"]
                    return
            if self.proc.poll() is not None:
                raise RuntimeError("clarity exited %s: %s" % (self.proc.returncode, self.text()))
            time.sleep(0.02)
        raise RuntimeError("clarity did not start: " + self.text())

    def _read(self):
        for raw in self.proc.stderr:
            with self._lock:
                self.lines.append(raw.decode("utf-8", "replace"))

    def text(self):
        with self._lock:
            return "".join(self.lines)

    def logs(self):
        """Every stderr line parsed as JSON (non-JSON lines are an error)."""
        out = []
        with self._lock:
            lines = list(self.lines)
        for line in lines:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"message": "NON-JSON LOG LINE", "raw": line})
        return out

    def conn(self, timeout=10):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, conn=None):
        """One request; returns (status, headers dict lowercased, body bytes)."""
        own = conn is None
        c = conn or self.conn()
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
            return r.status, hdrs, data
        finally:
            if own:
                c.close()

    def json(self, method, path, body=None, headers=None, conn=None):
        status, hdrs, data = self.request(method, path, body, headers, conn)
        return status, hdrs, (json.loads(data) if data else None)

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait(self, timeout=30):
        try:
            return self.proc.wait(timeout)
        finally:
            self._reader.join(timeout=5)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self._reader.join(timeout=5)
            if self.proc.stderr is not None:
                self.proc.stderr.close()
            # Sanitizer reports go to stderr; a test run must not have any.
            text = self.text()
            if "ERROR: AddressSanitizer" in text or "runtime error:" in text or \
                    "ERROR: LeakSanitizer" in text:
                raise AssertionError("sanitizer report:\n" + text)
        if not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def production_keys():
    """Real secrets for staging/production servers: an EC P-256 signing key
    (PEM, from the openssl CLI) and a base64 32-byte encryption key."""
    import base64
    pem = subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
                         check=True, capture_output=True).stdout.decode()
    return {"JWT_PRIVATE_KEY": pem, "ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode()}


PG_INITDB = "/usr/lib/postgresql/15/bin/initdb"
SOURCE_DIR = os.environ.get("CLARITY_SOURCE_DIR",
                            os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


class PgServer:
    """A throwaway PostgreSQL server (scripts/pg-test-server, loopback, in a
    session of its own): .url is its DATABASE_URL; stop() ends it."""

    def __init__(self):
        env = dict(os.environ, PG_TEST_OPTS="-c fsync=off")
        self.proc = subprocess.Popen([os.path.join(SOURCE_DIR, "scripts", "pg-test-server")],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                                     start_new_session=True)
        self.url = None
        for raw in self.proc.stdout:
            line = raw.decode().strip()
            if line.startswith("DATABASE_URL="):
                self.url = line.split("=", 1)[1]
                break
        if self.url is None:
            self.stop()
            raise RuntimeError("pg-test-server did not start")

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        self.proc.stdout.close()
        self.proc.wait(60)


def run_cli(args, env=None, cwd=None, timeout=60, stdin=None):
    """Run `clarity ARGS`; returns (exit status, stdout, stderr) as text."""
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for key in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if key in os.environ:
            e[key] = os.environ[key]
    if env:
        e.update(env)
    p = subprocess.run([BIN] + list(args), env=e, cwd=cwd, capture_output=True,
                       timeout=timeout, input=stdin)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def raw_connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s


def read_http_response(sock, timeout=10):
    """Read one HTTP/1.1 response with Content-Length from a raw socket."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    n = int(hdrs.get("content-length", "0"))
    while len(rest) < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, hdrs, rest[:n]
