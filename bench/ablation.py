"""Why the defaults: the default agent against one change at a time, same seed and budget.

Each variant is one `python -m trainer.task` run of STEPS env steps (seed 0) with
the default settings plus the variant's flags, evaluated greedily over
EVAL_EPISODES episodes at the end. A finished variant is not trained again.
Writes docs/ablation.md. One seed per variant: differences of a few points are
noise, a collapse to 0% is not. Usage:

    python bench/ablation.py --steps 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

VARIANTS = {
    "default (PPO, overlap on)": [],
    "SAC": ["--agent=sac"],
    "no overlap (strictly on-policy)": ["--nooverlap"],
    "smaller networks (64, 64)": ["--actor_layers=64,64", "--value_layers=64,64"],
    "fewer epochs (4)": ["--num_epochs=4"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1_000_000, help="env steps per variant")
    parser.add_argument("--eval_episodes", type=int, default=100, help="final greedy episodes")
    parser.add_argument("--logdir", default=os.path.join(ROOT, "runs", "ablation"), help="runs")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs"), help="report directory")
    parser.add_argument("--variants", type=int, default=len(VARIANTS), help="run the first N")
    args = parser.parse_args()
    rows = []
    for index, (name, flags) in enumerate(list(VARIANTS.items())[: args.variants]):
        run = f"ablation-{index}"
        command = [
            sys.executable,
            "-m",
            "trainer.task",
            f"--logdir={args.logdir}",
            f"--run={run}",
            f"--total_steps={args.steps}",
            "--eval_interval=0",
            f"--eval_episodes={args.eval_episodes}",
            *flags,
        ]
        eval_json = os.path.join(args.logdir, run, "eval.json")
        if not os.path.exists(eval_json):
            print(f"{name}: {shlex.join(command[1:])}", flush=True)
            subprocess.run(command, cwd=ROOT, check=True)
        with open(eval_json) as f:
            result = json.load(f)
        shown = shlex.join(["python", *[a.replace(ROOT + os.sep, "") for a in command[1:]]])
        rows.append((name, result, shown))
    lines = [
        "# Ablation: the default against one change at a time",
        "",
        f"Written by `python bench/ablation.py --steps {args.steps}` on {os.cpu_count()} "
        f"cores. Seed 0, {args.steps:,} env steps each, greedy success over "
        f"{args.eval_episodes} episodes at the end. One seed per row.",
        "",
        "| variant | greedy success | mean return | command |",
        "|---|---|---|---|",
    ]
    for name, result, shown in rows:
        lines.append(
            f"| {name} | {100 * result['success_rate']:.0f}% | {result['mean_return']:,.0f} | "
            f"`{shown}` |"
        )
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "ablation.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
