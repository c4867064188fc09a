"""Use a trained policy outside the trainer: load a run's policy/ and play KukaGrasp-v0.

    python -m demo.use_policy runs/RUN/policy --episodes 3

The SavedModel needs only TensorFlow and TensorFlow Probability (which registers
its distribution types); the trainer package is imported only to register the
KukaGrasp-v0 env with gym. Each step feeds the policy one batch of one time step:

    input            shape    dtype    value
    0/step_type      (1,)     int32    0 first step of an episode, 1 middle, 2 last
    0/reward         (1,)     float32  the reward that led here (0 at the first step)
    0/discount       (1,)     float32  1.0
    0/observation    (1, 9)   float32  the env's observation
    -> action        (1, 3)   float32  dx, dy, gripper angle, each in [-1, 1]

A KukaGraspCam-v0 run's policy (the camera student, docs/vision.md) takes what the
camera env observes, and plays that env:

    input            shape          dtype    value
    image            (1, S, S, 3)   uint8    the camera's RGB frame (S: the run's --image_size)
    arm              (1, 6)         float32  the gripper's position and Euler angles
    -> action        (1, 3)         float32  dx, dy, gripper angle, each in [-1, 1]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # no CUDA probing chatter on a CPU

import gym  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability  # noqa: E402,F401  (registers the policy's distribution types)
from absl import logging  # noqa: E402

from trainer import envs  # noqa: E402,F401  (registers KukaGrasp-v0)

LIFT_BONUS = 10_000  # the env adds it to the last reward when the block ends up lifted


def is_camera_policy(policy) -> bool:
    """Whether `policy` is a camera student (inputs image and arm)."""
    _, inputs = policy.signatures["action"].structured_input_signature
    return set(inputs) == {"image", "arm"}


def play(policy, env, seed: int) -> tuple[float, int, bool]:
    """One greedy episode: (return, steps, whether the block was lifted)."""
    env.seed(seed)
    observation, reward, done = env.reset(), 0.0, False
    step_type, total, steps = 0, 0.0, 0
    while not done:
        if isinstance(observation, dict):  # the camera student
            inputs = {name: tf.constant(value[None]) for name, value in observation.items()}
        else:
            inputs = {
                "0/step_type": tf.constant([step_type], tf.int32),
                "0/reward": tf.constant([reward], tf.float32),
                "0/discount": tf.constant([1.0], tf.float32),
                "0/observation": tf.constant([observation], tf.float32),
            }
        action = policy.signatures["action"](**inputs)["action"]
        with contextlib.redirect_stdout(io.StringIO()):  # the env prints each lift
            observation, reward, done, _ = env.step(np.asarray(action[0]))
        step_type, total, steps = 1, total + reward, steps + 1
    return total, steps, reward > LIFT_BONUS / 2


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("policy", help="a run's policy/ directory (runs/RUN/policy)")
    parser.add_argument("--episodes", type=int, default=3, help="episodes to play")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first block placement")
    parser.add_argument(
        "--env_id",
        default="KukaGrasp-v0",
        help="gym id of the env (a camera policy always plays KukaGraspCam-v0)",
    )
    args = parser.parse_args()
    if not os.path.isfile(os.path.join(args.policy, "saved_model.pb")):
        parser.error(f"no SavedModel in {args.policy} (make train writes RUN/policy)")
    logging.set_verbosity(logging.ERROR)  # the signature's input names draw a warning each
    policy = tf.saved_model.load(args.policy)
    if is_camera_policy(policy):
        _, inputs = policy.signatures["action"].structured_input_signature
        env = gym.make(envs.CAMERA_ENV_ID, size=inputs["image"].shape[1])
    else:
        env = gym.make(args.env_id)
    lifted = 0
    for episode in range(args.episodes):
        envs.seed_process(args.seed + episode)  # the env places the block with `random`
        total, steps, success = play(policy, env, args.seed + episode)
        lifted += success
        print(
            f"episode {episode + 1}: return {total:,.1f}, {steps} steps, "
            f"{'lifted the block' if success else 'missed'}"
        )
    print(f"lifted {lifted} of {args.episodes}")


if __name__ == "__main__":
    main()
