"""The cluster set-up around deploy/gke_setup.py: setup.sh, IAM's retries, the new bucket.

setup.sh must print what `make setup` prints, also under dash (the tutorial's `sh
setup.sh`); a binding right after its service account was created is retried while IAM
has not caught up, and only then; `make bucket` creates the bucket in the cluster's
region with uniform bucket-level access and no soft delete, as the Cloud Storage JSON
API names those fields (https://cloud.google.com/storage/docs/json_api/v1/buckets/insert:
`location`, `iamConfiguration.uniformBucketLevelAccess.enabled`,
`softDeletePolicy.retentionDurationSeconds`, the `project` query parameter).
"""

from __future__ import annotations

import http.server
import json
import re
import shutil
import subprocess
import sys
import threading
import urllib.parse

import pytest

from deploy import access, bucket
from deploy.commands import Failed
from tests.conftest import ROOT, make_env

VALUES = {"PROJECT": "my-project", "BUCKET": "b", "NAMESPACE": "team-a", "AUTH": "key-file"}


def _make_setup(**values: str) -> subprocess.CompletedProcess:
    args = [f"{k}={v}" for k, v in values.items()]
    return subprocess.run(
        ["make", "-s", "setup", "DRY_RUN=1", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=make_env(),
    )


def _setup_sh(shell: str, cwd, **values: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [shell, f"{ROOT}/setup.sh"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=make_env(DRY_RUN="1", **values),
    )


@pytest.mark.parametrize("values", [{"PROJECT": "my-project", "BUCKET": "b"}, VALUES])
@pytest.mark.parametrize("shell", ["sh", "dash", "bash"])
def test_setup_sh_prints_what_make_setup_prints(shell, values, tmp_path):
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    made = _make_setup(**values)
    assert made.returncode == 0, made.stderr
    result = _setup_sh(shell, tmp_path, **values)  # from any directory
    assert result.returncode == 0, result.stderr
    # The key-file flavour's key goes to a new temporary directory each time.
    key = re.compile(r"\S*/key\.json")
    assert key.sub("KEY", result.stdout) == key.sub("KEY", made.stdout)
    assert "--location=us-central1 " in result.stdout  # a region: Autopilot's kind


@pytest.mark.parametrize("missing", ["PROJECT", "BUCKET"])
def test_setup_sh_names_a_missing_variable_in_one_line(missing, tmp_path):
    values = {k: v for k, v in VALUES.items() if k != missing}
    result = _setup_sh("sh", tmp_path, **values)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"setup.sh: {missing} is not set")
    assert result.stdout == ""


def _gcloud_failing(tmp_path, times: int, message: str) -> str:
    """A gcloud stand-in that fails `times` times with IAM's `message`, then succeeds."""
    script = tmp_path / "gcloud"
    script.write_text(
        "#!/bin/sh\n"
        f'n=$(cat "{tmp_path}/count" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "{tmp_path}/count"\n'
        f'if [ "$n" -le {times} ]; then echo "{message}" >&2; exit 1; fi\n'
    )
    script.chmod(0o755)
    return str(script)


# What IAM answers, through gcloud, for an account it does not know yet.
NOT_YET = (
    "ERROR: (gcloud.projects.add-iam-policy-binding) INVALID_ARGUMENT: Service account "
    "kuka-builder@p.iam.gserviceaccount.com does not exist."
)


def test_a_binding_is_retried_while_iam_catches_up(tmp_path, capsys):
    gcloud = _gcloud_failing(tmp_path, 2, NOT_YET)
    access.retrying([gcloud, "projects", "add-iam-policy-binding", "p"], False, pause=0)
    assert (tmp_path / "count").read_text().strip() == "3"
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all("retrying in 0 s" in line.lower() for line in err)


def test_retries_are_bounded_and_other_failures_are_not_retried(tmp_path, capsys):
    gcloud = _gcloud_failing(tmp_path, 99, NOT_YET)
    with pytest.raises(Failed, match="does not exist"):
        access.retrying([gcloud, "projects", "add-iam-policy-binding", "p"], False, 3, pause=0)
    assert (tmp_path / "count").read_text().strip() == "3"
    (tmp_path / "count").unlink()
    denied = "ERROR: (gcloud.projects.add-iam-policy-binding) PERMISSION_DENIED: no"
    gcloud = _gcloud_failing(tmp_path, 99, denied)
    with pytest.raises(Failed, match="PERMISSION_DENIED"):
        access.retrying([gcloud, "projects", "add-iam-policy-binding", "p"], False, pause=0)
    assert (tmp_path / "count").read_text().strip() == "1"


class _Storage(http.server.BaseHTTPRequestHandler):
    """Cloud Storage's JSON API, as far as `make bucket` uses it: no bucket, then insert."""

    created: list = []

    def log_message(self, *args):
        pass

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # objects.list of a bucket that does not exist
        self._answer(404, {"error": {"code": 404, "message": "The bucket does not exist."}})

    def do_POST(self):  # buckets.insert
        url = urllib.parse.urlsplit(self.path)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.created.append((url.path, urllib.parse.parse_qs(url.query), body))
        self._answer(200, {"name": body["name"], "location": body.get("location", "US")})


def test_make_bucket_creates_a_regional_uniform_bucket_without_soft_delete(monkeypatch, capsys):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Storage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{server.server_port}")
    try:
        argv = ["gs://kuka-runs", "--create", "--location=us-central1", "--project=my-project"]
        assert bucket.main(argv) == 0
    finally:
        server.shutdown()
        thread.join(timeout=10)
    assert capsys.readouterr().out.strip() == "gs://kuka-runs created"
    ((path, query, body),) = _Storage.created
    assert path == "/storage/v1/b" and query["project"] == ["my-project"]
    assert body["name"] == "kuka-runs" and body["location"] == "us-central1"
    assert body["iamConfiguration"]["uniformBucketLevelAccess"]["enabled"] is True
    assert int(body["softDeletePolicy"]["retentionDurationSeconds"]) == 0


def test_build_sh_cloud_build_needs_a_bucket_and_runs_as_the_builder():
    env = make_env(IMAGE="europe-west4-docker.pkg.dev/proj-1/kuka/kuka-trainer", TAG="t")
    result = subprocess.run(
        ["./build.sh", "--cloud-build", "--dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith("build.sh: BUCKET is not set")
    result = subprocess.run(
        ["./build.sh", "--cloud-build", "--dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "BUCKET": "b"},
    )
    assert result.returncode == 0, result.stderr
    # The project comes from the Artifact Registry image when PROJECT is not set.
    account = access.email(access.BUILDER, "proj-1")
    assert "--project=proj-1 " in result.stdout
    assert f"--service-account=projects/proj-1/serviceAccounts/{account} " in result.stdout


def test_setup_runs_under_the_system_python_only():
    """deploy/ runs before .venv exists: setup.sh's python3 must import it as is."""
    result = subprocess.run(
        [shutil.which("python3") or sys.executable, "-m", "deploy.gke_setup", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "region (Autopilot)" in result.stdout
