"""The cluster tools (deploy/), and the Make targets with DRY_RUN=1 (cluster and local).

DRY_RUN=1 must print the exact commands and write and contact nothing; the overlay
tool must refuse, in one line, a run id whose derived names Kubernetes would reject.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from deploy import access, gke_setup, kinds, overlay
from tests.conftest import ROOT, make_env
from tests.test_k8s import _kustomize

AR_IMAGE = "us-central1-docker.pkg.dev/my-project/kuka/kuka-trainer"


def _make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-s", *args, "DRY_RUN=1", "PROJECT=my-project", "TAG=v9"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=make_env(),
    )


def _local_overlays() -> set[str]:
    local = os.path.join(ROOT, "k8s", "overlays", "local")
    return set(os.listdir(local)) if os.path.isdir(local) else set()


@pytest.mark.parametrize(
    "target, expected",
    [
        (["status"], "kubectl -n rl get jobs.batch -l app.kubernetes.io/part-of=kuka-grasp"),
        (
            ["status", "KIND=tfjob"],
            "kubectl -n rl get tfjobs.kubeflow.org -l app.kubernetes.io/part-of=kuka-grasp",
        ),
        (
            ["logs", "RUN=r1", "KIND=tfjob"],
            "kubectl -n rl logs -f --tail=100 -l training.kubeflow.org/job-name=kuka-train-r1",
        ),
        (
            ["delete", "RUN=r1", "KIND=trainjob"],
            "kubectl -n rl delete trainjobs.trainer.kubeflow.org kuka-train-r1 --ignore-not-found",
        ),
        (
            ["tensorboard", "TARGET=cluster", "TB_PORT=6010"],
            "kubectl -n rl port-forward service/tensorboard 6010:6006",
        ),
        (
            ["build"],
            "docker build -f docker/trainer.Dockerfile --build-arg REQUIREMENTS=requirements.txt "
            f"-t {AR_IMAGE}:v9 .",
        ),
        (
            ["build", "GPU=1"],
            "docker build -f docker/trainer.Dockerfile --build-arg "
            f"REQUIREMENTS=requirements-gpu.txt -t {AR_IMAGE}:v9-gpu .",
        ),
        (
            ["push", "LOCATION=europe-west4"],
            "docker push europe-west4-docker.pkg.dev/my-project/kuka/kuka-trainer:v9",
        ),
        (["push"], "gcloud auth configure-docker us-central1-docker.pkg.dev --quiet"),
        (
            ["push", "CLOUD_BUILD=1", "BUCKET=b"],
            "gcloud builds submit --project=my-project --config=docker/cloudbuild.yaml "
            "--service-account=projects/my-project/serviceAccounts/"
            f"{access.email(access.BUILDER, 'my-project')} "
            "--gcs-source-staging-dir=gs://b/cloudbuild/source "
            f"--substitutions=_IMAGE={AR_IMAGE}:v9\\,_REQUIREMENTS=requirements.txt .",
        ),
        (["auth"], "gcloud config set project my-project"),
        (
            ["bucket", "BUCKET=b"],
            ".venv/bin/python -m deploy.bucket gs://b --create --location=us-central1 "
            "--project=my-project",
        ),
        (
            ["bucket", "BUCKET=b", "LOCATION=europe-west4-b"],
            ".venv/bin/python -m deploy.bucket gs://b --create --location=europe-west4 "
            "--project=my-project",
        ),
        (  # Autopilot clusters are regional: the default location is a region
            ["setup", "BUCKET=b"],
            "gcloud container clusters get-credentials kuka --location=us-central1 "
            "--project=my-project",
        ),
        (
            ["status-distributed"],
            "kubectl -n rl get jobsets.jobset.x-k8s.io,deployments,jobs "
            "-l app.kubernetes.io/component=distributed",
        ),
        (
            ["delete-distributed"],
            "kubectl -n rl delete jobsets.jobset.x-k8s.io,deployments.apps,services,"
            "networkpolicies.networking.k8s.io,"
            "jobs.batch,configmaps -l app.kubernetes.io/component=distributed --ignore-not-found",
        ),
        (["tune", "BUCKET=b", "RUN=t1"], "kubectl apply -k k8s/overlays/local/tune-t1"),
        (
            ["status-tune", "RUN=t1"],
            "kubectl -n rl get trials.kubeflow.org -l katib.kubeflow.org/experiment=kuka-tune-t1",
        ),
        (
            ["delete-tune", "RUN=t1"],
            "kubectl -n rl delete experiments.kubeflow.org kuka-tune-t1 --ignore-not-found",
        ),
        (["push", "GPU=1"], f"docker push {AR_IMAGE}:v9-gpu"),
        (["push", "GPU=1"], f"docker push {AR_IMAGE}:v9"),  # TensorBoard's and collectors'
        (
            ["submit-distributed", "BUCKET=b", "RUN=d1", "LAYOUT=jobs"],
            "kubectl apply -k k8s/overlays/local/distributed-d1",
        ),
        (
            ["setup", "BUCKET=b", "ZONE=europe-west4-b"],
            "gcloud container clusters get-credentials kuka --location=europe-west4-b --project=my-project",
        ),
        (
            ["setup", "BUCKET=b", "LOCATION=us-east1"],
            "gcloud artifacts repositories create kuka --location=us-east1 --project=my-project "
            "--repository-format=docker '--description=Kuka trainer images'",
        ),
    ],
)
def test_dry_run_prints_the_exact_commands(target, expected):
    before = _local_overlays()
    result = _make(*target)
    assert result.returncode == 0, result.stderr
    assert expected in [line.strip() for line in result.stdout.splitlines()]
    assert _local_overlays() == before


def _counting_python(tmp_path):
    """A PY3 for make that logs each call to a file, then runs python3 (.venv's first)."""
    log, script = tmp_path / "calls", tmp_path / "py3"
    script.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec python3 "$@"\n')
    script.chmod(0o755)
    return f"PY3={script}", log


def test_make_help_starts_no_python_and_a_run_id_is_made_once(tmp_path):
    py3, log = _counting_python(tmp_path)
    assert _make("help", py3).returncode == 0
    assert not log.exists()
    result = _make("submit", "BUCKET=b", "KIND=tfjob", py3)
    assert result.returncode == 0, result.stderr
    run_id_calls = [call for call in log.read_text().splitlines() if " run-id " in call]
    assert len(run_id_calls) == 1 and not run_id_calls[0].endswith("tune")
    run_ids = {
        line.split("RUN=")[1].split()[0] for line in result.stdout.splitlines() if "RUN=" in line
    }
    assert len(run_ids) == 1


def test_tune_makes_a_run_id_that_fits_katib_also_beside_submit(tmp_path):
    py3, log = _counting_python(tmp_path)
    result = _make("submit", "tune", "BUCKET=b", py3)
    assert result.returncode == 0, result.stderr
    run_id_calls = [call for call in log.read_text().splitlines() if " run-id " in call]
    assert [call.endswith(" tune") for call in run_id_calls] == [False, True]
    run = re.search(r"experiments\.kubeflow\.org/kuka-tune-(\S+)", result.stdout)[1]
    kinds.check_run(run, "tune")  # raises ValueError when Katib would refuse the name


@pytest.mark.parametrize(
    "target",
    [
        ["submit", "BUCKET=b", "KIND=tfjob"],
        ["tune", "BUCKET=b"],
        ["submit-distributed", "BUCKET=b"],
        ["setup", "BUCKET=b", "CLUSTER=c"],
        ["render", "TARGET=cluster", "RUN=r1", "BUCKET=b"],
        ["status-distributed"],
    ],
)
def test_cluster_targets_run_deploy_on_the_standard_library_alone(target):
    # docs/architecture.md: deploy/ runs on the system's python3 before .venv exists.
    # `python -S` imports no site-packages at all, and PATH leaves .venv out.
    bare = f"{sys._base_executable} -S -E"
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if ".venv" not in p)
    result = subprocess.run(
        ["make", "-s", *target, "DRY_RUN=1", "PROJECT=my-project", "TAG=v9", f"PY3={bare}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=make_env(PATH=path, VENV="/nonexistent-venv"),
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "target, command",
    [
        (["train", "STEPS=1000", "SEED=3"], "-m trainer.task --total_steps=1000 --seed=3"),
        (["eval", "RUN=r1"], "-m trainer.task eval --run=r1"),
        (
            ["train-distributed", "COLLECTORS=2", "AGENT=sac"],
            "-m trainer.task distributed --collectors=2 --agent=sac",
        ),
        (["render", "RUN=r1"], "-m trainer.task render --run=r1"),
        (["plot", "RUN=r1"], "-m trainer.task plot --run=r1"),
    ],
)
def test_dry_run_prints_local_commands_and_makes_no_venv(target, command, tmp_path):
    venv = tmp_path / "venv"
    result = _make(*target, f"VENV={venv}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{venv}/bin/python {command}"]
    assert not venv.exists()


def test_dry_run_writes_no_overlay_and_shows_it():
    before = _local_overlays()
    result = _make("submit", "BUCKET=b", "RUN=dry-run-1", "KIND=tfjob")
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert f"docker push {AR_IMAGE}:v9" in lines
    assert "kubectl apply -k k8s/overlays/local/dry-run-1" in lines
    assert any(line.endswith("k8s/overlays/local/dry-run-1/kustomization.yaml:") for line in lines)
    study = _make("study", "BUCKET=b", "RUN=dry-study", "SEEDS=2")
    assert study.returncode == 0, study.stderr
    applies = [x for x in study.stdout.splitlines() if x.startswith("kubectl apply")]
    assert applies == [
        "kubectl apply -k k8s/overlays/local/dry-study-s1",
        "kubectl apply -k k8s/overlays/local/dry-study-s2",
    ]
    render = _make("render", "TARGET=cluster", "BUCKET=b", "RUN=r1", "EPISODES=5", "FPS=12")
    assert render.returncode == 0, render.stderr
    lines = [line.strip() for line in render.stdout.splitlines()]
    assert "kubectl -n rl delete job kuka-render-r1 --ignore-not-found" in lines
    assert f"docker push {AR_IMAGE}:v9" in lines  # the image it runs exists
    shown = render.stdout.replace('\\"', '"')
    assert '"--episodes=5", "--fps=12"' in shown  # only what was set: the rest is config's
    assert "--width" not in shown
    assert _local_overlays() == before


@pytest.mark.parametrize(
    "target, missing",
    [
        (["submit"], "BUCKET"),
        (["logs"], "RUN"),
        (["setup"], "BUCKET"),
        (["push", "CLOUD_BUILD=1"], "BUCKET"),  # Cloud Build reads the source from it
    ],
)
def test_missing_variables_are_named(target, missing):
    result = _make(*target)
    assert result.returncode != 0
    assert f"{missing} is not set" in result.stderr


@pytest.mark.parametrize("kind", ["job", "tfjob", "trainjob", "render"])
def test_run_ids_at_the_limit_fit_and_longer_ones_are_refused(kind, tmp_path, capsys):
    limit = kinds.max_run_length(kind)
    assert limit == {"job": 52, "tfjob": 43, "trainjob": 37, "render": 51}[kind]
    common = ["--image=i", "--tag=t", "--bucket=b", f"--out={tmp_path}"]
    longest = "r" * limit
    assert overlay.main([f"--kind={kind}", "--name=ok", f"--run={longest}", *common]) == 0
    spec = kinds.KINDS[kind]
    for obj in _kustomize(str(tmp_path / "ok")):
        name = obj["metadata"]["name"]
        if obj["kind"] == spec.resource and name.startswith(spec.prefix):
            assert len(name + spec.derived_suffix) == 63
    assert overlay.main([f"--kind={kind}", "--name=no", f"--run={longest}x", *common]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"at most {limit}" in err
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("kind", ["job", "tfjob", "trainjob", "distributed", "jobset", "tune"])
def test_the_camera_env_is_written_for_one_pod_kinds_and_refused_for_the_roles(
    kind, tmp_path, capsys
):
    common = [f"--kind={kind}", "--run=cam", "--image=i", "--tag=t", "--bucket=b"]
    for flags in (["--env_id=KukaGraspCam-v0"], ["--env_id", "KukaGraspCam-v0"]):
        code = overlay.main([*common, f"--name={kind}", f"--out={tmp_path}", "--", *flags])
        err = capsys.readouterr().err.strip()
        if kind in kinds.ROLES:  # trainer/commands.py refuses it too, but only once in a pod
            assert code == 2 and err.count("\n") == 0
            assert (
                "KukaGraspCam-v0 trains in one pod (make submit, KIND=job, tfjob or trainjob)"
                in err
            )
            assert not (tmp_path / kind).exists()
        else:
            assert code == 0, err
            shown = json.dumps(_kustomize(str(tmp_path / kind)))
            assert "KukaGraspCam-v0" in shown


RESOURCES = {
    "Deployment": "deployments.apps",
    "Service": "services",
    "NetworkPolicy": "networkpolicies.networking.k8s.io",
    "Job": "jobs.batch",
    "ConfigMap": "configmaps",
}


def _key(obj: dict) -> tuple[str, str]:
    name = obj["metadata"]["name"]  # a generated ConfigMap's name ends in a content hash
    return obj["kind"], name.rsplit("-", 1)[0] if obj["kind"] == "ConfigMap" else name


def test_delete_distributed_selects_the_runs_objects_only(tmp_path):
    args = ["--kind=distributed", "--name=d", "--run=r", "--image=i", "--tag=t", "--bucket=b"]
    assert overlay.main([*args, f"--out={tmp_path}"]) == 0
    shared = {
        _key(o)
        for folder in ("k8s/base", "k8s/workloads/tensorboard")
        for o in _kustomize(os.path.join(ROOT, folder))
    }
    makefile = open(os.path.join(ROOT, "Makefile")).read()
    line = next(x for x in makefile.splitlines() if x.startswith("DISTRIBUTED_KINDS ="))
    deleted_kinds = line.split("=", 1)[1].strip().split(",")
    run_objects = 0
    for obj in _kustomize(str(tmp_path / "d")):
        selected = obj["metadata"]["labels"].get("app.kubernetes.io/component") == "distributed"
        assert selected == (_key(obj) not in shared), _key(obj)
        if selected:
            assert RESOURCES[obj["kind"]] in deleted_kinds, _key(obj)
            run_objects += 1
    assert run_objects == 6  # Reverb's Deployment, Service, NetworkPolicy; 2 Jobs; flags


def test_setup_dry_run_runs_every_step_in_order(capsys):
    argv = ["--project=p", "--location=europe-west4-a", "--cluster=c", "--bucket=b", "--dry-run"]
    assert gke_setup.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    steps = [" ".join(line.split()[:4]) for line in lines]
    assert steps == [
        "gcloud services enable container.googleapis.com",
        "gcloud container clusters get-credentials",
        "kubectl create namespace rl",
        "gcloud storage buckets add-iam-policy-binding",  # the pods
        "gcloud artifacts repositories create",
        "gcloud artifacts repositories add-iam-policy-binding",  # the nodes
        "gcloud iam service-accounts create",  # kuka-builder
        "gcloud projects add-iam-policy-binding p",
        "gcloud storage buckets add-iam-policy-binding",
        "gcloud artifacts repositories add-iam-policy-binding",
    ]
    # Workload Identity Federation for GKE: the KSA itself, as a principal, holds the role.
    pods = "principal://iam.googleapis.com/projects/PROJECT_NUMBER/locations/global/"
    pods += "workloadIdentityPools/p.svc.id.goog/subject/ns/rl/sa/kuka-trainer"
    assert lines[3].endswith(f"--member={pods} --role=roles/storage.objectAdmin")
    assert "--location=europe-west4 " in lines[4]  # the registry lives in the region
    assert "kuka-builder --project=p" in lines[6]
    builder = f"--member=serviceAccount:{access.email(access.BUILDER, 'p')}"
    assert lines[7].endswith(f"{builder} --role=roles/logging.logWriter --condition=None")
    assert lines[8].endswith(f"{builder} --role=roles/storage.objectViewer")
    assert lines[9].endswith(f"{builder} --role=roles/artifactregistry.writer")
    assert "gcp-service-account" not in "".join(lines)


def test_setup_with_a_key_file_makes_a_secret_and_binds_its_account(capsys):
    argv = ["--project=p", "--location=us-east1", "--cluster=c", "--bucket=b", "--auth=key-file"]
    assert gke_setup.main([*argv, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "gcloud iam service-accounts create kuka-trainer --project=p" in out
    assert (
        "gcloud storage buckets add-iam-policy-binding gs://b "
        "--member=serviceAccount:kuka-trainer@p.iam.gserviceaccount.com "
        "--role=roles/storage.objectAdmin"
    ) in out
    assert "gcloud iam service-accounts keys create" in out
    assert "kubectl -n rl create secret generic gcp-credentials" in out
    assert "principal://" not in out and "workloadIdentityUser" not in out


def test_overlay_adds_no_workload_identity_annotation(tmp_path):
    args = ["--kind=job", "--name=j", "--run=r", "--image=i", "--tag=t", "--bucket=b"]
    assert overlay.main([*args, f"--out={tmp_path}"]) == 0
    account = next(o for o in _kustomize(str(tmp_path / "j")) if o["kind"] == "ServiceAccount")
    assert "iam.gke.io/gcp-service-account" not in account["metadata"].get("annotations", {})


def test_region_of_a_location():
    assert gke_setup.region("us-central1-a") == "us-central1"
    assert gke_setup.region("europe-west4") == "europe-west4"
    assert gke_setup.region("northamerica-northeast1-c") == "northamerica-northeast1"


def test_overlay_is_yaml_for_kustomize(tmp_path):
    args = ["--kind=job", "--name=j", "--run=r", "--image=i", "--tag=t", "--bucket=b"]
    assert overlay.main([*args, "--auth=key-file", f"--out={tmp_path}", "--", "--seed=3"]) == 0
    data = yaml.safe_load((tmp_path / "j" / "kustomization.yaml").read_text())
    assert data["kind"] == "Kustomization" and data["namespace"] == "rl"
    assert any(c.endswith("components/key-file") for c in data["components"])
    job = next(o for o in _kustomize(str(tmp_path / "j")) if o["kind"] == "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][-1] == "--seed=3"


def test_values_give_the_makefile_run_ids_and_defaults(capsys):
    from deploy import values
    from trainer import runs
    from trainer.config import Config, SACConfig

    assert values.main(["run-id", "sac", "KukaBulletEnv-v0"]) == 0
    run_id = capsys.readouterr().out.strip()
    runs.check_run_id(run_id)
    assert run_id.startswith("sac-kukabulletenv-v0-")
    assert values.main(["default", "eval_episodes"]) == 0
    assert capsys.readouterr().out.strip() == str(Config.eval_episodes)
    assert values.main(["default", "batch_size"]) == 0  # an algorithm's own, SAC's here
    assert capsys.readouterr().out.strip() == str(SACConfig.batch_size)
    assert values.main(["default", "no_such_field"]) == 2
    # The Makefile's per-flavour facts (JOB_RESOURCE, POD_LABEL) come from deploy/kinds.py.
    assert values.main(["kind", "tfjob", "api_resource"]) == 0
    assert capsys.readouterr().out.strip() == "tfjobs.kubeflow.org"
    assert values.main(["kind", "nope", "api_resource"]) == 2
    assert "KIND 'nope' is not one of" in capsys.readouterr().err
    assert values.main(["kind", "jobset", "prefix"]) == 2
    assert "make delete-distributed" in capsys.readouterr().err


@pytest.mark.parametrize("target", ["status", "submit", "delete"])
def test_an_unknown_kind_stops_make_in_one_line(target):
    result = _make(target, "KIND=tfjobs", "RUN=r1", "BUCKET=b")
    assert result.returncode != 0 and "kubectl" not in result.stdout, result.stdout
    (line,) = result.stderr.strip().splitlines()
    assert line.endswith(
        "KIND 'tfjobs' is not one of distributed, job, jobset, render, "
        "tfjob, trainjob, tune.  Stop."
    )


@pytest.mark.parametrize("kind", ["job", "tfjob", "trainjob"])
def test_the_run_targets_name_each_kinds_object_from_the_table(kind):
    """make delete and make logs find RUN's object by deploy/kinds.py's row, not a copy."""
    from deploy import kinds

    spec = kinds.KINDS[kind]
    deleted = _make("delete", "RUN=r1", f"KIND={kind}")
    assert deleted.returncode == 0, deleted.stderr
    assert f"delete {spec.api_resource} {spec.prefix}-r1 --ignore-not-found" in deleted.stdout
    logs = _make("logs", "RUN=r1", f"KIND={kind}")
    assert f"-l {spec.pod_label}={spec.prefix}-r1" in logs.stdout


@pytest.mark.parametrize("kind", ["job", "tfjob", "trainjob", "distributed", "jobset", "tune"])
def test_an_agent_a_kind_cannot_run_is_refused_before_anything_is_written(kind, tmp_path, capsys):
    """Every kind runs SAC but tune: its search space is PPO's settings, which a SAC trial
    would refuse (trainer/commands.py) in every trial after the image is pushed."""
    common = [f"--kind={kind}", f"--name={kind}", "--run=a", "--image=i", "--tag=t", "--bucket=b"]
    for flags in (["--agent=sac"], ["--agent", "sac"]):
        code = overlay.main([*common, f"--out={tmp_path}", "--", *flags])
        err = capsys.readouterr().err.strip()
        if kind == "tune":
            assert code == 2 and err.count("\n") == 0 and "which --agent=sac refuses" in err, err
            assert not (tmp_path / kind).exists()
        else:
            assert code == 0, err
