"""Env processes from the trainer's side: a pool of them, started, driven one command
at a time and closed (what runs inside each is env_process.py)."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from multiprocessing import connection

from tf_agents.environments import gym_wrapper
from tf_agents.trajectories import time_step as ts

from trainer import env_process, envs, processes
from trainer.errors import TrainerError


def specs(observation_space, action_space):
    """(time step spec, action spec) of an env process's gym spaces, as tf-agents' gym
    wrapper makes them; (None, None) from a worker that sends none (labelling.py's)."""
    if observation_space is None:
        return None, None
    return (
        ts.time_step_spec(gym_wrapper.spec_from_gym_space(observation_space, name="observation")),
        gym_wrapper.spec_from_gym_space(action_space, name="action"),
    )


class ActorError(TrainerError, RuntimeError):
    """An env process failed or died."""


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
        worker: str = f"{env_process.__name__}:env_worker",
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
            self.time_step_spec, self.action_spec = specs(*self._gather()[0])
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

    def evaluate(self, params, episodes: int) -> list[env_process.Episode]:
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
