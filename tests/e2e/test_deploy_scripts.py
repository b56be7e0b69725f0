"""Tests of scripts/deploy.sh, scripts/rollback.sh and scripts/metrics-gate.

- shellcheck passes on the scripts;
- `--dry-run` prints the exact command sequence for each environment;
- the same scripts run for real against fake `gcloud`, `docker`, `curl` and
  `sleep` on PATH: the happy production path, a failed health gate that rolls
  back, a candidate that fails its smoke test and never gets traffic;
- the metrics gate judges real scrapes of `clarity serve`'s /metrics.
No Google Cloud or Docker engine is needed.
"""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest

ROOT = os.environ.get("CLARITY_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPTS = os.path.join(ROOT, "scripts")
DEPLOY = os.path.join(SCRIPTS, "deploy.sh")
ROLLBACK = os.path.join(SCRIPTS, "rollback.sh")
GATE = os.path.join(SCRIPTS, "metrics-gate")

REG = "us-central1-docker.pkg.dev/clarity-loop-%s/clarity/clarity"
WHERE = ["--region", "us-central1", "--project", "clarity-loop-%s"]


def base_env(extra=None):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tempfile.gettempdir(),
           "LC_ALL": "C.UTF-8"}
    env.update(extra or {})
    return env


def run(args, env=None):
    p = subprocess.run(args, env=base_env(env), capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def trace(stdout):
    """The `+ command` lines as argument lists, temporary paths normalised."""
    out = []
    for line in stdout.splitlines():
        if line.startswith("+ "):
            line = re.sub(r"/tmp/tmp\.[A-Za-z0-9]+/", "TMP/", line)
            out.append(shlex.split(line[2:]))
    return out


def where(short):
    return [w % short if "%s" in w else w for w in WHERE]


def expected_head(env, short, service, version="1.2.3"):
    image = (REG % short) + ":" + version
    return image, [
        ["gcloud", "auth", "configure-docker", "us-central1-docker.pkg.dev", "--quiet"],
        ["docker", "build", "--label", "org.opencontainers.image.version=" + version, "-t", image, ROOT],
        ["docker", "push", image],
        ["gcloud", "run", "services", "describe", service] + where(short) +
        ["--format", "value(status.latestReadyRevisionName)"],
        ["gcloud", "run", "jobs", "deploy", "clarity-migrate", "--image", image] + where(short) +
        ["--service-account", "clarity-run@clarity-loop-%s.iam.gserviceaccount.com" % short,
         "--args", "migrate,up", "--set-env-vars", "ENVIRONMENT=" + env,
         "--set-secrets", "DATABASE_URL=clarity-database-url:latest,"
         "JWT_PRIVATE_KEY=clarity-jwt-private-key:latest,ENCRYPTION_KEY=clarity-encryption-key:latest",
         "--network", "clarity-" + short, "--subnet", "clarity-" + short,
         "--vpc-egress", "private-ranges-only", "--tasks", "1", "--max-retries", "0",
         "--task-timeout", "30m", "--execute-now", "--wait", "--quiet"],
    ]


def expected_gate(image, service, short):
    # Production: through the load balancer; /metrics with the bearer token
    # from a header file, so the token is never in the trace.
    cand = "https://candidate.api.clarity.example.com"
    return [
        ["curl", "-fsS", "--max-time", "10", "-H", "@TMP/metrics-auth", "-o", "TMP/metrics-before",
         cand + "/metrics"],
        ["sleep", "120"],
        ["curl", "-fsS", "--max-time", "10", "-H", "@TMP/metrics-auth", "-o", "TMP/metrics-after",
         cand + "/metrics"],
        ["python3", GATE, "--max-error-rate", "0.01", "--max-p99-seconds", "1.0",
         "TMP/metrics-before", "TMP/metrics-after"],
        ["docker", "run", "--rm", "-e", "METRICS_TOKEN", image, "smoke", "--url",
         "https://api.clarity.example.com", "--read-only"],
    ]


class ShellCheck(unittest.TestCase):
    def test_shellcheck(self):
        sc = shutil.which("shellcheck")
        self.assertIsNotNone(sc, "shellcheck is missing: run scripts/install-deps")
        # Plain shellcheck from another directory: .shellcheckrc makes it
        # follow deploy-lib.sh beside the scripts.
        p = subprocess.run([sc, DEPLOY, ROLLBACK, os.path.join(SCRIPTS, "deploy-lib.sh"),
                            os.path.join(SCRIPTS, "container-check")],
                           capture_output=True, text=True, cwd=tempfile.gettempdir())
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)


