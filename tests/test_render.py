"""`task.py render`: a real policy filmed headless, and its error cases."""

from __future__ import annotations

import json
import os
import shutil

import imageio.v2 as imageio
import numpy as np
import pytest

from tests.conftest import run_task
from trainer.config import Config
from trainer.rundir import RunDir

pytestmark = pytest.mark.slow

SMALL = ["--width=96", "--height=72", "--fps=10", "--frame_stride=40"]


def _only_render_dir(root) -> str:
    entries = os.listdir(os.path.join(root, "render"))
    assert len(entries) == 1 and not entries[0].startswith("."), entries
    return os.path.join(root, "render", entries[0])


def test_render_films_a_trained_policy(tiny_run, tmp_path):
    # A copy of the run, so the shared tiny run stays as training left it.
    import shutil

    run_dir = tmp_path / "tiny"
    shutil.copytree(tiny_run, run_dir, ignore=shutil.ignore_patterns("render"))
    result = run_task(f"--logdir={tmp_path}", "render", "--run=tiny", "--episodes=1", *SMALL)
    assert result.returncode == 0, result.stderr[-3000:]
    out = _only_render_dir(run_dir)
    info = json.load(open(os.path.join(out, "render.json")))
    (episode,) = info["episodes"]
    assert episode["length"] > 0 and isinstance(episode["success"], bool)
    assert episode["frames"] == info["frames"]
    assert f"return {episode['return']:,.1f}" in result.stderr
    reader = imageio.get_reader(os.path.join(out, "video.mp4"))
    frames = [frame for frame in reader]
    assert len(frames) == info["frames"]
    assert frames[0].shape == (72, 96, 3)
    assert reader.get_meta_data()["codec"] == "h264"
    gif = imageio.mimread(os.path.join(out, "video.gif"))
    assert len(gif) >= 2
    preview = imageio.imread(os.path.join(out, "preview.png"))
    assert preview.shape == (72 * 2, 96 * 4, 3)
    assert info["preview_episode"] == 1
    assert "preview.png shows episode 1" in result.stderr


