"""Checks of deploy/terraform/ that need no Terraform binary: the layout that
`terraform fmt` would leave, the per-environment sizes from the deployment
guide, variables declared and set, the security properties the issue asks
for, and agreement with the names scripts/deploy.sh uses. Where `terraform`
is installed it also runs `terraform fmt -check` and `terraform validate`."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

ROOT = os.environ.get("CLARITY_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
TF = os.path.join(ROOT, "deploy", "terraform")
ENVS = {"dev": ("development", "1", "1Gi", 80, 10),
        "staging": ("staging", "2", "2Gi", 100, 20),
        "prod": ("production", "4", "4Gi", 200, 100)}

ATTR = re.compile(r'^(\s*)([A-Za-z_][A-Za-z0-9_-]*)(\s*)=(\s*)(\S.*)?$')


def files(*exts):
    out = []
    for d, _, names in os.walk(TF):
        if ".terraform" in d:
            continue
        out += [os.path.join(d, n) for n in sorted(names) if n.endswith(exts)]
    return sorted(out)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def tf_source():
    return "\n".join(read(p) for p in files(".tf"))


def tfvars(short):
    out = {}
    for line in read(os.path.join(TF, "environments", short, "terraform.tfvars")).splitlines():
        m = ATTR.match(line)
        if m and not line.lstrip().startswith("#"):
            out[m.group(2)] = m.group(5).strip()
    return out


class Layout(unittest.TestCase):
    def test_fmt_style(self):
        """The parts of `terraform fmt` that can be checked line by line:
        two-space indentation, no tabs or trailing blanks, one final newline,
        and `=` aligned across consecutive attributes of one block."""
        problems = []
        for path in files(".tf", ".tfvars", ".hcl"):
            text = read(path)
            rel = os.path.relpath(path, ROOT)
            if not text.endswith("\n") or text.endswith("\n\n"):
                problems.append("%s: must end with exactly one newline" % rel)
            group = []
            depth = 0
            lines = text.split("\n")
            for no, line in enumerate(lines + [""], 1):
                if "\t" in line:
                    problems.append("%s:%d: tab" % (rel, no))
                if line != line.rstrip():
                    problems.append("%s:%d: trailing blank" % (rel, no))
                stripped = line.strip()
                closing = stripped.startswith(("}", "]", ")"))
                want = 2 * (depth - 1) if closing else 2 * depth
                if stripped and (len(line) - len(line.lstrip())) != want:
                    problems.append("%s:%d: indent %d, expected %d" %
                                    (rel, no, len(line) - len(line.lstrip()), 2 * depth))
                m = ATTR.match(line)
                if m and m.group(1) == "  " * depth and not stripped.startswith("#") and \
                        (not group or group[-1][2] == depth):
                    group.append((no, m, depth))
                elif m and m.group(1) == "  " * depth and not stripped.startswith("#"):
                    check_group(rel, group, problems)
                    group = [(no, m, depth)]
                else:
                    check_group(rel, group, problems)
                    group = []
                # hclwrite indents one level per line that opens brackets,
                # however many it opens ("toset([" is one level).
                net = count_open(stripped)
                depth += (net > 0) - (net < 0)
            check_group(rel, group, problems)
        self.assertEqual(problems, [])

    @unittest.skipUnless(shutil.which("terraform"), "terraform is not installed here")
    def test_terraform_fmt_and_validate(self):
        p = subprocess.run(["terraform", "fmt", "-check", "-recursive", TF], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        work = tempfile.mkdtemp(prefix="clarity-tf-")
        try:
            env = dict(os.environ, TF_DATA_DIR=work)
            p = subprocess.run(["terraform", "-chdir=" + TF, "init", "-backend=false", "-input=false"],
                               capture_output=True, text=True, env=env)
            if p.returncode != 0:
                self.skipTest("terraform init needs the provider registry: " + p.stderr[-300:])
            p = subprocess.run(["terraform", "-chdir=" + TF, "validate"], capture_output=True, text=True, env=env)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def count_open(stripped):
    """Net brackets opened on a line, outside strings and comments."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', stripped)
    s = s.split("#", 1)[0]
    return s.count("{") + s.count("[") + s.count("(") - s.count("}") - s.count("]") - s.count(")")


