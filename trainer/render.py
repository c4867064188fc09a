"""Film a policy: MP4, GIF, a PNG contact sheet and render.json in `<run>/render/<time>/`.

This module decides what to film and where it goes, and runs the episodes; `video.py`
makes the pictures.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import io
import json
import os
import shutil
import sys
import tempfile
import time
import types

from trainer import envs, physics_hook, runs, video
from trainer.config import Config, RenderConfig, VisionConfig
from trainer.errors import UsageError
from trainer.rundir import RunDir

GIF_STRIDE = 3
# Films of random actions go to LOGDIR/random-policy/render/<time>/, whatever runs exist.
RANDOM_DIR = "random-policy"


class RenderError(UsageError):
    """A run, policy or env that cannot be filmed: bad input, one line, exit code 2."""


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to film and where the result goes."""

    env_id: str
    policy: str  # "random" or a SavedModel directory
    out_root: str  # the run directory, or LOGDIR/random-policy for random actions
    seed: int  # block placement (and random actions)
    image_size: int = 0  # KukaGraspCam-v0's frame side, 0 for other envs


def plan(cfg: Config, policy: str = "") -> Plan:
    """Finds the run and policy without loading anything heavy; RenderError says what is missing.

    `cfg` names the run (logdir, run; empty takes the newest), and the env and seed for
    random actions; `policy` is RenderConfig.policy.
    """
    if cfg.run:
        run_dir = os.path.join(cfg.logdir, cfg.run)
        if not os.path.isfile(RunDir(run_dir).config):
            raise RenderError(runs.missing_run(cfg.logdir, cfg.run))
    else:
        run_dir = runs.latest_run(cfg.logdir)
    run_cfg = None
    if run_dir is not None:
        try:
            run_cfg = RunDir(run_dir).load_config()
        except ValueError as e:
            raise RenderError(str(e)) from None
    env_id = run_cfg.env_id if run_cfg else cfg.env_id
    if policy == "random":
        # Random actions are no run's work: their films never land among a run's renders.
        env_id = run_cfg.env_id if cfg.run else cfg.env_id
        random_root = os.path.join(cfg.logdir, RANDOM_DIR)
        return Plan(env_id, "random", random_root, cfg.seed, _image_size(env_id, run_dir))
    if run_dir is None and not policy:
        raise RenderError(
            f"no run found under {cfg.logdir}; train one with `make train`, "
            "or film random actions with --policy=random"
        )
    policy_dir = policy or RunDir(run_dir).policy
    previous = f"{policy_dir}.old"  # a trainer between the two renames of an export
    if not policy and not os.path.isdir(policy_dir) and os.path.isdir(previous):
        policy_dir = previous
    if not os.path.isfile(os.path.join(policy_dir, "saved_model.pb")):
        raise RenderError(
            f"no exported policy in {policy_dir}; `make train` writes it at every checkpoint"
        )
    out_root = run_dir or os.path.dirname(os.path.abspath(policy_dir))
    return Plan(env_id, policy_dir, out_root, cfg.seed, _image_size(env_id, run_dir))


def _image_size(env_id: str, run_dir: str | None) -> int:
    """The camera run's frame side (its vision.json), 64 without a run; 0 for other envs."""
    if env_id != envs.CAMERA_ENV_ID:
        return 0
    try:
        with open(RunDir(run_dir or "").file(RunDir.VISION)) as f:
            return int(json.load(f)["image_size"])
    except (OSError, ValueError, KeyError):
        return VisionConfig.image_size


class _CameraPolicy:
    """A camera run's exported student as `render` plays policies: `action(time_step)`."""

    def __init__(self, path: str):
        import tensorflow as tf

        self._tf, self._serve = tf, tf.saved_model.load(path).signatures["action"]

    def action(self, time_step):
        inputs = {k: self._tf.constant(v[None]) for k, v in time_step.observation.items()}
        return types.SimpleNamespace(action=self._serve(**inputs)["action"][0].numpy())


