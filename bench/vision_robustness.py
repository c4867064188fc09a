"""The camera policy under changes it never saw in training (issue 28, goal 6).

Greedy success of a camera run's student, and of its teacher (which reads the state,
not the frame), with the camera moved 2 cm, turned 2 degrees, lit from elsewhere, the
tray (the surface under the block) in another colour, and with the block starting
beyond the far edge of the range KukaGymEnv draws from:

    python -m bench.vision_robustness runs/vision/cam-s1 runs/vision/cam-s2 --episodes 100
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import statistics
import subprocess
import sys

# (name, KukaGraspCam-v0 constructor changes); the camera as trainer/camera.Camera.
CONDITIONS = (
    ("as trained", {}),
    ("camera carried 2 cm along x", {"camera": ("moved", {"shift": 0.02})}),
    ("camera turned 2 degrees in place", {"camera": ("moved", {"turn": 2.0})}),
    ("light from the front, low", {"camera": ("light", {"light_direction": (0.0, -1.0, 0.5)})}),
    ("tray tinted brown (its texture kept)", {"tray_rgba": (0.55, 0.35, 0.2, 1.0)}),
    ("block 0-12 cm beyond the far edge (x + 0.12 m)", {"block_offset": (0.12, 0.0)}),
)


def env_kwargs(size: int, change: dict) -> dict:
    """The env's constructor arguments for one condition."""
    from trainer import camera

    kwargs = {"size": size, **{k: v for k, v in change.items() if k != "camera"}}
    if "camera" in change:
        how, args = change["camera"]
        base = camera.Camera()
        kwargs["camera"] = (
            base.moved(**args) if how == "moved" else dataclasses.replace(base, **args)
        )
    return kwargs


def measure(run_dir: str, episodes: int, seed: int, log=print) -> list[tuple[str, float, float]]:
    """[(condition, student success, teacher success)] over `episodes` greedy episodes."""
    from trainer import actors, dagger, envs, labelling, student
    from trainer.rundir import RunDir

    vision, model = dagger.load_student(run_dir)
    learner, teacher = (
        student.params(model),
        labelling.teacher_params(vision.teacher or RunDir(run_dir).file(RunDir.TEACHER)),
    )
    rows = []
    worker = f"{labelling.__name__}:env_worker"
    with actors.ActorPool(envs.CAMERA_ENV_ID, 2, seed, worker=worker) as pool:
        for name, change in CONDITIONS:
            kwargs = env_kwargs(vision.image_size, change)
            rates = [
                sum(bool(e.success) for e in pool.evaluate(params, episodes)) / episodes
                for params in ((None, learner, kwargs), (teacher, None, kwargs))
            ]
            log(f"{name}: student {rates[0]:.0%}, teacher {rates[1]:.0%}")
            rows.append((name, *rates))
    return rows


def _measured(run_dir: str, episodes: int, seed: int, log) -> list:
    """measure()'s rows, kept in RUN/robustness-<episodes>.json so a rerun goes on with
    the runs not measured yet."""
    path = os.path.join(run_dir, f"robustness-{episodes}.json")
    try:
        with open(path) as f:
            saved = json.load(f)
        if saved["seed"] == seed and [row[0] for row in saved["rows"]] == [
            name for name, _ in CONDITIONS
        ]:
            return saved["rows"]
    except FileNotFoundError:
        pass
    rows = measure(run_dir, episodes, seed, log=log)
    with open(path, "w") as f:
        json.dump({"seed": seed, "rows": rows}, f)
    return rows


def table(results: dict[str, list], episodes: int, command: str, load: str) -> str:
    """Markdown: a row per condition; the student's and the teacher's success in each run
    (in the order given) and their medians."""
    names = ", ".join(os.path.basename(run.rstrip("/")) for run in results)

    def cells(name: str) -> str:
        out = []
        for column in (1, 2):  # the student's, then the teacher's
            rates = [next(r[column] for r in rows if r[0] == name) for rows in results.values()]
            out += [" / ".join(f"{r:.0%}" for r in rates), f"{statistics.median(rates):.0%}"]
        return " | ".join(out)

    return "\n".join(
        [
            f"Greedy success over {episodes} episodes per run and condition (`{command}`; "
            f"load at the start: {load}). The student sees the camera; the teacher reads the "
            "state, so its column moves with the block placements alone.",
            "",
            f"| condition | student ({names}) | median | teacher ({names}) | median |",
            "| --- | --- | --- | --- | --- |",
            *(f"| {name} | {cells(name)} |" for name, _ in CONDITIONS),
            "",
        ]
    )


def _indented(line: str) -> None:
    print(f"  {line}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", help="finished KukaGraspCam-v0 runs")
    parser.add_argument("--episodes", type=int, default=100, help="greedy episodes per row")
    parser.add_argument("--seed", type=int, default=1000, help="block placements' seed")
    parser.add_argument("--out", default="", help="write the table here too, after each run")
    args = parser.parse_args(argv)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    command = shlex.join(["python", "-m", "bench.vision_robustness", *(argv or sys.argv[1:])])
    results = {}
    for run_dir in args.run_dirs:
        print(f"{run_dir}:", flush=True)
        results[run_dir] = _measured(run_dir, args.episodes, args.seed, _indented)
        text = table(results, args.episodes, command, load)
        if args.out:
            with open(args.out, "w") as f:
                f.write(text)
    print(text, file=sys.stderr)


if __name__ == "__main__":
    main()
