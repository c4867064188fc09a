"""`make tune` as Katib v0.19.0 sees it: admission, trial names, metrics, injection.

The rules are tests/upstream/katib.py's and katib_trial.py's, written from kubeflow/katib v0.19.0 (each cited
there). No Katib runs here: the trial's events are written by the trainer's own
write_summaries into the layout a trial pod has, and read with Katib's collector rule.
"""

from __future__ import annotations

import copy
import os
import subprocess

import pytest

from deploy import kinds, overlay
from tests.conftest import ROOT, make_env
from tests.test_k8s import K8S_VERSION
from tests.upstream import katib, katib_trial, render, write_overlay

SCHEDULING = ["--gpu", "--spot", "--queue=team-q", "--priority-class=low", "--deadline=7200"]
TRAINER_ENTRYPOINT = ["dumb-init", "--", "python", "-m", "trainer.task"]


def _experiment(objects: list[dict]) -> dict:
    (experiment,) = [o for o in objects if o["kind"] == "Experiment"]
    return experiment


@pytest.fixture(scope="module")
def experiments(tmp_path_factory) -> list[dict]:
    """Every flavour of the rendered Experiment: tracked, generated, scheduled, resized."""
    out = tmp_path_factory.mktemp("tune")
    return [
        _experiment(render(os.path.join(ROOT, "k8s", "overlays", "tune"))),
        _experiment(write_overlay(out, "tune", "--", "--total_steps=123")),
        _experiment(write_overlay(out, "tune", *SCHEDULING)),
        _experiment(write_overlay(out, "tune", "--max-trials=4", "--parallel-trials=4")),
        _experiment(write_overlay(out, "tune", f"--run={'r' * kinds.max_run_length('tune')}")),
    ]


def _minimum_assignments(experiment: dict) -> dict[str, str]:
    return {p["name"]: p["feasibleSpace"]["min"] for p in experiment["spec"]["parameters"]}


def test_every_experiment_is_admitted_and_its_trial_job_is_valid(experiments):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for experiment in experiments:
        assert katib.validate_experiment(experiment) == [], experiment["metadata"]["name"]
        # validateTrialJob: the template must convert to a batch/v1 Job with nothing lost,
        # which a strict schema check of the Job a trial runs stands for.
        name = katib.trial_name(experiment["metadata"]["name"])
        job = katib.trial_job(experiment, name, _minimum_assignments(experiment))
        kubernetes_validate.validate(job, K8S_VERSION, strict=True)
        # The Job's name is its pods' batch.kubernetes.io/job-name label: 63 at most.
        assert len(name) <= kinds.NAME_LIMIT


