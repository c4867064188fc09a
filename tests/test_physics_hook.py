"""The hook inside pybullet's physics steps (trainer/physics_hook.py) on a real Kuka env."""

from __future__ import annotations

import json

from tests.conftest import run_python

_PHYSICS = """
import json, sys
import numpy as np
import pybullet
from trainer import envs, physics_hook
env = envs.load("KukaGrasp-v0", seed=3)
counts = []
time_step = env.reset()
with physics_hook.physics_steps(env.gym.unwrapped, 1, lambda: counts.append(1)) as hooked:
    steps = []
    while not time_step.is_last():
        before = len(counts)
        time_step = env.step(np.zeros(3, np.float32))
        steps.append(len(counts) - before)
module = sys.modules["pybullet_envs.bullet.kukaGymEnv"]
print(json.dumps({"hooked": hooked, "steps": steps, "restored": module.p is pybullet}))
"""


def test_physics_steps_sees_inside_the_grasp_step():
    # Fails if pybullet_envs stops stepping through its module's global `p`: render films
    # the scripted grasp through this hook.
    result = run_python(_PHYSICS)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["hooked"] and out["restored"]
    assert set(out["steps"][:-1]) == {1}  # one physics step per env step (actionRepeat 1)
    assert out["steps"][-1] > 500  # the scripted grasp inside the last env step