def test_a_camera_run_is_filmed_with_what_its_policy_sees(tiny_camera_run, tmp_path):
    """Issue 28: the camera's 32-pixel frame, doubled, framed in white top right."""
    import shutil

    run_dir = tmp_path / "cam"
    shutil.copytree(tiny_camera_run, run_dir, ignore=shutil.ignore_patterns("render"))
    result = run_task(
        f"--logdir={tmp_path}", "render", "--run=cam", "--episodes=1", "--width=192", "--height=192"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = _only_render_dir(run_dir)
    assert json.load(open(os.path.join(out, "render.json")))["env_id"] == "KukaGraspCam-v0"
    first = next(iter(imageio.get_reader(os.path.join(out, "video.mp4"))))
    # 192 // 3 // 32 * 32 = 64 pixels of view; its white frame 2 pixels wide around it.
    assert first[3, 192 - 4 - 64 : 192 - 4].mean() > 200


def test_inset_puts_the_view_top_right_in_a_white_frame():
    from trainer import video

    frame = np.zeros((96, 120, 3), np.uint8)
    view = np.full((16, 16, 3), 7, np.uint8)
    out = video.inset(frame, view)
    side = 96 // 3 // 16 * 16
    assert (out[4 : 4 + side, 120 - 4 - side : 120 - 4] == 7).all()
    assert (out[2, 120 - 4 - side] == 255).all()
    assert (out[50:, :60] == 0).all()
    assert video.inset(frame, None) is frame


def test_contact_sheet_prefers_a_lifted_episode():
    from trainer import video

    assert video.pick_sheet([{"success": False}, {"success": True}]) == 1
    assert video.pick_sheet([{"success": False}, {"success": False}]) == 0
    assert video.pick_sheet([{"success": True}, {"success": True}]) == 0
    assert video.pick_sheet([{"success": None}]) == 0


def test_random_policy_needs_no_run_and_never_lands_in_one(tmp_path):
    run_dir = _run_without_policy(tmp_path)  # a run exists: random films still go apart
    result = run_task(f"--logdir={tmp_path}", "render", "--policy=random", "--episodes=1", *SMALL)
    assert result.returncode == 0, result.stderr[-3000:]
    out = _only_render_dir(tmp_path / "random-policy")
    assert json.load(open(os.path.join(out, "render.json")))["policy"] == "random"
    assert not os.path.exists(os.path.join(run_dir, "render"))


def _refused(tmp_path, *args) -> str:
    result = run_task(f"--logdir={tmp_path}", "render", *SMALL, *args, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ")
    return last


def _run_without_policy(tmp_path) -> str:
    run_dir = tmp_path / "made"
    run_dir.mkdir()
    RunDir(str(run_dir)).save_config(Config(run="made"))
    return str(run_dir)


def test_no_run_found(tmp_path):
    assert "no run found under" in _refused(tmp_path)
    assert "no run 'missing'" in _refused(tmp_path, "--run=missing")
    _run_without_policy(tmp_path)
    assert "runs there, newest first: made" in _refused(tmp_path, "--run=missing")


def test_run_without_exported_policy(tmp_path):
    _run_without_policy(tmp_path)
    assert "no exported policy in" in _refused(tmp_path, "--run=made")


def test_render_between_the_renames_of_an_export_uses_the_previous_policy(tiny_run, tmp_path):
    run_dir = tmp_path / "tiny"
    shutil.copytree(tiny_run, run_dir)
    os.rename(run_dir / "policy", run_dir / "policy.old")  # a trainer mid-export
    result = run_task(
        "render",
        f"--logdir={tmp_path}",
        "--run=tiny",
        "--episodes=1",
        "--width=64",
        "--height=48",
        "--frame_stride=50",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (run_dir / "policy.old").is_dir() and not (run_dir / "policy").exists()  # untouched


def test_unreadable_policy_leaves_nothing_behind(tmp_path):
    run_dir = _run_without_policy(tmp_path)
    os.makedirs(os.path.join(run_dir, "policy"))
    with open(os.path.join(run_dir, "policy", "saved_model.pb"), "wb") as f:
        f.write(b"not a saved model")
    refused = _refused(tmp_path, "--run=made")
    assert "cannot load the policy" in refused
    assert refused.count(":") >= 3, refused  # the loader's own words, not just a class name
    assert not os.path.exists(os.path.join(run_dir, "render"))


def test_bad_render_settings_are_usage_errors(tmp_path):
    assert "--width and --height must be even" in _refused(
        tmp_path, "--policy=random", "--width=97"
    )
    assert "--episodes must be positive" in _refused(tmp_path, "--policy=random", "--episodes=0")


def test_renders_started_in_the_same_second_keep_both_films(tmp_path, monkeypatch):
    """Another render of the run began this second: it stages in render/.STAMP.tmp (the
    name every render used before) and an earlier one finished as render/STAMP. A render
    then shared the other's staging directory, and one of them failed
    (FileNotFoundError); now each stages apart and the later one is STAMP-2."""
    import datetime

    from trainer import render
    from trainer.config import RenderConfig

    class Clock(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 1, 2, 3, 4, 5)

    monkeypatch.setattr(render.datetime, "datetime", Clock)  # the same second, every time
    root = tmp_path / "render"
    (root / ".20260102-030405.tmp").mkdir(parents=True)
    (root / ".20260102-030405.tmp" / "video.mp4").write_bytes(b"the other render's film")
    (root / "20260102-030405").mkdir()
    (root / "20260102-030405" / "render.json").write_text("{}")
    plan = render.Plan("KukaGrasp-v0", "random", str(tmp_path), seed=0)
    cfg = RenderConfig(episodes=1, width=96, height=72, fps=10, frame_stride=40)
    out = render.render(cfg, plan, log=lambda msg: None)
    assert out == str(root / "20260102-030405-2")
    assert json.load(open(os.path.join(out, "render.json")))["frames"] > 0
    assert (root / ".20260102-030405.tmp" / "video.mp4").read_bytes() == b"the other render's film"
    assert (root / "20260102-030405" / "render.json").read_text() == "{}"
    assert sorted(os.listdir(root)) == [".20260102-030405.tmp", "20260102-030405", out[-17:]]