def test_experiment_names_end_at_katibs_40(tmp_path, capsys):
    limit = kinds.max_run_length("tune")
    assert limit == 30
    at_limit = _experiment(write_overlay(tmp_path, "tune", f"--run={'r' * limit}"))
    assert len(at_limit["metadata"]["name"]) == katib.MAX_NAME
    assert katib.validate_experiment(at_limit) == []
    one_past = {**at_limit, "metadata": {"name": at_limit["metadata"]["name"] + "r"}}
    assert any("metadata.name" in e for e in katib.validate_experiment(one_past))
    argv = ["--kind=tune", "--name=no", f"--run={'r' * (limit + 1)}", "--image=i", "--tag=t"]
    assert overlay.main([*argv, "--bucket=b", f"--out={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "at most 30" in err and "at most 40" in err


def test_tune_settings_stand(experiments):
    """Goal, algorithm settings and parallelism as the validator and the tpe service take them."""
    for experiment in experiments:
        spec = katib.set_default(experiment)["spec"]
        objective = spec["objective"]
        # Success is a rate: a goal above 1 would never end the Experiment early.
        assert objective["type"] == "maximize" and 0 < objective["goal"] <= 1
        assert spec["algorithm"]["algorithmName"] == "tpe"
        assert katib.tpe_errors(spec["algorithm"], spec["parameters"]) == []
        trials, parallel = spec["maxTrialCount"], spec["parallelTrialCount"]
        assert 1 <= parallel <= trials and spec["maxFailedTrialCount"] <= trials
    default = katib.set_default(experiments[1])["spec"]
    # TPE models results only after its random start: 3 random trials, then 9 guided.
    assert default["maxTrialCount"] - katib.random_trials(default["parallelTrialCount"]) == 9


def _write_trial_events(trial_dir: str, results: list[dict]) -> None:
    """A trial's run directory as the trainer leaves it: eval/ and train/ events, checkpoints."""
    import tensorflow as tf  # loaded for this test only: it takes seconds

    from trainer import evaluate

    writer = tf.summary.create_file_writer(os.path.join(trial_dir, "eval"))
    for result in results:
        evaluate.write_summaries(writer, result)
    writer.close()
    # Training's own tags, which share names with the evaluation's under other directories.
    train = tf.summary.create_file_writer(os.path.join(trial_dir, "train"))
    with train.as_default(step=results[-1]["env_steps"]):
        tf.summary.scalar("Metrics/SuccessRate", 0.01)
        tf.summary.scalar("SuccessRate", 0.02)
    train.close()
    os.makedirs(os.path.join(trial_dir, "checkpoints"))
    with open(os.path.join(trial_dir, "checkpoints", "checkpoint"), "w") as f:
        f.write('model_checkpoint_path: "ckpt-600"\n')


def _result(steps: int, success: float, mean_return: float) -> dict:
    return {
        "env_steps": steps,
        "mean_return": mean_return,
        "mean_length": 40.0,
        "success_rate": success,
    }


def test_trial_metrics_are_found_where_a_trial_pod_writes_them(experiments, tmp_path):
    experiment = experiments[1]
    spec = katib.set_default(experiment)["spec"]
    source = spec["metricsCollectorSpec"]["source"]["fileSystemPath"]
    assert source["kind"] == "Directory"
    # The trial's run directory: --staging_dir is the collector's path, --run the trial.
    (container,) = spec["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"]
    assert f"--staging_dir={source['path']}" in container["args"]
    run = next(p for p in spec["trialTemplate"]["trialParameters"] if p["name"] == "run")
    assert run["reference"] == "${trialSpec.Name}"
    assert "--run=" + katib.placeholder_of("run") in container["args"]
    trial = katib.trial_name(experiment["metadata"]["name"])
    mount = str(tmp_path) + source["path"]  # the pod's /scratch/runs, here under tmp_path
    _write_trial_events(
        os.path.join(mount, trial),
        [_result(300, 0.25, -3.5), _result(600, 0.75, 12.0), _result(900, 0.5, 8.25)],
    )
    objective = spec["objective"]
    names = [objective["objectiveMetricName"], *objective["additionalMetricNames"]]
    logs = katib_trial.collect(mount, names)
    metrics = katib_trial.observation(logs, objective["metricStrategies"])
    strategy = {s["name"]: s["value"] for s in objective["metricStrategies"]}
    values = {name: katib_trial.reported_value(metrics[name], strategy[name]) for name in names}
    # The objective is the last evaluation's success; the return, its best (max).
    assert values == {"eval/SuccessRate": "0.5", "eval/AverageReturn": "12.0"}
    # Each metric comes from one tag: three evaluations, three logs apiece.
    assert sorted(name for name, _, _ in logs) == sorted(names * 3)
    # 26c01a2's names find nothing: every trial's objective was unavailable.
    for old in ("Eval/SuccessRate", "eval/Eval/SuccessRate"):
        assert katib_trial.collect(mount, [old])[0][:2] == (old, katib_trial.UNAVAILABLE)


def test_the_collector_is_injected_and_wraps_the_trainer(experiments):
    for experiment in experiments:
        spec = katib.set_default(experiment)["spec"]
        template = spec["trialTemplate"]
        pod = template["trialSpec"]["spec"]["template"]["spec"]
        (container,) = [
            c for c in pod["containers"] if c["name"] == template["primaryContainerName"]
        ]
        # An explicit command: without it the webhook would look the image up in its registry.
        assert container["command"] == TRAINER_ENTRYPOINT
        path = spec["metricsCollectorSpec"]["source"]["fileSystemPath"]["path"]
        *shell, script = katib_trial.wrapped_command(container, path)
        assert shell == ["sh", "-c"]
        assert script.startswith(" ".join([*TRAINER_ENTRYPOINT, "train"]))
        assert script.endswith(f"&& echo completed > {path}/$$$$.pid")
        # The shell joins the arguments with spaces: none may hold one.
        assert not any(" " in arg for arg in container["args"])


def _make_tune(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-s", "tune", "DRY_RUN=1", "PROJECT=p", "TAG=v9", "BUCKET=b", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=make_env(),
    )


def test_make_tune_labels_the_namespace_and_its_default_run_fits():
    result = _make_tune()
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    key, value = katib_trial.INJECTION_LABEL
    label = f"kubectl label namespace rl {key}={value} --overwrite"
    apply = next(i for i, line in enumerate(lines) if line.startswith("kubectl apply -k"))
    assert lines.index(label) < apply
    experiment = lines[apply].rsplit("/", 1)[1].replace("tune-", "kuka-tune-", 1)
    assert len(experiment) <= katib.MAX_NAME, experiment


def _set(obj: dict, path: str, value) -> dict:
    """A deep copy of `obj` with the dotted `path` set to `value`."""
    out = copy.deepcopy(obj)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[int(last) if isinstance(node, list) else last] = value
    return out


@pytest.mark.parametrize(
    "path, value, error",
    [
        ("spec.parallelTrialCount", 13, "parallelTrialCount should be less than or equal"),
        ("spec.maxFailedTrialCount", 13, "maxFailedTrialCount should be less than or equal"),
        ("spec.objective.additionalMetricNames", ["eval/SuccessRate"], "should not contain"),
        ("spec.algorithm.algorithmName", "tpe2", "no Suggestion config data"),
        ("spec.metricsCollectorSpec.source.fileSystemPath.path", "scratch/runs", "absolute"),
        ("spec.trialTemplate.trialParameters.1.name", "learningrate", "is not in the trial"),
        ("spec.trialTemplate.trialParameters.1.reference", "lr", "does not exist in spec"),
        ("spec.trialTemplate.trialSpec.metadata", {"name": "x"}, "must be omitted"),
        ("spec.parameters.4.feasibleSpace.list", ["4"], "list is not supported"),
    ],
)
def test_the_validator_rules_bite(experiments, path, value, error):
    broken = _set(experiments[1], path, value)
    assert any(error in e for e in katib.validate_experiment(broken)), path


def test_tpe_refuses_unknown_settings_and_log_ranges_from_zero(experiments):
    spec = experiments[1]["spec"]
    settings = {"algorithmSettings": [{"name": "n_startup_jobs", "value": "5"}]}
    assert katib.tpe_errors({**spec["algorithm"], **settings}, spec["parameters"])
    zero = _set(experiments[1], "spec.parameters.0.feasibleSpace.min", "0")["spec"]
    assert katib.tpe_errors(zero["algorithm"], zero["parameters"])
