"""The progress line: steps, steady speed, ETA, return and success, on stderr."""

from __future__ import annotations

import collections
import contextlib
import math
import sys
import time

# The shortest time between two progress lines.
LINE_SECONDS = 1.0


class Progress:
    """One line per iteration, at most one a second, on stderr: steps, steady speed, ETA,
    return and success.

    The speed is that of training alone, over the last few iterations after the first:
    start-up, TensorFlow's tracing of the first iteration and the evaluations would
    otherwise make it read low, so until a second iteration has finished it reads "?",
    and time spent evaluating is left out. The ETA adds to the training left at that
    speed the greedy episodes still due in evaluations (`eval_episodes_left(steps)`),
    each as long as in the last evaluation, or before any has run as long as a training
    episode at the training speed. Before
    each evaluation a line says that it runs and how long it should take.
    """

    def __init__(self, total: int, eval_episodes_left=lambda steps: 0, stream=sys.stderr):
        self._total, self._eval_episodes_left, self._stream = total, eval_episodes_left, stream
        self._marks: collections.deque = collections.deque(maxlen=6)
        self._paused = 0.0  # seconds spent evaluating, left out of the speed
        self._episode_seconds: float | None = None  # per eval episode, as last measured
        self._episode_length: float | None = None  # mean training episode length
        self._rate: float | None = None

    def update(self, steps: int, avg_return=None, success=None, episode_length=None) -> None:
        now = time.time() - self._paused
        self._episode_length = episode_length or self._episode_length
        # Short iterations (SAC's are 64 env steps) print a line a second at most.
        if self._marks and steps < self._total and now - self._marks[-1][0] < LINE_SECONDS:
            return
        self._marks.append((now, steps))
        eta = float("inf")
        if len(self._marks) > 1:
            (t0, s0), (t1, s1) = self._marks[0], self._marks[-1]
            self._rate = (s1 - s0) / max(t1 - t0, 1e-9)
            if self._rate > 0:
                eta = max(self._total - steps, 0) / self._rate
                eta += self._eval_seconds(self._eval_episodes_left(steps)) or 0
        parts = [
            f"step {steps:,}/{self._total:,} ({100 * min(steps / self._total, 1):.0f}%)",
            f"{self._rate:,.0f} steps/s" if self._rate is not None else "? steps/s",
            f"ETA {duration(eta)}",
        ]
        if avg_return is not None:
            parts.append(f"return {avg_return:,.0f}")
        if success is not None:
            parts.append(f"success {100 * success:.0f}%")
        self._print(" | ".join(parts))

    def _eval_seconds(self, episodes: int) -> float | None:
        """How long `episodes` greedy episodes should take, or None before anything is known."""
        if self._episode_seconds is not None:
            return episodes * self._episode_seconds
        if self._rate and self._episode_length:
            return episodes * self._episode_length / self._rate
        return None

    @contextlib.contextmanager
    def evaluating(self, episodes: int):
        """Says that `episodes` greedy episodes run and for how long; times them."""
        expected = self._eval_seconds(episodes)
        about = f", about {duration(expected)}" if expected is not None else ""
        self._print(f"evaluating: {episodes} greedy episodes{about} (training waits)")
        start = time.time()
        try:
            yield
        finally:
            seconds = time.time() - start
            self._paused += seconds
            self._episode_seconds = seconds / max(episodes, 1)

    def _print(self, line: str) -> None:
        print(line, file=self._stream, flush=True)


def duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