def _load_policy(plan_: Plan, env, seed: int):
    from tf_agents.policies import py_tf_eager_policy, random_py_policy

    if plan_.policy == "random":
        return random_py_policy.RandomPyPolicy(env.time_step_spec(), env.action_spec(), seed=seed)
    if plan_.image_size:
        try:
            return _CameraPolicy(plan_.policy)
        except (OSError, KeyError, ValueError) as e:
            raise RenderError(f"cannot load the camera policy in {plan_.policy}: {e}") from e
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
    sized = {"size": plan_.image_size} if plan_.image_size else {}
    env = envs.load(plan_.env_id, seed=plan_.seed, **sized)
    policy = _load_policy(plan_, env, plan_.seed)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    render_root = RunDir(plan_.out_root).file(RunDir.RENDERS)
    os.makedirs(render_root, exist_ok=True)
    # Unique: two renders of one run started in the same second film side by side.
    staging = tempfile.mkdtemp(prefix=f".{stamp}-", suffix=".tmp", dir=render_root)
    try:
        result = _film(cfg, plan_, env, policy, staging, imageio, log)
        with open(os.path.join(staging, "render.json"), "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
        out_dir = _publish(staging, render_root, stamp)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):  # no empty render/ left behind
            os.rmdir(render_root)
        raise
    return out_dir


def _publish(staging: str, render_root: str, stamp: str) -> str:
    """Renames `staging` to render/STAMP, or STAMP-2, -3 ... when another render has it."""
    name, attempt = stamp, 1
    while True:
        out_dir = os.path.join(render_root, name)
        try:  # rename(2) onto a non-empty directory fails, so no film replaces another
            os.rename(staging, out_dir)
            return out_dir
        except OSError as e:
            if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
        attempt += 1
        name = f"{stamp}-{attempt}"


def _film(cfg, plan_, env, policy, out_dir, imageio, log) -> dict:
    camera = video.Camera(cfg)
    writer = video.video_writer(os.path.join(out_dir, "video.mp4"), cfg.fps)
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
        frame = video.overlay(video.inset(state["shot"], state.get("view")), lines)
        writer.append_data(frame)
        if state["frames"] % GIF_STRIDE == 0:
            gif_frames.append(frame[::2, ::2])
        state["current"].append(frame)
        state["frames"] += 1

    start = time.time()
    try:
        with (
            physics_hook.physics_steps(env.gym.unwrapped, cfg.frame_stride, on_frame) as hooked,
            contextlib.redirect_stdout(io.StringIO()),  # the env prints each lift
        ):
            for episode in range(cfg.episodes):
                episodes.append(_episode(cfg, plan_, env, policy, episode, state, on_frame, hooked))
                log(_describe(episodes[-1], episode, cfg.episodes))
                if video.pick_sheet(episodes) == episode:
                    sheet.update(episode=episode, frames=state["current"])
                state["current"] = []
    finally:
        writer.close()
    seconds = time.time() - start
    imageio.mimsave(
        os.path.join(out_dir, "video.gif"), gif_frames, duration=1000 * GIF_STRIDE / cfg.fps, loop=0
    )
    video.contact_sheet(sheet["frames"]).save(os.path.join(out_dir, "preview.png"))
    shown = episodes[sheet["episode"]]["success"]
    log(
        f"preview.png shows episode {sheet['episode'] + 1}"
        + {True: " (lifted)", False: " (no episode lifted the block)", None: ""}[shown]
    )
    return {
        "env_id": plan_.env_id,
        "policy": plan_.policy,
        "seed": plan_.seed,
        **{name: getattr(cfg, name) for name in ("width", "height", "fps", "frame_stride")},
        "frames": state["frames"],
        "frames_per_second": round(state["frames"] / seconds, 1),
        "episodes": episodes,
        "preview_episode": sheet["episode"] + 1,
    }


def _episode(cfg, plan_, env, policy, episode, state, on_frame, hooked: bool) -> dict:
    state.update(episode=episode, step=0, status="")
    state["return"] = 0.0
    first_frame = state["frames"]
    time_step = env.reset()
    if plan_.image_size:  # the camera policy's own view goes into each frame
        state["view"] = time_step.observation["image"]
    on_frame()
    while not time_step.is_last():
        time_step = env.step(policy.action(time_step).action)
        if plan_.image_size:
            state["view"] = time_step.observation["image"]
        state["step"] += 1
        state["return"] += float(time_step.reward)
        if not hooked and state["step"] % cfg.frame_stride == 0:  # no physics hook
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
