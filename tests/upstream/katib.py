"""Katib's admission rules, metrics collection and naming, as Katib v0.19.0 applies them.

Written from kubeflow/katib at tag v0.19.0 (578e60f1c, its newest release):

- pkg/apis/controller/experiments/v1beta1/experiment_defaults.go: `SetDefault` (the
  Experiment's mutating webhook, run before validation);
- pkg/webhook/v1beta1/experiment/validator/validator.go: `ValidateExperiment` and the
  `validate*` functions it calls;
- manifests/v1beta1/installs/katib-standalone/katib-config.yaml: the algorithms and
  collectors a default install knows (`GetSuggestionConfigData`);
- pkg/suggestion/v1beta1/hyperopt/service.py and base_service.py: what the `tpe`
  suggestion service accepts (`_validate_tpe_setting`, `create_hyperopt_domain`) and how
  many of its first trials are random (`getSuggestions`: n_startup_jobs);
- pkg/controller.v1beta1/suggestion/suggestionclient/suggestionclient.go: trial names.

What happens inside a trial's pod (the collector) is in katib_trial.py.
"""

from __future__ import annotations

import copy
import json
import os
import re

MAX_NAME = 40  # validator.go: ValidateExperiment
# validator.go's namingConvention. Go's MatchString is not anchored at the end, so only
# the first character is checked; the length is checked apart.
_NAMING = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?")
# katib-config.yaml, runtime.suggestions and runtime.metricsCollectors.
ALGORITHMS = (
    "random",
    "tpe",
    "grid",
    "hyperband",
    "bayesianoptimization",
    "cmaes",
    "sobol",
    "multivariate-tpe",
    "enas",
    "darts",
    "pbt",
)
COLLECTORS = ("StdOut", "File", "TensorFlowEvent")
# hyperopt/service.py, _validate_tpe_setting: each known setting and its test.
TPE_SETTINGS = {
    "gamma": lambda v: 0 < float(v) < 1,
    "prior_weight": lambda v: float(v) > 0,
    "n_EI_candidates": lambda v: int(v) > 0,
    "random_state": lambda v: int(v) >= 0,
}
PARAMETER_TYPES = ("int", "double", "categorical", "discrete", "")
DISTRIBUTIONS = ("uniform", "logUniform", "normal", "logNormal", "")
_PARAM = re.compile(r"\$\{trialParameters\..+?\}")  # TrialTemplateParamReplaceFormatRegex
_META = re.compile(r"\$\{trialSpec\.(.+?)\}")  # TrialTemplateMetaReplaceFormatRegex
META_KEYS = ("Name", "Namespace", "Kind", "APIVersion", "Annotations", "Labels")


def set_default(experiment: dict) -> dict:
    """The Experiment after its mutating webhook (SetDefault), for a batch Job trial."""
    exp = copy.deepcopy(experiment)
    spec = exp["spec"]
    spec.setdefault("parallelTrialCount", 3)
    spec.setdefault("resumePolicy", "Never")
    objective = spec.get("objective")
    if objective:
        strategies = objective.setdefault("metricStrategies", [])
        named = {s["name"] for s in strategies}
        by_type = {"minimize": "min", "maximize": "max"}.get(objective.get("type"), "latest")
        for name in [objective["objectiveMetricName"], *objective.get("additionalMetricNames", [])]:
            if name not in named:
                strategies.append({"name": name, "value": by_type})
    template = spec.get("trialTemplate") or {}
    if template.get("trialSpec", {}).get("kind") == "Job":
        template.setdefault(
            "successCondition", 'status.conditions.#(type=="Complete")#|#(status=="True")#'
        )
        template.setdefault(
            "failureCondition", 'status.conditions.#(type=="Failed")#|#(status=="True")#'
        )
    collector = spec.setdefault("metricsCollectorSpec", {}).setdefault(
        "collector", {"kind": "StdOut"}
    )
    if collector["kind"] == "TensorFlowEvent":
        path = (
            spec["metricsCollectorSpec"].setdefault("source", {}).setdefault("fileSystemPath", {})
        )
        path.setdefault("kind", "Directory")
        path.setdefault("path", "/var/log/katib/tfevent/")
    for param in spec.get("parameters", []):
        param.setdefault("feasibleSpace", {}).setdefault("distribution", "uniform")
    return exp


