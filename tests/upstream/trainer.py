"""Kubeflow Trainer v2.3.0: its admission rules, and the JobSet its controller builds.

Written from kubeflow/trainer at tag v2.3.0 (658725bda):

- pkg/apis/trainer/v1alpha1/trainjob_types.go: the CRD's CEL rules on TrainJob (the name),
  RuntimeRef's defaults, RuntimePatch and the pod fields it may set (PodSpecPatch);
- pkg/webhooks/trainingruntime_webhook.go: `validateReplicatedJobs`;
- pkg/webhooks/trainjob_webhook.go: `TrainJobValidator.ValidateCreate` (the runtime registry);
- pkg/runtime/runtime.go: `RuntimeRefToRuntimeRegistryKey`;
- pkg/runtime/core/trainingruntime.go: `ValidateObjects` (the runtime must exist in the
  TrainJob's namespace), `newRuntimeInfo` and `mergeRuntimePatches` (how runtimePatches and
  resourcesPerNode reach the runtime's pods);
- pkg/runtime/framework/plugins/jobset/jobset.go: `Validate` (runtimePatches), `Build` and
  `SyncParallelCount`; builder.go: `Builder.Trainer`;
- pkg/runtime/framework/plugins/plainml/plainml.go: `EnforceMLPolicy` (numNodes);
- pkg/util/trainingruntime/trainingruntime.go: `MergeResourceRequirements`;
- pkg/runtime/core/snapshot.go: the runtime snapshot ConfigMap NAME-runtime-snapshot;
- pkg/controller/trainjob_controller.go: `reconcileDeadline` (activeDeadlineSeconds).

Strategic merge patch follows k8s.io/apimachinery v0.36.2 `strategicpatch` with the patch
merge keys of the types Trainer v2.3.0's go.mod pins: sigs.k8s.io/jobset v0.12.0
(JobSetSpec.ReplicatedJobs) and k8s.io/api v0.36.2 (core/v1 PodSpec, Container).
"""

from __future__ import annotations

import copy
import re

GROUP = "trainer.kubeflow.org"
ANCESTOR = f"{GROUP}/trainjob-ancestor-step"  # constants.LabelTrainJobAncestor
# trainingruntime_webhook.go: expectedContainerNames, the container each ancestor needs.
ANCESTOR_CONTAINERS = {
    "trainer": "node",
    "model-initializer": "model-initializer",
    "dataset-initializer": "dataset-initializer",
}
# core/registry.go: the runtimes a TrainJob may reference, as GroupKind.String() keys them.
RUNTIME_REGISTRY = {f"TrainingRuntime.{GROUP}", f"ClusterTrainingRuntime.{GROUP}"}
SNAPSHOT_SUFFIX = "-runtime-snapshot"  # snapshot.go: runtimeSnapshotSuffix
# The lists strategic merge patch merges by a key (struct tags patchMergeKey); any other
# list, tolerations and args among them, is replaced whole.
MERGE_KEYS = {
    "replicatedJobs": "name",
    "containers": "name",
    "initContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
}
_RFC1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # the TrainJob CRD's CEL rule
_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(rf"^{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*$")
_HTTP_PATH = re.compile(r"^[A-Za-z0-9/\-._~%!$&'()*+,;=:]+$")  # validation.httpPathFmt


def domain_prefixed_path_errors(value: str) -> list[str]:
    """k8s.io/apimachinery v0.36.2 validation.IsDomainPrefixedPath (such as acme.io/foo)."""
    host, _, path = value.partition("/")
    if not host or not path:
        return [f'{value!r} must be a domain-prefixed path (such as "acme.io/foo")']
    errors = []
    if len(host) > 253 or not _DNS1123_SUBDOMAIN.match(host):
        errors.append(f"{host!r} is not a DNS-1123 subdomain")
    if not _HTTP_PATH.match(path):
        errors.append(f"{path!r} is not a valid path")
    return errors


def _pod_containers(rjob: dict, init: bool = False) -> list[dict]:
    pod = rjob["template"]["spec"]["template"]["spec"]
    return pod.get("containers", []) + (pod.get("initContainers", []) if init else [])


