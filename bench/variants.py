"""The agent variants that bench/ablation.py compares: key -> (what it is, trainer flags).

Each variant names every flag of the setting it studies, so a row keeps its meaning
when trainer/config.py's defaults change. Besides the named variants, every parameter
of `make tune`'s Katib search (k8s/overlays/tune/trial/search-space.json, its one home) gives
two: the parameter at each end of its range, the rest at the defaults.
"""

import json
import os

SEARCH_SPACE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    *("k8s", "overlays", "tune", "trial", "search-space.json"),
)

# The drive-down study's reward variants ran with the old initial action mean (0.1).
WIDE_INIT = ["--action_mean_init=0.1"]
OLD_REWARD = ["--reward_scale=1", "--normalize_rewards", "--reward_clip=10", *WIDE_INIT]

# SAC's settings from rl-zoo3's hyperparams/sac.yml for the pybullet envs, but for the
# discount and reward scale its variants set.
SAC = [
    *("--agent=sac", "--collect_steps=64", "--actor_layers=400,300"),
    *("--value_layers=400,300", "--learning_rate=0.00073", "--replay_capacity=300000"),
    *("--train_ratio=1", "--learning_starts=10000", "--target_update_tau=0.02"),
]

VARIANTS: dict[str, tuple[str, list[str]]] = {
    "default": ("the defaults of trainer/config.py", []),
    "old-reward": (
        "rewards divided by their running std and clipped to +-10 (the defaults until 2026-11)",
        OLD_REWARD,
    ),
    "reward-noclip": (
        "rewards divided by their running std, not clipped",
        ["--reward_scale=1", "--normalize_rewards", "--reward_clip=0", *WIDE_INIT],
    ),
    "reward-scale": (
        "rewards times 0.001, no running normalization",
        ["--reward_scale=0.001", "--nonormalize_rewards", *WIDE_INIT],
    ),
    "mean-init": (
        "initial action mean's output layer scaled by 0.01 instead of 0.1",
        ["--action_mean_init=0.01"],
    ),
    "wide-init": (
        "initial action mean's output layer scaled by 0.1 (tf-agents' default; ours until "
        "2026-11-24)",
        WIDE_INIT,
    ),
    "entropy": ("old reward, entropy bonus 0.01", [*OLD_REWARD, "--entropy_coef=0.01"]),
    # Seed 11 of the 20-seed study stays near 50% from 0.2M on, with its value loss ten
    # times the other seeds' late in the run: a policy settled on half the block
    # positions, which a small entropy bonus may keep exploring out of.
    "entropy-small": ("entropy bonus 0.001", ["--entropy_coef=0.001"]),
    # On a second machine entropy-small's seeds 0 and 3 peaked at 96% and 94% and fell
    # 12 and 26 points at 0.4-0.6M: a learning rate that decays to 0 settles the policy
    # late in the run, as PPO's MuJoCo settings (and CleanRL's anneal_lr) do.
    "entropy-lr-linear": (
        "entropy bonus 0.001, learning rate decaying linearly to 0",
        ["--entropy_coef=0.001", "--lr_schedule=linear"],
    ),
    "small-nets": ("networks of 64, 64", ["--actor_layers=64,64", "--value_layers=64,64"]),
    "epochs-4": ("4 epochs per iteration instead of 10", ["--num_epochs=4"]),
    # entropy-lr-linear's seed 6 ended at 44% after a slow start: the decay alone
    # tells whether the bonus slowed it.
    "lr-linear": ("learning rate decaying linearly to 0", ["--lr_schedule=linear"]),
    # entropy-small fixed seed 11's half-learned wrist early (92% at 0.2M); seed 3 fell
    # late under it and under lr-linear alike. The bonus where it helped, early, and
    # none late, with the learning rate as the defaults have it.
    "entropy-decay": (
        "entropy bonus 0.001 decaying linearly to 0",
        ["--entropy_coef=0.001", "--entropy_schedule=linear"],
    ),
    # The defaults' seed 12 fell 15 points after reaching 80% (98, 83, 99% greedy at
    # 0.3-0.5M) while its sampling policy held 92-96%, and most seeds' greedy evaluations
    # wobble 5-10 points: one snapshot of the actor's mean. Averaging its weights over
    # the last updates changes only what is evaluated and exported.
    "average-10k": (
        "greedy policy of the actor's weights averaged over 10,000 env steps",
        ["--policy_average=10000"],
    ),
    "average-20k": (
        "greedy policy of the actor's weights averaged over 20,000 env steps",
        ["--policy_average=20000"],
    ),
    "no-overlap": ("strictly on-policy: collection waits for learning", ["--nooverlap"]),
    "sac": (
        "SAC with rl-zoo3's pybullet settings (its defaults since 2026-11-29)",
        [*SAC, "--discount=0.98", "--reward_scale=1"],
    ),
    # One seed each (docs/results.md): 54% at 100k against the defaults' 30%. PPO's
    # discount suits this env's ~207-step episodes, and the +10,000 lift scaled down
    # keeps the critic's targets small.
    "sac-g995": (
        "SAC as `sac`, with discount 0.995 and rewards times 0.001",
        [*SAC, "--discount=0.995", "--reward_scale=0.001"],
    ),
    # sac-g995's greedy success swung 20-55 points between evaluations 20,000 steps
    # apart (seed 0: 69, 28, 99, 74%) while its sampling policy moved far less, as PPO's
    # dips did. SAC takes a gradient step per env step, so a shorter average than PPO's.
    "sac-g995-average": (
        "SAC as `sac-g995`, greedy policy of the actor's weights averaged over 10,000 env steps",
        [*SAC, "--discount=0.995", "--reward_scale=0.001", "--policy_average=10000"],
    ),
}


def search_space() -> list[dict]:
    """The Katib Experiment's parameters (name, parameterType, feasibleSpace)."""
    with open(SEARCH_SPACE) as f:
        (patch,) = json.load(f)
    return patch["value"]


def _space_variants() -> dict[str, tuple[str, list[str]]]:
    out = {}
    for param in search_space():
        name, space = param["name"], param["feasibleSpace"]
        ends = {"min": space["min"], "max": space["max"]} if "min" in space else {}
        ends.update({str(value): value for value in space.get("list", [])})
        for end, value in ends.items():
            what = f"--{name}={value} (make tune's search, {end} of its range)"
            out[f"{name}-{end}"] = (what, [f"--{name}={value}"])
    return out


_SPACE_VARIANTS = _space_variants()
NAMED = list(VARIANTS)  # `--variants` default; `--variants space` studies the search's
SPACE = list(_SPACE_VARIANTS)
VARIANTS.update(_SPACE_VARIANTS)
