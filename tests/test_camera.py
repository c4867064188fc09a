"""trainer/camera.py: KukaGraspCam-v0 is KukaGrasp-v0 seen through a camera (issue 28)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from trainer import camera

# One Kuka env per process (pybullet's global client): each env id in its own run.
_EPISODES = """
import json, sys
import gym
import numpy as np
from trainer import envs
env = gym.make(sys.argv[1])
out = []
for seed in (3, 4):
    envs.seed_process(seed)
    env.seed(seed)
    obs, done, rewards = env.reset(), False, []
    first = obs
    while not done:
        obs, reward, done, _ = env.step(np.array([0.3, -0.2, 0.1], np.float32))
        rewards.append(reward)
    if isinstance(first, dict):
        state = env.unwrapped.state
        out.append({
            "keys": sorted(first), "image": [list(first["image"].shape), str(first["image"].dtype)],
            "arm": first["arm"].tolist(), "arm_dtype": str(first["arm"].dtype),
            "last_arm": obs["arm"].tolist(), "last_state": state.tolist(),
            "image_sum": int(first["image"].astype(np.int64).sum()),
            "rewards": rewards,
        })
    else:
        out.append({"first_state": first.tolist(), "rewards": rewards})
print(json.dumps(out))
"""


def _episodes(env_id: str) -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-c", _EPISODES, env_id],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def episodes():
    return {env_id: _episodes(env_id) for env_id in ("KukaGrasp-v0", "KukaGraspCam-v0")}


@pytest.mark.slow
def test_the_observation_is_a_frame_and_the_arm_only(episodes):
    cam = episodes["KukaGraspCam-v0"][0]
    assert cam["keys"] == ["arm", "image"]
    assert cam["image"] == [[64, 64, 3], "uint8"]
    assert cam["arm_dtype"] == "float32" and len(cam["arm"]) == camera.ARM_SIZE
    # The arm's part is the state observation's first 6 numbers; the 3 after them are
    # the block's position and angle in the gripper's frame.
    assert cam["last_arm"] == cam["last_state"][: camera.ARM_SIZE]
    assert len(cam["last_state"]) == camera.ARM_SIZE + 3


@pytest.mark.slow
def test_the_block_is_seen_only_in_the_frame(episodes):
    """Two block placements (seeds 3 and 4): the state observations differ in the
    block's coordinates, the camera observation's numbers do not; its frames do."""
    state = [e["first_state"] for e in episodes["KukaGrasp-v0"]]
    cam = episodes["KukaGraspCam-v0"]
    assert state[0][camera.ARM_SIZE :] != state[1][camera.ARM_SIZE :]
    assert cam[0]["arm"] == cam[1]["arm"]
    assert cam[0]["image_sum"] != cam[1]["image_sum"]


@pytest.mark.slow
def test_the_task_is_unchanged(episodes):
    """Same seeds, same actions: the same rewards step by step, scripted grasp included."""
    for state, cam in zip(episodes["KukaGrasp-v0"], episodes["KukaGraspCam-v0"], strict=True):
        assert cam["rewards"] == pytest.approx(state["rewards"], rel=1e-6)


def test_a_moved_camera_is_carried_along_x_and_turned_in_place():
    import numpy as np

    base = camera.Camera()
    moved = base.moved(shift=0.02, turn=2.0)
    x, y, z = base.target
    assert moved.target == pytest.approx((x + 0.02, y, z)) and moved.turn == 2.0

    def eye_and_ahead(cam):
        view = np.asarray(cam.view_matrix()).reshape(4, 4).T
        return np.linalg.inv(view)[:3, 3], -view[2, :3]  # OpenGL cameras look down -z

    # A turn of almost nothing is the untouched view: the eye is found right.
    almost = dataclasses.replace(base, turn=1e-9)
    np.testing.assert_allclose(almost.view_matrix(), base.view_matrix(), atol=1e-6)
    eye, ahead = eye_and_ahead(base)
    turned_eye, turned_ahead = eye_and_ahead(dataclasses.replace(base, turn=2.0))
    np.testing.assert_allclose(turned_eye, eye, atol=1e-6)  # in place
    flat = [v[:2] / np.linalg.norm(v[:2]) for v in (ahead, turned_ahead)]
    assert np.degrees(np.arccos(np.clip(flat[0] @ flat[1], -1, 1))) == pytest.approx(2.0, abs=1e-3)


_OFFSET = """
import json
import numpy as np
from trainer import camera, envs
env = camera.KukaGraspCamEnv(size=32)
out = []
for offset in ((0.0, 0.0), (0.12, 0.0)):
    env.configure(block_offset=offset)
    envs.seed_process(3)
    env.reset()
    out.append(env.state.tolist())
print(json.dumps(out))
"""


@pytest.mark.slow
def test_a_block_offset_moves_the_blocks_start_and_nothing_else():
    """The robustness check's block beyond the training range (bench/vision_robustness.py)."""
    result = subprocess.run(
        [sys.executable, "-c", _OFFSET], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    plain, moved = json.loads(result.stdout.strip().splitlines()[-1])
    assert moved[: camera.ARM_SIZE] == pytest.approx(plain[: camera.ARM_SIZE], abs=1e-6)
    dx, dy = (m - p for m, p in zip(moved[6:8], plain[6:8], strict=True))
    assert (dx**2 + dy**2) ** 0.5 == pytest.approx(0.12, abs=1e-3)


_TRAY = """
import json
import numpy as np
from trainer import camera, envs
env = camera.KukaGraspCamEnv(size=32)
out = []
for tray in (None, (0.55, 0.35, 0.2, 1.0), None):
    env.configure(tray_rgba=tray)
    envs.seed_process(3)
    obs = env.reset()
    out.append({"state": env.state.tolist(), "image": obs["image"].astype(int).tolist()})
print(json.dumps(out))
"""


@pytest.mark.slow
def test_a_tinted_tray_changes_the_frame_and_nothing_else():
    """The robustness check's other surface colour (bench/vision_robustness.py), taken off
    again at the next reset without it."""
    result = subprocess.run(
        [sys.executable, "-c", _TRAY], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    plain, tinted, again = json.loads(result.stdout.strip().splitlines()[-1])
    assert tinted["state"] == plain["state"] == again["state"]
    assert tinted["image"] != plain["image"] and again["image"] == plain["image"]
    red, _, blue = (sum(sum(c[i] for c in row) for row in tinted["image"]) for i in range(3))
    assert red > blue  # brown
