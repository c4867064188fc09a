"""What the fake API server serves: resource types, discovery documents, selectors, tables.

Discovery as client-go v0.32.4 (kubectl 1.32) reads it, `discovery/discovery_client.go`,
`downloadLegacy`/`downloadAPIs`: kubectl asks /api and /apis with `Accept:
application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,...,application/json`
and reads the answer by its Content-Type. An aggregated APIGroupDiscoveryList carries
every group's resources at once (`aggregated_discovery.go`, `SplitGroupsAndResources`: a
resource without `responseKind` is dropped, the first version is the preferred one); the
legacy APIVersions / APIGroupList makes kubectl ask /api/v1 and each /apis/GROUP/VERSION.
"""

from __future__ import annotations

import dataclasses
import re

AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


@dataclasses.dataclass(frozen=True)
class Resource:
    """One resource type, as discovery describes it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    subresources: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The fully qualified name kubectl accepts (`jobs.batch`; core: `pods`)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
BUILTIN = (
    Resource("", "v1", "pods", "Pod", subresources=("log", "status")),
    Resource("", "v1", "services", "Service", subresources=("status",)),
    Resource("", "v1", "configmaps", "ConfigMap"),
    Resource("", "v1", "serviceaccounts", "ServiceAccount"),
    Resource("", "v1", "namespaces", "Namespace", namespaced=False, subresources=("status",)),
    Resource("apps", "v1", "deployments", "Deployment", subresources=("scale", "status")),
    Resource("batch", "v1", "jobs", "Job", subresources=("status",)),
    Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"),
)
# The optional controllers' CRDs, at the versions k8s/ renders (JobSet v0.12.0, Katib
# v1beta1, Trainer v2.3.0, training-operator v1).
OPTIONAL = (
    Resource("jobset.x-k8s.io", "v1alpha2", "jobsets", "JobSet", subresources=("status",)),
    Resource("kubeflow.org", "v1beta1", "experiments", "Experiment", subresources=("status",)),
    Resource("kubeflow.org", "v1beta1", "trials", "Trial", subresources=("status",)),
    Resource("kubeflow.org", "v1beta1", "suggestions", "Suggestion", subresources=("status",)),
    Resource("trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob", subresources=("status",)),
    Resource("trainer.kubeflow.org", "v1alpha1", "trainingruntimes", "TrainingRuntime"),
    Resource("kubeflow.org", "v1", "tfjobs", "TFJob", subresources=("status",)),
)
ALL_CRDS = frozenset(r.name for r in OPTIONAL)


def _split_requirements(selector: str) -> list[str]:
    """A label selector's requirements: commas inside `in (...)` do not split."""
    parts, depth, current = [], 0, ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    return [p for p in [*parts, current.strip()] if p]


def selects(selector: str, labels: dict[str, str]) -> bool:
    """Whether `labels` match a label selector (apimachinery's labels.Parse grammar)."""
    for requirement in _split_requirements(selector):
        match = re.fullmatch(r"(\S+)\s+(in|notin)\s+\((.*)\)", requirement)
        if match:
            key, op, values = match.groups()
            found = labels.get(key) in {v.strip() for v in values.split(",")}
            if found != (op == "in"):
                return False
        elif "!=" in requirement:
            key, value = (s.strip() for s in requirement.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in requirement:
            key, value = (s.strip() for s in requirement.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif requirement.startswith("!"):
            if requirement[1:].strip() in labels:
                return False
        elif requirement not in labels:
            return False
    return True


def status(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details or {},
        "code": code,
    }


def aggregated(resources: list[Resource], core: bool, stale: tuple[str, ...] = ()) -> dict:
    """/api (core) or /apis as an aggregated APIGroupDiscoveryList (k8s.io/api apidiscovery/v2).

    `stale` group versions are listed as an aggregated API server that does not answer
    is (metrics.k8s.io/v1beta1, say): `freshness: Stale`, no resources.
    """
    groups: dict[str, dict[str, list]] = {}
    for r in resources:
        if (r.group == "") == core:
            groups.setdefault(r.group, {}).setdefault(r.version, []).append(r)
    items = []
    for group, versions in groups.items():
        items.append(
            {
                "metadata": {"name": group, "creationTimestamp": None},
                "versions": [
                    {
                        "version": version,
                        "freshness": "Current",
                        "resources": [_resource_discovery(r) for r in resources],
                    }
                    # Newest first: the first is the group's preferred version.
                    for version, resources in sorted(versions.items(), reverse=True)
                ],
            }
        )
    for group_version in () if core else stale:
        group, version = group_version.split("/")
        versions = [{"version": version, "freshness": "Stale", "resources": []}]
        items.append({"metadata": {"name": group, "creationTimestamp": None}, "versions": versions})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {}, "items": items}  # fmt: skip


def group_list(resources: list[Resource], stale: tuple[str, ...] = ()) -> dict:
    """/apis in the legacy form: an APIGroupList; kubectl then asks each group version."""
    versions: dict[str, set[str]] = {}
    for r in resources:
        if r.group:
            versions.setdefault(r.group, set()).add(r.version)
    for group_version in stale:
        group, version = group_version.split("/")
        versions.setdefault(group, set()).add(version)
    groups = []
    for group, found in versions.items():
        listed = [
            {"groupVersion": f"{group}/{v}", "version": v} for v in sorted(found, reverse=True)
        ]
        groups.append({"name": group, "versions": listed, "preferredVersion": listed[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def resource_list(resources: list[Resource], group_version: str) -> dict | None:
    """/api/v1 or /apis/GROUP/VERSION: an APIResourceList (None: no such group version)."""
    found = [r for r in resources if r.group_version == group_version]
    if not found:
        return None
    resources = []
    for r in found:
        base = {"name": r.plural, "singularName": r.kind.lower(), "namespaced": r.namespaced,
                "kind": r.kind, "verbs": VERBS}  # fmt: skip
        resources.append(base)
        resources += [{**base, "name": f"{r.plural}/{s}", "singularName": "",
                       "verbs": ["get"]} for s in r.subresources]  # fmt: skip
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
            "resources": resources}  # fmt: skip


def _resource_discovery(r: Resource) -> dict:
    """One resource of an aggregated discovery document (k8s.io/api apidiscovery/v2)."""
    kind = {"group": r.group, "version": r.version, "kind": r.kind}
    return {
        "resource": r.plural,
        "responseKind": kind,
        "scope": "Namespaced" if r.namespaced else "Cluster",
        "singularResource": r.kind.lower(),
        "verbs": VERBS,
        "subresources": [
            {"subresource": s, "responseKind": kind, "verbs": ["get"]} for s in r.subresources
        ],
    }


def table(items: list[dict]) -> dict:
    """The server-side Table kubectl asks for (apiserver's default columns for a resource)."""
    columns = [("Name", "string", "name"), ("Created At", "date", "")]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": "1"},
        "columnDefinitions": [
            {"name": n, "type": t, "format": f, "description": n, "priority": 0}
            for n, t, f in columns
        ],
        "rows": [
            {
                "cells": [o["metadata"]["name"], o["metadata"]["creationTimestamp"]],
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o["metadata"],
                },  # fmt: skip
            }
            for o in items
        ],
    }
