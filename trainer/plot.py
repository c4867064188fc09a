"""Learning curves from a run's TensorBoard event files, as a PNG."""

from __future__ import annotations

import os

from trainer import evaluate
from trainer.rundir import RunDir


def learning_curve(run_dir: str, out_path: str | None = None) -> str:
    """Plots return and grasp success against env steps; returns the PNG's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = evaluate.read_scalars(RunDir(run_dir).train_events)
    evals = evaluate.read_scalars(RunDir(run_dir).eval_events)
    if "Metrics/AverageReturn" not in train and "Eval/AverageReturn" not in evals:
        raise ValueError(f"{run_dir} has no returns in its event files yet")
    figure, (returns, success) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    panels = [
        (returns, "Metrics/AverageReturn", "Eval/AverageReturn", "mean episode return", 1),
        (success, "Metrics/SuccessRate", "Eval/SuccessRate", "grasp success (%)", 100),
    ]
    for axes, train_tag, eval_tag, label, scale in panels:
        for source, tag, name, style in (
            (train, train_tag, "training (last 100 episodes)", "-"),
            (evals, eval_tag, "greedy evaluation", "o-"),
        ):
            if tag in source:
                steps, values = zip(*source[tag], strict=True)
                axes.plot(steps, [v * scale for v in values], style, label=name)
        axes.set_xlabel("env steps")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        axes.legend(loc="lower right")
    figure.suptitle(os.path.basename(os.path.normpath(run_dir)))
    out_path = out_path or RunDir(run_dir).file(RunDir.LEARNING_CURVE)
    figure.savefig(out_path, dpi=100)
    plt.close(figure)
    return out_path
