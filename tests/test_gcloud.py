"""Every gcloud command the scripts run, or tell a user to run, parsed by the real gcloud.

The commands come from the scripts' own DRY_RUN output (deploy/gke_setup.py with each
AUTH, setup.sh, the Makefile's auth, push and build, build.sh with Cloud Build), from
the fixes gke_setup prints when a check fails, and from the README's code blocks.
gcloud parses its arguments before it looks for credentials, so under an empty
configuration (CLOUDSDK_CONFIG in a temporary directory) a command that parses stops
at "You do not currently have an active account selected" (exit 1), while an unknown
flag, choice or argument exits 2 first. `gcloud builds submit` also reads and checks
docker/cloudbuild.yaml before that point. Nothing reaches the network: a proxy on a
closed loopback port catches any attempt, the GCE metadata check is off, and each
call has a time limit.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT, make_env
from tests.test_walkthrough import fake_env

GCLOUD = shutil.which("gcloud")
pytestmark = pytest.mark.skipif(GCLOUD is None, reason="gcloud is not installed")

NO_ACCOUNT = "You do not currently have an active account selected"
# `gcloud auth login` and `application-default login` parse, then wait for a person.
SIGN_IN = "Go to the following link in your browser"
SETUP = ["--project=my-project", "--location=us-central1", "--cluster=kuka", "--bucket=b"]


def _dry_run(argv: list[str], **env: str) -> str:
    result = subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=120, env=make_env(**env)
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _gcloud_lines(text: str) -> list[list[str]]:
    """The gcloud commands in text, one a line (backslash continuations joined)."""
    text = text.replace("\\\n", " ")
    return [
        shlex.split(line, comments=True)[1:]
        for line in text.splitlines()
        if line.strip().startswith("gcloud ")
    ]


def _failure_fixes(tmp_path) -> list[list[str]]:
    """The `gcloud ...` fixes gke_setup prints when a check fails (recording fakes)."""
    fixes = []
    flags = (
        "FAKE_NO_WORKLOAD_IDENTITY",
        "FAKE_NO_POOL_WORKLOAD_IDENTITY",
        "FAKE_FINE_GRAINED_BUCKET",
    )
    for i, flag in enumerate(flags):
        (tmp_path / str(i)).mkdir()
        env = {**fake_env(tmp_path / str(i)), flag: "1"}
        result = subprocess.run(
            [sys.executable, "-m", "deploy.gke_setup", *SETUP],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        (fix,) = re.findall(r"`(gcloud [^`]+)`", result.stderr)
        fixes.append(shlex.split(fix)[1:])
    return fixes


def _readme_commands() -> list[list[str]]:
    text = open(os.path.join(ROOT, "README.md")).read()
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", text, re.S)
    return _gcloud_lines("\n".join(blocks))


def _commands(tmp_path) -> list[list[str]]:
    make = ["make", "-s", "DRY_RUN=1", "PROJECT=my-project", "BUCKET=b", "TAG=v1"]
    outputs = [
        _dry_run([sys.executable, "-m", "deploy.gke_setup", *SETUP, "--dry-run"]),
        _dry_run(
            [sys.executable, "-m", "deploy.gke_setup", *SETUP, "--auth=key-file", "--dry-run"]
        ),
        _dry_run(["sh", "setup.sh"], PROJECT="my-project", BUCKET="b", DRY_RUN="1"),
        _dry_run([*make, "auth"]),
        _dry_run([*make, "push"]),
        _dry_run([*make, "push", "CLOUD_BUILD=1", "GPU=1"]),
        _dry_run([*make, "build", "CLOUD_BUILD=1"]),
    ]
    commands = [argv for out in outputs for argv in _gcloud_lines(out)]
    commands += _failure_fixes(tmp_path) + _readme_commands()
    unique = []
    for argv in commands:
        if argv not in unique:
            unique.append(argv)
    return unique


# What the scripts run, at least (so that a change of their output is noticed).
EXPECTED_STARTS = (
    "services enable",
    "container clusters get-credentials",
    "storage buckets add-iam-policy-binding gs://b --member=principal://",
    "storage buckets add-iam-policy-binding gs://b --member=serviceAccount:",
    "iam service-accounts create",
    "iam service-accounts keys create",
    "projects add-iam-policy-binding",
    "artifacts repositories create",
    "artifacts repositories add-iam-policy-binding",
    "auth login",
    "auth application-default login",
    "config set project",
    "auth configure-docker",
    "builds submit",
    "container clusters update",
    "container node-pools update",
    "storage buckets update",
    "container node-pools create",
)


def _checked_commands(tmp_path) -> list[list[str]]:
    """_commands, after checking that each of EXPECTED_STARTS begins one of them."""
    commands = _commands(tmp_path)
    lines = [" ".join(argv) for argv in commands]
    for start in EXPECTED_STARTS:
        assert any(line.startswith(start) for line in lines), (start, lines)
    return commands


def _gcloud_env(tmp_path) -> dict[str, str]:
    """An empty gcloud configuration that cannot reach the network."""
    (tmp_path / "home").mkdir()
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "home"),  # configure-docker writes ~/.docker/config.json
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1",
        "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "1",
        "CLOUDSDK_PROXY_TYPE": "http",
        "CLOUDSDK_PROXY_ADDRESS": "127.0.0.1",
        "CLOUDSDK_PROXY_PORT": "9",  # discard: nothing listens there
    }


@pytest.mark.slow  # about 40 gcloud starts, a second or two each
def test_every_gcloud_command_parses(tmp_path):
    commands = _checked_commands(tmp_path)
    work = tmp_path / "work"  # builds submit reads the config from here, not the repository
    (work / "docker").mkdir(parents=True)
    shutil.copy(os.path.join(ROOT, "docker", "cloudbuild.yaml"), work / "docker")
    env = _gcloud_env(tmp_path)
    # The control: a flag gcloud does not know must be refused here too.
    control = ["services", "enable", "storage.googleapis.com", "--project=p", "--no-such-flag"]
    refused = []
    for argv in [*commands, control]:
        result = subprocess.run(
            [GCLOUD, *argv],
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        said = result.stdout + result.stderr
        parsed = result.returncode == 0 or (
            result.returncode == 1 and (NO_ACCOUNT in said or SIGN_IN in said)
        )
        if not parsed:
            refused.append(f"gcloud {shlex.join(argv)}: exit {result.returncode}: {said.strip()}")
    assert refused[-1].startswith(f"gcloud {shlex.join(control)}: exit 2: ")
    assert "unrecognized arguments: --no-such-flag" in refused.pop()
    assert not refused, "\n".join(refused)
