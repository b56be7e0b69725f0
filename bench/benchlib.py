"""Helpers the Python benchmarks share: run a `clarity` binary the way a
deployment does, only through its public interfaces (CLI commands, HTTP
API), so a benchmark keeps measuring whatever the store looks like inside.

staging_env() gives the environment of a staging deployment (real keys,
SQLite synchronous=FULL, pending migrations refused): the production write
path, not the development shortcut (synchronous=NORMAL)."""
import base64
import http.client
import json
import os
import subprocess
import threading
import time

_KEYS = None


def keys():
    """An EC P-256 JWT signing key and a 32-byte encryption key, made once
    per process (openssl CLI, as the e2e harness does)."""
    global _KEYS
    if _KEYS is None:
        pem = subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
                             check=True, capture_output=True).stdout.decode()
        _KEYS = {"JWT_PRIVATE_KEY": pem, "ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode()}
    return _KEYS


def staging_env(database_url, workdir, full_sync=True, **extra):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": workdir, "PORT": "0", "HOST": "127.0.0.1",
           "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING", "PASSWORD_HASH_PROFILE": "interactive",
           "WORKER_THREADS": "0", "RATE_LIMITS": "auth=1000/60,upload=1000000/60,api=1000000/60",
           "MAX_REQUEST_BYTES": "67108864"}
    for key in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):  # a sanitizer build under the e2e suite
        if key in os.environ:
            env[key] = os.environ[key]
    if full_sync:
        env["ENVIRONMENT"] = "staging"
        env.update(keys())
    env.update({k: str(v) for k, v in extra.items()})
    return env


def cli(binary, args, env, cwd, stdin=None, check=True):
    p = subprocess.run([binary] + list(args), env=env, cwd=cwd, capture_output=True, input=stdin)
    if check and p.returncode != 0:
        raise SystemExit("clarity %s failed (%d): %s" % (" ".join(args), p.returncode,
                                                          p.stderr.decode("utf-8", "replace")[-2000:]))
    return p


def cpu_seconds(pid):
    """User + system CPU seconds of a process so far, all its threads
    (/proc/PID/stat fields 14 and 15, in clock ticks)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """`clarity serve` on a free loopback port."""

    def __init__(self, binary, env, cwd):
        self.proc = subprocess.Popen([binary, "serve"], cwd=cwd, env=dict(env, LOG_LEVEL="INFO"),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.port = None
        deadline = time.time() + 60
        for line in self.proc.stderr:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("message") == "listening":
                self.port = rec["port"]
                break
            if time.time() > deadline:
                break
        if self.port is None:
            self.proc.kill()
            raise SystemExit("clarity serve did not start (exit %s)" % self.proc.wait())
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def call(conn, method, path, body, token=None):
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = "Bearer " + token
    conn.request(method, path, body=body if isinstance(body, bytes) else json.dumps(body), headers=h)
    r = conn.getresponse()
    data = r.read()
    return r.status, (json.loads(data) if data else None)


def register(conn, email, password="Bench-Pass-1"):
    """Register (or just log in) email; returns (access token, user id)."""
    call(conn, "POST", "/api/v1/auth/register", {"email": email, "password": password, "first_name": "B",
                                                 "last_name": "B", "terms_accepted": True,
                                                 "privacy_policy_accepted": True})
    return login(conn, email, password)


def login(conn, email, password):
    status, doc = call(conn, "POST", "/api/v1/auth/login", {"email": email, "password": password})
    if status != 200:
        raise SystemExit("login failed: %s %s" % (status, doc))
    return doc["tokens"]["access_token"], doc["user"]["user_id"]


def sqlite_objects(path):
    """{object name: (owning table, bytes)} from SQLite's dbstat, after a
    checkpoint, plus the file's size and its free pages."""
    import sqlite3
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    sizes = dict(db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"))
    tables = dict(db.execute("SELECT name, tbl_name FROM sqlite_master"))
    free = db.execute("PRAGMA freelist_count").fetchone()[0] * db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    objs = {k: (tables.get(k, k), v) for k, v in sizes.items()}
    return objs, os.path.getsize(path), free


def psql(url, sql):
    p = subprocess.run(["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit("psql failed: %s" % p.stderr)
    return [line.split("\t") for line in p.stdout.splitlines() if line]


def pg_objects(url, vacuum="VACUUM (ANALYZE)"):
    """Per table of the public schema, after `vacuum`: {table: (heap, TOAST +
    maps, indexes, total)} bytes: pg_relation_size, pg_table_size -
    pg_relation_size, pg_indexes_size, pg_total_relation_size; and every
    index as (table, index, bytes)."""
    if vacuum:
        psql(url, vacuum)
    rows = psql(url, "SELECT c.relname, pg_relation_size(c.oid), pg_table_size(c.oid) - pg_relation_size(c.oid),"
                     " pg_indexes_size(c.oid), pg_total_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n"
                     " ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'm')")
    out = {r[0]: tuple(int(x) for x in r[1:]) for r in rows}
    idx = psql(url, "SELECT t.relname, i.relname, pg_relation_size(i.oid) FROM pg_index x JOIN pg_class i"
                    " ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n"
                    " ON n.oid = t.relnamespace WHERE n.nspname = 'public'")
    return out, [(r[0], r[1], int(r[2])) for r in idx]
