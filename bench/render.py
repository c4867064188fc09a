"""Render speed on one core: the env's own render() against our camera, with encoding.

Pins itself (and so ffmpeg) to one core, steps the physics between frames, and
prints frames per second of both. Usage:

    python bench/render.py --frames 200
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=200, help="frames of our camera to time")
    parser.add_argument("--env_frames", type=int, default=5, help="frames of env.render() to time")
    parser.add_argument("--width", type=int, default=320, help="our frame width")
    parser.add_argument("--height", type=int, default=240, help="our frame height")
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    import imageio.v2 as imageio
    import numpy as np

    from trainer import envs, render
    from trainer.config import RenderConfig

    env = envs.load("KukaGrasp-v0", seed=0)
    env.reset()
    gym_env = env.gym.unwrapped
    action = np.zeros(3, np.float32)

    start = time.time()
    for _ in range(args.env_frames):
        env.step(action)
        gym_env.render(mode="rgb_array")
    env_fps = args.env_frames / (time.time() - start)

    camera = render.Camera(RenderConfig(width=args.width, height=args.height))
    with tempfile.TemporaryDirectory() as tmp:
        video = imageio.get_writer(
            os.path.join(tmp, "bench.mp4"),
            fps=30,
            codec="libx264",
            pixelformat="yuv420p",
            macro_block_size=2,
            ffmpeg_log_level="error",
        )
        start = time.time()
        for i in range(args.frames):
            time_step = env.step(action)
            if time_step.is_last():
                env.reset()
            video.append_data(render._overlay(camera.shoot(), [f"frame {i}", "bench"]))
        video.close()
        ours_fps = args.frames / (time.time() - start)
    print("one core, KukaGrasp-v0, physics stepped between frames")
    ours = f"ours {args.width}x{args.height} + overlay + H.264:"
    print(f"{'env render() 960x720:':<36} {env_fps:6.1f} frames/s")
    print(f"{ours:<36} {ours_fps:6.1f} frames/s  (goal >= 20)")


if __name__ == "__main__":
    main()
