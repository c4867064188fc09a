"""Sample efficiency over seeds: trains SEEDS runs and writes docs/results.md.

Each seed is one `python -m trainer.task` run of STEPS env steps with the default
agent, evaluated greedily every EVAL_INTERVAL steps over EVAL_EPISODES episodes.
Runs go one after another (each already uses every core); a finished seed (its
eval.json exists) is not trained again, and an interrupted one resumes from its
checkpoint, so the script can be re-run after a crash. The report holds the table,
the learning curves (docs/learning_curves.png) and the commands. Usage:

    python -m bench.learning --seeds 3 --steps 2000000
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from bench import common  # noqa: E402

GOAL = 0.8  # greedy success the issue asks for within 2M steps


def _first_return(rows, threshold: float):
    """(steps, seconds) of the first evaluation with mean return at or above `threshold`."""
    return next(((s, t) for s, _, ret, _, t in rows if ret >= threshold), None)


def _fmt_first(hit) -> str:
    return f"{hit[0] / 1e6:.1f}M ({hit[1] / 60:.0f} min)" if hit else "not reached"


def _plot(curves: dict[int, list], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (success, returns) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for seed, rows in curves.items():
        steps = [s / 1e6 for s, *_ in rows]
        success.plot(steps, [100 * r for _, r, *_ in rows], "o-", label=f"seed {seed}")
        returns.plot(steps, [ret for _, _, ret, *_ in rows], "o-", label=f"seed {seed}")
    success.axhline(100 * GOAL, color="gray", ls="--", lw=1, label="goal (80%)")
    returns.axhspan(
        5000, 9000, color="gray", alpha=0.15, label="original tutorial after 3-6M steps"
    )
    for axes, label in ((success, "greedy grasp success (%)"), (returns, "greedy mean return")):
        axes.set_xlabel("env steps (millions)")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        axes.legend(loc="lower right")
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _report(args, curves, commands, finals) -> str:
    import numpy as np

    title = f" (distributed: {args.collectors} collectors)" if args.distributed else ""
    lines = [
        f"# Learning results{title}",
        "",
        f"Written by `python -m bench.learning {shlex.join(sys.argv[1:])}` on "
        f"{os.cpu_count()} cores (no GPU). Default agent and settings (trainer/config.py), "
        f"{args.steps:,} env steps per seed, greedy evaluation of {args.eval_episodes} "
        f"episodes every {args.eval_interval:,} steps.",
        "",
        f"![learning curves](learning_curves{'-distributed' if args.distributed else ''}.png)",
        "",
        "| seed | final success (95% interval) | final return | return 5,000 reached | "
        "50% reached | 80% reached | largest drop after 80% | wall time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for seed, rows in curves.items():
        hit80 = common.first(rows, GOAL)
        after = [rate for s, rate, *_ in rows if hit80 and s >= hit80[0]]
        drop = f"{100 * (max(after) - min(after)):.0f} points" if after else "-"
        final = finals[seed]
        low, high = final.get("success_interval") or (float("nan"), float("nan"))
        lines.append(
            f"| {seed} | {100 * final['success_rate']:.0f}% ({100 * low:.0f}-{100 * high:.0f}%) | "
            f"{final['mean_return']:,.0f} | {_fmt_first(_first_return(rows, 5000))} | "
            f"{_fmt_first(common.first(rows, 0.5))} | {_fmt_first(hit80)} | {drop} | "
            f"{rows[-1][4] / 60:.0f} min |"
        )
    final_rates = [finals[s]["success_rate"] for s in curves]
    final_returns = [finals[s]["mean_return"] for s in curves]
    lines += [
        "",
        f"Median over {len(curves)} seeds: final greedy success "
        f"{100 * float(np.median(final_rates)):.0f}%, final mean return "
        f"{float(np.median(final_returns)):,.0f}.",
        "",
        "Per evaluation (success %, env steps):",
        "",
    ]
    for seed, rows in curves.items():
        cells = ", ".join(f"{s / 1e6:.1f}M: {100 * r:.0f}" for s, r, *_ in rows)
        lines.append(f"- seed {seed}: {cells}")
    lines += [
        "",
        "The original tutorial (BatchPPO, 30 envs, KukaBulletEnv-v0 on pybullet 1.7.5) raised "
        "the mean score from about 0 to 5,000-9,000 over 3-6 million env steps; several of "
        "its runs fell back to about 3,000.",
        "",
        "Commands (each seed resumes if interrupted):",
        "",
        "```",
        *commands,
        "```",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..SEEDS-1 to train")
    parser.add_argument("--steps", type=int, default=2_000_000, help="env steps per seed")
    parser.add_argument("--eval_interval", type=int, default=200_000, help="steps between evals")
    parser.add_argument("--eval_episodes", type=int, default=100, help="episodes per eval")
    parser.add_argument(
        "--logdir", default=os.path.join(common.ROOT, "runs", "bench"), help="runs root"
    )
    parser.add_argument("--out", default=os.path.join(common.ROOT, "docs"), help="report directory")
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="train with `task.py distributed` (Reverb, collectors, a learner) and write "
        "results-distributed.md",
    )
    parser.add_argument("--collectors", type=int, default=2, help="with --distributed")
    parser.add_argument("extra", nargs="*", help="further trainer flags, after --")
    args = parser.parse_args()
    curves, commands, finals = {}, [], {}
    kind = "distributed" if args.distributed else "learning"
    for seed in range(args.seeds):
        run = f"{kind}-seed-{seed}"
        flags = [
            f"--seed={seed}",
            f"--total_steps={args.steps}",
            f"--eval_interval={args.eval_interval}",
            f"--eval_episodes={args.eval_episodes}",
            *args.extra,
        ]
        if args.distributed:
            flags.append(f"--collectors={args.collectors}")
        command = common.trainer_command(
            args.logdir, run, flags, "distributed" if args.distributed else ""
        )
        commands.append(common.shown(command))
        finals[seed] = common.run_unless_done(command, os.path.join(args.logdir, run))
        curves[seed] = common.evals(os.path.join(args.logdir, run))
    os.makedirs(args.out, exist_ok=True)
    suffix = "-distributed" if args.distributed else ""
    _plot(curves, os.path.join(args.out, f"learning_curves{suffix}.png"))
    report = _report(args, curves, commands, finals)
    with open(os.path.join(args.out, f"results{suffix}.md"), "w") as f:
        f.write(report)
    print(report)


if __name__ == "__main__":
    main()
