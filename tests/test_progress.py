"""The progress line: a steady speed, and an ETA that counts the evaluations still due."""

from __future__ import annotations

import io

from trainer import progress as progress_lib


def test_progress_says_eta_unknown_until_a_rate_is_measured(monkeypatch):
    clock = iter([130.0, 131.0, 132.0])  # the first update comes after 30 s of start-up
    monkeypatch.setattr(progress_lib.time, "time", lambda: next(clock))
    out = io.StringIO()
    progress = progress_lib.Progress(total=100_000, stream=out)
    progress.update(4_096, None, None)
    progress.update(8_192, -800.0, 0.1)
    progress.update(12_288, -700.0, 0.2)
    first, second, third = out.getvalue().splitlines()
    assert "? steps/s | ETA ?" in first  # the 30 s of start-up count for nothing
    assert "4,096 steps/s" in second and "ETA 0m22s" in second
    assert "return -800 | success 10%" in second
    assert third.startswith("step 12,288/100,000 (12%)")


def test_eta_leaves_evaluations_out_of_the_speed_and_counts_those_still_due(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(progress_lib.time, "time", lambda: now[0])
    out = io.StringIO()
    # Two evaluations of 10 episodes still due whatever the step: 20 episodes.
    progress = progress_lib.Progress(total=100_000, eval_episodes_left=lambda steps: 20, stream=out)
    progress.update(10_000, None, None, episode_length=200.0)
    now[0] += 1.0
    progress.update(11_000, None, None)  # 1,000 steps/s; an episode of 200 steps: 0.2 s
    with progress.evaluating(10):
        now[0] += 5.0  # 0.5 s an episode
    now[0] += 1.0
    progress.update(12_000, None, None)
    lines = out.getvalue().splitlines()
    assert "1,000 steps/s | ETA 1m33s" in lines[1]  # 89 s of training, 20 x 0.2 s of evals
    assert lines[2] == "evaluating: 10 greedy episodes, about 0m02s (training waits)"
    # The 5 s of evaluation do not slow the speed; 20 episodes now take 10 s.
    assert "1,000 steps/s | ETA 1m38s" in lines[3]


def test_short_iterations_print_a_line_a_second_and_the_last_one(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(progress_lib.time, "time", lambda: now[0])
    out = io.StringIO()
    progress = progress_lib.Progress(total=1_280, stream=out)
    for steps in range(64, 1_281, 64):  # 20 iterations of 0.25 s
        now[0] += 0.25
        progress.update(steps)
    lines = out.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == [
        "64/1,280",
        "320/1,280",
        "576/1,280",
        "832/1,280",
        "1,088/1,280",
        "1,280/1,280",
    ]
    assert "256 steps/s" in lines[-1]
