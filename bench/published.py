"""SAC against rl-zoo3's published scores: SEEDS runs per env at its budget, one table.

rl-zoo3 publishes, per algorithm and env, the mean greedy return of its trained agent
after a budget of env steps (benchmark.md, DLR-RM/rl-baselines3-zoo at 0088472b: one
run each, evaluated over 150,000 env steps). Each (env, seed) here is one `python -m
trainer.task --agent=sac` run of the env's budget with SAC's defaults (rl-zoo3's
pybullet settings, trainer/config.py), evaluated greedily EVALS times. The goal
(issue 27): the median seed's final mean return within 10% of the published score, or
better. Runs go seed by seed, every env before the next seed; a finished run is not
trained again and an interrupted one resumes, and the finished runs are kept in OUT's
.json, so the study goes on from a fresh clone: hours of machine time, in any number of
sittings.
Usage:

    python -m bench.published --envs ReacherBulletEnv-v0 --seeds 3
    python -m bench.published --envs ReacherBulletEnv-v0,HalfCheetahBulletEnv-v0 --report
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys

from bench import common

# rl-zoo3's SAC scores: env -> (env steps, mean return, greedy episodes per evaluation
# here: a Reacher episode is 150 steps, a locomotion one up to 1,000).
PUBLISHED = {
    "ReacherBulletEnv-v0": (300_000, 18.062, 100),
    "HalfCheetahBulletEnv-v0": (1_000_000, 2792.170, 10),
    "AntBulletEnv-v0": (1_000_000, 3073.114, 10),
    "HopperBulletEnv-v0": (1_000_000, 2603.494, 10),
    "Walker2DBulletEnv-v0": (1_000_000, 2292.266, 10),
}
WITHIN = 0.10


def run_name(env_id: str, seed: int) -> str:
    """reacher-s0 for ReacherBulletEnv-v0's seed 0."""
    return common.run_name(env_id.removesuffix("BulletEnv-v0").lower(), seed)


def verdict(finals: list[float], score: float) -> str:
    """Whether the median final return is within WITHIN of `score` or above it."""
    median = statistics.median(finals)
    if median >= score - WITHIN * abs(score):
        return "met"
    return f"not met ({median / score:.0%} of it)" if score > 0 else "not met"


def report(args, finals: dict[str, list[float]], commands: list[str], steps: dict) -> str:
    command = shlex.join(a for a in sys.argv[1:] if a != "--report")
    lines = [
        "# SAC against rl-zoo3's published scores",
        "",
        f"Written by `python -m bench.published {command}` on {os.cpu_count()} cores (no GPU). "
        "Final mean greedy return per seed, against rl-zoo3's benchmark.md (SAC, one run, "
        f"150,000 env steps of evaluation); the goal is a median within {WITHIN:.0%} of it "
        "or better; open until every seed has run.",
        "",
        "| env | env steps | published | seeds: final mean return | median | goal |",
        "|---|---|---|---|---|---|",
    ]
    for env_id, returns in finals.items():
        budget, score, _ = PUBLISHED[env_id]
        shorter = "" if steps[env_id] == budget else f" (not the published {budget:,})"
        cells = ", ".join(f"{r:,.1f}" for r in returns) or "-"
        median = f"{statistics.median(returns):,.1f}" if returns else "-"
        goal = verdict(returns, score) if len(returns) == args.seeds else "open"
        lines.append(
            f"| {env_id} | {steps[env_id]:,}{shorter} | {score:,.1f} | {cells} | {median} | "
            f"{goal} |"
        )
    lines += ["", "Commands (each resumes if interrupted):", "", "```", *commands, "```", ""]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--envs", default="ReacherBulletEnv-v0", help=f"comma-separated of {', '.join(PUBLISHED)}"
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..SEEDS-1 per env")
    parser.add_argument("--evals", type=int, default=5, help="greedy evaluations per run")
    parser.add_argument(
        "--steps", type=int, default=0, help="env steps per run (0: each env's published budget)"
    )
    common.add_study_arguments(parser, "published", "sac-published.md")
    return parser


def main() -> None:
    parser = _parser()
    args = parser.parse_args()
    envs = [env for env in args.envs.split(",") if env]
    unknown = [env for env in envs if env not in PUBLISHED]
    if unknown or not envs:
        parser.error(f"unknown envs {', '.join(unknown)}; known: {', '.join(PUBLISHED)}")
    data = common.saved_path(parser, args.out)
    steps = {env: args.steps or PUBLISHED[env][0] for env in envs}
    plan = [
        (env, seed, _command(args, env, seed, steps[env]))
        for seed in range(args.seeds)
        for env in envs
    ]
    commands = [common.shown(command) for _, _, command in plan]
    saved = common.load_saved(data)
    for env, seed, command in plan:
        run = run_name(env, seed)
        run_dir = os.path.join(_logdir(args, steps[env]), run)
        entry = common.finished_entry(saved, run, command, run_dir, train=not args.report)
        if entry is None:
            continue
        saved[run] = entry
        common.write_saved(data, saved)
        # Every finished run of the plan, not only those before this one: a sitting that
        # resumes at a later seed rewrites the whole table.
        common.write_report(args.out, report(args, _finals(plan, saved, envs), commands, steps))
    print(report(args, _finals(plan, saved, envs), commands, steps))


def _logdir(args, steps: int) -> str:
    return os.path.join(args.logdir, f"{steps // 1000}k")


def _command(args, env: str, seed: int, steps: int) -> list[str]:
    flags = [
        *("--agent=sac", f"--env_id={env}", f"--seed={seed}"),
        f"--total_steps={steps}",
        f"--eval_interval={max(steps // args.evals, 1)}",
        f"--eval_episodes={PUBLISHED[env][2]}",
        *args.extra,
    ]
    return common.trainer_command(_logdir(args, steps), run_name(env, seed), flags)


def _finals(plan, saved: dict, envs: list[str]) -> dict[str, list[float]]:
    """Each env's final mean returns, in seed order, of the runs trained with the plan's
    command."""
    finals: dict[str, list[float]] = {env: [] for env in envs}
    for env, seed, command in plan:
        entry = saved.get(run_name(env, seed))
        if entry and entry["command"] == common.shown(command):
            finals[env].append(entry["result"]["mean_return"])
    return finals


if __name__ == "__main__":
    main()