def check_group(rel, group, problems):
    if len(group) < 1:
        return
    width = max(len(m.group(2)) for _, m, _ in group)
    for no, m, _ in group:
        if len(m.group(2)) + len(m.group(3)) != width + 1 or m.group(4) not in (" ", ""):
            problems.append("%s:%d: '=' of %s not aligned to column %d" % (rel, no, m.group(2), width + 1))


class Environments(unittest.TestCase):
    def test_guide_sizes(self):
        for short, (env, cpu, mem, conc, maxi) in ENVS.items():
            v = tfvars(short)
            self.assertEqual(v["environment"], '"%s"' % env, short)
            self.assertEqual(v["env_short"], '"%s"' % short)
            self.assertEqual(v["cpu"], '"%s"' % cpu, short)
            self.assertEqual(v["memory"], '"%s"' % mem, short)
            self.assertEqual(int(v["concurrency"]), conc, short)
            self.assertEqual(int(v["max_instances"]), maxi, short)
            self.assertTrue(os.path.exists(os.path.join(TF, "environments", short, "backend.hcl")))

    def test_variables_declared_and_set(self):
        src = read(os.path.join(TF, "variables.tf"))
        declared = dict()
        for m in re.finditer(r'variable "([a-z_0-9]+)" \{(.*?)\n\}', src, re.S):
            declared[m.group(1)] = "default" in m.group(2)
        used = set(re.findall(r'\bvar\.([a-z_0-9]+)', tf_source()))
        self.assertEqual(used - set(declared), set(), "used but not declared")
        self.assertEqual(set(declared) - used, set(), "declared but unused")
        required = {k for k, has_default in declared.items() if not has_default}
        for short in ENVS:
            v = tfvars(short)
            self.assertEqual(set(v) - set(declared), set(), short)
            self.assertEqual(required - set(v), set(), short)