class DryRun(unittest.TestCase):
    def test_development(self):
        rc, out, err = run([DEPLOY, "--dry-run", "development", "1.2.3"])
        self.assertEqual(rc, 0, err)
        image, head = expected_head("development", "dev", "clarity-backend-dev")
        svc = "clarity-backend-dev"
        self.assertEqual(trace(out), head + [
            ["gcloud", "run", "deploy", svc, "--image", image] + where("dev") +
            ["--revision-suffix", "v1-2-3", "--quiet"],
            ["gcloud", "run", "services", "update-traffic", svc] + where("dev") +
            ["--to-revisions", svc + "-v1-2-3=100", "--quiet"],
            ["gcloud", "run", "services", "describe", svc] + where("dev") +
            ["--format", "value(status.url)"],
            ["docker", "run", "--rm", image, "smoke", "--url",
             "https://%s-dry-run.a.run.app" % svc, "--register"],
        ])
        self.assertIn("dry run", err)

    def test_staging_with_overrides(self):
        rc, out, err = run([DEPLOY, "staging", "--dry-run", "v2.0.0-RC1"],
                           env={"SKIP_BUILD": "1", "SMOKE_ARGS": "--read-only --timeout 5",
                                "GOOGLE_CLOUD_PROJECT": "acme-stg"})
        self.assertEqual(rc, 0, err)
        cmds = trace(out)
        image = "us-central1-docker.pkg.dev/acme-stg/clarity/clarity:v2.0.0-RC1"
        self.assertEqual(cmds[1], ["docker", "pull", image])
        self.assertNotIn("build", [c[1] for c in cmds if c[0] == "docker"])
        self.assertIn(["gcloud", "run", "deploy", "clarity-backend-staging", "--image", image,
                       "--region", "us-central1", "--project", "acme-stg",
                       "--revision-suffix", "vv2-0-0-rc1", "--quiet"], cmds)
        self.assertEqual(cmds[-1][-3:], ["--read-only", "--timeout", "5"])

    def test_production(self):
        rc, out, err = run([DEPLOY, "--dry-run", "production", "1.2.3"],
                           env={"SMOKE_TOKEN": "s3cret-token"})
        self.assertEqual(rc, 0, err)
        self.assertNotIn("s3cret-token", out + err)
        self.assertNotIn("dry-run-metrics-token", out + err)
        svc = "clarity-backend"
        image, head = expected_head("production", "prod", svc)
        rev = svc + "-v1-2-3"
        want = head + [
            ["gcloud", "run", "deploy", svc, "--image", image] + where("prod") +
            ["--revision-suffix", "v1-2-3", "--no-traffic", "--tag", "candidate", "--quiet"],
            ["gcloud", "run", "services", "describe", svc] + where("prod") +
            ["--format", "value(status.url)"],
            ["gcloud", "secrets", "versions", "access", "latest", "--secret", "clarity-metrics-token",
             "--project", "clarity-loop-prod"],
            ["docker", "run", "--rm", "-e", "SMOKE_TOKEN", "-e", "METRICS_TOKEN", image, "smoke", "--url",
             "https://candidate.api.clarity.example.com", "--read-only"],
        ]
        for pct in (10, 50, 100):
            want.append(["gcloud", "run", "services", "update-traffic", svc] + where("prod") +
                        ["--to-revisions", "%s=%d" % (rev, pct), "--quiet"])
            gate = expected_gate(image, svc, "prod")
            gate[-1][3:3] = ["-e", "SMOKE_TOKEN"]
            want += gate
        self.assertEqual(trace(out), want)
        # It ends with where to look.
        self.assertEqual(out.splitlines()[-3:], ["service: https://api.clarity.example.com",
                                                 "health:  https://api.clarity.example.com/health",
                                                 "docs:    https://api.clarity.example.com/docs"])

    def test_sample_block_format_reaches_the_revision(self):
        # A canary beside a release that reads only format-1 blocks: the
        # new revision is told to write format 1 (docs/operations.md).
        for env, svc, argv in (("production", "clarity-backend", ["--no-traffic"]),
                               ("staging", "clarity-backend-staging", ["--quiet"])):
            rc, out, err = run([DEPLOY, "--dry-run", env, "1.2.3"], env={"SAMPLE_BLOCK_FORMAT": "1"})
            self.assertEqual(rc, 0, err)
            deploys = [c for c in trace(out) if c[:4] == ["gcloud", "run", "deploy", svc]]
            self.assertEqual(len(deploys), 1, trace(out))
            self.assertIn("--update-env-vars", deploys[0])
            self.assertEqual(deploys[0][deploys[0].index("--update-env-vars") + 1], "SAMPLE_BLOCK_FORMAT=1")
        # Unset: the service's setting is left as it is.
        rc, out, err = run([DEPLOY, "--dry-run", "production", "1.2.3"])
        self.assertNotIn("--update-env-vars", out)
        # Anything else is refused before anything runs.
        rc, out, err = run([DEPLOY, "--dry-run", "production", "1.2.3"], env={"SAMPLE_BLOCK_FORMAT": "3"})
        self.assertNotEqual(rc, 0)
        self.assertIn("must be 1 or 2", err)
        self.assertEqual(trace(out), [])

    def test_development_ends_with_urls(self):
        rc, out, err = run([DEPLOY, "--dry-run", "development", "1.2.3"])
        self.assertEqual(rc, 0, err)
        url = "https://clarity-backend-dev-dry-run.a.run.app"
        self.assertEqual(out.splitlines()[-3:], ["service: " + url, "health:  %s/health" % url,
                                                 "docs:    %s/docs" % url])

    def test_rollback_production_explicit(self):
        rc, out, err = run([ROLLBACK, "--dry-run", "production", "clarity-backend-v1-2-2"])
        self.assertEqual(rc, 0, err)
        w = where("prod")
        self.assertEqual(trace(out), [
            ["gcloud", "auth", "configure-docker", "us-central1-docker.pkg.dev", "--quiet"],
            ["gcloud", "run", "services", "update-traffic", "clarity-backend"] + w +
            ["--to-revisions", "clarity-backend-v1-2-2=100", "--quiet"],
            ["gcloud", "run", "services", "describe", "clarity-backend"] + w +
            ["--format", "value(status.url)"],
            ["gcloud", "run", "revisions", "describe", "clarity-backend-v1-2-2"] + w +
            ["--format", "value(spec.containers[0].image)"],
            ["docker", "run", "--rm", (REG % "prod") + ":rollback-target", "smoke", "--url",
             "https://api.clarity.example.com", "--read-only"],
        ])

    def test_rollback_staging_finds_previous(self):
        rc, out, err = run([ROLLBACK, "staging", "--dry-run"])
        self.assertEqual(rc, 0, err)
        cmds = trace(out)
        svc = "clarity-backend-staging"
        self.assertEqual(cmds[0], ["gcloud", "run", "services", "describe", svc] + where("staging") +
                         ["--format", "value(status.traffic[0].revisionName)"])
        self.assertEqual(cmds[1], ["gcloud", "run", "revisions", "list", "--service", svc] +
                         where("staging") + ["--sort-by", "~metadata.creationTimestamp",
                                             "--limit", "20", "--format", "value(metadata.name)"])
        self.assertIn(["gcloud", "run", "services", "update-traffic", svc] + where("staging") +
                      ["--to-revisions", svc + "-previous=100", "--quiet"], cmds)

    def test_usage_errors(self):
        for args in ([DEPLOY], [DEPLOY, "qa"], [DEPLOY, "--bogus", "staging"],
                     [DEPLOY, "staging", "1", "2"], [ROLLBACK], [ROLLBACK, "development"],
                     [ROLLBACK, "--dry-run", "staging", "a", "b"]):
            rc, out, err = run(args)
            self.assertEqual(rc, 2, (args, out, err))
            self.assertIn("usage:", err)
            self.assertEqual(trace(out), [])

    def test_bad_version_refused(self):
        rc, out, err = run([DEPLOY, "--dry-run", "staging", "1.0;rm -rf /"])
        self.assertEqual(rc, 1)
        self.assertEqual(trace(out), [])