def validate_experiment(experiment: dict) -> list[str]:
    """The errors Katib's Experiment webhook returns on creating `experiment` (none: admitted)."""
    exp = set_default(experiment)
    spec, name = exp["spec"], exp["metadata"]["name"]
    errors = []
    if not _NAMING.match(name) or len(name) > MAX_NAME:
        errors.append(f"metadata.name {name!r}: at most {MAX_NAME} characters, from [a-z]")
    errors += _count_errors(spec)
    objective = spec.get("objective")
    if not objective:
        return [*errors, "spec.objective must be specified"]
    if objective.get("type") not in ("minimize", "maximize"):
        errors.append("spec.objective.type must be minimize or maximize")
    if not objective.get("objectiveMetricName"):
        errors.append("spec.objective.objectiveMetricName must be specified")
    if objective.get("objectiveMetricName") in objective.get("additionalMetricNames", []):
        errors.append("additionalMetricNames should not contain objectiveMetricName")
    algorithm = spec.get("algorithm") or {}
    if algorithm.get("algorithmName") not in ALGORITHMS:
        errors.append(f"no Suggestion config data for algorithm {algorithm.get('algorithmName')}")
    if spec.get("resumePolicy") not in ("", "Never", "LongRunning", "FromVolume"):
        errors.append("invalid ResumePolicyType")
    errors += trial_template_errors(spec)
    if not spec.get("parameters"):
        errors.append("spec.parameters or spec.nasConfig must be specified")
    errors += _parameter_errors(spec.get("parameters", []))
    errors += _collector_errors(spec["metricsCollectorSpec"])
    return errors


def _count_errors(spec: dict) -> list[str]:
    errors = []
    trials, parallel = spec.get("maxTrialCount"), spec.get("parallelTrialCount")
    failed = spec.get("maxFailedTrialCount")
    if failed is not None and failed < 0:
        errors.append("spec.maxFailedTrialCount should not be less than 0")
    if trials is not None and trials <= 0:
        errors.append("spec.maxTrialCount must be greater than 0")
    if parallel is not None and parallel <= 0:
        errors.append("spec.parallelTrialCount must be greater than 0")
    if None not in (failed, trials) and failed > trials:
        errors.append("spec.maxFailedTrialCount should be less than or equal to spec.maxTrialCount")
    if None not in (parallel, trials) and parallel > trials:
        errors.append("spec.parallelTrialCount should be less than or equal to spec.maxTrialCount")
    return errors


def _parameter_errors(parameters: list[dict]) -> list[str]:
    """validateParameters."""
    errors = []
    for p in parameters:
        space, kind = p.get("feasibleSpace", {}), p.get("parameterType", "")
        if kind not in PARAMETER_TYPES:
            errors.append(f"{p['name']}: parameterType {kind} is not supported")
        if space.get("distribution", "") not in DISTRIBUTIONS:
            errors.append(f"{p['name']}: distribution {space['distribution']} is not supported")
        if kind in ("int", "double"):
            if space.get("list"):
                errors.append(f"{p['name']}: feasibleSpace.list is not supported for {kind}")
            if not space.get("max") or not space.get("min"):
                errors.append(f"{p['name']}: feasibleSpace.max and .min must be specified")
        elif kind in ("categorical", "discrete") and any(
            k in space for k in ("max", "min", "step")
        ):
            errors.append(f"{p['name']}: .max, .min and .step are not supported for {kind}")
    return errors


def _collector_errors(collector_spec: dict) -> list[str]:
    """validateMetricsCollector, for the collectors a default install knows."""
    kind = collector_spec["collector"]["kind"]
    if kind not in COLLECTORS:
        return [f"invalid metrics collector kind: {kind}"]
    if kind != "TensorFlowEvent":
        return []
    path = (collector_spec.get("source") or {}).get("fileSystemPath") or {}
    errors = []
    if path.get("kind") != "Directory" or not os.path.isabs(path.get("path", "")):
        errors.append("TensorFlowEvent needs an absolute directory in source.fileSystemPath")
    if path.get("format"):
        errors.append("source.fileSystemPath.format must be empty")
    return errors


