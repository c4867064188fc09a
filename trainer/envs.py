"""Environments: our learnable Kuka grasping env and loading any pybullet gym id.

`KukaGymEnv` drives pybullet's global client, so each process holds at most one
Kuka env; trainers step several of them in separate processes.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import random
import sys
import warnings

import numpy as np

from trainer.config import CAMERA_ENV_ID  # trainer/camera.py

DEFAULT_ENV_ID = "KukaGrasp-v0"
GRASP_ENV_IDS = (DEFAULT_ENV_ID, CAMERA_ENV_ID, "KukaBulletEnv-v0")
# The grasp envs with a flat float observation and a Box action: check_spaces need not
# make one to know (test_envs makes each and checks).
STATE_GRASP_ENV_IDS = (DEFAULT_ENV_ID, "KukaBulletEnv-v0")
# The env adds +10000 to the last reward when the block ends above z = 0.2; every
# other reward is a small negative distance, so the last reward tells success.
SUCCESS_REWARD = 5000.0
_MAX_EPISODE_STEPS = 1000


@contextlib.contextmanager
def _silenced():
    """Drops what is written to stdout and stderr, from Python and from C."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


# gym, pybullet and pybullet_envs print banners on import (gym's deprecation
# notice, the build time, a source folder); they would bury our own messages.
with _silenced():
    import gym
    import pybullet_envs  # noqa: F401  (registers the pybullet gym ids)
    from pybullet_envs.bullet import kuka as _kuka
    from pybullet_envs.bullet import kukaGymEnv as _kuka_gym_env
logging.getLogger("gym").setLevel(logging.ERROR)
# KukaGymEnv's float64 bounds of +-100 and +-1 are exact in float32 too.
warnings.filterwarnings("ignore", message=".*Box bound precision lowered", category=UserWarning)


class KukaGraspEnv(_kuka_gym_env.KukaGymEnv):
    """`KukaBulletEnv-v0` with the arm's joint speed as in pybullet 1.7.5.

    pybullet capped the Kuka arm's joint velocity at 0.35 rad/s in January 2018,
    after the 1.7.5 release the original Kubeflow tutorial used. With the cap the
    env's forced descent (-0.002 m per step) outruns the arm: the fingers land on
    the tray's wall and the scripted lift starts far below the gripper, so the
    shipped env cannot be solved (scripted controllers with full state grasp 0/50).
    This env lifts only that cap; observation, action, reward and termination are
    unchanged. Episodes then last about 200 steps instead of about 570.

    A reset restores the scene as first loaded and places the block where
    KukaGymEnv.reset would load it: loading took a fifth of the env's time. Starts
    match a loaded one's but for the block pose's last bits, so runs differ from
    those before 2026-12-01 (README, "The environment").
    """

    _scene: int | None = None  # pybullet's saved state of the loaded scene, before any step

    def reset(self):
        self.terminated = 0
        if self._scene is None:
            self._load_scene()
        p = _kuka_gym_env.p  # the module's, as KukaGymEnv's own calls (physics_hook)
        p.restoreState(self._scene)
        # KukaGymEnv.reset's draws, in its order (pybullet 3.2.7, kukaGymEnv.py).
        xpos = 0.55 + 0.12 * random.random()
        ypos = 0 + 0.2 * random.random()
        ang = 3.14 * 0.5 + 3.1415925438 * random.random()
        p.resetBasePositionAndOrientation(
            self.blockUid, [xpos, ypos, -0.15], p.getQuaternionFromEuler([0, 0, ang])
        )
        kuka = self._kuka
        for joint in range(kuka.numJoints):  # the motor targets are no part of a saved state
            p.setJointMotorControl2(
                kuka.kukaUid,
                joint,
                p.POSITION_CONTROL,
                targetPosition=kuka.jointPositions[joint],
                force=kuka.maxForce,
            )
        kuka.endEffectorPos, kuka.endEffectorAngle = [0.537, 0.0, 0.5], 0
        # pybullet applies only a positive maxVelocity, so a negative one sends no
        # cap, as 1.7.5's kuka.py did.
        kuka.maxVelocity = -1.0
        self._envStepCounter = 0
        p.stepSimulation()
        self._observation = self.getExtendedObservation()
        return np.array(self._observation)

    def load_anew(self) -> None:
        """Makes the next reset load the scene from its files: for changes a restored
        state keeps (a body's colour)."""
        self._scene = None

    def _load_scene(self) -> None:
        """KukaGymEnv.reset's loading, saved before its first step (pybullet 3.2.7)."""
        p = _kuka_gym_env.p
        p.resetSimulation()
        p.setPhysicsEngineParameter(numSolverIterations=150)
        p.setTimeStep(self._timeStep)
        p.loadURDF(os.path.join(self._urdfRoot, "plane.urdf"), [0, 0, -1])
        p.loadURDF(os.path.join(self._urdfRoot, "table/table.urdf"), 0.5, 0.0, -0.82, 0, 0, 0, 1)
        self.blockUid = p.loadURDF(os.path.join(self._urdfRoot, "block.urdf"), 0.6, 0.1, -0.15)
        p.setGravity(0, 0, -10)
        self._kuka = _kuka.Kuka(urdfRootPath=self._urdfRoot, timeStep=self._timeStep)
        self._scene = p.saveState()


