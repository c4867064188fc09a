"""The camera policy's env processes: they play KukaGraspCam-v0 and label its frames.

An `actors.ActorPool` runs `env_worker` in each process (`worker=`). The teacher, a
KukaGrasp-v0 state policy, acts in numpy (numpy_actor.NumpyActor) on the state the camera
env keeps beside its observation; the student acts from the observation alone
(student.StudentActor). Neither needs TensorFlow in the env process.
"""

from __future__ import annotations

import os

import numpy as np

from trainer import env_process, envs, student
from trainer.numpy_actor import NumpyActor
from trainer.rundir import RunDir


def _play(env, env_id: str, driver, teacher, frames: list | None) -> env_process.Episode:
    """One episode from a reset; `driver` None lets the teacher drive. With `frames`,
    every observation is kept with the teacher's greedy action for its state."""
    observation, ret, length = env.reset(), 0.0, 0
    while True:
        if frames is not None or driver is None:
            label, _ = teacher.action(env.unwrapped.state, greedy=True)
            label = np.clip(label, -1.0, 1.0)
        if frames is not None:
            frames.append((observation["image"], observation["arm"], label))
        action = label if driver is None else driver.action(observation)
        observation, reward, done, _ = env.step(np.clip(action, -1.0, 1.0))
        ret, length = ret + reward, length + 1
        if done:
            return env_process.Episode(ret, length, envs.is_success(env_id, float(reward)))


def env_worker(conn, env_id: str, seed: int) -> None:
    """An env process of actors.ActorPool for KukaGraspCam-v0 (its `worker`).

    Every command's params are (teacher params or None, student params or None, the
    env's constructor arguments: `size`, and for the robustness checks `camera`,
    `block_offset`, set on the one env the process has). ("label", params, n)
    plays n episodes, driven by the student if given, else by the teacher, and replies
    (frames labelled by the teacher, None when n is 0; episodes). ("evaluate", params,
    n) replies n greedy episodes of the student (of the teacher when no student is given).
    """
    import gym

    envs.seed_process(seed)
    with env_process.serving():
        conn.send(("ok", (None, None), 0.0))
        env, made = None, None
        while True:
            command, params, count = conn.recv()
            if command == "close":
                return
            if env is None:  # one env per process: a second would share pybullet's client
                env = gym.make(env_id, size=params[-1]["size"])
                env.seed(seed)
            if params[-1] != made:
                made = params[-1]
                env.unwrapped.configure(**{k: v for k, v in made.items() if k != "size"})
            try:
                conn.send(("ok", _episodes(env, env_id, command, params, count, seed), 0.0))
            except Exception as e:  # noqa: BLE001  (reported to the parent)
                conn.send(("error", f"{type(e).__name__}: {e}", 0.0))
                return


def _episodes(env, env_id: str, command: str, params, count: int, seed: int):
    teacher_params, student_params, _ = params
    bounds = env.action_space.low, env.action_space.high
    teacher = teacher_params and NumpyActor(teacher_params, *bounds, seed=seed)
    driver = student_params and student.StudentActor(student_params)
    if command == "evaluate":
        return [_play(env, env_id, driver, teacher, None) for _ in range(count)]
    frames: list = []
    episodes = [_play(env, env_id, driver, teacher, frames) for _ in range(count)]
    if not frames:  # fewer episodes than env processes: this one had none
        return None, episodes
    images, arms, labels = (np.stack(column) for column in zip(*frames, strict=True))
    return {"image": images, "arm": arms.astype(np.float32), "label": labels}, episodes


def state_agent(cfg):
    """An agent of `cfg` for KukaGrasp-v0's spaces, built without an env: KukaGymEnv's
    observation is 9 numbers within +-100 and its action 3 within +-1, and this process
    must not hold pybullet's global client."""
    import gym
    import tensorflow as tf
    from tf_agents.environments import gym_wrapper
    from tf_agents.specs import tensor_spec
    from tf_agents.trajectories import time_step as ts

    from trainer import agents  # the trainer's side: env processes load no TensorFlow

    observation = gym.spaces.Box(-100, 100, (9,), np.float32)
    action = gym.spaces.Box(-1, 1, (3,), np.float32)
    time_step_spec = ts.time_step_spec(
        gym_wrapper.spec_from_gym_space(observation, name="observation")
    )
    action_spec = gym_wrapper.spec_from_gym_space(action, name="action")
    return agents.create(
        cfg,
        tensor_spec.from_spec(time_step_spec),
        tensor_spec.from_spec(action_spec),
        tf.Variable(0, dtype=tf.int64),
        env_steps=tf.Variable(0, dtype=tf.int64),
    )


def check_teacher(run_dir: str):
    """The teacher run's Config; ValueError, without loading TensorFlow, unless it is a
    KukaGrasp-v0 run with a checkpoint."""
    try:
        cfg = RunDir(run_dir).load_config()
    except (OSError, ValueError) as e:
        raise ValueError(f"--teacher={run_dir} is not a run: {e}") from None
    if cfg.env_id != envs.DEFAULT_ENV_ID:
        raise ValueError(f"the teacher {run_dir} learned {cfg.env_id}, not {envs.DEFAULT_ENV_ID}")
    if not os.path.exists(RunDir(run_dir).file(RunDir.CHECKPOINT_POINTER)):
        raise ValueError(f"the teacher {run_dir} has no checkpoint")
    return cfg


def teacher_params(run_dir: str) -> dict:
    """The numpy actor of a KukaGrasp-v0 run's newest checkpoint, its greedy policy as
    exported (agents.actor_params, averaging.py); ValueError if the run is of another env
    or has no checkpoint."""
    import tensorflow as tf

    # The trainer's side: env processes load no TensorFlow.
    from trainer import agents, averaging

    cfg = check_teacher(run_dir)
    newest = tf.train.latest_checkpoint(RunDir(run_dir).checkpoints)
    if newest is None:
        raise ValueError(f"the teacher {run_dir} has no checkpoint")
    agent = state_agent(cfg)
    average = averaging.create(agents.actor_variables(agent), cfg.policy_average, cfg.total_steps)
    held = averaging.tracked({"agent": agent}, average)
    tf.train.Checkpoint(**held).restore(newest).expect_partial()
    with averaging.greedy_weights(average):
        return agents.actor_params(agent)