def validate_runtime(runtime: dict) -> list[str]:
    """The TrainingRuntime webhook's errors on create (validateReplicatedJobs)."""
    errors = []
    for i, rjob in enumerate(runtime["spec"]["template"]["spec"]["replicatedJobs"]):
        ancestor = rjob["template"].get("metadata", {}).get("labels", {}).get(ANCESTOR)
        if ancestor not in ANCESTOR_CONTAINERS:
            continue
        if rjob.get("replicas", 1) != 1:  # the CRD defaults replicas to 1
            errors.append(f"replicatedJobs[{i}].replicas: always must be 1")
        names = {c["name"] for c in _pod_containers(rjob)}
        if ANCESTOR_CONTAINERS[ancestor] not in names:
            errors.append(
                f"replicatedJobs[{i}]: must contain the required container for the ancestor: "
                f"{ancestor}"
            )
    return errors


def runtime_ref(trainjob: dict) -> dict:
    """spec.runtimeRef with the CRD's defaults (apiGroup trainer.kubeflow.org, and kind
    ClusterTrainingRuntime, not TrainingRuntime)."""
    return {"apiGroup": GROUP, "kind": "ClusterTrainingRuntime", **trainjob["spec"]["runtimeRef"]}


def referenced_runtime(trainjob: dict, runtimes: list[dict]) -> dict | None:
    """The runtime the controller reads (ValidateObjects, NewObjects), or None."""
    ref = runtime_ref(trainjob)
    namespace = trainjob["metadata"].get("namespace")
    for runtime in runtimes:
        if (runtime["kind"], runtime["metadata"]["name"]) != (ref["kind"], ref["name"]):
            continue
        if (
            ref["kind"] == "ClusterTrainingRuntime"
            or runtime["metadata"].get("namespace") == namespace
        ):
            return runtime
    return None


def validate_trainjob(trainjob: dict, runtimes: list[dict]) -> list[str]:
    """The errors the TrainJob CRD and webhook give on create, with `runtimes` in the cluster."""
    name = trainjob["metadata"]["name"]
    errors = []
    if not _RFC1035.match(name):
        errors.append(f"metadata.name {name!r} must match RFC 1035 DNS label format")
    if len(name) > 63:
        errors.append(f"metadata.name {name!r} must be no more than 63 characters")
    ref = runtime_ref(trainjob)
    if f"{ref['kind']}.{ref['apiGroup']}" not in RUNTIME_REGISTRY:
        return [*errors, f"unsupported runtime: {ref['kind']}.{ref['apiGroup']}"]
    runtime = referenced_runtime(trainjob, runtimes)
    if runtime is None:
        return [*errors, f"spec.runtimeRef: {ref['kind']} {ref['name']!r} must be created first"]
    rjobs = {
        r["name"]: {c["name"] for c in _pod_containers(r, init=True)}
        for r in runtime["spec"]["template"]["spec"]["replicatedJobs"]
    }
    patches = trainjob["spec"].get("runtimePatches", [])
    managers = [p["manager"] for p in patches]
    if len(managers) != len(set(managers)) or len(patches) > 16:
        errors.append("spec.runtimePatches: one entry per manager, at most 16")
    for patch in patches:  # jobset.go, JobSet.Validate
        errors += [
            f"spec.runtimePatches.manager: {e}"
            for e in domain_prefixed_path_errors(patch["manager"])
        ]
        spec = patch.get("trainingRuntimeSpec", {}).get("template", {}).get("spec", {})
        for rjob in spec.get("replicatedJobs", []):
            if rjob["name"] not in rjobs:
                errors.append(f"spec.runtimePatches: no replicated job {rjob['name']!r}")
                continue
            pod = rjob.get("template", {}).get("spec", {}).get("template", {}).get("spec", {})
            for container in pod.get("containers", []) + pod.get("initContainers", []):
                if container["name"] not in rjobs[rjob["name"]]:
                    errors.append(f"spec.runtimePatches: no container {container['name']!r}")
                elif container.get("env") and container["name"] in ANCESTOR_CONTAINERS.values():
                    errors.append(f"spec.runtimePatches: no env for {container['name']!r}")
    if trainjob["spec"].get("activeDeadlineSeconds", 1) < 1:
        errors.append("spec.activeDeadlineSeconds: must be at least 1")
    return errors


