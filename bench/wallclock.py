"""Greedy success against wall clock, from the runs an ablation study saved.

Reads OUT.json of bench/ablation.py (each run's evaluations, their seconds since the
run's first recorded iteration, and start_seconds, the start-up before it) and times
every run from its start: its config.json, written about 0.4 s after `python -m
trainer.task` starts (bench/startup.py). Evaluations are included, as they are in
`make train`; the study's evaluations run 100 greedy episodes, `make train`'s 50, so
its times are upper bounds for `make train` on the same machine. Prints each run's
minutes to THRESHOLD greedy success, their median and the worst; writes the curves.
Usage:

    python -m bench.wallclock docs/entropy-lr-linear-20seeds.json --out docs/wallclock.png

A variant that trains exactly as another study's runs did (--policy_average changes only
the evaluated policy: the same seed gives the same weights step for step) may take its
clock from them, measured on a quiet machine, with `--clock OTHER.json`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics

from bench import common


def load(path: str, skip=(), timed: bool = True) -> dict:
    """The runs of an OUT.json, less `skip`; if `timed`, only those with their own clock:
    a start-up time, and not resumed after a stop (its seconds include the time it was
    down). A run that takes its clock from another study (`clocked`) needs neither."""
    with open(path) as f:
        saved = json.load(f)
    return {
        name: entry
        for name, entry in saved.items()
        if name not in skip
        and (not timed or ("start_seconds" in entry and entry.get("launches", 1) == 1))
    }


def clocked(runs: dict, clock: dict) -> dict:
    """`runs` with each one's start-up and evaluation times taken from the run of the same
    seed in `clock`; ValueError if a seed is missing there, there twice, or evaluated at
    other steps."""
    by_seed: dict[str, dict] = {}
    for name, entry in clock.items():
        seed = common.split_run(name)[1]
        if seed in by_seed:
            raise ValueError(f"the clock has more than one run of seed {seed}")
        by_seed[seed] = entry
    out = {}
    for name, entry in runs.items():
        other = by_seed.get(common.split_run(name)[1])
        if other is None:
            raise ValueError(f"the clock has no run of {name}'s seed")
        if [row[0] for row in entry["evals"]] != [row[0] for row in other["evals"]]:
            raise ValueError(f"{name} evaluated at other steps than the clock's run")
        evals = [
            [*row[:-1], timed[-1]]
            for row, timed in zip(entry["evals"], other["evals"], strict=True)
        ]
        out[name] = {**entry, "evals": evals, "start_seconds": other["start_seconds"]}
    return out


def minutes_to(entry: dict, threshold: float) -> float:
    """Minutes from the run's start to its first evaluation at `threshold` or more
    (math.inf if it never got there)."""
    start = entry["start_seconds"]
    hit = next((t for _, rate, _, _, t in entry["evals"] if rate >= threshold), None)
    return math.inf if hit is None else (start + hit) / 60


def summary(runs: dict, threshold: float) -> tuple[float, float]:
    """(median, worst) minutes to `threshold` over the runs; inf counts as never."""
    times = sorted(minutes_to(entry, threshold) for entry in runs.values())
    return statistics.median(times), times[-1]


def shown(minutes: float) -> str:
    return "never" if math.isinf(minutes) else f"{minutes:.1f} min"


def plot(runs: dict, threshold: float, path: str) -> None:
    """Each run's greedy success at its evaluations against minutes since its start."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4), constrained_layout=True)
    for name, entry in sorted(runs.items()):
        times = [(entry["start_seconds"] + t) / 60 for *_, t in entry["evals"]]
        rates = [100 * rate for _, rate, *_ in entry["evals"]]
        axes.plot(times, rates, "o-", markersize=3, alpha=0.5, label=name)
    axes.axhline(100 * threshold, color="black", linewidth=0.8, linestyle="--")
    axes.set_xlim(left=0)
    axes.set_ylim(0, 102)
    axes.set_xlabel("minutes since the run's start (evaluations included)")
    axes.set_ylabel("greedy grasp success (%)")
    axes.grid(alpha=0.3)
    if len(runs) <= 10:
        axes.legend(loc="lower right", fontsize="small")
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data", help="an OUT.json that bench/ablation.py wrote")
    parser.add_argument("--threshold", type=float, default=0.8, help="greedy success to time")
    parser.add_argument("--out", default="", help="PNG of the curves (none if empty)")
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated runs to leave out, such as one paused while it trained "
        "(a resumed run is left out anyway, unless it takes its time from --clock)",
    )
    parser.add_argument(
        "--clock",
        default="",
        help="an OUT.json whose runs trained exactly as these did (same seeds, same "
        "weights step for step): time each run by the run of its seed there",
    )
    args = parser.parse_args()
    if not os.path.isfile(args.data):
        parser.error(f"{args.data} is not a file")
    skip = [name for name in args.skip.split(",") if name]
    with open(args.data) as f:
        unknown = sorted(set(skip) - set(json.load(f)))
    if unknown:
        parser.error(f"--skip names runs {args.data} does not have: {', '.join(unknown)}")
    runs = load(args.data, skip, timed=not args.clock)
    if not runs:
        parser.error(f"{args.data} has no run with start_seconds (written since 2026-11-30)")
    if args.clock:
        try:
            runs = clocked(runs, load(args.clock))
        except (OSError, ValueError) as e:
            parser.error(f"--clock {args.clock}: {e}")
    for name, entry in sorted(runs.items(), key=lambda item: minutes_to(item[1], args.threshold)):
        print(f"{name}: {shown(minutes_to(entry, args.threshold))} to {args.threshold:.0%}")
    median, worst = summary(runs, args.threshold)
    print(
        f"{len(runs)} runs: median {shown(median)}, worst {shown(worst)} to "
        f"{args.threshold:.0%} greedy success"
    )
    if args.out:
        plot(runs, args.threshold, args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
