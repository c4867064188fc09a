"""The run record's pieces that need no training: evaluation points."""

from __future__ import annotations

from trainer import record
from trainer.config import Config


def test_evaluations_fall_at_the_first_boundary_past_each_multiple():
    cfg = Config(eval_interval=100_000, total_steps=600_000)
    boundaries = range(0, 600_000, 4_096)
    due = [
        after
        for before, after in zip(boundaries, boundaries[1:], strict=False)
        if record.eval_due(cfg, before, after)
    ]
    assert due[:3] == [102_400, 200_704, 303_104]


def test_evaluations_left_count_the_periodic_ones_and_the_final_one():
    cfg = Config(eval_interval=100_000, total_steps=600_000)
    assert record.evals_left(cfg, 0) == 6
    assert record.evals_left(cfg, 450_000) == 2
    assert record.evals_left(Config(eval_interval=0, total_steps=600_000), 0) == 1
