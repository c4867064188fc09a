"""`KukaGraspCam-v0`: the grasp of `KukaGrasp-v0`, seen through a fixed camera.

The observation is what a real arm has: a small RGB frame of the tray and the
gripper's own state (position and Euler angles, the first 6 numbers of the state
observation). It never holds the block's position or angle. The full state stays
readable as `env.state` for a teacher that labels the camera's frames (docs/vision.md).
"""

from __future__ import annotations

import dataclasses

import gym
import numpy as np
import pybullet

from trainer import envs
from trainer.config import VisionConfig

# gripper x, y, z and Euler angles: pybullet's Kuka.getObservation, before the block's part
ARM_SIZE = 6
ACTION_SIZE = 3  # KukaGymEnv's dx, dy and gripper angle


@dataclasses.dataclass(frozen=True)
class Camera:
    """A fixed pinhole camera looking at the tray; pybullet's yaw/pitch/distance form.

    The default looks from the arm's side, 50 degrees down, at the middle of the area
    where the block starts (x 0.55-0.67, y 0-0.2 in KukaGymEnv.reset): from there the
    gripper hides the block less than from straight above, where the arm's upper links
    fill the frame (docs/vision.md has the frames compared).
    """

    target: tuple[float, float, float] = (0.61, 0.1, -0.19)
    distance: float = 0.7
    yaw: float = 90.0
    pitch: float = -50.0
    fov: float = 40.0
    light_direction: tuple[float, float, float] | None = None  # None: TinyRenderer's own
    turn: float = 0.0  # degrees the camera is turned in place, about the vertical

    def moved(self, shift: float = 0.0, turn: float = 0.0) -> Camera:
        """This camera carried `shift` metres along x (the arm's reach) and turned in place
        by `turn` degrees: the robustness checks' disturbances."""
        x, y, z = self.target
        return dataclasses.replace(self, target=(x + shift, y, z), turn=self.turn + turn)

    def view_matrix(self) -> tuple[float, ...]:
        """pybullet's view matrix: yaw, pitch and distance around the target, then turned."""
        view = pybullet.computeViewMatrixFromYawPitchRoll(
            self.target, self.distance, self.yaw, self.pitch, 0, 2
        )
        if not self.turn:
            return view
        # The eye is where the inverse of the (column-major) view matrix sends the origin.
        eye = np.linalg.inv(np.asarray(view).reshape(4, 4).T)[:3, 3]
        angle = np.radians(self.turn)
        rotation = np.array(
            [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
        )
        ahead = rotation @ (np.asarray(self.target) - eye)
        return pybullet.computeViewMatrix(eye.tolist(), (eye + ahead).tolist(), (0, 0, 1))

    def image(self, size: int) -> np.ndarray:
        """A (size, size, 3) uint8 frame from pybullet's TinyRenderer (no GPU needed)."""
        view = self.view_matrix()
        projection = pybullet.computeProjectionMatrixFOV(self.fov, 1.0, 0.1, 10.0)
        light = {} if self.light_direction is None else {"lightDirection": self.light_direction}
        _, _, rgba, _, _ = pybullet.getCameraImage(
            size, size, view, projection, renderer=pybullet.ER_TINY_RENDERER, **light
        )
        return np.asarray(rgba, np.uint8).reshape(size, size, 4)[..., :3]


class KukaGraspCamEnv(envs.KukaGraspEnv):
    """`KukaGrasp-v0` (dynamics, reward, termination, scripted grasp) observed as
    {"image": (size, size, 3) uint8, "arm": (6,) float32}."""

    def __init__(
        self,
        size: int = VisionConfig.image_size,
        camera: Camera | None = None,
        block_offset: tuple[float, float] = (0.0, 0.0),
        tray_rgba: tuple[float, float, float, float] | None = None,
        **kwargs,
    ):
        """`camera`, `block_offset` (metres added to the block's start in x and y, outside
        the range KukaGymEnv draws from) and `tray_rgba` (the tray's colour, which its
        texture is multiplied by; the tray is the surface the camera sees under the
        block) are the robustness checks' changes."""
        # KukaGymEnv.__init__ calls reset(), which renders: the camera comes first.
        self.size = size
        self.configure(camera, block_offset, tray_rgba)
        self.state = np.zeros(0, np.float32)
        super().__init__(**kwargs)
        self.observation_space = gym.spaces.Dict(
            {
                "image": gym.spaces.Box(0, 255, (size, size, 3), np.uint8),
                "arm": gym.spaces.Box(-np.inf, np.inf, (ARM_SIZE,), np.float32),
            }
        )

    def configure(
        self, camera: Camera | None = None, block_offset=(0.0, 0.0), tray_rgba=None
    ) -> None:
        """Sets the camera, block offset and tray colour from the next reset on (the
        constructor's)."""
        self.camera, self.block_offset, self.tray_rgba = camera or Camera(), block_offset, tray_rgba
        self.load_anew()  # a restored scene keeps the tray's last colour

    def _observe(self, state) -> dict[str, np.ndarray]:
        self.state = np.asarray(state, np.float32)
        return {"image": self.camera.image(self.size), "arm": self.state[:ARM_SIZE].copy()}

    def reset(self):
        state = super().reset()
        if self.tray_rgba is not None:
            pybullet.changeVisualShape(self._kuka.trayUid, -1, rgbaColor=self.tray_rgba)
        if any(self.block_offset):
            position, orientation = pybullet.getBasePositionAndOrientation(self.blockUid)
            x, y, z = position
            dx, dy = self.block_offset
            pybullet.resetBasePositionAndOrientation(
                self.blockUid, (x + dx, y + dy, z), orientation
            )
            state = self.getExtendedObservation()
        return self._observe(state)

    def step(self, action):
        state, reward, done, info = super().step(action)
        return self._observe(state), reward, done, info
