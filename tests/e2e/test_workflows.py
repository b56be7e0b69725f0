"""The GitHub Actions workflows parse as YAML and say what the pipeline
promises: the README's test command, the security scan, the container smoke
test, develop → development/staging, main → production with the canary
script, manual rollback; every script they call exists, and every `run:`
block is valid bash."""
import os
import re
import subprocess
import sys
import tempfile
import unittest

ROOT = os.environ.get("CLARITY_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
WF = os.path.join(ROOT, ".github", "workflows")

try:
    import yaml
except ImportError:  # the interpreter running ctest may be another than Debian's
    yaml = None

LOADER = """
import json, sys, yaml
docs = {}
for path in sys.argv[1:]:
    with open(path) as f:
        doc = yaml.safe_load(f)
    # YAML 1.1 reads the key `on` as the boolean true.
    if True in doc:
        doc["on"] = doc.pop(True)
    docs[path] = doc
print(json.dumps(docs))
"""


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def load_all(paths):
    """Parse with PyYAML, in this interpreter or Debian's python3-yaml."""
    import json
    py = sys.executable if yaml is not None else "/usr/bin/python3"
    if os.path.exists(py):
        p = subprocess.run([py, "-c", LOADER] + paths, capture_output=True, text=True)
        if p.returncode == 0:
            return json.loads(p.stdout)
        if yaml is not None:
            raise AssertionError("YAML does not parse:\n" + p.stderr)
    raise unittest.SkipTest("no YAML parser: install python3-yaml (scripts/install-deps does)")


class Workflows(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.paths = {name: os.path.join(WF, name) for name in ("ci.yml", "deploy.yml")}
        docs = load_all(list(cls.paths.values()))
        cls.ci = docs[cls.paths["ci.yml"]]
        cls.deploy = docs[cls.paths["deploy.yml"]]

    def runs(self, job):
        return "\n".join(step.get("run", "") for step in job.get("steps", []))

    def test_shape(self):
        for doc in (self.ci, self.deploy):
            self.assertIsInstance(doc["name"], str)
            self.assertIn("on", doc)
            self.assertIsInstance(doc["jobs"], dict)
            for name, job in doc["jobs"].items():
                if "uses" in job:
                    continue
                self.assertIn("runs-on", job, name)
                self.assertIsInstance(job["steps"], list, name)
                for step in job["steps"]:
                    self.assertTrue("run" in step or "uses" in step, (name, step))

    def test_ci_pipeline(self):
        jobs = self.ci["jobs"]
        self.assertIn("workflow_call", self.ci["on"])
        self.assertIn("make test", self.runs(jobs["test"]))  # the README's command
        self.assertIn("scripts/install-deps", self.runs(jobs["test"]))
        sec = self.runs(jobs["security"])
        for tool in ("cppcheck", "clang-tidy", "make test-sanitize", "tests/fuzz", "shellcheck"):
            self.assertIn(tool, sec)
        box = self.runs(jobs["container"])
        self.assertIn("docker build", box)
        self.assertIn("smoke --url", box)
        self.assertIn(".State.Health.Status", box)

    def test_deploy_pipeline(self):
        on = self.deploy["on"]
        self.assertEqual(sorted(on["push"]["branches"]), ["develop", "feature/**", "main"])
        self.assertIn("workflow_dispatch", on)
        jobs = self.deploy["jobs"]
        self.assertEqual(jobs["ci"]["uses"], "./.github/workflows/ci.yml")
        self.assertIn("refs/heads/develop", jobs["development"]["if"])
        self.assertIn("refs/heads/develop", jobs["staging"]["if"])
        self.assertIn("development", jobs["staging"]["needs"])
        self.assertIn("refs/heads/main", jobs["production"]["if"])
        self.assertNotIn("refs/heads/main", jobs["development"]["if"] + jobs["staging"]["if"])
        # Feature branches deploy to development only, one deploy at a time.
        self.assertIn("startsWith(github.ref, 'refs/heads/feature/')", jobs["development"]["if"])
        self.assertNotIn("feature/", jobs["staging"]["if"] + jobs["production"]["if"])
        self.assertEqual(jobs["development"]["concurrency"]["group"], "deploy-development")
        self.assertIn("scripts/deploy.sh development", self.runs(jobs["development"]))
        self.assertIn("scripts/deploy.sh staging", self.runs(jobs["staging"]))
        self.assertIn("scripts/deploy.sh production", self.runs(jobs["production"]))
        self.assertEqual(jobs["production"]["environment"], "production")
        self.assertIn("scripts/rollback.sh", self.runs(jobs["rollback"]))
        self.assertEqual(self.deploy["permissions"]["id-token"], "write")
        for name in ("development", "staging", "production"):
            self.assertEqual(jobs[name]["needs"] if isinstance(jobs[name]["needs"], str)
                             else jobs[name]["needs"][0], "ci")

    def test_called_scripts_exist(self):
        text = "".join(read(p) for p in self.paths.values())
        for script in set(re.findall(r"\b(scripts/[A-Za-z0-9_.-]+)", text)):
            self.assertTrue(os.path.exists(os.path.join(ROOT, script)), script)

    def test_run_blocks_are_bash(self):
        for doc in (self.ci, self.deploy):
            for name, job in doc["jobs"].items():
                for step in job.get("steps", []):
                    if "run" not in step:
                        continue
                    # Expressions are substituted before bash sees the text.
                    body = re.sub(r"\$\{\{[^}]*\}\}", "X", step["run"])
                    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
                        f.write(body)
                    try:
                        p = subprocess.run(["bash", "-n", f.name], capture_output=True, text=True)
                    finally:
                        os.unlink(f.name)
                    self.assertEqual(p.returncode, 0, (name, step.get("name"), p.stderr))

    def test_no_tabs_and_actions_pinned_to_major(self):
        for path in self.paths.values():
            text = read(path)
            self.assertNotIn("\t", text, path)
            for ref in re.findall(r"uses: ([\w./-]+@\S+)", text):
                self.assertRegex(ref, r"@v\d+$", ref)


if __name__ == "__main__":
    unittest.main(verbosity=2)
