"""A Katib trial's pod as Katib v0.19.0 makes and reads it: injection, events, metrics.

Written from kubeflow/katib at tag v0.19.0 (578e60f1c, its newest release):

- manifests/v1beta1/components/webhook/webhooks.yaml: the pod webhook's namespaceSelector;
- pkg/webhook/v1beta1/pod/inject_webhook.go and utils.go: the collector's injection
  (`Mutate`, `wrapWorkerContainer`, `getContainerCommand`, `mutateMetricsCollectorVolume`);
- pkg/metricscollector/v1beta1/tfevent-metricscollector/tfevent_loader.py: which events
  the TensorFlowEvent collector reports (`_should_consider`, `parse_summary`, `parse_file`);
- pkg/controller.v1beta1/trial/trial_controller_util.go: `getMetrics` (min, max, latest);
- pkg/controller.v1beta1/suggestion/suggestionclient/suggestionclient.go:
  `convertTrialObservation` (the value a metric strategy takes).
"""

from __future__ import annotations

import datetime
import os

# The pod webhook acts only in namespaces with this label (webhooks.yaml).
INJECTION_LABEL = ("katib.kubeflow.org/metrics-collector-injection", "enabled")
UNAVAILABLE = "unavailable"  # metricscollector common const.UNAVAILABLE_METRIC_VALUE


def should_consider(tag: str, metric_name: str, event_file: str) -> bool:
    """tfevent_loader.py, _should_consider: metric `a/b` is tag `b...` in a directory ending in a."""
    parts = metric_name.split("/")
    parent = os.path.dirname(metric_name) if len(parts) >= 2 else os.path.dirname(event_file)
    return tag.startswith(parts[-1]) and os.path.dirname(event_file).endswith(parent)


def collect(directory: str, metric_names: list[str]) -> list[tuple[str, str, str]]:
    """The (metric, value, RFC 3339 time) logs the TensorFlowEvent collector reports.

    parse_file: every file under `directory` (os.walk) is read as one event file; files
    that are not fail and are skipped. Without a log of the objective (the first name), the
    objective alone is reported as unavailable.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    logs = []
    for root, _, files in os.walk(directory):
        for f in files:
            path = os.path.join(root, f)
            try:
                events = EventAccumulator(path, size_guidance={"scalars": 0, "tensors": 0})
                events.Reload()
                tags = events.Tags()
            except Exception:  # noqa: BLE001 - parse_file logs and skips any failure
                continue
            for kind in ("tensors", "scalars"):
                for tag in tags[kind]:
                    for name in metric_names:
                        if not should_consider(tag, name, path):
                            continue
                        for e in (events.Tensors if kind == "tensors" else events.Scalars)(tag):
                            value = (
                                tensor_util.make_ndarray(e.tensor_proto)
                                if kind == "tensors"
                                else e.value
                            )
                            logs.append((name, str(value), _rfc3339(e.wall_time)))
    if not any(name == metric_names[0] for name, _, _ in logs):
        now = _rfc3339(datetime.datetime.now().timestamp())
        return [(metric_names[0], UNAVAILABLE, now)]
    return logs


def _rfc3339(wall_time: float) -> str:
    """rfc3339.rfc3339(datetime.fromtimestamp(t)): local time to the second."""
    return datetime.datetime.fromtimestamp(int(wall_time)).astimezone().isoformat()


def observation(logs: list[tuple[str, str, str]], strategies: list[dict]) -> dict[str, dict]:
    """getMetrics: each strategy's metric with its min, max and latest (by time) value."""
    metrics = {
        s["name"]: {"min": UNAVAILABLE, "max": UNAVAILABLE, "latest": UNAVAILABLE}
        for s in strategies
    }
    latest_time: dict[str, datetime.datetime] = {}
    for name, value, stamp in logs:
        if name not in metrics:
            continue
        metric = metrics[name]
        try:
            number = float(value)
        except ValueError:
            number = None
        if number is not None:
            if metric["min"] == UNAVAILABLE:
                metric["min"] = metric["max"] = value
            elif number < float(metric["min"]):  # upstream's else-if, kept as it is
                metric["min"] = value
            elif number > float(metric["max"]):
                metric["max"] = value
        time = datetime.datetime.fromisoformat(stamp)
        if name not in latest_time or not latest_time[name] > time:
            latest_time[name] = time
            metric["latest"] = value
    return metrics


def reported_value(metric: dict, strategy: str) -> str:
    """suggestionclient.go, convertTrialObservation: the value a strategy takes."""
    if strategy in ("min", "max") and metric[strategy] == UNAVAILABLE:
        return metric["latest"]
    return metric[strategy]


def wrapped_command(container: dict, mount_path: str) -> list[str] | None:
    """The primary container's command after the pod webhook (wrapWorkerContainer).

    None when the container sets no command: the webhook then reads the image's
    entrypoint from its registry with the pod's pull secrets only (getRemoteImage).
    """
    if not container.get("command"):
        return None
    args = [*container["command"], *container.get("args", [])]
    shell = ["sh", "-c"]
    if args[0] in ("sh", "bash") and args[1] == "-c":
        shell, args = args[:2], args[2:]
    pid_file = os.path.join(mount_path, "$$$$.pid")
    return [*shell, " ".join([*args, "&&", f"echo completed > {pid_file}"])]