class MigrationJobConfiguration(unittest.TestCase):
    """The migration job's environment, exactly as deploy.sh declares it,
    must be enough for the real `clarity migrate up` in every environment
    (staging and production refuse to start without their keys)."""

    @unittest.skipUnless(os.environ.get("CLARITY_BIN"), "needs the built clarity binary")
    def test_job_environment_runs_migrate(self):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from harness import production_keys, run_cli
        keys = production_keys()
        for env in ("development", "staging", "production"):
            rc, out, err = run([DEPLOY, "--dry-run", env, "1.2.3"])
            self.assertEqual(rc, 0, err)
            job = [c for c in trace(out) if c[:4] == ["gcloud", "run", "jobs", "deploy"]][0]
            opt = {job[i]: job[i + 1] for i in range(len(job) - 1) if job[i].startswith("--")}
            work = tempfile.mkdtemp(prefix="clarity-job-")
            try:
                job_env = dict(kv.split("=", 1) for kv in opt["--set-env-vars"].split(","))
                for kv in opt["--set-secrets"].split(","):
                    name = kv.split("=", 1)[0]
                    job_env[name] = ("sqlite:" + os.path.join(work, "job.db")
                                     if name == "DATABASE_URL" else keys[name])
                code, _, err = run_cli(opt["--args"].split(","), env=job_env, cwd=work)
                self.assertEqual(code, 0, (env, sorted(job_env), err))
            finally:
                shutil.rmtree(work, ignore_errors=True)


