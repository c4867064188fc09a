"""Teaching the camera policy: DAgger with a state policy as the teacher (docs/vision.md).

Each round, env processes play episodes of KukaGraspCam-v0 and keep every frame with
the teacher's greedy action for the state behind it; the first round the teacher
drives, later rounds the student drives, so the student learns to recover from its
own mistakes (Ross et al. 2011). The student trains on all frames so far. A round's
frames, the student and the round count are saved before the next begins, so a run
stopped at any point resumes at the round it was in.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import shutil
import sys
import time

import numpy as np

from trainer import actors, camera, envs, errors, evaluate, labelling, resume, rundir, student
from trainer.config import Config, VisionConfig
from trainer.rundir import RunDir

# A camera run's own files beside config.json; dagger.json, written last in a round,
# is what counts the round done, so a crash before it repeats the round.
FRAMES = "frames"  # round-NNN.npz: a round's frames, never recollected on a resume
STUDENT = "student"  # round-NNN/: the student after each round; dagger.json names one
STATE = RunDir.DAGGER_STATE


def _state(run_dir: str) -> dict:
    """Rounds finished and their measurements (dagger.json), or those of a new run."""
    try:
        with open(RunDir(run_dir).file(STATE)) as f:
            return json.load(f)
    except FileNotFoundError:
        return {"rounds": 0, "success": [], "loss": [], "frames": [], "student": ""}


def export(model, path: str) -> None:
    """The student as a SavedModel: serving signature `action` of {"image": uint8
    [batch, size, size, 3], "arm": float32 [batch, 6]} (demo/use_policy.py plays it)."""
    import tensorflow as tf

    size = model.input["image"].shape[1]
    spec = {
        "image": tf.TensorSpec([None, size, size, 3], tf.uint8, name="image"),
        "arm": tf.TensorSpec([None, model.input["arm"].shape[1]], tf.float32, name="arm"),
    }
    serve = tf.function(lambda inputs: {"action": model(inputs)}, input_signature=[spec])
    signatures = {"action": serve, "serving_default": serve}
    rundir.export_dir(path, lambda staging: tf.saved_model.save(model, staging, signatures))


def _load_frames(run_dir: str, rounds: int) -> dict[str, np.ndarray]:
    files = sorted(glob.glob(os.path.join(run_dir, FRAMES, "round-*.npz")))[:rounds]
    parts = [dict(np.load(path)) for path in files]
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]} if parts else {}


def _save_round(run_dir: str, index: int, frames: dict, model, state: dict) -> None:
    """The round's frames, then the student, then the state that counts the round done."""
    os.makedirs(os.path.join(run_dir, FRAMES), exist_ok=True)
    path = os.path.join(run_dir, FRAMES, f"round-{index:03d}.npz")
    np.savez_compressed(path + ".tmp.npz", **frames)
    os.replace(path + ".tmp.npz", path)
    model.save_weights(os.path.join(run_dir, state["student"]))
    rundir.write_atomic(RunDir(run_dir).file(STATE), json.dumps(state, indent=1))
    for older in glob.glob(os.path.join(run_dir, STUDENT, "round-*")):
        if not state["student"].startswith(os.path.relpath(older, run_dir)):
            shutil.rmtree(older, ignore_errors=True)