class Properties(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.src = tf_source()

    def block(self, rtype, name):
        m = re.search(r'resource "%s" "%s" \{\n(.*?)\n\}\n' % (rtype, name), self.src, re.S)
        self.assertIsNotNone(m, "%s.%s missing" % (rtype, name))
        return m.group(1)

    def test_kms_rotation_and_cmek(self):
        key = self.block("google_kms_crypto_key", "data")
        self.assertRegex(key, r'rotation_period\s+= "7776000s"')  # 90 days
        self.assertEqual(90 * 24 * 3600, 7776000)
        self.assertIn("encryption_key_name = google_kms_crypto_key.data.id",
                      self.block("google_sql_database_instance", "main"))
        self.assertIn("default_kms_key_name = google_kms_crypto_key.data.id",
                      self.block("google_storage_bucket", "backups"))

    def test_database_private_with_backups(self):
        db = self.block("google_sql_database_instance", "main")
        self.assertIn('database_version    = "POSTGRES_15"', db)
        self.assertRegex(db, r"ipv4_enabled\s+= false")
        self.assertRegex(db, r"backup_configuration \{\n\s+enabled\s+= true")
        self.assertRegex(db, r"point_in_time_recovery_enabled = true")

    def test_bucket_versioned_and_private(self):
        b = self.block("google_storage_bucket", "backups")
        self.assertRegex(b, r"versioning \{\n\s+enabled = true")
        self.assertIn('public_access_prevention    = "enforced"', b)

    def test_cloud_run(self):
        run = self.block("google_cloud_run_v2_service", "api")
        for needle in ('"EXECUTION_ENVIRONMENT_GEN2"', "max_instance_request_concurrency = var.concurrency",
                       "max_instance_count = var.max_instances", "container_port = 8080",
                       "cpu    = var.cpu", "memory = var.memory", 'path = "/readiness"',
                       'path = "/liveness"', "service_account                  = google_service_account.run.email"):
            self.assertIn(needle, run)
        for name in ("JWT_PRIVATE_KEY", "ENCRYPTION_KEY", "GEMINI_API_KEY", "DATABASE_URL"):
            self.assertRegex(self.src, r"\b%s\s+= \"clarity-" % name)

    def test_least_privilege(self):
        roles = set(re.findall(r'"(roles/[A-Za-z.]+)"', self.src))
        for broad in ("roles/owner", "roles/editor", "roles/storage.admin", "roles/cloudsql.admin",
                      "roles/secretmanager.admin"):
            self.assertNotIn(broad, roles)
        self.assertNotRegex(self.src, r"google_project_iam_member[^}]*secretAccessor")

    def test_names_agree_with_deploy_script(self):
        lib = read(os.path.join(ROOT, "scripts", "deploy-lib.sh"))
        deploy = read(os.path.join(ROOT, "scripts", "deploy.sh"))
        self.assertIn('account_id   = "clarity-run"', self.src)
        self.assertIn("clarity-run@$PROJECT.iam.gserviceaccount.com", lib)
        self.assertIn('repository_id = "clarity"', self.src)
        self.assertIn("$REGION-docker.pkg.dev/$PROJECT/clarity", lib)
        self.assertIn('name                    = "clarity-${var.env_short}"', self.src)
        self.assertIn("NETWORK=\"${VPC_NETWORK:-clarity-$short}\"", lib)
        self.assertIn('DATABASE_URL    = "clarity-database-url"', self.src)
        self.assertIn("DATABASE_URL=clarity-database-url:latest", deploy)
        for short, env in (("dev", "clarity-backend-dev"), ("staging", "clarity-backend-staging"),
                           ("prod", "clarity-backend")):
            self.assertEqual(tfvars(short)["service_name"], '"%s"' % env)
            self.assertIn("SERVICE_DEFAULT=%s " % env, lib)


def variable_defaults():
    out = {}
    src = read(os.path.join(TF, "variables.tf"))
    for m in re.finditer(r'variable "([a-z_0-9]+)" \{(.*?)\n\}', src, re.S):
        d = re.search(r"^\s+default\s+= (.+)$", m.group(2), re.M)
        if d:
            out[m.group(1)] = d.group(1).strip()
    return out


def hcl_value(expr, values):
    """The few expression forms plain_env uses: "literal", var.x, jsonencode(var.x)."""
    import json
    expr = expr.strip()
    m = re.fullmatch(r"jsonencode\(var\.([a-z_0-9]+)\)", expr)
    if m:
        return json.dumps(json.loads(values[m.group(1)]), separators=(",", ":"))
    m = re.fullmatch(r"var\.([a-z_0-9]+)", expr)
    if m:
        expr = values[m.group(1)]
    if expr.startswith('"'):
        return json.loads(expr)
    return expr


import sys  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


class ServiceConfiguration(unittest.TestCase):
    """The environment Terraform gives the Cloud Run service — plain
    variables from run.tf with each environment's tfvars, and every mounted
    secret as NAME_FILE — is accepted by the real `clarity config check
    --strict`, and `clarity serve` starts with it (after `migrate up`, as a
    deploy runs it): a revision that would exit at start fails the build."""

    def render(self, short, work, keys):
        run_tf = read(os.path.join(TF, "run.tf"))
        plain = re.search(r"plain_env = \{\n(.*?)\n  \}", run_tf, re.S).group(1)
        secrets = dict(re.findall(r'^\s+([A-Z_]+)\s+= "(clarity-[a-z-]+)"$',
                                  read(os.path.join(TF, "secrets.tf")), re.M))
        self.assertIn("mounted_secrets", run_tf)
        values = variable_defaults()
        values.update(tfvars(short))
        env = {}
        for line in plain.splitlines():
            m = ATTR.match(line)
            env[m.group(2)] = hcl_value(m.group(5), values)
        for name in secrets:
            if name == "GEMINI_API_KEY" and values.get("use_gemini", "false") != "true":
                continue
            path = os.path.join(work, name.lower())
            with open(path, "w") as f:
                f.write({"DATABASE_URL": "sqlite:" + os.path.join(work, "db.sqlite"),
                         "GEMINI_API_KEY": "x", "METRICS_TOKEN": "t" * 40}.get(name) or keys[name])
            env[name + "_FILE"] = path
        from test_config_parity import free_port
        env["PORT"] = str(free_port())  # Cloud Run sets 8080; tests take a free port
        env["HOST"] = "127.0.0.1"  # the revision listens on 0.0.0.0; tests on loopback
        env["WORKER_THREADS"] = "0"
        return values, env

    @unittest.skipUnless(os.environ.get("CLARITY_BIN"), "needs the built clarity binary")
    def test_config_check_and_serve_accept_each_environment(self):
        import sys
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from harness import production_keys, run_cli
        from test_config_parity import serve_until_listening
        keys = production_keys()
        for short in ENVS:
            with self.subTest(env=short):
                work = tempfile.mkdtemp(prefix="clarity-tf-env-")
                try:
                    values, env = self.render(short, work, keys)
                    self.assertIn("OIDC_JWKS_URL", env)  # Firebase is set in every environment
                    code, out, err = run_cli(["config", "check", "--strict"], env=env, cwd=work)
                    self.assertEqual(code, 0, (short, env, err))
                    self.assertIn(values["environment"].strip('"'), out)
                    code, _, err = run_cli(["migrate", "up"], env=env, cwd=work)
                    self.assertEqual(code, 0, err)
                    scode, serr = serve_until_listening(env, work)
                    self.assertIsNone(scode, (short, serr))
                finally:
                    shutil.rmtree(work, ignore_errors=True)

    @unittest.skipUnless(os.environ.get("CLARITY_BIN"), "needs the built clarity binary")
    def test_broken_environment_fails(self):
        """A deliberately broken rendering (a tfvars value serve refuses, a
        secret missing) fails the check, as the revision would fail."""
        import sys
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from harness import production_keys, run_cli
        keys = production_keys()
        work = tempfile.mkdtemp(prefix="clarity-tf-broken-")
        try:
            _, env = self.render("prod", work, keys)
            broken = dict(env, CORS_ORIGINS='["*"]')  # production refuses a wildcard
            code, _, err = run_cli(["config", "check", "--strict"], env=broken, cwd=work)
            self.assertEqual(code, 2, err)
            self.assertIn("CORS_ORIGINS", err)
            broken = dict(env)
            del broken["ENCRYPTION_KEY_FILE"]  # the secret not mounted
            code, _, err = run_cli(["config", "check", "--strict"], env=broken, cwd=work)
            self.assertEqual(code, 2, err)
            self.assertIn("ENCRYPTION_KEY: required in production", err)
            broken = dict(env, LOG_LEVL="DEBUG")  # a misspelt variable in run.tf
            code, _, err = run_cli(["config", "check", "--strict"], env=broken, cwd=work)
            self.assertEqual(code, 2, err)
            self.assertIn("did you mean LOG_LEVEL?", err)
        finally:
            shutil.rmtree(work, ignore_errors=True)


class Monitoring(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.src = tf_source()

    def test_policies_uptime_dashboard_logs(self):
        mon = read(os.path.join(TF, "monitoring.tf"))
        for name in ("5xx-rate", "p99-latency", "queue-oldest-age", "dead-letters", "key-age"):
            self.assertIn('"%s" = [' % name, mon)
        for needle in ('resource "google_monitoring_uptime_check_config" "health"', 'path         = "/health"',
                       'resource "google_monitoring_dashboard" "main"', 'resource "google_logging_metric" "errors"',
                       'resource "google_monitoring_alert_policy" "instance_restarts"',
                       "notification_channels = local.notification_channels"):
            self.assertIn(needle, mon)
        self.assertEqual(mon.count("notification_channels = local.notification_channels"),
                         mon.count('resource "google_monitoring_alert_policy"'))

    def test_collector_scrapes_metrics_inside_the_revision(self):
        run_tf = read(os.path.join(TF, "run.tf"))
        self.assertIn('name       = "otel-collector"', run_tf)
        self.assertIn('depends_on = ["clarity"]', run_tf)
        cfg = read(os.path.join(TF, "otel-collector.yaml"))
        port = re.search(r"container_port = (\d+)", run_tf).group(1)
        self.assertIn('targets: ["localhost:%s"]' % port, cfg)
        self.assertIn("metrics_path: /metrics", cfg)
        # The token file the collector reads is the mounted METRICS_TOKEN secret.
        self.assertIn("credentials_file: /secrets/clarity-metrics-token/value", cfg)
        self.assertIn('METRICS_TOKEN   = "clarity-metrics-token"', self.src)
        self.assertIn("googlemanagedprometheus", cfg)

    def test_production_not_public(self):
        prod = tfvars("prod")
        self.assertEqual(prod["public"], "false")
        self.assertTrue(prod["api_domain"].strip('"'))
        for short in ("dev", "staging"):
            self.assertNotIn("public", tfvars(short))  # default true
        run_tf = read(os.path.join(TF, "run.tf"))
        self.assertIn('ingress = var.public ? "INGRESS_TRAFFIC_ALL" : "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"',
                      run_tf)
        lb = read(os.path.join(TF, "lb.tf"))
        self.assertIn('tag     = "candidate"', lb)  # the canary gate's way in
        self.assertIn("security_policy", lb)


if __name__ == "__main__":
    unittest.main(verbosity=2)
