"""Evaluation: greedy episodes summarized into TensorBoard and `eval.json`."""

from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf


def summarize(episodes, env_steps: int, env_id: str) -> dict:
    """Mean return, mean length and grasp success rate of finished episodes."""
    successes = [e.success for e in episodes if e.success is not None]
    return {
        "env_id": env_id,
        "env_steps": env_steps,
        "episodes": len(episodes),
        "mean_return": float(np.mean([e.ret for e in episodes])),
        "mean_length": float(np.mean([e.length for e in episodes])),
        "success_rate": float(np.mean(successes)) if successes else None,
        "returns": [round(float(e.ret), 2) for e in episodes],
    }


def write_summaries(writer, result: dict) -> None:
    with writer.as_default(step=result["env_steps"]):
        tf.summary.scalar("Eval/AverageReturn", result["mean_return"])
        tf.summary.scalar("Eval/AverageEpisodeLength", result["mean_length"])
        if result["success_rate"] is not None:
            tf.summary.scalar("Eval/SuccessRate", result["success_rate"])


def write_json(result: dict, path: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def describe(result: dict) -> str:
    text = (
        f"Eval at step {result['env_steps']:,}: {result['episodes']} greedy episodes, "
        f"mean return {result['mean_return']:,.1f}, mean length {result['mean_length']:.0f}"
    )
    if result["success_rate"] is not None:
        text += f", grasp success {100 * result['success_rate']:.0f}%"
    return text


def read_scalars(event_dir: str) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the TensorBoard event files of `event_dir`, as (step, value) per tag."""
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    events = event_accumulator.EventAccumulator(event_dir, size_guidance={"tensors": 0})
    events.Reload()
    return {
        tag: [
            (e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in events.Tensors(tag)
        ]
        for tag in events.Tags()["tensors"]
    }
