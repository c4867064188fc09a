"""Why the defaults: variants of the agent, several seeds each, one table.

Each (variant, seed) is one `python -m trainer.task` run of STEPS env steps with the
variant's flags, evaluated greedily every EVAL_INTERVAL steps. Runs go seed by
seed with the variants interleaved (seed 0 of every variant, then seed 1, ...),
so a noisy hour of the machine does not land on one variant; a finished run
(eval.json exists) is not trained again and an interrupted one resumes from its
checkpoint, so the script can be re-run at any time. The report is rewritten
after every run, so a partial table is always there; beside it, OUT with the
suffix .json keeps each finished run's evaluations and command, so a study
committed half-way goes on from there in a fresh clone without its run
directories (a run is taken from that file only if its command is unchanged).
Usage:

    python -m bench.ablation --steps 1000000 --seeds 3
    python -m bench.ablation --steps 300000 --seeds 8 --variants old-reward,default \\
        --out docs/drive-down.md
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys

from bench import common  # noqa: E402
from bench.variants import NAMED, SPACE, VARIANTS  # noqa: E402


def _millions(steps: int) -> str:
    """Env steps in millions to the nearest 10,000, no trailing zeros: 0.1M, 0.08M."""
    return f"{steps / 1e6:.2f}".rstrip("0").rstrip(".") + "M"


def _cell_steps(hits) -> str:
    """Median env steps to a threshold over seeds, and how many seeds reached it."""
    reached = [h[0] for h in hits if h]
    if not reached:
        return f"not reached (0/{len(hits)})"
    median = statistics.median(reached) if len(reached) == len(hits) else None
    text = f"{median / 1e6:.2f}M" if median is not None else "-"
    return (
        f"{text} ({len(reached)}/{len(hits)}; "
        + ", ".join(_millions(h[0]) if h else "never" for h in hits)
        + ")"
    )


def summary_row(name: str, results: list[tuple[dict, list]]) -> str:
    finals = [100 * r["success_rate"] for r, _ in results]
    lengths = [r["mean_length"] for r, _ in results]
    down = sum(length < common.DRIVE_DOWN_LENGTH for length in lengths)
    minutes = statistics.median(rows[-1][4] / 60 for _, rows in results if rows)
    to = lambda rate: _cell_steps([common.first(rows, rate) for _, rows in results])  # noqa: E731
    return (
        f"| {name} | {len(results)} | {to(0.5)} | {to(0.8)}"
        f" | {statistics.mean(finals):.0f}% ({min(finals):.0f}-{max(finals):.0f}%)"
        f" | {down}/{len(results)} | {minutes:.0f} min |"
    )


def largest_fall(rows, threshold: float = 0.8) -> float:
    """The largest drop in success, in points, after a run first reached `threshold`."""
    rates = [rate for _, rate, _, _, _ in rows]
    start = next((i for i, rate in enumerate(rates) if rate >= threshold), None)
    if start is None:
        return 0.0
    peak, fall = rates[start], 0.0
    for rate in rates[start:]:
        peak, fall = max(peak, rate), max(fall, peak - rate)
    return 100 * fall


def stability_row(name: str, results: list[tuple[dict, list]], interval: int) -> str:
    """Seeds at 80% by 0.2M / 0.3M / the end, worst final success, the largest fall."""
    reached = [common.first(rows, 0.8) for _, rows in results]
    # Evaluations fall on the first iteration past each multiple of the interval.
    nominal = [hit[0] - hit[0] % interval if hit else None for hit in reached]
    by = lambda steps: sum(n is not None and n <= steps for n in nominal)  # noqa: E731
    finals = [100 * r["success_rate"] for r, _ in results]
    falls = [largest_fall(rows) for _, rows in results]
    worst_fall = max(range(len(falls)), key=falls.__getitem__)
    return (
        f"| {name} | {by(200_000)}/{len(results)} | {by(300_000)}/{len(results)}"
        f" | {sum(f >= 80 for f in finals)}/{len(results)}"
        f" | {statistics.median(finals):.0f}% (worst {min(finals):.0f}%)"
        f" | {falls[worst_fall]:.0f} points (seed {worst_fall}) |"
    )


def _report(args, done: dict, commands: list[str]) -> str:
    # The command that trains what is missing: --report only rewrites this file.
    command = shlex.join(a for a in sys.argv[1:] if a != "--report")
    finished, planned = sum(len(r) for r in done.values()), args.seeds * len(done)
    lines = [
        f"# Ablation at {args.steps:,} env steps",
        "",
        *([f"Partial: {finished} of {planned} runs have finished.", ""] * (finished < planned)),
        f"Written by `python -m bench.ablation {command}` on "
        f"{os.cpu_count()} cores (no GPU); runs interleaved seed by seed. Greedy success over "
        f"{args.eval_episodes} episodes every {args.eval_interval:,} steps. Steps to 50% / 80%: "
        "median over the seeds when every seed reached it, then how many did and each seed's "
        f"steps. Drive-down: runs whose final greedy episodes averaged under "
        f"{common.DRIVE_DOWN_LENGTH} steps (the arm lowered straight into the tray). Wall time: "
        "median from the first iteration to the final evaluation (the machine is shared, so "
        "read it as an upper bound).",
        "",
        "| variant | seeds | steps to 50% | steps to 80% | final success (mean, range) | "
        "drive-down | wall time |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, results in done.items():
        if results:
            lines.append(summary_row(f"`{key}`: {VARIANTS[key][0]}", results))
    lines += [
        "",
        "Stability: seeds at 80% greedy success by 0.2M and 0.3M env steps (the first "
        "evaluation past each), seeds that end at 80% or more, final success (median and "
        "worst seed), and the largest fall in success after a seed first reached 80%:",
        "",
        "| variant | 80% by 0.2M | 80% by 0.3M | ends at 80%+ | final success | largest fall |",
        "|---|---|---|---|---|---|",
    ]
    for key, results in done.items():
        if results:
            lines.append(stability_row(f"`{key}`", results, args.eval_interval))
    lines += ["", "Per run, final success and mean greedy episode length:", ""]
    for key, results in done.items():
        cells = ", ".join(
            f"{100 * r['success_rate']:.0f}% / {r['mean_length']:.0f}" for r, _ in results
        )
        if cells:
            lines.append(f"- `{key}`: {cells}")
    lines += ["", "Commands (each resumes if interrupted):", "", "```", *commands, "```", ""]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=1_000_000, help="env steps per run")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..SEEDS-1 per variant")
    parser.add_argument(
        "--variants",
        default=",".join(NAMED),
        help="comma-separated keys of bench/variants.py; 'space' adds both ends of each "
        "parameter of make tune's search (k8s/overlays/tune/trial/search-space.json)",
    )
    parser.add_argument("--eval_interval", type=int, default=100_000, help="steps between evals")
    parser.add_argument("--eval_episodes", type=int, default=100, help="greedy episodes per eval")
    common.add_study_arguments(parser, "ablation", "ablation.md")
    return parser


def main() -> None:
    parser = _parser()
    args = parser.parse_args()
    data = common.saved_path(parser, args.out)
    keys = [
        k
        for word in args.variants.split(",")
        if word
        for k in (SPACE if word == "space" else [word])
    ]
    unknown = [k for k in keys if k not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    logdir = os.path.join(args.logdir, f"{args.steps // 1000}k")
    done: dict[str, list] = {key: [] for key in keys}
    saved = common.load_saved(data)
    commands = []
    for seed in range(args.seeds):
        for key in keys:
            run = common.run_name(key, seed)
            flags = [
                f"--seed={seed}",
                f"--total_steps={args.steps}",
                f"--eval_interval={args.eval_interval}",
                f"--eval_episodes={args.eval_episodes}",
                *VARIANTS[key][1],
                *args.extra,
            ]
            command = common.trainer_command(logdir, run, flags)
            commands.append(common.shown(command))
            finished = common.finished_entry(
                saved, run, command, os.path.join(logdir, run), train=not args.report
            )
            if finished is None:
                continue
            done[key].append((finished["result"], [tuple(row) for row in finished["evals"]]))
            saved[run] = finished
            common.write_saved(data, saved)
            common.write_report(args.out, _report(args, done, commands))
    print(_report(args, done, commands))


if __name__ == "__main__":
    main()
