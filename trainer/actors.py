"""Env processes: each steps one env with a numpy copy of the policy.

Each process runs free for its share of an iteration, so an env busy with the Kuka
env's half-second scripted grasp holds up no other env (a lockstep batch of envs
waits on that straggler at every episode end).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass
from multiprocessing import connection

import gym
import numpy as np
from tf_agents.environments import gym_wrapper
from tf_agents.trajectories import time_step as ts

from trainer import agents, envs, processes
from trainer.errors import TrainerError


@dataclass
class Episode:
    """One finished episode: its return, length and (grasp envs) whether it lifted the block."""

    ret: float
    length: int
    success: bool | None


class ActorError(TrainerError, RuntimeError):
    """An env process failed or died."""


class _EnvRunner:
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
        observation_spec = gym_wrapper.spec_from_gym_space(
            self.env.observation_space, name="observation"
        )
        self.action_spec = gym_wrapper.spec_from_gym_space(self.env.action_space, name="action")
        self.time_step_spec = ts.time_step_spec(observation_spec)
        self._dtype = observation_spec.dtype
        self.restart()

    def restart(self) -> None:
        self._observation = np.asarray(self.env.reset(), self._dtype)
        self._step_type = ts.StepType.FIRST
        self._return, self._length = 0.0, 0

    def _step(self, action):
        """Applies `action`; returns (next step type, reward, discount, finished episode)."""
        if self._step_type == ts.StepType.LAST:
            self.restart()
            return ts.StepType.FIRST, 0.0, 1.0, None
        clipped = np.clip(action, self.action_spec.minimum, self.action_spec.maximum)
        observation, reward, done, info = self.env.step(clipped)
        self._observation = np.asarray(observation, self._dtype)
        self._return += reward
        self._length += 1
        if not done:
            self._step_type = ts.StepType.MID
            return ts.StepType.MID, reward, 1.0, None
        self._step_type = ts.StepType.LAST
        truncated = info.get("TimeLimit.truncated", False)
        episode = Episode(self._return, self._length, envs.is_success(self.env_id, float(reward)))
        return ts.StepType.LAST, reward, 1.0 if truncated else 0.0, episode

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


def env_worker(conn, env_id: str, seed: int) -> None:
    """An env process: runs the commands from `conn` until "close" or the trainer is gone.

    Started through processes.child_main, which set it to die with the trainer before
    this module loaded. A broken pipe means the trainer is gone: it ends quietly.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides how to stop
    envs.silence_env_prints()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError, EOFError):
        _serve(conn, env_id, seed)


def _serve(conn, env_id: str, seed: int) -> None:
    """Replies ("ok" or "error", payload, seconds this process waited for the command).

    A wait is reported with the reply to the command that ended it, so it counts in
    the iteration that command belongs to: read EnvIdleShare's steady state.
    """
    try:
        runner = _EnvRunner(env_id, seed)
        conn.send(("ok", (runner.time_step_spec, runner.action_spec), 0.0))
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
        actor = agents.NumpyActor(
            params, runner.action_spec.minimum, runner.action_spec.maximum, seed=rng_seed
        )
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


@contextlib.contextmanager
def _single_threaded_blas():
    """Env processes started inside get a one-thread OpenBLAS.

    OpenBLAS threads busy-wait beside the other env processes: with its default
    of one thread per core, two env processes on two cores collected 1,550
    steps/s instead of 2,180. Spawned children read this variable at start.
    """
    saved = os.environ.get("OPENBLAS_NUM_THREADS")
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        yield
    finally:
        if saved is None:
            del os.environ["OPENBLAS_NUM_THREADS"]
        else:
            os.environ["OPENBLAS_NUM_THREADS"] = saved


class ActorPool:
    """`num_envs` env processes, driven together one command at a time."""

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        seed: int,
        first_index: int = 0,
        worker: str = f"{__name__}:env_worker",
    ):
        """Env processes `first_index` .. of the run seeded `seed` (envs.process_seed),
        each running `worker` ("module:function", called as env_worker is)."""
        ctx = multiprocessing.get_context("spawn")
        self._conns, self._procs = [], []
        # Seconds the env processes, together, waited for a command: the time
        # the training loop left them idle.
        self.idle_seconds = 0.0
        with _single_threaded_blas():
            self._start(ctx, worker, env_id, num_envs, seed, first_index)
        try:
            self.time_step_spec, self.action_spec = self._gather()[0]
        except ActorError:
            self.close()
            raise

    def _start(self, ctx, worker: str, env_id: str, num_envs: int, seed: int, first_index: int):
        for index in range(first_index, first_index + num_envs):
            parent, child = ctx.Pipe()
            args = (os.getpid(), worker, child, env_id)
            proc = ctx.Process(
                target=processes.child_main,
                args=(*args, envs.process_seed(seed, index)),
                daemon=True,
            )
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)

    @property
    def size(self) -> int:
        return len(self._conns)

    def _receive(self, index: int):
        try:
            status, payload, waited = self._conns[index].recv()
        except (EOFError, OSError):
            code = self._procs[index].exitcode
            raise ActorError(f"env process {index} died (exit code {code})") from None
        if status != "ok":
            raise ActorError(f"env process {index} failed: {payload}")
        self.idle_seconds += waited
        return payload

    def _gather(self):
        return [self._receive(index) for index in range(self.size)]

    def _send(self, commands) -> None:
        for conn, command in zip(self._conns, commands, strict=False):
            conn.send(command)

    def _broadcast(self, commands):
        self._send(commands)
        return self._gather()

    def start_collect(self, params, steps_per_env: int) -> None:
        """Sets every env collecting `steps_per_env` steps; `finish_collect` returns them."""
        self._send([("collect", params, steps_per_env)] * self.size)

    def finish_collect(self, then=None):
        """Per env: (segment of the steps asked for, finished episodes).

        `then`, a (params, steps_per_env) pair, sets each env collecting again the
        moment its own result is in: at a barrier the first env to finish waited for
        the slowest, 0.6-0.7 s of a 3 s iteration here (the scripted grasps fall unevenly
        between the envs' shares). Each env gets the same command as after the
        barrier, so a run's steps and results are the same either way.
        """
        if then is None:
            return self._gather()
        results = [None] * self.size
        waiting = dict(zip(self._conns, range(self.size), strict=True))
        while waiting:
            for conn in connection.wait(list(waiting)):
                index = waiting.pop(conn)
                results[index] = self._receive(index)
                conn.send(("collect", *then))
        return results

    def collect(self, params, steps_per_env: int):
        """Per env: (segment of `steps_per_env` steps, finished episodes)."""
        self.start_collect(params, steps_per_env)
        return self.finish_collect()

    def evaluate(self, params, episodes: int) -> list[Episode]:
        """`episodes` greedy episodes, spread over the env processes."""
        return [
            episode for result in self.spread("evaluate", params, episodes) for episode in result
        ]

    def spread(self, command: str, params, episodes: int) -> list:
        """Each env's reply to `command` for its share of `episodes` episodes."""
        shares = [episodes // self.size + (i < episodes % self.size) for i in range(self.size)]
        return self._broadcast([(command, params, n) for n in shares])

    def close(self) -> None:
        for conn in self._conns:
            with contextlib.suppress(BrokenPipeError, OSError):
                conn.send(("close", None, 0))
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
