"""JobSet's admission and failure-policy rules, as JobSet v0.12.0 applies them.

Written from kubernetes-sigs/jobset at tag v0.12.0 (f22e565a), the JobSet that Kubeflow
Trainer v2.3.0 bundles:

- pkg/webhooks/jobset_webhook.go: `Default` (the mutating webhook, run before validation),
  `ValidateCreate` and `validateFailurePolicy` (the validating webhook);
- pkg/features/features.go: `defaultFeatureGates`;
- pkg/util/placement/placement.go: `GenJobName`, `GenPodName`;
- api/jobset/v1alpha2/jobset_types.go: the CRD's CEL rule on JobSetSpec and its defaults;
- pkg/controllers/failure_policy.go: `executeFailurePolicy`, `findFirstFailedPolicyRuleAndJob`,
  `ruleIsApplicable` (which rule acts on a failed child Job).
"""

from __future__ import annotations

import copy
import re

# pkg/features/features.go, defaultFeatureGates: what a default install runs with.
DEFAULT_GATES = {"InPlaceRestart": False, "TLSOptions": True, "RestartJob": False}
# jobset_webhook.go: validOnJobFailureReasons (batch/v1's Job failure reasons).
JOB_FAILURE_REASONS = (
    "BackoffLimitExceeded",
    "DeadlineExceeded",
    "FailedIndexes",
    "MaxFailedIndexesExceeded",
    "PodFailurePolicy",
)
RESTART_JOB_ACTIONS = ("RestartJob", "RestartJobAndIgnoreMaxRestarts")
RULE_NAME = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")  # ruleNameFmt
# k8s.io/apimachinery validation.IsDNS1035Label, which the webhook applies to child names.
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# failure_policy.go: defaultFailurePolicyRuleAction, when no rule matches a failed Job.
DEFAULT_ACTION = "RestartJobSet"


def dns1035_errors(value: str) -> list[str]:
    """validation.IsDNS1035Label: at most 63 characters, [a-z]([-a-z0-9]*[a-z0-9])?."""
    errors = []
    if len(value) > 63:
        errors.append(f"{value!r} must be no more than 63 characters")
    if not _DNS1035.match(value):
        errors.append(f"{value!r} is not a DNS-1035 label")
    return errors


def default(jobset: dict) -> dict:
    """The object after JobSet's mutating webhook (`Default`) and the CRD's defaults."""
    js = copy.deepcopy(jobset)
    spec = js["spec"]
    spec.setdefault("successPolicy", {"operator": "All"})
    spec.setdefault("startupPolicy", {"startupPolicyOrder": "AnyOrder"})
    for rjob in spec["replicatedJobs"]:
        rjob.setdefault("groupName", "default")  # CRD default
        rjob.setdefault("replicas", 1)  # CRD default
        job = rjob["template"]["spec"]
        job.setdefault("completionMode", "Indexed")
        job["template"].setdefault("spec", {}).setdefault("restartPolicy", "OnFailure")
    for i, rule in enumerate(spec.get("failurePolicy", {}).get("rules", [])):
        rule.setdefault("name", f"failurePolicyRule{i}")  # defaultRuleNameFmt
    return js


def longest_job_name(jobset_name: str, rjob: dict) -> str:
    """placement.GenJobName with the largest job index, as ValidateCreate checks it."""
    return f"{jobset_name}-{rjob['name']}-{rjob.get('replicas', 1) - 1}"


def longest_pod_name(jobset_name: str, rjob: dict) -> str | None:
    """placement.GenPodName of the last index plus a 5-character suffix, or None.

    ValidateCreate checks it only for an Indexed Job whose completions are set.
    """
    job = rjob["template"]["spec"]
    if job.get("completionMode") != "Indexed" or job.get("completions") is None:
        return None
    return f"{longest_job_name(jobset_name, rjob)}-{job['completions'] - 1}-abcde"


