"""Our learnable Kuka env against pybullet's shipped one (issue: the 2017 arm dynamics)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import run_python
from trainer import envs

# Runs in a fresh process: KukaGymEnv drives pybullet's global client, one env per process.
_EPISODE = """
import json, sys
import numpy as np
import pybullet as p
from trainer import envs
env = envs.load(sys.argv[1], seed=3)
time_step, length, fastest = env.reset(), 0, 0.0
while not time_step.is_last():
    time_step = env.step(np.array([0.3, -0.2, 0.1], np.float32))
    length += 1
    kuka = env.gym.unwrapped._kuka
    speeds = [abs(s[1]) for s in p.getJointStates(kuka.kukaUid, range(7))]
    fastest = max(fastest, *speeds)
print(json.dumps({"length": length, "fastest": fastest, "reward": float(time_step.reward)}))
"""


def _episode(env_id: str) -> dict:
    result = run_python(_EPISODE, env_id)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def episodes():
    return {env_id: _episode(env_id) for env_id in ("KukaGrasp-v0", "KukaBulletEnv-v0")}


def test_ours_ends_sooner_with_the_same_seed_and_actions(episodes):
    ours, shipped = episodes["KukaGrasp-v0"], episodes["KukaBulletEnv-v0"]
    assert ours["length"] < shipped["length"]


def test_ours_moves_an_arm_joint_faster_than_the_cap(episodes):
    assert episodes["KukaGrasp-v0"]["fastest"] > 0.35
    # pybullet's own cap, which ours lifts (small overshoot from the solver allowed).
    assert episodes["KukaBulletEnv-v0"]["fastest"] < 0.6


def test_suite_pybullet_loads_our_id():
    script = (
        "from tf_agents.environments import suite_pybullet\n"
        "import trainer.envs\n"
        "env = suite_pybullet.load('KukaGrasp-v0')\n"
        "print(env.observation_spec().shape, env.action_spec().shape)\n"
    )
    result = run_python(script)
    assert "(9,) (3,)" in result.stdout, result.stderr[-2000:]


def test_parallel_py_environment_steps_our_id():
    script = (
        "import functools\n"
        "import numpy as np\n"
        "from tf_agents.environments import parallel_py_environment\n"
        "from tf_agents.system import system_multiprocessing as mp\n"
        "from trainer import envs\n"
        "def main(_):\n"
        "    env = parallel_py_environment.ParallelPyEnvironment(\n"
        "        [functools.partial(envs.load, 'KukaGrasp-v0', seed=i) for i in range(2)])\n"
        "    env.reset()\n"
        "    ts = env.step(np.zeros((2, 3), np.float32))\n"
        "    print('batch', ts.observation.shape)\n"
        "    env.close()\n"
        "mp.handle_main(main)\n"
    )
    result = run_python(script)
    assert "batch (2, 9)" in result.stdout, result.stderr[-2000:]


def test_success_is_read_from_the_last_reward():
    from trainer import envs

    assert envs.is_success("KukaGrasp-v0", 9990.0) is True
    assert envs.is_success("KukaGrasp-v0", -3.0) is False
    assert envs.is_success("HopperBulletEnv-v0", 9990.0) is None
    assert np.isfinite(envs.SUCCESS_REWARD)


# KukaGraspEnv's resets restore the scene saved when it was first loaded; `loaded` resets
# as KukaGraspEnv did before 2026-12-01, loading it anew with KukaGymEnv.reset
# (pybullet_envs 3.2.7, bullet/kukaGymEnv.py). The same seed and actions in both.
_RESETS = """
import json, sys
import numpy as np
import pybullet as p
from bench.envs import loaded_kuka_grasp
from trainer import envs

envs.seed_process(3)
env = (loaded_kuka_grasp() if sys.argv[1] == "loaded" else envs.KukaGraspEnv()).unwrapped
env.seed(3)
rng, out = np.random.default_rng(0), []
for _ in range(int(sys.argv[2])):
    start, done, length = env.reset().tolist(), False, 0
    block = [x for part in p.getBasePositionAndOrientation(env.blockUid) for x in part]
    fingers = [s[0] for s in p.getJointStates(env._kuka.kukaUid, range(7, 14))]
    while not done:
        _, reward, done, _ = env.step(rng.uniform(-1, 1, 3))
        length += 1
    out.append({"start": start, "block": block, "fingers": fingers, "length": length,
                "reward": reward})
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def resets():
    runs = {kind: run_python(_RESETS, kind, "8") for kind in ("restored", "loaded")}
    for result in runs.values():
        assert result.returncode == 0, result.stderr[-2000:]
    return {kind: json.loads(r.stdout.strip().splitlines()[-1]) for kind, r in runs.items()}


def test_a_restored_scene_starts_every_episode_as_a_loaded_one(resets):
    # Each episode ends in the scripted grasp (fingers closed, arm raised): nothing of it
    # may outlive the reset.
    for ours, loaded in zip(resets["restored"], resets["loaded"], strict=True):
        for key in ("start", "block", "fingers"):
            np.testing.assert_allclose(ours[key], loaded[key], rtol=0, atol=1e-9)


def test_a_restored_scene_runs_the_same_actions_to_the_same_ends(resets):
    def ends(episodes):
        return [(e["length"], envs.is_success("KukaGrasp-v0", e["reward"])) for e in episodes]

    assert ends(resets["restored"]) == ends(resets["loaded"])


@pytest.mark.parametrize("env_id", envs.STATE_GRASP_ENV_IDS)
def test_the_envs_whose_spaces_are_known_pass_the_check_by_making(env_id):
    envs.check_by_making(env_id)  # check_spaces takes these on trust
