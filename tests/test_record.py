"""The run record's pieces that need no training: the progress line and evaluation points."""

from __future__ import annotations

import io

from trainer import record
from trainer.config import Config


def test_progress_says_eta_unknown_until_a_rate_is_measured(monkeypatch):
    clock = iter([130.0, 131.0, 132.0])  # the first update comes after 30 s of start-up
    monkeypatch.setattr(record.time, "time", lambda: next(clock))
    out = io.StringIO()
    progress = record.Progress(total=100_000, stream=out)
    progress.update(4_096, None, None)
    progress.update(8_192, -800.0, 0.1)
    progress.update(12_288, -700.0, 0.2)
    first, second, third = out.getvalue().splitlines()
    assert "? steps/s | ETA ?" in first  # the 30 s of start-up count for nothing
    assert "4,096 steps/s" in second and "ETA 0m22s" in second
    assert "return -800 | success 10%" in second
    assert third.startswith("step 12,288/100,000 (12%)")


def test_evaluations_fall_at_the_first_boundary_past_each_multiple():
    cfg = Config(eval_interval=100_000, total_steps=600_000)
    boundaries = range(0, 600_000, 4_096)
    due = [
        after
        for before, after in zip(boundaries, boundaries[1:], strict=False)
        if record.eval_due(cfg, before, after)
    ]
    assert due[:3] == [102_400, 200_704, 303_104]
