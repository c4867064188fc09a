"""Inside an env process: one env stepped with a numpy copy of the policy, serving the
commands an actors.ActorPool sends over its pipe.

Each process runs free for its share of an iteration, so an env busy with the Kuka
env's half-second scripted grasp holds up no other env (a lockstep batch of envs
waits on that straggler at every episode end).
"""

from __future__ import annotations

import contextlib
import signal
import time
from dataclasses import dataclass

import gym
import numpy as np

from trainer import envs
from trainer.numpy_actor import NumpyActor

# tf-agents' StepType values (tf_agents.trajectories.time_step), which this process, free
# of TensorFlow, writes into the Trajectory fields it builds; tests/test_env_process.py
# checks them against tf-agents'.
FIRST, MID, LAST = 0, 1, 2


@dataclass
class Episode:
    """One finished episode: its return, length and (grasp envs) whether it lifted the block."""

    ret: float
    length: int
    success: bool | None


class EnvRunner:
    """One gym env stepped as a tf-agents PyEnvironment would, minus its wrappers' cost.

    tf-agents' TimeStep wrappers cost about 0.2 ms a step (type checks), more
    than half a normal Kuka step, so env processes build the same Trajectory
    fields themselves: auto-reset after LAST, a boundary transition
    (LAST -> FIRST, reward 0, discount 1), discount 0 on termination and 1 on a
    time-limit truncation.
    """

    def __init__(self, env_id: str, seed: int):
        envs.seed_process(seed)
        self.env_id = env_id
        self.env = gym.make(env_id)
        self.env.seed(seed)
        # The trainer turns these into tf-agents' specs (actors.specs): the observations'
        # dtype is the space's, as tf-agents' gym_wrapper makes it.
        self.spaces = (self.env.observation_space, self.env.action_space)
        self._dtype = self.env.observation_space.dtype
        self.action_low, self.action_high = self.env.action_space.low, self.env.action_space.high
        self.restart()

    def restart(self) -> None:
        self._observation = np.asarray(self.env.reset(), self._dtype)
        self._step_type = FIRST
        self._return, self._length = 0.0, 0

    def _step(self, action):
        """Applies `action`; returns (next step type, reward, discount, finished episode)."""
        if self._step_type == LAST:
            self.restart()
            return FIRST, 0.0, 1.0, None
        clipped = np.clip(action, self.action_low, self.action_high)
        observation, reward, done, info = self.env.step(clipped)
        self._observation = np.asarray(observation, self._dtype)
        self._return += reward
        self._length += 1
        if not done:
            self._step_type = MID
            return MID, reward, 1.0, None
        self._step_type = LAST
        truncated = info.get("TimeLimit.truncated", False)
        episode = Episode(self._return, self._length, envs.is_success(self.env_id, float(reward)))
        return LAST, reward, 1.0 if truncated else 0.0, episode

    def collect(self, actor, count: int):
        """`count` steps as numpy Trajectory fields, and the episodes that ended."""
        step_type = np.empty(count, np.int32)
        next_step_type = np.empty(count, np.int32)
        reward = np.empty(count, np.float32)
        discount = np.empty(count, np.float32)
        observations, actions, infos, episodes = [], [], [], []
        for t in range(count):
            action, info = actor.action(self._observation)
            step_type[t] = self._step_type
            observations.append(self._observation)
            actions.append(action)
            infos.append(info)
            next_step_type[t], reward[t], discount[t], episode = self._step(action)
            if episode is not None:
                episodes.append(episode)
        segment = {
            "step_type": step_type,
            "observation": np.stack(observations),
            "action": np.stack(actions),
            "policy_info": _stack(infos),
            "next_step_type": next_step_type,
            "reward": reward,
            "discount": discount,
        }
        return segment, episodes

    def episode(self, actor) -> Episode:
        """One greedy episode from a fresh reset."""
        self.restart()
        while True:
            action, _ = actor.action(self._observation, greedy=True)
            *_, episode = self._step(action)
            if episode is not None:
                return episode


def _stack(items):
    if isinstance(items[0], dict):
        return {k: _stack([item[k] for item in items]) for k in items[0]}
    if isinstance(items[0], tuple) and not items[0]:
        return ()
    return np.stack(items)


@contextlib.contextmanager
def serving():
    """What every env process's worker runs inside: Ctrl-C left to the trainer, the env's
    prints silenced, and a broken pipe (the trainer is gone) ending it quietly.

    Workers start through processes.child_main, which set them to die with the trainer
    before their module loaded.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides how to stop
    envs.silence_env_prints()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError, EOFError):
        yield


def env_worker(conn, env_id: str, seed: int) -> None:
    """An env process: runs the commands from `conn` until "close" or the trainer is gone."""
    with serving():
        _serve(conn, env_id, seed)


def _serve(conn, env_id: str, seed: int) -> None:
    """Replies ("ok" or "error", payload, seconds this process waited for the command).

    A wait is reported with the reply to the command that ended it, so it counts in
    the iteration that command belongs to: read EnvIdleShare's steady state.
    """
    try:
        runner = EnvRunner(env_id, seed)
        conn.send(("ok", runner.spaces, 0.0))
    except Exception as e:  # noqa: BLE001  (reported to the parent)
        conn.send(("error", f"{type(e).__name__}: {e}", 0.0))
        return
    rng_seed = seed
    replied = None  # the wait for the first command is the trainer's start-up, not idling
    while True:
        command, params, count = conn.recv()
        waited = 0.0 if replied is None else time.monotonic() - replied
        if command == "close":
            return
        rng_seed += 1
        actor = NumpyActor(params, runner.action_low, runner.action_high, seed=rng_seed)
        try:
            if command == "collect":
                result = runner.collect(actor, count)
            else:  # "evaluate"
                result = [runner.episode(actor) for _ in range(count)]
                # The interrupted training episode is dropped; collection restarts.
                runner.restart()
        except Exception as e:  # noqa: BLE001
            conn.send(("error", f"{type(e).__name__}: {e}", waited))
            return
        # Before the send: a reply larger than the pipe's buffer waits there for the trainer.
        replied = time.monotonic()
        conn.send(("ok", result, waited))
