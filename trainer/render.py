"""Film a policy: MP4, GIF, a PNG contact sheet and render.json in `<run>/render/<time>/`.

Headless (pybullet DIRECT, TinyRenderer) with our own camera: the env's own
960x720 `render()` manages about 2 frames/s here, ours at 320x240 about ten times that.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import io
import json
import os
import shutil
import sys
import time

import numpy as np
from PIL import Image, ImageDraw

from trainer import config, envs, runs
from trainer.config import RenderConfig

# Where the camera looks: between the arm's start and the tray, a little above the table.
CAMERA_TARGET = (0.5, 0.05, 0.12)
SHEET_COLUMNS, SHEET_ROWS = 4, 2
GIF_STRIDE = 3
# Films of random actions go to LOGDIR/random-policy/render/<time>/, whatever runs exist.
RANDOM_DIR = "random-policy"


class RenderError(Exception):
    """A run, policy or env that cannot be filmed; one line for the user."""


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to film and where the result goes."""

    env_id: str
    policy: str  # "random" or a SavedModel directory
    out_root: str  # the run directory, or LOGDIR/random-policy for random actions


def plan(cfg: RenderConfig) -> Plan:
    """Finds the run and policy without loading anything heavy; RenderError says what is missing."""
    if cfg.run:
        run_dir = os.path.join(cfg.logdir, cfg.run)
        if not os.path.isfile(os.path.join(run_dir, "config.json")):
            raise RenderError(runs.missing_run(cfg.logdir, cfg.run))
    else:
        run_dir = runs.latest_run(cfg.logdir)
    run_cfg = None
    if run_dir is not None:
        try:
            run_cfg = config.load(os.path.join(run_dir, "config.json"))
        except ValueError as e:
            raise RenderError(str(e)) from None
    env_id = run_cfg.env_id if run_cfg else cfg.env_id
    if cfg.policy == "random":
        # Random actions are no run's work: their films never land among a run's renders.
        env_id = run_cfg.env_id if cfg.run else cfg.env_id
        return Plan(env_id, "random", os.path.join(cfg.logdir, RANDOM_DIR))
    if run_dir is None and not cfg.policy:
        raise RenderError(
            f"no run found under {cfg.logdir}; train one with `make train`, "
            "or film random actions with --policy=random"
        )
    policy_dir = cfg.policy or os.path.join(run_dir, "policy")
    previous = f"{policy_dir}.old"  # a trainer between the two renames of an export
    if not cfg.policy and not os.path.isdir(policy_dir) and os.path.isdir(previous):
        policy_dir = previous
    if not os.path.isfile(os.path.join(policy_dir, "saved_model.pb")):
        raise RenderError(
            f"no exported policy in {policy_dir}; `make train` writes it at every checkpoint"
        )
    return Plan(env_id, policy_dir, run_dir or os.path.dirname(os.path.abspath(policy_dir)))


class Camera:
    """Our own view of the scene through pybullet's TinyRenderer."""

    def __init__(self, cfg: RenderConfig):
        import pybullet as p

        self._p = p
        self._size = (cfg.width, cfg.height)
        self._view = p.computeViewMatrixFromYawPitchRoll(
            cameraTargetPosition=CAMERA_TARGET,
            distance=cfg.distance,
            yaw=cfg.yaw,
            pitch=cfg.pitch,
            roll=0,
            upAxisIndex=2,
        )
        self._projection = p.computeProjectionMatrixFOV(
            fov=60, aspect=cfg.width / cfg.height, nearVal=0.1, farVal=10.0
        )

    def shoot(self) -> np.ndarray:
        width, height = self._size
        _, _, rgba, _, _ = self._p.getCameraImage(
            width,
            height,
            viewMatrix=self._view,
            projectionMatrix=self._projection,
            renderer=self._p.ER_TINY_RENDERER,
            flags=self._p.ER_NO_SEGMENTATION_MASK,
        )
        return np.asarray(rgba, np.uint8).reshape(height, width, 4)[:, :, :3]


