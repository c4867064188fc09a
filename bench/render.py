"""Render speed on one core: the env's own render() against our camera, in interleaved pairs.

Pins itself (and so ffmpeg) to one core, steps the physics between frames, and
times a burst of the env's 960x720 `render()` and a burst of our camera (overlay
and H.264 encoding included) in turn, PAIRS times; prints each pair and the
median ratio with its range. Usage:

    python -m bench.render --pairs 3 --frames 100
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def _fps(frames: int, shoot, env) -> float:
    """Frames per second of `shoot()` with one env step before each frame."""
    import numpy as np

    action = np.zeros(3, np.float32)
    start = time.time()
    for _ in range(frames):
        if env.step(action).is_last():
            env.reset()
        shoot()
    return frames / (time.time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=3, help="interleaved pairs to time")
    parser.add_argument("--frames", type=int, default=100, help="frames of our camera per pair")
    parser.add_argument("--env_frames", type=int, default=5, help="env.render() frames per pair")
    parser.add_argument("--width", type=int, default=320, help="our frame width")
    parser.add_argument("--height", type=int, default=240, help="our frame height")
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    from trainer import envs, video
    from trainer.config import RenderConfig

    env = envs.load("KukaGrasp-v0", seed=0)
    env.reset()
    camera = video.Camera(RenderConfig(width=args.width, height=args.height))
    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        writer = video.video_writer(os.path.join(tmp, "bench.mp4"), 30)
        ours = lambda: writer.append_data(video.overlay(camera.shoot(), ["bench"]))  # noqa: E731
        theirs = lambda: env.gym.unwrapped.render(mode="rgb_array")  # noqa: E731
        for index in range(args.pairs):
            pairs.append((_fps(args.env_frames, theirs, env), _fps(args.frames, ours, env)))
            print(
                f"pair {index + 1}/{args.pairs}: env render() {pairs[-1][0]:.1f}, "
                f"ours {pairs[-1][1]:.1f} frames/s",
                flush=True,
            )
        writer.close()
    ratios = sorted(b / a for a, b in pairs)
    print(f"one core, KukaGrasp-v0, physics stepped between frames, {args.pairs} pairs")
    print(
        f"env render() 960x720: median {statistics.median(a for a, _ in pairs):.1f} frames/s; "
        f"ours {args.width}x{args.height} + overlay + H.264: median "
        f"{statistics.median(b for _, b in pairs):.1f} frames/s (goal >= 20)"
    )
    print(
        f"ours / env render(): median {statistics.median(ratios):.1f} "
        f"(range {ratios[0]:.1f}-{ratios[-1]:.1f})"
    )


if __name__ == "__main__":
    main()
