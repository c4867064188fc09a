"""What the learning benches share: running a trainer unless it finished, reading its evals,
and the finished runs a study saves beside its report."""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys

from trainer.rundir import RunDir, write_atomic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The tiny run the tests train about a hundred times (tests/conftest.py), and which
# bench/startup.py times: a few hundred env steps, two iterations, two checkpoints,
# finished episodes (a Kuka episode lasts about 200 steps) and an export.
TINY_FLAGS = [
    "--total_steps=600",
    "--num_envs=2",
    "--collect_steps=300",
    "--checkpoint_interval=300",
    "--eval_interval=0",
    "--eval_episodes=2",
    "--actor_layers=16",
    "--value_layers=16",
]
# Greedy episodes shorter than this ended by driving the gripper down into the tray
# (145-150 steps) instead of reaching for the block (about 200).
DRIVE_DOWN_LENGTH = 160


def trainer_command(logdir: str, run: str, flags, command: str = "") -> list[str]:
    """`python -m trainer.task [COMMAND] --logdir --run FLAGS` (no COMMAND: train)."""
    words = [command] if command else []
    return [
        sys.executable,
        "-m",
        "trainer.task",
        *words,
        f"--logdir={logdir}",
        f"--run={run}",
        *flags,
    ]


def shown(command: list[str]) -> str:
    """The command as a user types it, with paths relative to the repository."""
    return shlex.join(["python", *[arg.replace(ROOT + os.sep, "") for arg in command[1:]]])


def run_unless_done(command: list[str], run_dir: str) -> dict:
    """Runs (or resumes) the training `command` unless `run_dir` has eval.json; returns it."""
    eval_json = RunDir(run_dir).eval_json
    if not os.path.exists(eval_json):
        print(shown(command), flush=True)
        subprocess.run(command, cwd=ROOT, check=True)
    with open(eval_json) as f:
        return json.load(f)


def _first_record(run_dir: str) -> float:
    """Wall time of the run's first recorded iteration: where `evals` counts from."""
    from trainer import evaluate

    train = evaluate.read_scalar_events(RunDir(run_dir).train_events)
    return min(wall for _, _, wall in train["Metrics/EnvStepsPerSecond"])


def evals(run_dir: str) -> list[tuple[int, float, float, float, float]]:
    """[(env steps, success, mean return, mean length, seconds since start)] per evaluation."""
    from trainer import evaluate

    start = _first_record(run_dir)
    scalars = evaluate.read_scalar_events(RunDir(run_dir).eval_events)
    lengths = {s: v for s, v, _ in scalars.get("Eval/AverageEpisodeLength", [])}
    rates = {s: v for s, v, _ in scalars.get("Eval/SuccessRate", [])}  # none off Kuka
    return [
        (step, rates.get(step, math.nan), ret, lengths.get(step, math.nan), wall - start)
        for step, ret, wall in scalars.get("Eval/AverageReturn", [])
    ]


def start_seconds(run_dir: str) -> float:
    """Seconds from the run's start (its config.json, written about 0.4 s after launch:
    bench/startup.py) to its first recorded iteration, which `evals` counts from."""
    return _first_record(run_dir) - os.path.getmtime(RunDir(run_dir).config)


def first(rows, threshold: float):
    """(env steps, seconds) of the first evaluation with success at or above `threshold`."""
    return next(((s, t) for s, rate, _, _, t in rows if rate >= threshold), None)


def run_name(variant: str, seed: int) -> str:
    """A study's run of `variant` with `seed`: VARIANT-sSEED."""
    return f"{variant}-s{seed}"


def split_run(name: str) -> tuple[str, str]:
    """(VARIANT, SEED) of a run named by run_name."""
    parts = name.rsplit("-s", 1)
    return parts[0], parts[-1]


def load_saved(path: str) -> dict:
    """The finished runs a study saved beside its report: {run: {command, launches,
    result, evals, start_seconds}}; start_seconds times a run's start-up, which evals'
    seconds leave out."""
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise SystemExit(f"{path} is not JSON ({e}); restore it from git or delete it") from None


def finished_entry(saved: dict, run: str, command: list[str], run_dir: str, train: bool):
    """`run`'s entry of the saved runs: from its directory, from `saved` if it was
    trained with today's command, or trained now when `train`; None if it has not
    finished and is not to be trained."""
    entry = saved.get(run)
    on_disk = os.path.exists(RunDir(run_dir).eval_json)
    if entry and entry["command"] == shown(command) and not on_disk:
        return entry
    if not (train or on_disk):
        return None
    result = run_unless_done(command, run_dir)
    with open(RunDir(run_dir).file(RunDir.COMMAND)) as f:
        launches = f.read().splitlines()
    return {
        # What the run was trained with, which a finished run on disk may not share
        # with today's command: only an entry trained with today's is reused.
        "command": launches[0].replace(ROOT + os.sep, ""),
        # A resumed run's seconds include the time it was down (bench/wallclock.py).
        "launches": len(launches),
        "result": result,
        "evals": evals(run_dir),
        "start_seconds": start_seconds(run_dir),
    }


def write_report(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_atomic(path, text)


def write_saved(path: str, saved: dict) -> None:
    write_report(path, json.dumps(saved, indent=1, sort_keys=True) + "\n")


def add_study_arguments(parser, runs: str, report: str) -> None:
    """What every resumable study takes: its runs root (runs/RUNS), its report
    (docs/REPORT, the finished runs beside it as .json), --report, and trainer flags."""
    parser.add_argument("--logdir", default=os.path.join(ROOT, "runs", runs), help="runs root")
    parser.add_argument(
        "--out",
        default=os.path.join(ROOT, "docs", report),
        help="report file (Markdown); the finished runs go beside it, as .json",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="write the report from the runs that finished, and train nothing",
    )
    parser.add_argument("extra", nargs="*", help="further trainer flags for every run, after --")


def saved_path(parser, out: str) -> str:
    """Where a study keeps its finished runs: its report's name with .json."""
    if out.endswith(".json"):
        parser.error("--out names the report; its runs go to the same name with .json")
    return os.path.splitext(out)[0] + ".json"