class _PhysicsTap:
    """Stands in for the pybullet module inside the env's module while filming.

    The Kuka env's last step runs its scripted grasp (about 1,100 physics steps)
    inside one env step; counting physics steps films the grasp itself.
    """

    def __init__(self, module, every: int, on_frame):
        self._module, self._every, self._on_frame = module, every, on_frame
        self._count = 0

    def __getattr__(self, name):
        return getattr(self._module, name)

    def stepSimulation(self, *args, **kwargs):  # noqa: N802  (pybullet's name)
        result = self._module.stepSimulation(*args, **kwargs)
        self._count += 1
        if self._count % self._every == 0:
            self._on_frame()
        return result


def _env_module_with_pybullet(gym_env):
    """The module of the env's class (or a base) that calls pybullet as `p`, if any."""
    import pybullet

    for cls in type(gym_env).__mro__:
        module = sys.modules.get(cls.__module__)
        if getattr(module, "p", None) is pybullet:
            return module
    return None


def overlay(frame: np.ndarray, lines: list[str]) -> np.ndarray:
    """`frame` with `lines` of white text on a black box in its top left corner."""
    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    height = 12 * len(lines) + 6
    draw.rectangle((0, 0, max(len(line) for line in lines) * 6 + 8, height), fill=(0, 0, 0))
    for i, line in enumerate(lines):
        draw.text((4, 3 + 12 * i), line, fill=(255, 255, 255))
    return np.asarray(image)


def _load_policy(plan_: Plan, env, seed: int):
    from tf_agents.policies import py_tf_eager_policy, random_py_policy

    if plan_.policy == "random":
        return random_py_policy.RandomPyPolicy(env.time_step_spec(), env.action_spec(), seed=seed)
    try:
        policy = py_tf_eager_policy.SavedModelPyTFEagerPolicy(
            plan_.policy, load_specs_from_pbtxt=True
        )
    except Exception as e:  # noqa: BLE001  (any load failure is the same answer)
        detail = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        raise RenderError(
            f"cannot load the policy in {plan_.policy}: {type(e).__name__}"
            + (f": {detail}" if detail else "")
        ) from e
    want = policy.time_step_spec.observation.shape
    have = env.time_step_spec().observation.shape
    if tuple(want) != tuple(have) or policy.action_spec.shape != env.action_spec().shape:
        raise RenderError(
            f"the policy in {plan_.policy} does not fit {plan_.env_id}: it takes observations "
            f"of shape {tuple(want)}, the env gives {tuple(have)}"
        )
    return policy