FAKE = textwrap.dedent(r'''
    #!/usr/bin/env python3
    """Fake gcloud/docker/curl/sleep: logs its argv, answers like the real one."""
    import json, os, re, sys
    name = os.path.basename(sys.argv[0])
    args = sys.argv[1:]
    log = os.environ["FAKE_LOG"]
    with open(log, "a") as f:
        f.write(json.dumps([name] + args) + "\n")
    with open(log) as f:
        calls = [json.loads(l) for l in f]
    def step():
        pct = 0
        for c in calls:
            if "--to-revisions" in c:
                pct = int(c[c.index("--to-revisions") + 1].split("=")[1])
        return pct
    def fmt():
        return args[args.index("--format") + 1] if "--format" in args else ""
    if name == "gcloud":
        f = fmt()
        if f == "value(status.latestReadyRevisionName)":
            print("clarity-backend-v1-0-0")
        elif f == "value(status.url)":
            print("https://clarity-backend-abc123-uc.a.run.app")
        elif f == "value(status.traffic[0].revisionName)":
            print("clarity-backend-v1-0-0")
        elif args[:2] == ["run", "revisions"] and args[2] == "list":
            print("clarity-backend-v1-0-0\nclarity-backend-v0-9-0")
        elif f == "value(spec.containers[0].image)":
            print("registry/clarity:" + args[3])
        elif args[:3] == ["secrets", "versions", "access"]:
            print("fake-metrics-token")
    elif name == "docker" and args[:1] == ["run"]:
        url = args[args.index("--url") + 1]
        bad = os.environ.get("FAKE_SMOKE_FAIL", "")
        if bad and bad in url:
            print(json.dumps({"url": url, "passed": False}))
            sys.exit(1)
        print(json.dumps({"url": url, "passed": True}))
    elif name == "curl":
        # /metrics needs the bearer token, sent from a header file.
        hdr = args[args.index("-H") + 1] if "-H" in args else ""
        with open(hdr[1:]) as h:
            if h.read() != "Authorization: Bearer fake-metrics-token\n":
                sys.exit(22)
        out = args[args.index("-o") + 1]
        errors = 0
        if out.endswith("metrics-after") and str(step()) == os.environ.get("FAKE_BAD_STEP"):
            errors = 50
        n = 1000 if out.endswith("metrics-after") else 100
        with open(out, "w") as f:
            f.write('clarity_http_requests_total{route="/x",method="GET",status="200"} %d\n' % n)
            f.write('clarity_http_requests_total{route="/x",method="GET",status="503"} %d\n' % errors)
            f.write('clarity_http_request_duration_seconds_bucket{route="/x",le="0.1"} %d\n' % (n + errors))
            f.write('clarity_http_request_duration_seconds_bucket{route="/x",le="+Inf"} %d\n' % (n + errors))
''').lstrip()


