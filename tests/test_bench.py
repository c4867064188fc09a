"""The learning benches run end to end on tiny budgets and write their reports."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys

import pytest

from bench import published, versus, vision_robustness, wallclock
from bench.common import TINY_FLAGS
from tests.conftest import ROOT, run_module

pytestmark = pytest.mark.slow

# Every trainer flag of the tiny run but the ones the benches set themselves.
TINY = [f for f in TINY_FLAGS if not f.startswith(("--total_steps", "--eval_"))]


def _bench(module: str, *args: str, extra=()) -> str:
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args, "--", *TINY, *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_ablation_interleaves_variants_resumes_and_reports(tmp_path):
    args = ["--steps=600", "--seeds=1", "--variants=old-reward,reward-scale"]
    args += ["--eval_interval=300", "--eval_episodes=2", f"--logdir={tmp_path}/runs"]
    out = tmp_path / "ablation.md"
    first = _bench("ablation", *args, f"--out={out}")
    order = [line for line in first.splitlines() if line.startswith("python -m trainer.task")]
    assert ["--run=old-reward-s0" in order[0], "--run=reward-scale-s0" in order[1]] == [True, True]
    report = out.read_text()
    assert "| `old-reward`:" in report and "| `reward-scale`:" in report
    assert "drive-down" in report
    # A second call trains nothing and writes the same table.
    again = _bench("ablation", *args, f"--out={out}")
    assert "python -m trainer.task" not in again.split("# Ablation")[0]
    assert out.read_text() == report
    # Its runs, saved beside it, time from each run's start (bench/wallclock.py).
    saved = wallclock.load(str(tmp_path / "ablation.json"))
    assert sorted(saved) == ["old-reward-s0", "reward-scale-s0"]
    assert list(wallclock.load(str(tmp_path / "ablation.json"), ["old-reward-s0"])) == [
        "reward-scale-s0"
    ]
    assert all(0 < entry["start_seconds"] < 300 for entry in saved.values())
    assert [entry["launches"] for entry in saved.values()] == [1, 1]
    median, worst = wallclock.summary(saved, 0.0)  # to the first evaluation
    assert 0 < median <= worst < 10
    assert wallclock.summary(saved, 1.01) == (math.inf, math.inf)
    wallclock.plot(saved, 0.8, str(tmp_path / "wallclock.png"))
    assert (tmp_path / "wallclock.png").stat().st_size > 0
    # Variants side by side (bench/versus.py): runs grouped by variant, a run chosen.
    path = str(tmp_path / "ablation.json")
    groups = versus.gather([(path, ["reward-scale-s0"]), (path, ["old-reward-s0"])])
    assert {name: list(runs) for name, runs in groups.items()} == {
        "reward-scale": ["reward-scale-s0"],
        "old-reward": ["old-reward-s0"],
    }
    assert versus.describe("old-reward", groups["old-reward"], 1.01).startswith(
        "old-reward: 0 of 1 runs reached 101%; median never, never; median success"
    )
    # To the first evaluation: at its env steps, within the run's minutes.
    first = groups["old-reward"]["old-reward-s0"]["evals"][0][0]
    assert f"1 of 1 runs reached 0%; median {first / 1e6:.2f}M env steps, " in versus.describe(
        "old-reward", groups["old-reward"], 0.0
    )
    with pytest.raises(KeyError, match="no timed run default-s0"):
        versus.gather([(path, ["default-s0"])])
    with pytest.raises(KeyError, match="run old-reward-s0 is taken twice"):
        versus.gather([(path, []), (path, ["old-reward-s0"])])
    versus.plot(groups, 0.8, str(tmp_path / "versus.png"))
    assert (tmp_path / "versus.png").stat().st_size > 0
    # A fresh clone has the report and its .json but no run directories: it goes on
    # from the saved runs and trains nothing.
    shutil.rmtree(tmp_path / "runs")
    again = _bench("ablation", *args, f"--out={out}")
    assert "python -m trainer.task" not in again.split("# Ablation")[0]
    assert out.read_text() == report
    # A run saved with another command is not reused: here, with --report, not reported.
    (tmp_path / "other.json").write_text(
        (tmp_path / "ablation.json").read_text().replace("--eval_episodes=2", "--eval_episodes=3")
    )
    changed = _bench("ablation", *args, "--report", f"--out={tmp_path / 'other.md'}")
    assert "| `old-reward` | " not in changed
    # --report with more seeds than have run: trains nothing, reports the finished ones.
    again = _bench("ablation", *args, "--seeds=2", "--report", f"--out={out}")
    assert "python -m trainer.task" not in again.split("# Ablation")[0]
    assert "| `old-reward` | " in out.read_text()


def test_published_scores_study_trains_once_and_reports(tmp_path):
    out = tmp_path / "published.md"
    args = ["--envs=ReacherBulletEnv-v0", "--seeds=1", "--steps=600", "--evals=1"]
    args += [f"--logdir={tmp_path}/runs", f"--out={out}"]
    first = _bench("published", *args, extra=["--learning_starts=64"])
    assert "--run=reacher-s0" in first and "--agent=sac" in first
    report = out.read_text()
    assert "| ReacherBulletEnv-v0 | 600 (not the published 300,000) | 18.1 | " in report
    # Saved beside it: a second call trains nothing and writes the same table.
    saved = json.loads((tmp_path / "published.json").read_text())
    assert list(saved) == ["reacher-s0"] and saved["reacher-s0"]["evals"]
    again = _bench("published", *args, extra=["--learning_starts=64"])
    assert "python -m trainer.task" not in again.split("# SAC against")[0]
    assert out.read_text() == report


def test_published_scores_goal_is_the_median_within_a_tenth():
    assert published.verdict([20.0, 16.5, 12.0], 18.062) == "met"  # 16.5 >= 16.26
    assert published.verdict([10.0], 18.062) == "not met (55% of it)"
    assert published.run_name("HalfCheetahBulletEnv-v0", 2) == "halfcheetah-s2"


def test_a_variant_that_trains_the_same_takes_its_clock_from_the_same_seed():
    """wallclock --clock: times by seed from another study, only at the same steps."""
    runs = {"average-20k-s3": {"evals": [[100, 0.9, 1.0, 208, 999.0]], "start_seconds": 50.0}}
    clock = {"default-s3": {"evals": [[100, 0.7, 1.0, 208, 60.0]], "start_seconds": 5.0}}
    (timed,) = wallclock.clocked(runs, clock).values()
    assert timed == {"evals": [[100, 0.9, 1.0, 208, 60.0]], "start_seconds": 5.0}
    assert wallclock.minutes_to(timed, 0.8) == 65 / 60
    with pytest.raises(ValueError, match="other steps"):
        wallclock.clocked(runs, {"default-s3": {"evals": [[200, 0.7, 1, 208, 60.0]]}})
    with pytest.raises(ValueError, match="more than one run of seed 3"):
        wallclock.clocked(runs, {**clock, "other-s3": clock["default-s3"]})
    with pytest.raises(ValueError, match="no run of average-20k-s3's seed"):
        wallclock.clocked(runs, {"default-s4": clock["default-s3"]})


def test_a_resumed_run_is_timed_only_by_another_studys_clock(tmp_path):
    path = tmp_path / "study.json"
    resumed = {"evals": [[100, 0.9, 1.0, 208, 999.0]], "start_seconds": 50.0, "launches": 2}
    path.write_text(json.dumps({"average-20k-s3": resumed}))
    assert wallclock.load(str(path)) == {}  # its own seconds include the time it was down
    assert list(wallclock.load(str(path), timed=False)) == ["average-20k-s3"]


def test_stability_counts_seeds_by_step_and_the_largest_fall():
    from bench import ablation

    def rows(*rates):  # evaluations at the first iteration past each 100k
        return [(100_000 * i + 2_048, r, 0.0, 208.0, 60.0 * i) for i, r in enumerate(rates, 1)]

    results = [
        ({"success_rate": 0.70}, rows(0.2, 0.6, 0.8, 0.82, 0.78, 0.70)),  # seed 11's shape
        ({"success_rate": 1.00}, rows(0.6, 0.9, 0.95, 1.0, 1.0, 1.0)),
    ]
    assert ablation.largest_fall(results[0][1]) == pytest.approx(12)
    row = ablation.stability_row("`default`", results, 100_000)
    assert row == "| `default` | 1/2 | 2/2 | 1/2 | 85% (worst 70%) | 12 points (seed 0) |"


def test_the_summary_gives_each_seeds_steps_to_the_nearest_10000():
    from bench import ablation

    def rows(*rates):  # SAC's grid: an evaluation every 20,000 steps
        return [(20_000 * i, r, 0.0, 207.0, 60.0 * i) for i, r in enumerate(rates, 1)]

    final = {"success_rate": 0.9, "mean_length": 207.0}
    results = [(final, rows(0.1, 0.3, 0.6, 0.7, 0.9)), (final, rows(0.2, 0.55, 0.8, 0.9, 0.9))]
    row = ablation.summary_row("`sac`", results)
    assert "| 0.05M (2/2; 0.06M, 0.04M) | 0.08M (2/2; 0.1M, 0.06M) |" in row


def test_learning_bench_reports_intervals(tmp_path):
    args = ["--seeds=1", "--steps=600", "--eval_interval=300", "--eval_episodes=2"]
    _bench("learning", *args, f"--logdir={tmp_path}/runs", f"--out={tmp_path}")
    report = (tmp_path / "results.md").read_text()
    assert "final success (95% interval)" in report
    assert (tmp_path / "learning_curves.png").stat().st_size > 0


def test_sac_speed_pairs_tf_agents_loop_with_ours():
    result = subprocess.run(
        [sys.executable, "-m", "bench.sac_speed", "--pairs=1", "--steps=320"]
        + ["--learning_starts=64"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "pair 1/1: tf-agents' SAC loop " in result.stdout
    assert "ours / tf-agents': median " in result.stdout


def test_envs_pairs_restored_resets_with_loading_the_scene_anew():
    result = run_module("bench.envs", "--episodes=1", "--resets=1", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "pair 1: restored " in result.stdout
    assert "restored / loaded anew: median " in result.stdout


def test_envs_pairs_an_exported_policy_with_random_actions(tiny_run):
    policy = os.path.join(tiny_run, "policy")
    result = run_module("bench.envs", "--episodes=1", "--pairs=1", f"--policy={policy}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(
        r"pair 1, policy: [\d,]+ steps/s with its actions' time, [01]/1 lifted, last step ",
        result.stdout,
    )
    assert re.search(
        r"pair 1, random: [\d,]+ steps/s with its actions' time, [01]/1 lifted, last step ",
        result.stdout,
    )
    assert "last step, policy / random: median " in result.stdout


def test_sac_speed_times_our_learner_alone():
    import queue

    from bench import sac_speed

    rates = queue.Queue()
    sac_speed.learner_alone(0.5, None, rates)
    assert rates.get_nowait() > 0


def test_throughput_trains_with_one_intra_op_thread_in_a_fresh_process():
    from bench import throughput

    tiny = {"collect_steps": 300, "actor_layers": (16,), "value_layers": (16,)}
    speed, threads = throughput.training_speed_with_threads(
        1, "KukaGrasp-v0", 2, 1800, "ppo", **tiny
    )
    assert speed > 0 and threads == 1
    with pytest.raises(SystemExit, match="a measuring process exited 1"):
        throughput.training_speed_with_threads(1, "KukaGrasp-v0", 2, 600, "ppo", **tiny)


def test_vision_benches_report_a_camera_run(tiny_camera_run, tmp_path):
    """bench/vision.py's table (--report: the run exists) and bench/vision_robustness.py's
    conditions, on the tiny camera run."""
    import os

    shutil.copytree(tiny_camera_run, tmp_path / "cam-s0")
    table = tmp_path / "seeds.md"
    args = ["--seeds=0", f"--logdir={tmp_path}", f"--out={table}", "--report"]
    result = run_module("bench.vision", *args, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| 0 | " in table.read_text() and "1 of 1 seeds" in table.read_text()
    run = os.path.join(tmp_path, "cam-s0")
    out = tmp_path / "robustness.md"
    args = [run, "--episodes=1", f"--out={out}"]
    result = run_module("bench.vision_robustness", *args, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("student ") == len(vision_robustness.CONDITIONS)
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ")]
    assert len(rows) == 2 + len(vision_robustness.CONDITIONS) and "| as trained |" in rows[2]
    # A second run of the bench takes the rows kept in the run instead of measuring again.
    again = run_module("bench.vision_robustness", *args, timeout=300)
    assert again.returncode == 0 and "student " not in again.stdout


def test_grasp_failures_splits_a_runs_greedy_episodes(tiny_run):
    result = run_module("bench.grasp_failures", tiny_run, "--episodes=2", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("greedy success ") and lines[0].endswith("/2")
    assert [line.split(":")[0] for line in lines[1:]] == ["hits", "misses"]


def test_startup_times_each_milestone_line_and_the_exit():
    from bench import startup

    lines = ["Run directory: x", "step 300/600", "step 600/600", "Done: policy in x"]
    script = "import sys, time\nfor line in %r:\n    time.sleep(0.05); print(line, file=sys.stderr)"
    seen = startup.trial([sys.executable, "-c", script % lines])
    assert list(seen) == ["run directory checked", "first iteration recorded", "done", "exit"]
    assert seen["run directory checked"] < seen["first iteration recorded"] < seen["exit"]
    table = startup.report([seen, seen])
    assert table[0].split()[:3] == ["run", "directory", "checked"] and len(table) == 4