def trial_template_errors(spec: dict) -> list[str]:
    """validateTrialTemplate for a trialSpec (not a ConfigMap), up to the Job conversion."""
    template = spec.get("trialTemplate")
    if not template:
        return ["spec.trialTemplate must be specified"]
    errors = []
    if not template.get("primaryContainerName"):
        errors.append("trialTemplate.primaryContainerName must be specified")
    if not template.get("successCondition") or not template.get("failureCondition"):
        errors.append("successCondition and failureCondition must be specified")
    if template.get("trialParameters") is None or "trialSpec" not in template:
        return [*errors, "trialTemplate.trialParameters and trialSpec must be specified"]
    text = json.dumps(template["trialSpec"])  # GetTrialTemplate: the spec as a string
    names, references = set(), set()
    experiment_parameters = {p["name"] for p in spec.get("parameters", [])}
    for p in template["trialParameters"]:
        name, ref = p.get("name", ""), p.get("reference", "")
        if not name or not ref or "{" in name or "}" in name:
            errors.append("trialParameters need a name without braces and a reference")
            continue
        if name in names or ref in references:
            errors.append(f"trialParameter {name} or its reference {ref} is duplicated")
            continue
        names.add(name)
        references.add(ref)
        if experiment_parameters and not is_meta_key(ref) and ref not in experiment_parameters:
            errors.append(f"reference {ref} does not exist in spec.parameters")
        placeholder = placeholder_of(name)
        if placeholder not in text:
            return [*errors, f"trialParameter {name} is not in the trial template"]
        text = text.replace(placeholder, "test-value")
    left = _PARAM.findall(text)
    if left:
        errors.append(f"{left} in the trial template are not in trialParameters")
    run_spec = json.loads(text)
    metadata = run_spec.get("metadata") or {}
    if metadata.get("name") or metadata.get("namespace"):
        errors.append("metadata.name and metadata.namespace in the trial template must be omitted")
    if not run_spec.get("apiVersion") or not run_spec.get("kind"):
        errors.append("APIVersion and Kind in the trial template must be specified")
    return errors


def placeholder_of(name: str) -> str:
    """consts.TrialTemplateParamReplaceFormat: ${trialParameters.NAME}."""
    return "${trialParameters." + name + "}"


def is_meta_key(reference: str) -> bool:
    """isMetaKey: ${trialSpec.Name}, ${trialSpec.Labels[key]} ..."""
    match = _META.search(reference)
    if not match:
        return False
    key = match.group(1)
    indexed = re.fullmatch(r"(.+)\[(.+)]", key)
    return key in META_KEYS or bool(indexed and indexed.group(1) in META_KEYS)


def trial_job(experiment: dict, trial_name: str, assignments: dict[str, str]) -> dict:
    """The batch Job a trial runs: the template with every placeholder set, named as the trial.

    The trial controller substitutes each trialParameter by its assignment, or a meta
    key by the trial's own value (here the name), and names the Job after the trial.
    """
    template = experiment["spec"]["trialTemplate"]
    text = json.dumps(template["trialSpec"])
    for p in template["trialParameters"]:
        value = trial_name if p["reference"] == "${trialSpec.Name}" else assignments[p["reference"]]
        text = text.replace(placeholder_of(p["name"]), value)
    job = json.loads(text)
    job.setdefault("metadata", {})["name"] = trial_name
    return job


def tpe_errors(algorithm: dict, parameters: list[dict]) -> list[str]:
    """What Katib's hyperopt `tpe` service refuses: a setting it does not know or a bad value,
    and a log distribution with min <= 0 (create_hyperopt_domain takes math.log(min))."""
    errors = []
    for setting in algorithm.get("algorithmSettings", []):
        check = TPE_SETTINGS.get(setting["name"])
        try:
            ok = check is not None and check(setting["value"])
        except ValueError:
            ok = False
        if not ok:
            errors.append(f"tpe setting {setting['name']}={setting['value']} is refused")
    for p in parameters:
        space = p["feasibleSpace"]
        if space.get("distribution") in ("logUniform", "logNormal") and float(space["min"]) <= 0:
            errors.append(f"{p['name']}: a log distribution needs min > 0")
    return errors


def random_trials(parallel: int) -> int:
    """Trials `tpe` suggests at random before it models results: getSuggestions passes
    n_startup_jobs=current_request_number, which is parallelTrialCount on the first call."""
    return parallel


def trial_name(experiment_name: str) -> str:
    """The longest name a trial gets: suggestionclient.go, EXPERIMENT-<8 random characters>."""
    return f"{experiment_name}-xxxxxxxx"
