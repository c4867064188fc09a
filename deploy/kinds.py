"""The run flavours and where each keeps what an overlay sets: names, paths, limits.

One table for deploy/, the Makefile (through deploy.values) and the tests. A new
flavour is a folder k8s/overlays/NAME and an entry here (docs/architecture.md).

Standard library only, as deploy/overlay.py, which writes the overlays from these.
"""

from __future__ import annotations

import dataclasses
import re

from trainer.config import CAMERA_ENV_ID, Config

NAME_LIMIT = 63  # a DNS label, and a label value such as batch.kubernetes.io/job-name
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# A LocalQueue name, as Kueue's webhooks check the queue-name label (kubernetes-sigs/kueue
# v0.19.2, pkg/controller/jobframework/validation.go, ValidateQueueName); 63 as a label value.
_QUEUE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclasses.dataclass(frozen=True)
class Kind:
    """One flavour: k8s/overlays/NAME renders it (NAME is its key in KINDS), and which
    object carries the run."""

    resource: str  # the object kind the run's name goes on
    prefix: str  # that object's name is PREFIX-RUN
    args_path: str  # JSON pointer to its container arguments
    command: str  # the trainer command it runs
    # kubectl's name for that object (`make status`, `make delete`) and the label its
    # controller puts on the run's pods with the object's name (`make logs`).
    api_resource: str = ""
    pod_label: str = ""
    # Names the controllers derive from the object's name: the longest one must fit
    # name_limit (training-operator's pod and Service NAME-worker-0; the TrainJob's
    # JobSet, whose webhook checks its pod name NAME-node-0-0 plus a 5-character
    # suffix, kubernetes-sigs/jobset v0.12.0 pkg/webhooks/jobset_webhook.go).
    derived_suffix: str = ""
    # Katib's Experiment validator allows 40 characters (kubeflow/katib v0.19.0,
    # pkg/webhook/v1beta1/experiment/validator/validator.go), so that its trials
    # (EXPERIMENT-xxxxxxxx), their Jobs and their pods fit Kubernetes' 63.
    name_limit: int = NAME_LIMIT


_JOB_ARGS = "/spec/template/spec/containers/0/args"
_JOB_PODS = ("jobs.batch", "batch.kubernetes.io/job-name")
KINDS = {
    "job": Kind("Job", "kuka-train", _JOB_ARGS, "train", *_JOB_PODS),
    "tfjob": Kind(
        "TFJob",
        "kuka-train",
        "/spec/tfReplicaSpecs/Worker/template/spec/containers/0/args",
        "train",
        "tfjobs.kubeflow.org",
        "training.kubeflow.org/job-name",
        "-worker-0",
    ),
    "trainjob": Kind(
        "TrainJob",
        "kuka-train",
        "/spec/trainer/args",
        "train",
        "trainjobs.trainer.kubeflow.org",
        "jobset.sigs.k8s.io/jobset-name",
        "-node-0-0-xxxxx",
    ),
    "render": Kind("Job", "kuka-render", _JOB_ARGS, "render", *_JOB_PODS),
    # Katib names each trial EXPERIMENT-xxxxxxxx, and the trial is its run.
    "tune": Kind(
        "Experiment",
        "kuka-tune",
        "/spec/trialTemplate/trialSpec/spec/template/spec/containers/0/args",
        "train",
        "experiments.kubeflow.org",
        "katib.kubeflow.org/experiment",
        name_limit=40,
    ),
    # The roles' names are fixed (one distributed run per namespace); the run id
    # reaches them through the flags ConfigMap. jobset: the roles as one JobSet.
    "distributed": Kind("Job", "", "", "", "jobs.batch"),
    "jobset": Kind("JobSet", "", "", "", "jobsets.jobset.x-k8s.io"),
}
# The distributed kinds, and where each keeps its collectors' parallelism.
ROLES = {
    "distributed": ("Job", "kuka-collect", "/spec"),
    "jobset": ("JobSet", "kuka-distributed", "/spec/replicatedJobs/2/template/spec"),
}
AUTHS = ("workload-identity", "key-file")
# Where each run kind keeps its pod template, and the selector of the run's objects
# (the Jobs' name labels survive the rename; an overlay holds one run).
_JOBSET_POD = "/spec/replicatedJobs/{}/template/spec/template/spec"  # reverb, learner, collectors
POD_SPECS = {
    "Job": ["/spec/template/spec"],
    "TFJob": ["/spec/tfReplicaSpecs/Worker/template/spec"],
    # Only a PriorityClass's own runtime (runtime_name) is patched: kuka-tf-agents is shared.
    "TrainingRuntime": ["/spec/template/spec/replicatedJobs/0/template/spec/template/spec"],
    "Experiment": ["/spec/trialTemplate/trialSpec/spec/template/spec"],
    "JobSet": [_JOBSET_POD.format(i) for i in range(3)],
}
# A TrainJob's own pod settings: its runtime patch of the `node` pods (k8s/overlays/trainjob).
TRAINJOB_POD = (
    "/spec/runtimePatches/0/trainingRuntimeSpec/template/spec/replicatedJobs/0/template/spec"
    "/template/spec"
)
# The pods the gpu component gives a GPU (Jobs: those GPU_JOBS selects).
GPU_PODS = {
    **{kind: pods for kind, pods in POD_SPECS.items() if kind != "TrainingRuntime"},
    "TrainJob": [TRAINJOB_POD],
    "JobSet": [_JOBSET_POD.format(1)],
}
RUN_JOBS = "app.kubernetes.io/name in (kuka-train,kuka-learn,kuka-collect,kuka-render)"
GPU_JOBS = "app.kubernetes.io/name in (kuka-train,kuka-learn)"
# Where each kind carries Kueue's queue-name label (the kueue component adds it): the run's
# top object, but a Katib trial's Job, which the Experiment's trial template labels.
_QUEUE_KEY = "metadata/labels/kueue.x-k8s.io~1queue-name"
QUEUE_LABELS = {
    "(Job|TFJob|TrainJob|JobSet)": f"/{_QUEUE_KEY}",
    "Experiment": f"/spec/trialTemplate/trialSpec/{_QUEUE_KEY}",
}
DEADLINES = {
    "Job": ["/spec/activeDeadlineSeconds"],
    "TFJob": ["/spec/runPolicy/activeDeadlineSeconds"],
    "TrainJob": ["/spec/activeDeadlineSeconds"],
    "Experiment": ["/spec/trialTemplate/trialSpec/spec/activeDeadlineSeconds"],
    "JobSet": [f"/spec/replicatedJobs/{i}/template/spec/activeDeadlineSeconds" for i in range(3)],
}


