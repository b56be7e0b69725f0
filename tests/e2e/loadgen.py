"""A small load generator for restart and deployment rehearsals.

Threads send requests to one host:port for as long as the load runs:
authenticated reads and HealthKit uploads (each with its own
Idempotency-Key), some over keep-alive connections and some on a new
connection each time. Any exception (refused, reset, timeout) or unexpected
status is a failure, recorded with the phase it happened in. Every upload
answered 202 is remembered, so that a caller can check afterwards that each
acknowledged upload exists.

The one retry, only with retry_stale=True: a request on a *reused*
keep-alive connection that the server closed before sending any byte of an
answer is sent once more on a new connection, as HTTP clients do (RFC 9112
section 9.3.1; uploads are safe to repeat thanks to their Idempotency-Key).
Such retries are counted in stale_retries, never hidden.

Used by tests/e2e/test_restart.py and scripts/rehearse-deploy.
"""
import datetime
import http.client
import json
import threading
import time
import uuid

PASSWORD = "Rehearsal-Horse-9"


def call(host, port, method, path, body=None, token=None, conn=None, timeout=30, headers=None):
    """One request; returns (status, parsed JSON or None)."""
    own = conn is None
    c = conn or http.client.HTTPConnection(host, port, timeout=timeout)
    headers = dict(headers or {}, **{"Content-Type": "application/json"})
    if token:
        headers["Authorization"] = "Bearer " + token
    try:
        c.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        r = c.getresponse()
        data = r.read()
        try:
            doc = json.loads(data) if data else None
        except ValueError:
            doc = None
        return r.status, doc
    finally:
        if own:
            c.close()


def register(host, port, email=None):
    """A fresh account; returns (user_id, access token)."""
    email = email or "load-%s@example.com" % uuid.uuid4().hex[:12]
    body = {"email": email, "password": PASSWORD, "first_name": "Load", "last_name": "Gen",
            "terms_accepted": True, "privacy_policy_accepted": True}
    status, doc = call(host, port, "POST", "/api/v1/auth/register", body)
    if status != 201:
        raise RuntimeError("register: %s %s" % (status, doc))
    user_id = doc["user_id"]
    status, doc = call(host, port, "POST", "/api/v1/auth/login", {"email": email, "password": PASSWORD})
    if status != 200:
        raise RuntimeError("login: %s %s" % (status, doc))
    return user_id, doc["tokens"]["access_token"]


def upload_body(user_id, n):
    t = datetime.datetime(2026, 11, 20, 8, 0, tzinfo=datetime.timezone.utc) + datetime.timedelta(minutes=n % 100000)
    iso = lambda x: x.isoformat(timespec="seconds")
    return {"user_id": user_id,
            "quantity_samples": [{"uuid": str(uuid.uuid4()), "identifier": "HKQuantityTypeIdentifierStepCount",
                                  "value": 100 + n % 500, "unit": "count", "start_date": iso(t),
                                  "end_date": iso(t + datetime.timedelta(minutes=1)),
                                  "source_name": "Load Generator"}],
            "category_samples": []}


def percentile(values, p):
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1)))))
    return v[k]


