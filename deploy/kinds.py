"""The run flavours and where each keeps what an overlay sets: names, paths, limits.

Standard library only, as deploy/overlay.py, which writes the overlays from these.
"""

from __future__ import annotations

import dataclasses
import re

NAME_LIMIT = 63  # a DNS label, and a label value such as batch.kubernetes.io/job-name
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclasses.dataclass(frozen=True)
class Kind:
    """What one flavour renders from and which object carries the run."""

    base: str  # under k8s/
    resource: str  # the object kind the run's name goes on
    prefix: str  # that object's name is PREFIX-RUN
    args_path: str  # JSON pointer to its container arguments
    command: str  # the trainer command it runs
    # Names Kubernetes derives from the object's name: the longest one must fit
    # NAME_LIMIT (the TFJob's pod and Service NAME-worker-0, the TrainJob's child
    # Job NAME-node-0).
    derived_suffix: str = ""


KINDS = {
    "job": Kind("base", "Job", "kuka-train", "/spec/template/spec/containers/0/args", "train"),
    "tfjob": Kind(
        "overlays/tfjob",
        "TFJob",
        "kuka-train",
        "/spec/tfReplicaSpecs/Worker/template/spec/containers/0/args",
        "train",
        "-worker-0",
    ),
    "trainjob": Kind(
        "overlays/trainjob", "TrainJob", "kuka-train", "/spec/trainer/args", "train", "-node-0"
    ),
    "render": Kind(
        "render", "Job", "kuka-render", "/spec/template/spec/containers/0/args", "render"
    ),
    # Katib names each trial EXPERIMENT-xxxxxxxx, and the trial is its run.
    "tune": Kind(
        "tune",
        "Experiment",
        "kuka-tune",
        "/spec/trialTemplate/trialSpec/spec/template/spec/containers/0/args",
        "train",
        "-xxxxxxxx",
    ),
    # The roles' names are fixed (one distributed run per namespace); the run id
    # reaches them through the flags ConfigMap. jobset: the roles as one JobSet.
    "distributed": Kind("distributed", "Job", "", "", ""),
    "jobset": Kind("jobset", "JobSet", "", "", ""),
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
    "TrainingRuntime": ["/spec/template/spec/replicatedJobs/0/template/spec/template/spec"],
    "Experiment": ["/spec/trialTemplate/trialSpec/spec/template/spec"],
    "JobSet": [_JOBSET_POD.format(i) for i in range(3)],
}
# The pods the gpu component gives a GPU (Jobs: those GPU_JOBS selects).
GPU_PODS = {**POD_SPECS, "JobSet": [_JOBSET_POD.format(1)]}
RUN_JOBS = "app.kubernetes.io/name in (kuka-train,kuka-learn,kuka-collect,kuka-render)"
GPU_JOBS = "app.kubernetes.io/name in (kuka-train,kuka-learn)"
DEADLINES = {
    "Job": ["/spec/activeDeadlineSeconds"],
    "TFJob": ["/spec/runPolicy/activeDeadlineSeconds"],
    "TrainingRuntime": ["/spec/template/spec/replicatedJobs/0/template/spec/activeDeadlineSeconds"],
    "Experiment": ["/spec/trialTemplate/trialSpec/spec/activeDeadlineSeconds"],
    "JobSet": [f"/spec/replicatedJobs/{i}/template/spec/activeDeadlineSeconds" for i in range(3)],
}


def max_run_length(kind: str) -> int:
    """The longest run id whose derived object names fit Kubernetes' limits."""
    spec = KINDS[kind]
    if not spec.prefix:
        return NAME_LIMIT
    return NAME_LIMIT - len(spec.prefix) - 1 - len(spec.derived_suffix)


def check_run(run: str, kind: str) -> None:
    """ValueError, in one line, if `run` cannot name `kind`'s objects."""
    limit = max_run_length(kind)
    if not _DNS_LABEL.match(run):
        raise ValueError(
            f"run id {run!r} is not a valid Kubernetes name: lowercase letters, digits and "
            "dashes, starting and ending with a letter or digit"
        )
    if len(run) > limit:
        raise ValueError(
            f"run id {run!r} has {len(run)} characters; a {kind} run allows at most {limit}, "
            f"since Kubernetes names {KINDS[kind].prefix}-RUN{KINDS[kind].derived_suffix} "
            f"from it and names have at most {NAME_LIMIT}"
        )


def gsa_email(project: str) -> str:
    """The Google service account the pods act as (deploy.gke_setup creates it)."""
    return f"kuka-trainer@{project}.iam.gserviceaccount.com"