def teach(
    vision: VisionConfig,
    teacher_params: dict,
    run_dir: str,
    num_envs: int,
    seed: int,
    eval_episodes: int,
    log=lambda line: print(line, file=sys.stderr, flush=True),
    on_round=lambda: None,
) -> dict:
    """Runs (or resumes) the DAgger rounds, exports the student to RUN/policy and
    evaluates it; returns the evaluation (evaluate.summarize), also in eval.json and
    TensorBoard. `on_round()` is called once each round is saved (an upload)."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    state = _state(run_dir)
    model = _build(vision)
    data = _load_frames(run_dir, state["rounds"])
    if state["rounds"]:  # the weights hold the arm's normalization too
        model.load_weights(os.path.join(run_dir, state["student"]))
        log(f"Resumed after round {state['rounds']} ({len(data['label']):,} frames)")
    writer = tf.summary.create_file_writer(RunDir(run_dir).train_events)
    sized = {"size": vision.image_size}
    worker = f"{labelling.__name__}:env_worker"
    with actors.ActorPool(envs.CAMERA_ENV_ID, num_envs, seed, worker=worker) as pool:
        started, first = time.monotonic(), state["rounds"]
        for index in range(first, vision.dagger_iterations):
            data, new, state = _round(pool, model, vision, teacher_params, index, data, state)
            _save_round(run_dir, index, new, model, state)
            with writer.as_default(step=state["frames"][-1]):
                tf.summary.scalar("Vision/ImitationLoss", state["loss"][-1])
                tf.summary.scalar("Vision/DriverSuccess", state["success"][-1])
            writer.flush()  # the round's events go up with it
            on_round()
            per_round = (time.monotonic() - started) / (index + 1 - first)
            left = per_round * (vision.dagger_iterations - index - 1)
            log(
                f"round {index + 1}/{vision.dagger_iterations} | "
                f"{'teacher' if index == 0 else 'student'} drove: success "
                f"{state['success'][-1]:.0%} | {state['frames'][-1]:,} frames | imitation loss "
                f"{state['loss'][-1]:.2e} | played {state['play_seconds'][-1]:.0f} s, fitted "
                f"{state['fit_seconds'][-1]:.0f} s | ETA {int(left // 60)}m{int(left % 60):02d}s"
            )
        export(model, RunDir(run_dir).policy)
        episodes = pool.evaluate((None, student.params(model), sized), eval_episodes)
    result = evaluate.summarize(episodes, sum(state["frames"][-1:]), envs.CAMERA_ENV_ID)
    evaluate.write_json(result, RunDir(run_dir).eval_json)
    eval_writer = tf.summary.create_file_writer(RunDir(run_dir).eval_events)
    evaluate.write_summaries(eval_writer, result)
    for each in (writer, eval_writer):
        each.flush()
    return result


def load_student(run_dir: str):
    """(VisionConfig, Keras student) of a camera run's last finished round; ValueError
    if no round has finished."""
    state = _state(run_dir)
    if not state["rounds"]:
        raise ValueError(f"no student in {run_dir} yet: no DAgger round has finished")
    with open(RunDir(run_dir).file(RunDir.VISION)) as f:
        vision = VisionConfig(**json.load(f))
    model = _build(vision)
    # Playing needs no optimizer: its saved state stays unread.
    model.load_weights(os.path.join(run_dir, state["student"])).expect_partial()
    return vision, model


def _build(vision: VisionConfig):
    return student.build(
        vision.image_size, camera.ARM_SIZE, camera.ACTION_SIZE, vision.student_learning_rate
    )


def evaluate_run(cfg: Config, run_dir: str) -> tuple[str, dict]:
    """`make eval` of a camera run: `cfg.eval_episodes` greedy episodes of its student;
    writes eval-<frames>.json beside eval.json. ValueError if no round has finished."""
    vision, model = load_student(run_dir)
    rounds = _state(run_dir)
    sized = {"size": vision.image_size}
    worker = f"{labelling.__name__}:env_worker"
    num_envs = min(cfg.num_envs, cfg.eval_episodes)
    with actors.ActorPool(envs.CAMERA_ENV_ID, num_envs, cfg.seed, worker=worker) as pool:
        episodes = pool.evaluate((None, student.params(model), sized), cfg.eval_episodes)
    result = evaluate.summarize(episodes, rounds["frames"][-1], envs.CAMERA_ENV_ID)
    path = RunDir(run_dir).eval_at(result["env_steps"])
    evaluate.write_json(result, path)
    return path, result


def _round(pool, model, vision: VisionConfig, teacher_params, index: int, data, state):
    """One round: play and label episodes, train on every frame so far.

    Returns (frames so far, this round's frames, the state counting the round).
    """
    driver = student.params(model) if index else None  # the teacher drives round 1
    sized = {"size": vision.image_size}
    started = time.monotonic()
    replies = pool.spread("label", (teacher_params, driver, sized), vision.dagger_episodes)
    played = time.monotonic()
    parts = [reply[0] for reply in replies if reply[0] is not None]
    new = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    episodes = [episode for reply in replies for episode in reply[1]]
    frames = {key: np.concatenate([data[key], new[key]]) for key in new} if data else new
    if index == 0:  # the arm's scale, fixed from the teacher's episodes on
        model.get_layer("arm_normalization").adapt(frames["arm"])
    history = model.fit(
        {"image": frames["image"], "arm": frames["arm"]},
        frames["label"],
        batch_size=vision.student_batch_size,
        epochs=vision.student_epochs,
        shuffle=True,
        verbose=0,
    )
    state = {
        "rounds": index + 1,
        "success": [*state["success"], float(np.mean([bool(e.success) for e in episodes]))],
        "loss": [*state["loss"], float(history.history["loss"][-1])],
        "frames": [*state["frames"], len(frames["label"])],
        "student": os.path.join(STUDENT, f"round-{index:03d}", "weights"),
        # Where a round's time goes: playing (env processes, CPU) and fitting (what a
        # GPU would speed up), for the cost on the cluster (docs/vision.md).
        "play_seconds": [*state.get("play_seconds", []), round(played - started, 1)],
        "fit_seconds": [*state.get("fit_seconds", []), round(time.monotonic() - played, 1)],
    }
    return frames, new, state


def train(
    cfg: Config, vision: VisionConfig, run_dir: str, given=None, log=None, syncer=None
) -> dict:
    """A KukaGraspCam-v0 run: its teacher (trained in RUN/teacher unless `vision.teacher`
    names one), then the DAgger rounds; returns the student's evaluation.

    The run's vision.json is written once; a resume keeps it but for the `given` flags,
    of which only --dagger_iterations may differ (errors.UsageError otherwise).
    `syncer` (a gs:// run's storage.Syncer) uploads the whole run, the teacher's
    checkpoints and each finished round included.
    """
    from trainer import train as state_training

    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    vision = _settings(vision, RunDir(run_dir).file(RunDir.VISION), given or {})
    rounds = _state(run_dir)["rounds"]
    if rounds >= vision.dagger_iterations and os.path.exists(RunDir(run_dir).eval_json):
        with open(RunDir(run_dir).eval_json) as f:
            log(f"Run {run_dir} already finished its {rounds} rounds (eval.json)")
            return json.load(f)
    teacher_dir = vision.teacher or RunDir(run_dir).file(RunDir.TEACHER)
    if not vision.teacher:
        teacher_cfg = dataclasses.replace(
            cfg, env_id=envs.DEFAULT_ENV_ID, logdir=run_dir, run=RunDir.TEACHER
        )  # a run of its own: `make eval LOGDIR=RUN_DIR RUN=teacher` works on it
        os.makedirs(teacher_dir, exist_ok=True)
        if not os.path.exists(RunDir(teacher_dir).config):
            RunDir(teacher_dir).save_config(teacher_cfg)
        if (RunDir(teacher_dir).finished_at() or 0) < teacher_cfg.total_steps:
            log(f"Training the teacher (state policy, {envs.DEFAULT_ENV_ID}) in {teacher_dir}")
            state_training.train(teacher_cfg, teacher_dir, log=log, syncer=syncer)
    log(f"Teaching the camera policy ({vision.image_size}x{vision.image_size}) from {teacher_dir}")
    return teach(
        vision,
        labelling.teacher_params(teacher_dir),
        run_dir,
        cfg.num_envs,
        cfg.seed,
        cfg.eval_episodes,
        log=log,
        on_round=syncer.request if syncer is not None else lambda: None,
    )


def _settings(vision: VisionConfig, path: str, given) -> VisionConfig:
    """The run's camera settings by resume.py's rules; only --dagger_iterations may change."""
    if not os.path.exists(path):
        rundir.write_atomic(path, json.dumps(dataclasses.asdict(vision), indent=1))
        return vision
    with open(path) as f:
        saved = VisionConfig(**json.load(f))
    vision = resume.merged(saved, vision, given)
    changed = resume.differences(saved, vision)
    if changed:
        raise errors.UsageError(
            f"the run exists with other camera settings ({'; '.join(changed)}); pass the same "
            "flags to resume it, or another --run"
        )
    return vision