def register() -> None:
    """Registers `KukaGrasp-v0` and `KukaGraspCam-v0` with gym (idempotent)."""
    ours = {
        DEFAULT_ENV_ID: "trainer.envs:KukaGraspEnv",
        CAMERA_ENV_ID: "trainer.camera:KukaGraspCamEnv",
    }
    for env_id, entry_point in ours.items():
        if env_id not in gym.envs.registration.registry.env_specs:
            gym.envs.registration.register(
                id=env_id, entry_point=entry_point, max_episode_steps=_MAX_EPISODE_STEPS
            )


register()


def is_registered(env_id: str) -> bool:
    """Whether gym knows `env_id` (ours and every pybullet id are registered)."""
    return env_id in gym.envs.registration.registry.env_specs


def is_grasp_env(env_id: str) -> bool:
    """Whether episodes of `env_id` end in a grasp attempt with a success signal."""
    return env_id in GRASP_ENV_IDS


def is_success(env_id: str, last_reward: float) -> bool | None:
    """Whether an episode that ended with `last_reward` lifted the block."""
    if not is_grasp_env(env_id):
        return None
    return bool(last_reward > SUCCESS_REWARD)


def _describe_spaces(env_id: str, conn) -> None:
    silence_env_prints()
    try:
        env = gym.make(env_id)
        obs, act = env.observation_space, env.action_space
        conn.send((repr(obs), repr(act), _unsupported(obs, act)))
        env.close()
    except Exception as e:  # noqa: BLE001  (reported to the parent in one line)
        conn.send((None, None, f"{env_id} cannot be made: {type(e).__name__}: {e}"))


def _unsupported(obs, act) -> str | None:
    """Why the agents cannot learn with these spaces, or None when they can."""
    flat = isinstance(obs, gym.spaces.Box) and len(obs.shape) == 1
    if not flat or not np.issubdtype(obs.dtype, np.floating):
        return "the agents need a flat float vector observation"
    if not isinstance(act, gym.spaces.Box) or not np.issubdtype(act.dtype, np.floating):
        return "the agents need a continuous (Box) action"
    return None


def check_spaces(env_id: str) -> None:
    """ValueError naming the env's spaces unless the agents can learn with them.

    The env is made in a child process: pybullet's Kuka envs drive a global client,
    which the trainer's own process must not hold. That costs 0.8 s of a quiet start, so
    the state grasp envs, whose spaces are known, are not made here.
    """
    if env_id in STATE_GRASP_ENV_IDS:
        return
    check_by_making(env_id)


def check_by_making(env_id: str) -> None:
    """check_spaces for any env id: makes the env in a child process and reads its spaces."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_describe_spaces, args=(env_id, child), daemon=True)
    proc.start()
    child.close()
    try:
        obs, act, problem = parent.recv()
    except EOFError:
        obs, act, problem = None, None, f"{env_id} cannot be made (its process died)"
    finally:
        proc.join(timeout=10)
    if problem:
        spaces = f": observation {obs}, action {act}" if obs else ""
        raise ValueError(f"{env_id} is not supported ({problem}){spaces}")


def process_seed(run_seed: int, index: int) -> int:
    """The seed of env process `index` of a run: far apart, so no two share block placements.

    Local training uses indices 0 .. num_envs-1; distributed collectors and the
    learner's evaluation env take theirs from `distributed.py`, above those.
    """
    return run_seed * 10_007 + index


def seed_process(seed: int) -> None:
    """Seeds Python's and numpy's global generators.

    KukaGymEnv places the block with Python's `random`, so `env.seed()` alone does
    not make resets reproducible.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)


def load(env_id: str, seed: int | None = None, **gym_kwargs):
    """Loads `env_id` as a tf-agents PyEnvironment, seeded when `seed` is given;
    `gym_kwargs` go to the env's constructor (KukaGraspCam-v0's `size`)."""
    from tf_agents.environments import suite_pybullet

    if seed is not None:
        seed_process(seed)
    # KukaGymEnv prints its source folder on import and each success on stdout.
    with contextlib.redirect_stdout(io.StringIO()):
        env = suite_pybullet.load(env_id, gym_kwargs=gym_kwargs)
    if seed is not None:
        env.seed(seed)
    return env


def silence_env_prints() -> None:
    """Drops pybullet envs' per-episode prints in a worker process."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
