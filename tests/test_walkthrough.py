"""The README's cluster section, run line by line, without DRY_RUN, against recording fakes.

No GKE, Docker engine or API server exists here, so gcloud, kubectl and docker are
tests/fakes/fake_cli.py: each call is recorded and answered as the real tool would
answer it. The bucket is real (the storage emulator on 127.0.0.1), and so is every
manifest: `kubectl apply -k` renders with the real kubectl and each object is
validated against Kubernetes' and Kubeflow's schemas. The commands come from
README.md's own code blocks, so the README and the Makefile cannot drift apart.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.conftest import ROOT, make_env
from tests.test_k8s import CRD_SCHEMAS, K8S_VERSION
from tests.test_storage import Emulator

PROJECT, BUCKET, NAMESPACE = "my-project", "my-kuka-runs", "rl"
IMAGE = f"us-central1-docker.pkg.dev/{PROJECT}/kuka/kuka-trainer"
BUILDER = f"kuka-builder@{PROJECT}.iam.gserviceaccount.com"
# The pods' Kubernetes ServiceAccount as an IAM principal (Workload Identity Federation for GKE).
PODS = (
    "principal://iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/"
    f"{PROJECT}.svc.id.goog/subject/ns/{NAMESPACE}/sa/kuka-trainer"
)


def readme_blocks() -> list[str]:
    """Every command block of the README's cluster section, in order: the walk-through,
    then Tune, Scale out, and GPU and Spot."""
    text = open(os.path.join(ROOT, "README.md")).read()
    sections = dict(re.findall(r"^## (.+?)\n(.*?)(?=^## |\Z)", text, re.M | re.S))
    blocks = re.findall(
        r"```bash\n(.*?)```", sections["The same job on Kubernetes / Kubeflow"], re.S
    )
    for must_hold in ("make setup", "make tune", "make submit-distributed", "GPU=1", "SPOT=1"):
        assert any(must_hold in block for block in blocks), must_hold
    return blocks


def fake_env(
    tmp, kubectl: str = "kubectl", tools=("gcloud", "kubectl", "docker", "gke-gcloud-auth-plugin")
) -> dict:
    """The environment with the fakes first on PATH, recording into tmp/calls.jsonl."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    fake = os.path.join(ROOT, "tests", "fakes", "fake_cli.py")
    for tool in tools:
        (bin_dir / tool).write_text(f'#!/bin/sh\nexec "{sys.executable}" "{fake}" {tool} "$@"\n')
        (bin_dir / tool).chmod(0o755)
    (tmp / "home").mkdir()
    return make_env(
        **{
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(tmp / "home"),
            "FAKE_LOG": str(tmp / "calls.jsonl"),
            "FAKE_STATE": str(tmp / "state.json"),
            "REAL_KUBECTL": kubectl,
            "VENV": os.path.join(ROOT, ".venv"),
        }
    )


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory):
    """Runs the README's blocks in a copy of the repository; returns (records, stdout)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (it renders the manifests)")
    tmp = tmp_path_factory.mktemp("walkthrough")
    repo = tmp / "repo"
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        if os.path.isfile(os.path.join(ROOT, name)):
            os.makedirs(os.path.dirname(repo / name), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, name), repo / name)
    server = Emulator(tmp / "gcs")
    server.start()
    env = {**fake_env(tmp, kubectl), "STORAGE_EMULATOR_HOST": server.url}
    script = "set -euo pipefail\n" + "\n".join(readme_blocks())
    try:
        result = subprocess.run(
            ["bash", "-c", script], cwd=repo, env=env, capture_output=True, text=True, timeout=600
        )
        client_bucket = _bucket_exists(server.url)
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    records = [json.loads(line) for line in open(tmp / "calls.jsonl")]
    return records, client_bucket


def _bucket_exists(url: str) -> bool:
    from trainer import storage

    os.environ["STORAGE_EMULATOR_HOST"] = url
    try:
        return storage.make_client().lookup_bucket(BUCKET) is not None
    finally:
        del os.environ["STORAGE_EMULATOR_HOST"]


def _line(record: dict) -> str:
    return " ".join([record["tool"], *record["argv"]])


def _index(lines: list[str], start: int, pattern: str) -> int:
    """The first line at or after `start` that matches `pattern`; fails naming it."""
    for i in range(start, len(lines)):
        if re.search(pattern, lines[i]):
            return i
    raise AssertionError(
        f"no command matching {pattern!r} after line {start}:\n" + "\n".join(lines)
    )


# The walk-through's commands, in order (regular expressions over "tool argv...").
EXPECTED_ORDER = [
    r"^gcloud auth login$",
    r"^gcloud auth application-default login$",
    rf"^gcloud config set project {PROJECT}$",
    r"^gcloud services enable container.googleapis.com artifactregistry.googleapis.com .*iamcredentials",
    rf"^gcloud container clusters get-credentials kuka --location=us-central1 --project={PROJECT}$",
    r"^gcloud container clusters describe kuka .*workloadIdentityConfig.workloadPool",
    r"^gcloud container node-pools list --cluster=kuka .*workloadMetadataConfig.mode",
    rf"^gcloud projects describe {PROJECT} --format=value\(projectNumber\)$",
    rf"^gcloud storage buckets describe gs://{BUCKET} .*uniform_bucket_level_access",
    rf"^kubectl create namespace {NAMESPACE} --dry-run=client -o yaml$",
    r"^kubectl apply -f -$",
    rf"^gcloud storage buckets add-iam-policy-binding gs://{BUCKET} --member={re.escape(PODS)} "
    r"--role=roles/storage.objectAdmin$",
    r"^gcloud artifacts repositories describe kuka --location=us-central1 ",
    r"^gcloud artifacts repositories create kuka --location=us-central1 .*--repository-format=docker",
    r"^gcloud artifacts repositories add-iam-policy-binding kuka --location=us-central1 .*"
    r"--member=serviceAccount:123456789012-compute@developer.gserviceaccount.com "
    r"--role=roles/artifactregistry.reader$",
    rf"^gcloud iam service-accounts create kuka-builder --project={PROJECT}",
    rf"^gcloud projects add-iam-policy-binding {PROJECT} --member=serviceAccount:{BUILDER} "
    r"--role=roles/logging.logWriter --condition=None$",
    rf"^gcloud storage buckets add-iam-policy-binding gs://{BUCKET} --member=serviceAccount:{BUILDER} "
    r"--role=roles/storage.objectViewer$",
    rf"^gcloud artifacts repositories add-iam-policy-binding kuka .*--member=serviceAccount:{BUILDER} "
    r"--role=roles/artifactregistry.writer$",
    rf"^docker build -f docker/trainer.Dockerfile --build-arg REQUIREMENTS=requirements.txt -t {IMAGE}:",
    r"^gcloud auth configure-docker us-central1-docker.pkg.dev --quiet$",
    rf"^docker push {IMAGE}:",
    r"^kubectl apply -k k8s/overlays/local/ppo-run-1$",
    rf"^kubectl -n {NAMESPACE} get jobs.batch -l app.kubernetes.io/part-of=kuka-grasp$",
    rf"^kubectl -n {NAMESPACE} get pods .*custom-columns=.*reason",
    rf"^kubectl -n {NAMESPACE} logs -f --tail=100 -l batch.kubernetes.io/job-name=kuka-train-ppo-run-1$",
    rf"^kubectl -n {NAMESPACE} port-forward service/tensorboard 6006:6006$",
    rf"^docker push {IMAGE}:",
    rf"^kubectl -n {NAMESPACE} delete job kuka-render-ppo-run-1 --ignore-not-found$",
    r"^kubectl apply -k k8s/overlays/local/render-ppo-run-1$",
    rf"^kubectl -n {NAMESPACE} delete jobs.batch kuka-train-ppo-run-1 --ignore-not-found$",
    rf"^docker push {IMAGE}:",
    rf"^kubectl label namespace {NAMESPACE} katib.kubeflow.org/metrics-collector-injection=enabled --overwrite$",
    r"^kubectl apply -k k8s/overlays/local/tune-tune-1$",
    rf"^kubectl -n {NAMESPACE} get experiments.kubeflow.org kuka-tune-tune-1 ",
    rf"^kubectl -n {NAMESPACE} delete experiments.kubeflow.org kuka-tune-tune-1 ",
    r"^kubectl apply -k k8s/overlays/local/distributed-ppo-dist-1$",
    rf"^kubectl -n {NAMESPACE} get jobsets.jobset.x-k8s.io,deployments,jobs -l app.kubernetes.io/component=distributed$",
    rf"^kubectl -n {NAMESPACE} get pods -l app.kubernetes.io/name in \(kuka-reverb,kuka-collect,kuka-learn\) ",
    rf"^kubectl -n {NAMESPACE} delete .* -l app.kubernetes.io/component=distributed ",
    r"^docker build .*REQUIREMENTS=requirements-gpu.txt .*:[^ ]*-gpu \.$",
    r"^kubectl apply -k k8s/overlays/local/ppo-gpu-1$",
    r"^kubectl apply -k k8s/overlays/local/ppo-spot-1$",
    r"^kubectl apply -k k8s/overlays/local/ppo-q-1$",
]


def test_readme_walkthrough_runs_every_command_in_order(walkthrough):
    records, bucket_made = walkthrough
    assert bucket_made, "make bucket did not create the bucket"
    lines = [_line(r) for r in records]
    print("\n".join(lines))  # the walk-through's commands (pytest -s shows them)
    assert all(r["exit"] == 0 for r in records if "describe" not in r["argv"]), lines
    at = 0
    for pattern in EXPECTED_ORDER:
        at = _index(lines, at, pattern) + 1


def _applied(records: list[dict]) -> list[list[dict]]:
    out = []
    for r in records:
        text = r.get("rendered") or r.get("stdin")
        if text is not None:
            out.append([doc for doc in yaml.safe_load_all(text) if doc])
    return out


def test_every_applied_manifest_is_valid_and_runs_the_pushed_image(walkthrough):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    jsonschema = pytest.importorskip("jsonschema")
    records, _ = walkthrough
    pushed = {r["argv"][1] for r in records if r["tool"] == "docker" and r["argv"][0] == "push"}
    # One image for every run; GPU=1 pushes its GPU image beside it, TAG-gpu.
    assert {image.removesuffix("-gpu") for image in pushed} == {min(pushed)}
    applies = _applied(records)
    # The namespace, the run, the render, the tune, the distributed run, and the GPU,
    # Spot and queued runs.
    assert len(applies) == 8
    kinds = {obj["kind"] for objects in applies for obj in objects}
    assert {"Experiment", "JobSet", "Job"} <= kinds
    for objects in applies:
        for obj in objects:
            if obj["kind"] in CRD_SCHEMAS:
                with open(
                    os.path.join(ROOT, "tests", "data", "schemas", CRD_SCHEMAS[obj["kind"]])
                ) as f:
                    jsonschema.validate(obj, json.load(f))
            else:
                kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
            for image in re.findall(r"'image': '([^']+)'", str(obj)):
                assert image in pushed, (obj["kind"], image)
            if obj["kind"] == "ServiceAccount":
                # IAM binds the ServiceAccount itself (PODS): no Google service account to name.
                assert obj["metadata"]["namespace"] == NAMESPACE
                assert "iam.gke.io/gcp-service-account" not in obj["metadata"].get(
                    "annotations", {}
                )
            for logdir in re.findall(r"--logdir=([^'\"\\\\]+)", str(obj)):
                assert logdir in (f"gs://{BUCKET}/runs", "$(LOGDIR)"), (obj["kind"], logdir)
            if obj["metadata"]["name"].startswith("kuka-run-"):
                assert obj["data"]["logdir"] == f"gs://{BUCKET}/runs"  # TensorBoard's $(LOGDIR)


SETUP = ["--project=p", "--location=europe-west4", "--cluster=c", "--bucket=b"]


def test_setup_stops_when_workload_identity_is_off(tmp_path):
    env = {**fake_env(tmp_path), "FAKE_NO_WORKLOAD_IDENTITY": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "deploy.gke_setup", *SETUP],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert "Workload Identity is off" in line
    assert "gcloud container clusters update c --location=europe-west4 --project=p " in line
    assert "--workload-pool=p.svc.id.goog" in line
    made = [json.loads(x)["argv"][:3] for x in open(tmp_path / "calls.jsonl")]
    assert ["storage", "buckets", "add-iam-policy-binding"] not in made  # it stopped before IAM


def test_setup_stops_when_the_bucket_has_fine_grained_access(tmp_path):
    """Workload Identity's principal:// members need uniform bucket-level access."""
    env = {**fake_env(tmp_path), "FAKE_FINE_GRAINED_BUCKET": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "deploy.gke_setup", *SETUP],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert "gcloud storage buckets update gs://b --uniform-bucket-level-access" in line
    made = [json.loads(x)["argv"][:3] for x in open(tmp_path / "calls.jsonl")]
    assert ["storage", "buckets", "add-iam-policy-binding"] not in made


def test_setup_names_a_missing_auth_plugin(tmp_path):
    env = fake_env(tmp_path, tools=("gcloud", "kubectl", "docker"))
    env["PATH"] = os.pathsep.join(
        p
        for p in env["PATH"].split(os.pathsep)
        if not os.path.exists(os.path.join(p, "gke-gcloud-auth-plugin"))
        or p == str(tmp_path / "bin")
    )
    result = subprocess.run(
        [sys.executable, "-m", "deploy.gke_setup", *SETUP],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "setup: error: gke-gcloud-auth-plugin is not installed "
        "(install it with: gcloud components install gke-gcloud-auth-plugin, or sudo apt-get "
        "install google-cloud-cli-gke-gcloud-auth-plugin)"
    )
    assert not os.path.exists(tmp_path / "calls.jsonl")  # nothing ran
