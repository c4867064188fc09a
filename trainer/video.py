"""The pictures of a film: our camera, the text on each frame, the contact sheet, H.264.

Headless (pybullet DIRECT, TinyRenderer) with our own camera: the env's own
960x720 `render()` manages about 2 frames/s here, ours at 320x240 about ten times that.
"""

from __future__ import annotations

import contextlib
import errno
import subprocess
import tempfile

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


def inset(frame: np.ndarray, view: np.ndarray | None) -> np.ndarray:
    """`frame` with `view` (what a camera policy sees) enlarged into its top right corner,
    framed in white: a third of the frame's height, pixels kept square and sharp."""
    if view is None:
        return frame
    side = max(view.shape[0], frame.shape[0] // 3 // view.shape[0] * view.shape[0])
    shown = Image.fromarray(view).resize((side, side), Image.NEAREST)
    out = Image.fromarray(frame)
    left = frame.shape[1] - side - 4
    ImageDraw.Draw(out).rectangle((left - 2, 2, left + side + 1, side + 5), fill=(255, 255, 255))
    out.paste(shown, (left, 4))
    return np.asarray(out)


class VideoWriter:
    """Frames piped to ffmpeg (imageio-ffmpeg's binary) as an H.264 MP4 that players and
    browsers take (yuv420p); frame sizes must be even (checks.validate_render).

    ffmpeg's messages go to a temp file, not the terminal, so a failure is one OSError
    carrying ffmpeg's last line. A full disk stops ffmpeg, and the writer sees only a
    broken pipe: the error then says ENOSPC, which the full-disk check recognises.
    """

    def __init__(self, path: str, fps: int):
        self._path, self._fps = path, fps
        self._proc: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115  (closed in close())
        self._failed = False

    def _start(self, height: int, width: int) -> subprocess.Popen:
        import imageio_ffmpeg

        command = [
            imageio_ffmpeg.get_ffmpeg_exe(),
            *("-y", "-f", "rawvideo", "-vcodec", "rawvideo", "-s", f"{width}x{height}"),
            *("-pix_fmt", "rgb24", "-r", f"{self._fps:.2f}", "-i", "-", "-an"),
            *("-vcodec", "libx264", "-pix_fmt", "yuv420p", "-v", "error", self._path),
        ]
        return subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log
        )

    def append_data(self, frame: np.ndarray) -> None:
        if self._proc is None:
            self._proc = self._start(*frame.shape[:2])
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame, np.uint8).tobytes())
        except BrokenPipeError:
            raise self._failure() from None

    def close(self) -> None:
        """Waits for ffmpeg to finish the file; OSError if it failed (said once)."""
        try:
            if self._proc is not None:
                with contextlib.suppress(BrokenPipeError):
                    self._proc.stdin.close()
                if self._proc.wait() != 0 and not self._failed:
                    raise self._failure()
        finally:
            self._log.close()

    def _failure(self) -> OSError:
        self._failed = True
        self._proc.wait()
        self._log.seek(0)
        lines = self._log.read().decode(errors="replace").strip().splitlines()
        # ffmpeg's last line may be a consequence ("Error initializing output stream").
        full = [line for line in lines if "No space left on device" in line]
        reason = (full or lines or [f"exit code {self._proc.returncode}"])[-1]
        return OSError(errno.ENOSPC if full else errno.EIO, f"ffmpeg: {reason}", self._path)


def video_writer(path: str, fps: int) -> VideoWriter:
    """An H.264 MP4 writer: `append_data(frame)` per frame, then `close()`."""
    return VideoWriter(path, fps)


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
