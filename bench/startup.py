"""Where a trainer's start-up and end go: seconds from launch to each line it prints.

The test suite launches about a hundred tiny trainers (two 300-step iterations each), so
their fixed costs (imports, env processes, the first update's trace, the exports, the
interpreter's exit) decide how long `make test` takes. This runs `python -m trainer.task`
with the tests' tiny flags `--trials` times, each a fresh run in a temp dir, and prints
the median (and range) of the seconds at which each milestone line appeared:

    python -m bench.startup --trials 5

Flags after `--` go to the trainer (e.g. `-- --agent=sac --learning_starts=100`).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time

from bench import common

# (milestone, the start of the line that marks it); "exit" is the process's end.
MILESTONES = [
    ("run directory checked", "Run directory:"),
    ("TensorFlow loaded", "Learning on "),
    ("first iteration recorded", "step "),
    ("evaluation started", "evaluating:"),
    ("done", "Done:"),
]


def trial(command: list[str]) -> dict[str, float]:
    """Seconds from launching `command` to each milestone line it printed, and to its exit."""
    start = time.monotonic()
    proc = subprocess.Popen(
        command, cwd=common.ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    seen: dict[str, float] = {}
    for line in proc.stderr:
        for name, prefix in MILESTONES:
            if name not in seen and line.startswith(prefix):
                seen[name] = time.monotonic() - start
    if proc.wait() != 0:
        raise SystemExit(f"error: {common.shown(command)} exited {proc.returncode}")
    seen["exit"] = time.monotonic() - start
    return seen


def report(trials: list[dict[str, float]]) -> list[str]:
    """Per milestone: median seconds and range over the trials that reached it."""
    lines = []
    for name in [name for name, _ in MILESTONES] + ["exit"]:
        times = sorted(t[name] for t in trials if name in t)
        if times:
            span = f"({times[0]:.1f}-{times[-1]:.1f})"
            lines.append(f"  {name:26s} {statistics.median(times):5.1f} {span}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=5, help="fresh tiny runs to time")
    parser.add_argument("trainer_flags", nargs="*", help="after --: more trainer flags")
    args = parser.parse_args()
    trials = []
    for index in range(args.trials):
        with tempfile.TemporaryDirectory() as logdir:  # a fresh run each time
            command = common.trainer_command(
                logdir, "startup", [*common.TINY_FLAGS, *args.trainer_flags]
            )
            trials.append(trial(command))
        print(f"trial {index + 1}/{args.trials}: exit at {trials[-1]['exit']:.1f} s", flush=True)
    print(f"seconds from launch, median (range) of {args.trials} tiny runs:")
    print("\n".join(report(trials)))


if __name__ == "__main__":
    main()
