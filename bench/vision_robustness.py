"""The camera policy under changes it never saw in training (issue 28, goal 6).

Greedy success of a camera run's student, and of its teacher (which reads the state,
not the frame), with the camera moved 2 cm, turned 2 degrees, lit from elsewhere, and
with the block starting beyond the far edge of the range KukaGymEnv draws from:

    python -m bench.vision_robustness runs/vision/cam-s1 --episodes 100
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys

# (name, KukaGraspCam-v0 constructor changes); the camera as trainer/camera.Camera.
CONDITIONS = (
    ("as trained", {}),
    ("camera carried 2 cm along x", {"camera": ("moved", {"shift": 0.02})}),
    ("camera turned 2 degrees in place", {"camera": ("moved", {"turn": 2.0})}),
    ("light from the front, low", {"camera": ("light", {"light_direction": (0.0, -1.0, 0.5)})}),
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

    vision, model = dagger.load_student(run_dir)
    learner, teacher = (
        student.params(model),
        labelling.teacher_params(vision.teacher or os.path.join(run_dir, "teacher")),
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a finished KukaGraspCam-v0 run")
    parser.add_argument("--episodes", type=int, default=100, help="greedy episodes per row")
    parser.add_argument("--seed", type=int, default=1000, help="block placements' seed")
    parser.add_argument("--out", default="", help="write the table here too")
    args = parser.parse_args(argv)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    rows = measure(args.run_dir, args.episodes, args.seed, log=lambda s: print(s, flush=True))
    text = "\n".join(
        [
            f"Greedy success over {args.episodes} episodes, run `{args.run_dir}` "
            f"(`python -m bench.vision_robustness {args.run_dir} --episodes {args.episodes}`; "
            f"load at the start: {load}).",
            "",
            "| condition | student (camera) | teacher (state) |",
            "| --- | --- | --- |",
            *(f"| {name} | {s:.0%} | {t:.0%} |" for name, s, t in rows),
            "",
        ]
    )
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(text, file=sys.stderr)


if __name__ == "__main__":
    main()