class RealRunWithFakes(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="clarity-deploy-test-")
        self.bin = os.path.join(self.dir, "bin")
        os.mkdir(self.bin)
        fake = os.path.join(self.bin, "fake")
        with open(fake, "w") as f:
            f.write(FAKE.replace("/usr/bin/env python3", sys.executable, 1))
        os.chmod(fake, 0o755)
        for name in ("gcloud", "docker", "curl", "sleep"):
            os.symlink(fake, os.path.join(self.bin, name))
        self.log = os.path.join(self.dir, "calls.jsonl")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def go(self, args, extra=None):
        env = {"PATH": self.bin + ":" + os.environ.get("PATH", "/usr/bin:/bin"),
               "FAKE_LOG": self.log, "GATE_SECONDS": "1"}
        env.update(extra or {})
        rc, out, err = run(args, env)
        calls = []
        if os.path.exists(self.log):
            with open(self.log) as f:
                calls = [json.loads(line) for line in f]
        return rc, out, err, calls

    @staticmethod
    def traffic(calls):
        return [c[c.index("--to-revisions") + 1] for c in calls if "--to-revisions" in c]

    def test_production_happy_path(self):
        rc, out, err, calls = self.go([DEPLOY, "production", "1.2.3"])
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.traffic(calls), ["clarity-backend-v1-2-3=10", "clarity-backend-v1-2-3=50",
                                               "clarity-backend-v1-2-3=100"])
        smokes = [c[c.index("--url") + 1] for c in calls if c[:2] == ["docker", "run"]]
        # Production is reached through the load balancer (deploy/terraform/lb.tf).
        self.assertEqual(smokes[0], "https://candidate.api.clarity.example.com")
        self.assertEqual(smokes[1:], ["https://api.clarity.example.com"] * 3)
        self.assertIn("metrics-gate: pass", out)
        # The real run prints the same trace a dry run does.
        self.assertEqual(len(trace(out)), len(calls) + 3)  # + 3 metrics-gate runs

    def test_failed_gate_rolls_back(self):
        rc, out, err, calls = self.go([DEPLOY, "production", "1.2.3"], {"FAKE_BAD_STEP": "50"})
        self.assertEqual(rc, 1)
        self.assertEqual(self.traffic(calls), ["clarity-backend-v1-2-3=10", "clarity-backend-v1-2-3=50",
                                               "clarity-backend-v1-0-0=100"])
        self.assertIn("metrics-gate: FAIL", out)
        self.assertIn("health gate at 50 % failed: rolling back to clarity-backend-v1-0-0", err)
        # rollback.sh verified the old revision with its own image's smoke test.
        self.assertEqual(calls[-1][:6], ["docker", "run", "--rm", "-e", "METRICS_TOKEN",
                                         "registry/clarity:clarity-backend-v1-0-0"])

    def test_failed_candidate_gets_no_traffic(self):
        rc, out, err, calls = self.go([DEPLOY, "production", "1.2.3"], {"FAKE_SMOKE_FAIL": "candidate."})
        self.assertEqual(rc, 1)
        self.assertEqual(self.traffic(calls), [])
        self.assertIn(["gcloud", "run", "services", "update-traffic", "clarity-backend"] + where("prod") +
                      ["--remove-tags", "candidate", "--quiet"], calls)
        self.assertIn("no traffic was moved", err)

    def test_staging_failed_smoke_rolls_back(self):
        rc, out, err, calls = self.go([DEPLOY, "staging", "1.2.3"], {"FAKE_SMOKE_FAIL": "clarity-backend"})
        self.assertEqual(rc, 1)
        self.assertEqual(self.traffic(calls), ["clarity-backend-staging-v1-2-3=100",
                                               "clarity-backend-v1-0-0=100"])
        self.assertIn("smoke test failed: rolling back", err)
        self.assertIn("ROLLBACK FAILED", err)  # the old revision's smoke test failed too

    def test_rollback_picks_the_revision_before_the_current_one(self):
        rc, out, err, calls = self.go([ROLLBACK, "production"])
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.traffic(calls), ["clarity-backend-v0-9-0=100"])