def max_run_length(kind: str) -> int:
    """The longest run id whose derived object names fit the controllers' limits."""
    spec = KINDS[kind]
    if not spec.prefix:
        return NAME_LIMIT
    return spec.name_limit - len(spec.prefix) - 1 - len(spec.derived_suffix)


def check_run(run: str, kind: str) -> None:
    """ValueError, in one line, if `run` cannot name `kind`'s objects."""
    limit = max_run_length(kind)
    if not _DNS_LABEL.match(run):
        raise ValueError(
            f"run id {run!r} is not a valid Kubernetes name: lowercase letters, digits and "
            "dashes, starting and ending with a letter or digit"
        )
    if len(run) > limit:
        spec = KINDS[kind]
        why = (
            f"{spec.prefix}-RUN{spec.derived_suffix} is named from it and may have"
            if spec.prefix
            else "it is a label value, which may have"
        )
        raise ValueError(
            f"run id {run!r} has {len(run)} characters; a {kind} run allows at most {limit}, "
            f"since {why} at most {spec.name_limit}"
        )


def _flag(flags: list[str], name: str) -> str | None:
    """The value of --NAME in trainer flags (--NAME=VALUE or --NAME VALUE), if given."""
    value = None
    for i, flag in enumerate(flags):
        if flag.startswith(f"--{name}="):
            value = flag.partition("=")[2]
        elif flag == f"--{name}" and i + 1 < len(flags):
            value = flags[i + 1]
    return value


def check_env(kind: str, flags: list[str]) -> None:
    """ValueError, in one line, if the trainer flags ask `kind` for an env or agent it
    cannot run: the camera env trains in one process (trainer/dagger.py), not as
    distributed roles; and `make tune`'s search
    is over PPO's settings, which another agent would refuse in every trial. A tune
    trial may run the camera env: the searched settings train its teacher, and its
    evaluation writes the eval/SuccessRate that Katib reads."""
    if _flag(flags, "env_id") == CAMERA_ENV_ID and kind in ROLES:
        raise ValueError(
            f"{CAMERA_ENV_ID} trains in one pod (make submit, KIND=job, tfjob or "
            "trainjob); the distributed roles move state observations only"
        )
    agent = _flag(flags, "agent") or Config.agent
    if kind == "tune" and agent != "ppo":
        raise ValueError(
            f"make tune searches PPO's settings, which --agent={agent} refuses in every trial"
        )


def check_queue(queue: str) -> None:
    """ValueError, in one line, if Kueue would refuse `queue` as a LocalQueue name."""
    if len(queue) > NAME_LIMIT or not _QUEUE.match(queue):
        raise ValueError(
            f"QUEUE {queue!r} is not a LocalQueue name: lowercase letters, digits, dashes and "
            f"dots, at most {NAME_LIMIT} characters"
        )


def folder(kind: str) -> str:
    """The kustomization that renders `kind`, under k8s/."""
    return f"overlays/{kind}"


def runtime_name(priority_class: str = "") -> str:
    """The TrainingRuntime a TrainJob runs: one per PriorityClass, whose content its name fixes."""
    return f"kuka-tf-agents-{priority_class}" if priority_class else "kuka-tf-agents"
