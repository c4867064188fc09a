"""trainer/env_process.py in-process: the Trajectory fields an env process builds itself.

Pendulum-v1 (gym's own, no pybullet) ends every episode by its 200-step time limit,
so one test sees a truncation and the boundary step after it.
"""

from __future__ import annotations

import numpy as np
import pytest

from trainer import env_process


class _Constant:
    """A stand-in for numpy_actor.NumpyActor: one action, and the calls it got."""

    def __init__(self, value: float):
        self.value, self.calls = value, []

    def action(self, observation, greedy: bool = False):
        self.calls.append(greedy)
        return np.array([self.value], np.float32), {}


def test_a_time_limit_is_a_truncation_then_a_boundary_step():
    runner = env_process.EnvRunner("Pendulum-v1", seed=3)
    segment, episodes = runner.collect(_Constant(5.0), 205)  # 5.0 is clipped to 2.0
    assert [(e.length, e.success) for e in episodes] == [(200, None)]
    last = 199  # the 200th step ends the episode by its time limit
    assert segment["next_step_type"][last] == 2 and segment["discount"][last] == 1.0
    # Then one boundary transition, LAST -> FIRST, reward 0 and discount 1.
    assert segment["step_type"][last + 1] == 2 and segment["next_step_type"][last + 1] == 0
    assert segment["reward"][last + 1] == 0.0 and segment["discount"][last + 1] == 1.0
    assert segment["step_type"][last + 2] == 0 and segment["next_step_type"][last + 2] == 1
    assert segment["observation"].shape == (205, 3) and segment["action"].shape == (205, 1)
    assert episodes[0].ret == pytest.approx(float(np.sum(segment["reward"][:200])), rel=1e-6)


def test_a_greedy_episode_starts_fresh_and_asks_for_greedy_actions():
    runner = env_process.EnvRunner("Pendulum-v1", seed=3)
    runner.collect(_Constant(0.0), 50)  # in the middle of a training episode
    actor = _Constant(1.0)
    episode = runner.episode(actor)
    assert episode.length == 200 and actor.calls == [True] * 200


def test_the_step_types_are_tf_agents_own():
    from tf_agents.trajectories import time_step as ts

    assert (env_process.FIRST, env_process.MID, env_process.LAST) == (
        ts.StepType.FIRST,
        ts.StepType.MID,
        ts.StepType.LAST,
    )


@pytest.mark.parametrize(
    "worker, make",
    [("env_process", "env_process.EnvRunner('KukaGrasp-v0', seed=0)"), ("labelling", "None")],
)
def test_an_env_process_imports_no_tensorflow(worker, make):
    """Its start took 5-7 s of importing TensorFlow, which it never used; labelling.py is
    the camera run's worker."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    script = (
        "import sys\n"
        f"from trainer import env_process, {worker}\n"
        f"runner = {make}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_agents')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_spaces_it_sends_become_the_specs_tf_agents_makes():
    from tf_agents.environments import suite_gym

    from trainer import actors, envs

    envs.register()
    runner = env_process.EnvRunner("KukaGrasp-v0", seed=0)
    observation = runner.collect(_Constant(0.0), 2)[0]["observation"]
    runner.env.close()  # one Kuka env per process: pybullet's client is global
    wrapped = suite_gym.load("KukaGrasp-v0")
    assert actors.specs(*runner.spaces) == (wrapped.time_step_spec(), wrapped.action_spec())
    assert observation.dtype == wrapped.time_step_spec().observation.dtype
