"""Variants side by side, at equal env steps and at equal wall clock, from ablation studies.

Reads one or more OUT.json files of bench/ablation.py, each as PATH or PATH:RUN,RUN,...
to take only those runs, and groups the runs by variant (a run is VARIANT-sSEED). For
each variant it prints the median env steps and minutes to THRESHOLD greedy success,
with how many runs got there, and the median final success; with --out it draws the
curves in two panels, against env steps and against minutes since each run's start
(evaluations included, as bench/wallclock.py times them). Compare studies run on the
same machine: wall clock is the machine's as much as the variant's.
Usage:

    python -m bench.versus docs/default-20seeds-second-machine.json:default-s0,default-s1 \\
        docs/entropy-decay-20seeds.json --out versus.png
"""

from __future__ import annotations

import argparse
import math
import os
import statistics

from bench import common, wallclock


def gather(sources: list[tuple[str, list[str]]]) -> dict[str, dict[str, dict]]:
    """{variant: {run: entry}} from (path, runs) pairs; empty runs takes them all.
    KeyError names a run a file does not have, or one taken twice (two studies of the
    same variant: choose with PATH:RUN,...), or says that no run is timed."""
    groups: dict[str, dict[str, dict]] = {}
    for path, wanted in sources:
        runs = wallclock.load(path)
        missing = sorted(set(wanted) - set(runs))
        if missing:
            raise KeyError(f"{path} has no timed run {', '.join(missing)}")
        for name in wanted or sorted(runs):
            group = groups.setdefault(common.split_run(name)[0], {})
            if name in group:
                raise KeyError(f"run {name} is taken twice; choose runs with PATH:RUN,...")
            group[name] = runs[name]
    if not groups:
        raise KeyError("no timed run (one with start_seconds, written since 2026-11-30)")
    return groups


def steps_to(entry: dict, threshold: float) -> float:
    """Env steps at the run's first evaluation at `threshold` or more (inf if never)."""
    return next((steps for steps, rate, *_ in entry["evals"] if rate >= threshold), math.inf)


def describe(name: str, runs: dict, threshold: float) -> str:
    steps = sorted(steps_to(entry, threshold) for entry in runs.values())
    minutes = sorted(wallclock.minutes_to(entry, threshold) for entry in runs.values())
    finals = [entry["evals"][-1][1] for entry in runs.values()]
    last = max(entry["evals"][-1][0] for entry in runs.values())
    reached = sum(not math.isinf(s) for s in steps)
    median_steps = statistics.median(steps)
    at = "never" if math.isinf(median_steps) else f"{median_steps / 1e6:.2f}M env steps"
    return (
        f"{name}: {reached} of {len(runs)} runs reached {threshold:.0%}; median {at}, "
        f"{wallclock.shown(statistics.median(minutes))}; median success "
        f"{statistics.median(finals):.0%} at the last evaluation ({last / 1e6:.2f}M)"
    )


def plot(groups: dict[str, dict[str, dict]], threshold: float, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (by_steps, by_clock) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for colour, (name, runs) in enumerate(sorted(groups.items())):
        for index, entry in enumerate(runs.values()):
            rates = [100 * rate for _, rate, *_ in entry["evals"]]
            steps = [s / 1e6 for s, *_ in entry["evals"]]
            minutes = [(entry["start_seconds"] + t) / 60 for *_, t in entry["evals"]]
            style = {"color": f"C{colour}", "alpha": 0.6, "markersize": 3}
            label = name if index == 0 else None
            by_steps.plot(steps, rates, "o-", label=label, **style)
            by_clock.plot(minutes, rates, "o-", **style)
    for axes, label in ((by_steps, "env steps (millions)"), (by_clock, "minutes since start")):
        axes.axhline(100 * threshold, color="black", linewidth=0.8, linestyle="--")
        axes.set_xlim(left=0)
        axes.set_ylim(0, 102)
        axes.set_xlabel(label)
        axes.grid(alpha=0.3)
    by_steps.set_ylabel("greedy grasp success (%)")
    by_steps.legend(loc="lower right", fontsize="small")
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _source(text: str) -> tuple[str, list[str]]:
    path, _, runs = text.partition(":")
    if not os.path.isfile(path):
        raise argparse.ArgumentTypeError(f"{path} is not a file")
    return path, [run for run in runs.split(",") if run]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "data", nargs="+", type=_source, help="an OUT.json of bench/ablation.py[:RUN,RUN,...]"
    )
    parser.add_argument("--threshold", type=float, default=0.8, help="greedy success to time")
    parser.add_argument("--out", default="", help="PNG of the curves (none if empty)")
    args = parser.parse_args()
    try:
        groups = gather(args.data)
    except KeyError as e:
        parser.error(e.args[0])
    for name, runs in sorted(groups.items()):
        print(describe(name, runs, args.threshold))
    if args.out:
        plot(groups, args.threshold, args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