class Load:
    """keepalive_readers + fresh_readers read; uploaders upload (half of
    them over keep-alive). Set .phase to label what follows."""

    def __init__(self, host, port, user_id, token, keepalive_readers=2, fresh_readers=1, uploaders=2,
                 timeout=30, retry_stale=False):
        self.host, self.port, self.user_id, self.token = host, port, user_id, token
        self.timeout = timeout
        self.retry_stale = retry_stale
        self.stale_retries = 0
        self.phase = "start"
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.requests = 0
        self.failures = []          # (phase, what, detail)
        self.latency = {}           # phase -> [seconds]
        self.acknowledged = []      # upload ids answered 202
        self.phases = []            # in order of first use
        self.threads = []
        kinds = [("read", True)] * keepalive_readers + [("read", False)] * fresh_readers
        kinds += [("upload", i % 2 == 0) for i in range(uploaders)]
        for i, (kind, keep) in enumerate(kinds):
            self.threads.append(threading.Thread(target=self._run, args=(i, kind, keep), daemon=True))
        self._seq = 0

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(self.timeout + 5)

    def count(self):
        with self.lock:
            return self.requests

    def wait_for(self, more, timeout=120):
        """Block until `more` further requests completed (not a timing
        assertion: it only makes sure each phase saw traffic)."""
        target = self.count() + more
        deadline = time.time() + timeout
        while self.count() < target:
            if time.time() > deadline:
                raise RuntimeError("load made no progress: %d of %d requests" % (self.count(), target))
            time.sleep(0.05)

    def _record(self, phase, seconds, failure=None, upload_id=None):
        with self.lock:
            self.requests += 1
            if phase not in self.latency:
                self.latency[phase] = []
                self.phases.append(phase)
            self.latency[phase].append(seconds)
            if failure is not None:
                self.failures.append((phase,) + failure)
            if upload_id is not None:
                self.acknowledged.append(upload_id)

    def _once(self, kind, n, conn, body, key):
        """One request; returns (failure or None, upload id or None)."""
        if kind == "read":
            path = "/liveness" if n % 3 == 0 else "/api/v1/insights/history/" + self.user_id
            status, doc = call(self.host, self.port, "GET", path, token=self.token, conn=conn, timeout=self.timeout)
            if status != 200:
                return ("GET " + path.split(self.user_id)[0], "status %d: %s" % (status, doc)), None
            return None, None
        status, doc = call(self.host, self.port, "POST", "/api/v1/healthkit/upload", body, token=self.token,
                           conn=conn, timeout=self.timeout, headers={"Idempotency-Key": key})
        if status == 202 and doc and doc.get("upload_id"):
            return None, doc["upload_id"]
        return ("POST upload", "status %d: %s" % (status, doc)), None

    def _run(self, index, kind, keep):
        conn = None
        n = 0
        while not self.stopping.is_set():
            n += 1
            if conn is None and keep:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            phase = self.phase
            body = key = None
            if kind == "upload":
                with self.lock:
                    self._seq += 1
                    seq = self._seq
                body, key = upload_body(self.user_id, seq), str(uuid.uuid4())
            t0 = time.monotonic()
            failure = upload_id = None
            for attempt in (1, 2):
                reused = conn is not None and conn.sock is not None
                try:
                    failure, upload_id = self._once(kind, n, conn, body, key)
                    break
                except (OSError, http.client.HTTPException) as e:
                    if conn is not None:
                        conn.close()
                        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout) \
                            if keep else None
                    stale = isinstance(e, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError))
                    if attempt == 1 and reused and stale and self.retry_stale:
                        with self.lock:
                            self.stale_retries += 1
                        continue
                    failure = (kind, "%s: %s" % (type(e).__name__, e))
                    break
            self._record(phase, time.monotonic() - t0, failure, upload_id)
        if conn is not None:
            conn.close()

    def verify_uploads(self, host=None, port=None):
        """Upload ids answered 202 that the server does not know now."""
        missing = []
        c = http.client.HTTPConnection(host or self.host, port or self.port, timeout=self.timeout)
        try:
            for uid in list(self.acknowledged):
                status, doc = call(host or self.host, port or self.port, "GET",
                                   "/api/v1/healthkit/status/" + uid, token=self.token, conn=c)
                if status != 200 or not doc or doc.get("upload_id") != uid:
                    missing.append((uid, status))
        finally:
            c.close()
        return missing

    def report(self):
        """Per phase: requests, failures, p50/p99/max latency in ms."""
        rows = []
        with self.lock:
            for phase in self.phases:
                lat = self.latency[phase]
                fails = sum(1 for f in self.failures if f[0] == phase)
                ms = lambda x: round(x * 1000, 1) if x is not None else None
                rows.append({"phase": phase, "requests": len(lat), "failures": fails,
                             "p50_ms": ms(percentile(lat, 50)), "p99_ms": ms(percentile(lat, 99)),
                             "max_ms": ms(max(lat) if lat else None)})
        return rows
