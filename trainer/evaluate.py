"""Evaluation: greedy episodes summarized into TensorBoard and `eval.json`."""

from __future__ import annotations

import json
import math

import numpy as np
import tensorflow as tf

from trainer import rundir


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of `successes` out of `n` trials."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def summarize(episodes, env_steps: int, env_id: str) -> dict:
    """Mean return, mean length and grasp success rate (with its 95% interval) of episodes."""
    successes = [e.success for e in episodes if e.success is not None]
    interval = wilson(sum(successes), len(successes)) if successes else None
    return {
        "env_id": env_id,
        "env_steps": env_steps,
        "episodes": len(episodes),
        "mean_return": float(np.mean([e.ret for e in episodes])),
        "mean_length": float(np.mean([e.length for e in episodes])),
        "success_rate": float(np.mean(successes)) if successes else None,
        "success_interval": [round(x, 4) for x in interval] if interval else None,
        "returns": [round(float(e.ret), 2) for e in episodes],
        "lengths": [int(e.length) for e in episodes],
    }


def write_summaries(writer, result: dict) -> None:
    with writer.as_default(step=result["env_steps"]):
        tf.summary.scalar("Eval/AverageReturn", result["mean_return"])
        tf.summary.scalar("Eval/AverageEpisodeLength", result["mean_length"])
        if result["success_rate"] is not None:
            tf.summary.scalar("Eval/SuccessRate", result["success_rate"])
        # The same values under tags Katib's TensorFlowEvent collector can tell apart: it
        # reads metric `eval/SuccessRate` as the tags starting with `SuccessRate` in a
        # directory ending in `eval`, and every Eval/ tag starts with `Eval`.
        tf.summary.scalar("AverageReturn", result["mean_return"])
        if result["success_rate"] is not None:
            tf.summary.scalar("SuccessRate", result["success_rate"])


def write_json(result: dict, path: str) -> None:
    rundir.write_atomic(path, json.dumps(result, indent=2) + "\n")


def describe(result: dict) -> str:
    text = (
        f"Eval at step {result['env_steps']:,}: {result['episodes']} greedy episodes, "
        f"mean return {result['mean_return']:,.1f}, mean length {result['mean_length']:.0f}"
    )
    if result["success_rate"] is not None:
        low, high = result["success_interval"]
        text += (
            f", grasp success {100 * result['success_rate']:.0f}% "
            f"(95% interval {100 * low:.0f}-{100 * high:.0f}%)"
        )
    return text


def read_scalar_events(event_dir: str) -> dict[str, list[tuple[int, float, float]]]:
    """Every scalar in the event files of `event_dir`: (step, value, wall time) per tag."""
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    events = event_accumulator.EventAccumulator(event_dir, size_guidance={"tensors": 0})
    events.Reload()
    return {
        tag: [
            (e.step, float(tensor_util.make_ndarray(e.tensor_proto)), e.wall_time)
            for e in events.Tensors(tag)
        ]
        for tag in events.Tags()["tensors"]
    }


def read_scalars(event_dir: str) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the TensorBoard event files of `event_dir`, as (step, value) per tag."""
    return {
        tag: [(step, value) for step, value, _ in rows]
        for tag, rows in read_scalar_events(event_dir).items()
    }