def render(cfg: RenderConfig, plan_: Plan, log=None) -> str:
    """Films `cfg.episodes` episodes; returns the output directory."""
    import imageio.v2 as imageio

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    env = envs.load(plan_.env_id, seed=cfg.seed)
    policy = _load_policy(plan_, env, cfg.seed)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    render_root = os.path.join(plan_.out_root, "render")
    out_dir = os.path.join(render_root, stamp)
    staging = os.path.join(render_root, f".{stamp}.tmp")
    os.makedirs(staging, exist_ok=True)
    try:
        result = _film(cfg, plan_, env, policy, staging, imageio, log)
        with open(os.path.join(staging, "render.json"), "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
        os.rename(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):  # no empty render/ left behind
            os.rmdir(render_root)
        raise
    return out_dir


def video_writer(path: str, fps: int):
    """An H.264 MP4 writer that players and browsers take (yuv420p), any even frame size."""
    import imageio.v2 as imageio

    return imageio.get_writer(
        path,
        fps=fps,
        codec="libx264",
        pixelformat="yuv420p",
        macro_block_size=2,
        ffmpeg_log_level="error",
    )


def _film(cfg, plan_, env, policy, out_dir, imageio, log) -> dict:
    camera = Camera(cfg)
    video = video_writer(os.path.join(out_dir, "video.mp4"), cfg.fps)
    gif_frames, episodes = [], []
    # The contact sheet shows the first episode that lifted the block, else the first.
    sheet = {"episode": None, "frames": []}
    state = {"episode": 0, "step": 0, "return": 0.0, "frames": 0, "status": "", "current": []}

    def on_frame(shot=None):
        lines = [
            f"episode {state['episode'] + 1}/{cfg.episodes}  step {state['step']}",
            f"return {state['return']:,.0f}{state['status']}",
        ]
        state["shot"] = camera.shoot() if shot is None else shot
        frame = overlay(state["shot"], lines)
        video.append_data(frame)
        if state["frames"] % GIF_STRIDE == 0:
            gif_frames.append(frame[::2, ::2])
        state["current"].append(frame)
        state["frames"] += 1

    module = _env_module_with_pybullet(env.gym.unwrapped)
    tap = _PhysicsTap(module.p, cfg.frame_stride, on_frame) if module else None
    start = time.time()
    if tap:
        module.p = tap
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the env prints each lift
            for episode in range(cfg.episodes):
                episodes.append(_episode(cfg, plan_, env, policy, episode, state, on_frame, tap))
                log(_describe(episodes[-1], episode, cfg.episodes))
                if pick_sheet(episodes) == episode:
                    sheet.update(episode=episode, frames=state["current"])
                state["current"] = []
    finally:
        if tap:
            module.p = tap._module
        video.close()
    seconds = time.time() - start
    imageio.mimsave(
        os.path.join(out_dir, "video.gif"), gif_frames, duration=1000 * GIF_STRIDE / cfg.fps, loop=0
    )
    _contact_sheet(sheet["frames"]).save(os.path.join(out_dir, "preview.png"))
    shown = episodes[sheet["episode"]]
    log(
        f"preview.png shows episode {sheet['episode'] + 1}"
        + {True: " (lifted)", False: " (no episode lifted the block)", None: ""}[shown["success"]]
    )
    return {
        "env_id": plan_.env_id,
        "policy": plan_.policy,
        "seed": cfg.seed,
        "width": cfg.width,
        "height": cfg.height,
        "fps": cfg.fps,
        "frame_stride": cfg.frame_stride,
        "frames": state["frames"],
        "frames_per_second": round(state["frames"] / seconds, 1),
        "episodes": episodes,
        "preview_episode": sheet["episode"] + 1,
    }


def _episode(cfg, plan_, env, policy, episode, state, on_frame, tap) -> dict:
    state.update(episode=episode, step=0, status="")
    state["return"] = 0.0
    first_frame = state["frames"]
    time_step = env.reset()
    on_frame()
    while not time_step.is_last():
        time_step = env.step(policy.action(time_step).action)
        state["step"] += 1
        state["return"] += float(time_step.reward)
        if tap is None and state["step"] % cfg.frame_stride == 0:
            on_frame()
    success = envs.is_success(plan_.env_id, float(time_step.reward))
    state["status"] = {True: "  LIFTED", False: "  missed", None: ""}[success]
    for _ in range(cfg.fps // 2):  # hold the last frame for half a second
        on_frame(state["shot"])
    return {
        "return": round(state["return"], 2),
        "length": state["step"],
        "success": success,
        "frames": state["frames"] - first_frame,
    }


def _describe(result: dict, episode: int, episodes: int) -> str:
    text = f"Episode {episode + 1}/{episodes}: return {result['return']:,.1f}"
    text += f", {result['length']} steps"
    if result["success"] is not None:
        text += ", lifted" if result["success"] else ", missed"
    return text


def pick_sheet(episodes: list[dict]) -> int:
    """Index of the episode the contact sheet shows: the first that lifted, else the first."""
    return next((i for i, e in enumerate(episodes) if e["success"]), 0)


def _contact_sheet(frames: list[np.ndarray]) -> Image.Image:
    """Frames spread evenly over one episode, its last one (the grasp's end) included."""
    count = SHEET_COLUMNS * SHEET_ROWS
    picks = np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int)
    height, width, _ = frames[0].shape
    sheet = Image.new("RGB", (width * SHEET_COLUMNS, height * SHEET_ROWS))
    for i, index in enumerate(picks):
        sheet.paste(
            Image.fromarray(frames[index]),
            ((i % SHEET_COLUMNS) * width, (i // SHEET_COLUMNS) * height),
        )
    return sheet
