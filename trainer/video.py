"""The pictures of a film: our camera, the text on each frame, the contact sheet, H.264.

Headless (pybullet DIRECT, TinyRenderer) with our own camera: the env's own
960x720 `render()` manages about 2 frames/s here, ours at 320x240 about ten times that.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from trainer.config import RenderConfig

# Where the camera looks: between the arm's start and the tray, a little above the table.
CAMERA_TARGET = (0.5, 0.05, 0.12)
SHEET_COLUMNS, SHEET_ROWS = 4, 2


class Camera:
    """Our own view of the scene through pybullet's TinyRenderer."""

    def __init__(self, cfg: RenderConfig):
        import pybullet as p

        self._p = p
        self._size = (cfg.width, cfg.height)
        self._view = p.computeViewMatrixFromYawPitchRoll(
            cameraTargetPosition=CAMERA_TARGET,
            distance=cfg.distance,
            yaw=cfg.yaw,
            pitch=cfg.pitch,
            roll=0,
            upAxisIndex=2,
        )
        self._projection = p.computeProjectionMatrixFOV(
            fov=60, aspect=cfg.width / cfg.height, nearVal=0.1, farVal=10.0
        )

    def shoot(self) -> np.ndarray:
        width, height = self._size
        _, _, rgba, _, _ = self._p.getCameraImage(
            width,
            height,
            viewMatrix=self._view,
            projectionMatrix=self._projection,
            renderer=self._p.ER_TINY_RENDERER,
            flags=self._p.ER_NO_SEGMENTATION_MASK,
        )
        return np.asarray(rgba, np.uint8).reshape(height, width, 4)[:, :, :3]


def overlay(frame: np.ndarray, lines: list[str]) -> np.ndarray:
    """`frame` with `lines` of white text on a black box in its top left corner."""
    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    height = 12 * len(lines) + 6
    draw.rectangle((0, 0, max(len(line) for line in lines) * 6 + 8, height), fill=(0, 0, 0))
    for i, line in enumerate(lines):
        draw.text((4, 3 + 12 * i), line, fill=(255, 255, 255))
    return np.asarray(image)


def video_writer(path: str, fps: int):
    """An H.264 MP4 writer that players and browsers take (yuv420p), any even frame size."""
    import imageio.v2 as imageio

    return imageio.get_writer(
        path,
        fps=fps,
        codec="libx264",
        pixelformat="yuv420p",
        macro_block_size=2,
        ffmpeg_log_level="error",
    )


def pick_sheet(episodes: list[dict]) -> int:
    """Index of the episode the contact sheet shows: the first that lifted, else the first."""
    return next((i for i, e in enumerate(episodes) if e["success"]), 0)


def contact_sheet(frames: list[np.ndarray]) -> Image.Image:
    """Frames spread evenly over one episode, its last one (the grasp's end) included."""
    count = SHEET_COLUMNS * SHEET_ROWS
    picks = np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int)
    height, width, _ = frames[0].shape
    sheet = Image.new("RGB", (width * SHEET_COLUMNS, height * SHEET_ROWS))
    for i, index in enumerate(picks):
        sheet.paste(
            Image.fromarray(frames[index]),
            ((i % SHEET_COLUMNS) * width, (i // SHEET_COLUMNS) * height),
        )
    return sheet