class MetricsGate(unittest.TestCase):
    def gate(self, before, after, *flags):
        d = tempfile.mkdtemp(prefix="clarity-gate-")
        try:
            paths = []
            for name, text in (("before", before), ("after", after)):
                p = os.path.join(d, name)
                with open(p, "w") as f:
                    f.write(text)
                paths.append(p)
            p = subprocess.run([sys.executable, GATE] + list(flags) + paths,
                               capture_output=True, text=True)
            return p.returncode, p.stdout
        finally:
            shutil.rmtree(d, ignore_errors=True)

    @staticmethod
    def scrape(ok, err, buckets):
        lines = ['clarity_http_requests_total{route="/a",method="GET",status="200"} %d' % ok,
                 'clarity_http_requests_total{route="/a",method="GET",status="500"} %d' % err]
        for le, n in buckets:
            lines.append('clarity_http_request_duration_seconds_bucket{route="/a",le="%s"} %d' % (le, n))
        return "\n".join(lines) + "\n"

    def test_error_rate(self):
        before = self.scrape(100, 0, [("0.5", 100), ("+Inf", 100)])
        self.assertEqual(self.gate(before, self.scrape(1100, 5, [("0.5", 1105), ("+Inf", 1105)]))[0], 0)
        rc, out = self.gate(before, self.scrape(1100, 20, [("0.5", 1120), ("+Inf", 1120)]))
        self.assertEqual(rc, 1)
        self.assertIn("20 5xx", out)

    def test_p99(self):
        before = self.scrape(0, 0, [("0.1", 0), ("2.5", 0), ("+Inf", 0)])
        fast = self.scrape(1000, 0, [("0.1", 995), ("2.5", 1000), ("+Inf", 1000)])
        slow = self.scrape(1000, 0, [("0.1", 900), ("2.5", 1000), ("+Inf", 1000)])
        self.assertEqual(self.gate(before, fast)[0], 0)
        rc, out = self.gate(before, slow)
        self.assertEqual(rc, 1)
        self.assertIn("p99 <= 2.5s", out)
        self.assertEqual(self.gate(before, slow, "--max-p99-seconds", "3")[0], 0)

    def test_no_traffic_and_counter_reset(self):
        s = self.scrape(10, 0, [("+Inf", 10)])
        rc, out = self.gate(s, s)
        self.assertEqual(rc, 0)
        self.assertIn("no requests", out)
        # A fresh instance answered the second scrape: its counts are the increase.
        rc, out = self.gate(self.scrape(5000, 0, [("+Inf", 5000)]), self.scrape(10, 5, [("+Inf", 15)]))
        self.assertEqual(rc, 1)
        self.assertIn("15 requests, 5 5xx", out)

    def test_unreadable_input(self):
        p = subprocess.run([sys.executable, GATE, "/nonexistent/a", "/nonexistent/b"],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 2)

    @unittest.skipUnless(os.environ.get("CLARITY_BIN"), "needs the built clarity binary")
    def test_real_server_metrics(self):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from harness import Server
        srv = Server()
        try:
            _, _, before = srv.request("GET", "/metrics")
            for _ in range(20):
                srv.request("GET", "/liveness")
            _, _, after = srv.request("GET", "/metrics")
        finally:
            srv.stop()
        rc, out = self.gate(before.decode(), after.decode())
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"pass: 2[0-9] requests, 0 5xx")


if __name__ == "__main__":
    unittest.main(verbosity=2)
