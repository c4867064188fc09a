"""Kueue v0.19.2 (the newest release): which of a run's objects become Kueue workloads.

Written from kubernetes-sigs/kueue at tag v0.19.2 (624849c9e, 2026-07-22):

- pkg/controller/constants/constants.go: `QueueLabel`, kueue.x-k8s.io/queue-name;
- pkg/controller/jobframework/utils.go: `QueueNameForObject` (the object's own labels, no
  other place) and `WorkloadShouldBeSuspended` (a job whose ancestor Kueue manages is not a
  workload of its own; else the label makes it one; else only manageJobsWithoutQueueName);
- pkg/controller/jobframework/reconciler.go: `FindAncestorJobManagedByKueue` (walks the
  controller owners while they are kinds of an integration; an owner counts when its
  integration is enabled and it has the label, or manageJobsWithoutQueueName is on);
- pkg/controller/jobframework/integrationmanager.go: `getJobTypeForOwner` (enabled
  integrations only), `isKnownOwner`;
- pkg/controller/jobframework/validation.go: `ValidateQueueName` (a DNS-1123 subdomain),
  which the Job, JobSet and TrainJob webhooks run on create (`ValidateJobOnCreate`);
- apis/config/v1beta2/configuration_types.go: manageJobsWithoutQueueName defaults to false;
- config/components/manager/controller_manager_config.yaml: the integrations the release's
  manifests enable (`kubeflow.org/tfjob` is commented out); apis/config/v1beta2/defaults.go
  enables batch/job alone when a configuration names none;
- pkg/controller/jobs/*/*_controller.go: each integration's `FrameworkName`;
- pkg/controller/jobs/trainjob/trainjob_webhook.go: `Default` appends a runtime patch of its
  own (manager kueue.x-k8s.io/manager) to every TrainJob.

The children the other controllers create are built from their rules: a TrainJob's JobSet
(tests/upstream/trainer.py), a JobSet's Jobs (kubernetes-sigs/jobset v0.12.0
pkg/controllers/jobset_controller.go `constructJob`: the replicated job template's labels),
and a Katib trial's Job (labels from trialTemplate.trialSpec, owned by a Trial, which no
Kueue integration knows).
"""

from __future__ import annotations

import dataclasses
import re

from tests.upstream import trainer

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
TRAINJOB_PATCH_MANAGER = "kueue.x-k8s.io/manager"
# (API group, kind) -> the integration's FrameworkName.
FRAMEWORKS = {
    ("batch", "Job"): "batch/job",
    ("jobset.x-k8s.io", "JobSet"): "jobset.x-k8s.io/jobset",
    ("trainer.kubeflow.org", "TrainJob"): "trainer.kubeflow.org/trainjob",
    ("kubeflow.org", "TFJob"): "kubeflow.org/tfjob",
    ("apps", "Deployment"): "deployment",
    ("apps", "StatefulSet"): "statefulset",
}
# What the release's own manifests enable (its controller_manager_config.yaml).
RELEASE_FRAMEWORKS = frozenset(
    {
        "batch/job",
        "kubeflow.org/mpijob",
        "ray.io/rayjob",
        "ray.io/raycluster",
        "ray.io/rayservice",
        "jobset.x-k8s.io/jobset",
        "workload.codeflare.dev/appwrapper",
        "trainer.kubeflow.org/trainjob",
        "pod",
        "deployment",
        "statefulset",
        "leaderworkerset.x-k8s.io/leaderworkerset",
    }
)
_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(rf"^{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*$")


@dataclasses.dataclass
class Node:
    """One object a cluster would hold for the run, and its controller owner."""

    group: str
    kind: str
    name: str
    labels: dict
    owner: Node | None = None

    @property
    def framework(self) -> str | None:
        return FRAMEWORKS.get((self.group, self.kind))


def queue_name_errors(labels: dict) -> list[str]:
    """ValidateQueueName: the label's value must be a DNS-1123 subdomain."""
    value = labels.get(QUEUE_LABEL)
    if value is None or (len(value) <= 253 and _DNS1123_SUBDOMAIN.match(value)):
        return []
    return [f"{QUEUE_LABEL}={value!r} is not a DNS-1123 subdomain"]


def _node(obj: dict, owner: Node | None = None) -> Node:
    group = obj["apiVersion"].rpartition("/")[0]
    labels = obj["metadata"].get("labels", {})
    return Node(group, obj["kind"], obj["metadata"]["name"], labels, owner)


def _jobset_children(jobset: dict, owner: Node) -> list[Node]:
    """constructJob: each replicated job's Jobs, labelled from its template alone."""
    return [
        Node(
            "batch",
            "Job",
            f"{owner.name}-{r['name']}-{i}",
            r["template"].get("metadata", {}).get("labels", {}),
            owner,
        )
        for r in jobset["spec"]["replicatedJobs"]
        for i in range(r.get("replicas", 1))
    ]


def cluster_objects(objects: list[dict]) -> list[Node]:
    """The rendered objects and the children their controllers create from them."""
    runtimes = [o for o in objects if o["kind"] in ("TrainingRuntime", "ClusterTrainingRuntime")]
    nodes = []
    for obj in objects:
        node = _node(obj)
        nodes.append(node)
        if obj["kind"] == "JobSet":
            nodes += _jobset_children(obj, node)
        elif obj["kind"] == "TrainJob":
            runtime = trainer.referenced_runtime(obj, runtimes)
            jobset = trainer.build_jobset(obj, runtime)
            child = _node(jobset, node)
            nodes += [child, *_jobset_children(jobset, child)]
        elif obj["kind"] == "Experiment":
            trial = Node("kubeflow.org", "Trial", f"{node.name}-xxxxxxxx", {}, node)
            labels = obj["spec"]["trialTemplate"]["trialSpec"].get("metadata", {}).get("labels", {})
            nodes.append(Node("batch", "Job", trial.name, labels, trial))
    return nodes


def _managing_ancestor(node: Node, frameworks, manage_without_queue: bool) -> Node | None:
    """FindAncestorJobManagedByKueue: the top-most owner that Kueue manages, or None."""
    top, owner = None, node.owner
    while owner is not None and owner.framework is not None:  # isKnownOwner
        if owner.framework in frameworks and (manage_without_queue or QUEUE_LABEL in owner.labels):
            top = owner
        owner = owner.owner
    return top


def workloads(
    nodes: list[Node], frameworks=RELEASE_FRAMEWORKS, manage_without_queue: bool = False
) -> list[Node]:
    """The objects Kueue suspends and admits as workloads of their own."""
    out = []
    for node in nodes:
        if node.framework not in frameworks:
            continue
        if _managing_ancestor(node, frameworks, manage_without_queue) is not None:
            continue
        if QUEUE_LABEL in node.labels or manage_without_queue:
            out.append(node)
    return out


def ignored_labels(nodes: list[Node], frameworks=RELEASE_FRAMEWORKS) -> list[Node]:
    """Objects that carry the queue label and yet are no workload: Kueue ignores it there."""
    admitted = {id(n) for n in workloads(nodes, frameworks)}
    return [n for n in nodes if QUEUE_LABEL in n.labels and id(n) not in admitted]


def with_kueue_runtime_patch(trainjob: dict) -> dict:
    """The TrainJob after Kueue's mutating webhook, which appends its own runtime patch."""
    out = {**trainjob, "spec": dict(trainjob["spec"])}
    patch = {
        "manager": TRAINJOB_PATCH_MANAGER,
        "trainingRuntimeSpec": {"template": {"spec": {}}},
    }
    out["spec"]["runtimePatches"] = [*trainjob["spec"].get("runtimePatches", []), patch]
    return out