def validate_create(jobset: dict, gates: dict | None = None) -> list[str]:
    """The errors a default JobSet v0.12.0 install returns on creating `jobset` (none: admitted).

    The object is defaulted first, as the API server runs the mutating webhook before
    the validating one.
    """
    gates = {**DEFAULT_GATES, **(gates or {})}
    js = default(jobset)
    spec, name = js["spec"], js["metadata"]["name"]
    errors = []
    policy = spec.get("failurePolicy") or {}
    if policy.get("restartStrategy") == "InPlaceRestart" and not gates["InPlaceRestart"]:
        errors.append("InPlaceRestart restart strategy needs the InPlaceRestart gate")
    rjobs = spec["replicatedJobs"]
    if rjobs and rjobs[0].get("dependsOn"):
        errors.append("DependsOn can't be set for the first ReplicatedJob")
    names: list[str] = []
    for rjob in rjobs:
        names.append(rjob["name"])
        if rjob["template"]["spec"].get("parallelism", 1) * rjob["replicas"] > 2**31 - 1:
            errors.append(f"replicas times parallelism of {rjob['name']} exceeds MaxInt32")
        errors += dns1035_errors(rjob["groupName"])
        errors += [f"job name: {e}" for e in dns1035_errors(longest_job_name(name, rjob))]
        pod = longest_pod_name(name, rjob)
        if pod is not None:
            errors += [f"pod name: {e}" for e in dns1035_errors(pod)]
        for dep in rjob.get("dependsOn", []):
            if dep["name"] not in names:
                errors.append(f"replicatedJob {rjob['name']} cannot depend on {dep['name']}")
    for target in spec["successPolicy"].get("targetReplicatedJobs", []):
        if target not in names:
            errors.append(f"successPolicy: replicatedJob {target!r} does not exist")
    if policy:
        errors += _failure_policy_errors(policy, names, gates)
    # The CRD's CEL rule on JobSetSpec (jobset_types.go).
    if spec["startupPolicy"]["startupPolicyOrder"] == "InOrder" and any(
        "dependsOn" in r for r in rjobs
    ):
        errors.append("StartupPolicy and DependsOn APIs are mutually exclusive")
    return errors


def _failure_policy_errors(policy: dict, names: list[str], gates: dict) -> list[str]:
    """validateFailurePolicy."""
    rules = policy.get("rules", [])
    if any(r["action"] in RESTART_JOB_ACTIONS for r in rules) and not gates["RestartJob"]:
        # The webhook returns this error alone.
        return ["RestartJob actions are not allowed when the RestartJob feature gate is disabled"]
    errors = []
    seen: set[str] = set()
    for rule in rules:
        rule_name = rule["name"]
        if not 1 <= len(rule_name) <= 128:
            errors.append(f"rule name {rule_name!r} must have 1 to 128 characters")
        if not RULE_NAME.match(rule_name):
            errors.append(f"invalid failure policy rule name {rule_name!r}")
        if rule_name in seen:
            errors.append(f"rule names are not unique: {rule_name!r}")
        seen.add(rule_name)
        for target in rule.get("targetReplicatedJobs", []):
            if target not in names:
                errors.append(f"failure policy: replicatedJob {target!r} does not exist")
        for reason in rule.get("onJobFailureReasons", []):
            if reason not in JOB_FAILURE_REASONS:
                errors.append(f"invalid job failure reason {reason!r}")
    return errors


def failure_action(jobset: dict, replicated_job: str, reason: str, message: str = "") -> str:
    """What the JobSet controller does when a child Job of `replicated_job` fails for `reason`.

    The first rule whose reasons, message patterns and targets all match acts
    (ruleIsApplicable); none matching: RestartJobSet; no failurePolicy: FailJobSet.
    """
    policy = default(jobset)["spec"].get("failurePolicy")
    if policy is None:
        return "FailJobSet"
    for rule in policy.get("rules", []):
        reasons = rule.get("onJobFailureReasons", [])
        patterns = rule.get("onJobFailureMessagePatterns", [])
        targets = rule.get("targetReplicatedJobs", [])
        if (
            (not reasons or reason in reasons)
            and (not patterns or any(re.search(p, message) for p in patterns))
            and (not targets or replicated_job in targets)
        ):
            return rule["action"]
    return DEFAULT_ACTION