def strategic_merge(source: dict, patch: dict) -> dict:
    """`patch` merged into a copy of `source` as strategicpatch.StrategicMergePatch does:
    maps merge, null deletes, MERGE_KEYS lists merge by key, other values are replaced."""
    out = copy.deepcopy(source)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = strategic_merge(out[key], value)
        elif key in MERGE_KEYS and isinstance(value, list) and isinstance(out.get(key), list):
            merge_key = MERGE_KEYS[key]
            for item in value:
                match = [i for i, old in enumerate(out[key]) if old[merge_key] == item[merge_key]]
                if match:
                    out[key][match[0]] = strategic_merge(out[key][match[0]], item)
                else:
                    out[key].append(copy.deepcopy(item))
        else:
            out[key] = copy.deepcopy(value)
    return out


def _merge_resources(base: dict, override: dict) -> dict:
    """MergeResourceRequirements: limits and requests merge per resource name."""
    out = copy.deepcopy(base)
    for field in ("limits", "requests"):
        if field in override:
            out[field] = {**out.get(field, {}), **override[field]}
    return out


def build_jobset(trainjob: dict, runtime: dict) -> dict:
    """The JobSet the Trainer controller applies for `trainjob` run on `runtime`.

    NewObjects -> newRuntimeInfo (runtimePatches, then resourcesPerNode) -> PlainML's
    EnforceMLPolicy (numNodes) -> SyncParallelCount -> Build with Builder.Trainer.
    """
    template = runtime["spec"]["template"]
    labels = dict(template.get("metadata", {}).get("labels", {}))
    annotations = dict(template.get("metadata", {}).get("annotations", {}))
    spec = copy.deepcopy(template["spec"])
    order = [r["name"] for r in spec["replicatedJobs"]]
    for patch in trainjob["spec"].get("runtimePatches", []):
        jobset_patch = patch.get("trainingRuntimeSpec", {}).get("template", {})
        labels.update(jobset_patch.get("metadata", {}).get("labels", {}))
        annotations.update(jobset_patch.get("metadata", {}).get("annotations", {}))
        if "spec" in jobset_patch:
            spec = strategic_merge(spec, jobset_patch["spec"])
    spec["replicatedJobs"].sort(key=lambda r: order.index(r["name"]))
    trainer = trainjob["spec"].get("trainer", {})
    num_nodes = runtime["spec"].get("mlPolicy", {}).get("numNodes", 1)
    for rjob in spec["replicatedJobs"]:
        job = rjob["template"]["spec"]
        count = job.get("parallelism", 1)
        if rjob["template"].get("metadata", {}).get("labels", {}).get(ANCESTOR) == "trainer":
            count = trainer.get("numNodes", num_nodes)
            rjob["replicas"] = 1
            for container in job["template"]["spec"]["containers"]:
                if container["name"] != "node":
                    continue
                if "resourcesPerNode" in trainer:
                    container["resources"] = _merge_resources(
                        container.get("resources", {}), trainer["resourcesPerNode"]
                    )
                for field in ("image", "command", "args"):
                    if field in trainer:
                        container[field] = copy.deepcopy(trainer[field])
                if trainer.get("env"):
                    container["env"] = strategic_merge(
                        {"env": container.get("env", [])}, {"env": trainer["env"]}
                    )["env"]
        job["parallelism"] = job["completions"] = count
    if "suspend" in trainjob["spec"]:
        spec["suspend"] = trainjob["spec"]["suspend"]
    metadata = trainjob["metadata"]
    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {
            "name": metadata["name"],
            "namespace": metadata.get("namespace"),
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [
                {"apiVersion": f"{GROUP}/v1alpha1", "kind": "TrainJob", "controller": True}
            ],
        },
        "spec": spec,
    }


def unknown_fields(obj, schema: dict, path: str = "") -> list[str]:
    """Fields of `obj` that the CRD's structural schema does not declare: the API server
    prunes them, and `kubectl apply`'s default --validate=strict refuses them."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    if isinstance(obj, dict):
        properties = schema.get("properties")
        if properties is None:
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict):
                return [e for k, v in obj.items() for e in unknown_fields(v, extra, f"{path}.{k}")]
            return []
        found = []
        for key, value in obj.items():
            if key in properties:
                found += unknown_fields(value, properties[key], f"{path}.{key}")
            else:
                found.append(f"{path}.{key}")
        return found
    if isinstance(obj, list) and "items" in schema:
        return [e for i, v in enumerate(obj) for e in unknown_fields(v, schema["items"], path)]
    return []
