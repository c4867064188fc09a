"""The camera policy on several seeds: `make train ENV_ID=KukaGraspCam-v0 SEED=N` each.

Each seed runs the whole command a user runs (its own teacher, then the DAgger rounds,
then 100 greedy episodes of the student) unless its run has eval.json; the table is
rewritten after each seed, so a stopped study resumes where it was. Wall clock is read
from the runs' event files: from the teacher's first summary to the student's
evaluation.

    python -m bench.vision --seeds 1,2,3 --out docs/vision-seeds.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from bench import common
from trainer.rundir import RunDir

ENV_ID = "KukaGraspCam-v0"


def _walls(event_dir: str) -> tuple[float, float]:
    """Wall time of the first and the last summary in `event_dir`."""
    from trainer import evaluate

    walls = [w for rows in evaluate.read_scalar_events(event_dir).values() for _, _, w in rows]
    return min(walls), max(walls)


def row(run_dir: str, seed: int) -> str:
    """One seed's line of the table."""
    with open(RunDir(run_dir).eval_json) as f:
        student = json.load(f)
    with open(RunDir(run_dir).file(RunDir.DAGGER_STATE)) as f:
        rounds = json.load(f)
    teacher_dir = RunDir(run_dir).file(RunDir.TEACHER)
    with open(RunDir(teacher_dir).eval_json) as f:
        teacher = json.load(f)
    start = _walls(RunDir(teacher_dir).train_events)[0]
    taught = _walls(RunDir(teacher_dir).eval_events)[1]
    end = _walls(RunDir(run_dir).eval_events)[1]
    low, high = student["success_interval"]
    per_round = " ".join(f"{s:.0%}" for s in rounds["success"])
    return (
        f"| {seed} | {teacher['success_rate']:.0%} | {(taught - start) / 60:.1f} | "
        f"{per_round} | {rounds['frames'][-1]:,} | **{student['success_rate']:.0%}** "
        f"({low:.0%}-{high:.0%}) | {(end - start) / 60:.1f} |"
    )


def report(logdir: str, seeds: list[int], out: str, load: str) -> str:
    rows = [
        row(os.path.join(logdir, f"cam-s{seed}"), seed)
        for seed in seeds
        if os.path.exists(RunDir(os.path.join(logdir, f"cam-s{seed}")).eval_json)
    ]
    command = common.shown(common.trainer_command(logdir, "cam-sN", [f"--env_id={ENV_ID}"]))
    text = "\n".join(
        [
            f"# KukaGraspCam-v0: the camera policy on {len(rows)} of {len(seeds)} seeds",
            "",
            f"Each seed: `{command} --seed=N --eval_episodes=100` (what",
            "`make train ENV_ID=KukaGraspCam-v0 SEED=N` runs), written by",
            f"`python -m bench.vision --seeds {','.join(map(str, seeds))}`. Load at the start: "
            f"{load}.",
            "",
            "| seed | teacher success | teacher minutes | driver success per round | frames "
            "| student success, 100 greedy episodes (95% interval) | wall clock, minutes |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
        ]
    )
    with open(out, "w") as f:
        f.write(text)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds")
    parser.add_argument("--logdir", default="runs/vision", help="where the runs live")
    parser.add_argument("--out", default="docs/vision-seeds.md", help="the table's file")
    parser.add_argument("--report", action="store_true", help="only rewrite the table")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    for seed in [] if args.report else seeds:
        run = f"cam-s{seed}"
        flags = [f"--env_id={ENV_ID}", f"--seed={seed}", "--eval_episodes=100"]
        common.run_unless_done(
            common.trainer_command(args.logdir, run, flags), os.path.join(args.logdir, run)
        )
        report(args.logdir, seeds, args.out, load)
    print(report(args.logdir, seeds, args.out, load), file=sys.stderr)


if __name__ == "__main__":
    main()
