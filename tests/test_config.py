import dataclasses

import pytest

from trainer import checks, config, schema
from trainer.config import Config, RenderConfig, RoleConfig


@pytest.mark.parametrize(
    "cls", [Config, config.PPOConfig, config.SACConfig, RenderConfig, RoleConfig]
)
def test_every_field_is_documented_once_in_order(cls):
    import docstring_parser

    documented = [param.arg_name for param in docstring_parser.parse(cls.__doc__).params]
    assert documented == [f.name for f in dataclasses.fields(cls)]
    assert all(doc.strip() for doc in schema.field_docs(cls).values())


def test_each_agent_has_its_own_defaults_and_old_runs_keep_theirs():
    assert config.for_agent() == Config()  # Config's own defaults are PPO's
    sac = config.for_agent("sac")
    assert {name: getattr(sac, name) for name in config.AGENT_DEFAULTS["sac"]} == (
        config.AGENT_DEFAULTS["sac"]
    )
    checks.validate(sac)
    # A flag given wins over the agent's default; the agent's own settings are its own type.
    assert config.for_agent("sac", collect_steps=128).collect_steps == 128
    assert config.for_agent("sac", batch_size=64).algo == config.SACConfig(batch_size=64)
    with pytest.raises(TypeError):
        config.for_agent("sac", clip_ratio=0.1)  # PPO's
    # A config.json written before the reward flags existed resumes as it trained.
    old = schema.from_dict({"agent": "ppo", "run": "old"})
    assert (old.algo.normalize_rewards, old.algo.reward_clip, old.reward_scale) == (True, 10.0, 1.0)
    assert not old.deterministic
    # A SAC run from before its warm-up and target rate were settings trained without
    # a warm-up, at tf-agents' rate.
    old_sac = schema.from_dict({"agent": "sac", "run": "old"})
    assert (old_sac.algo.learning_starts, old_sac.algo.target_update_tau) == (0, 0.005)
    # and, before the reward scale was written, with SAC's own 0.001.
    assert old_sac.reward_scale == 0.001
    # A run saved with its settings under `algo` that predates some of them: the same.
    saved = schema.to_dict(Config())
    del saved["algo"]["action_mean_init"], saved["algo"]["entropy_schedule"]
    del saved["deterministic"]
    later = schema.from_dict(saved)
    assert (later.algo.action_mean_init, later.algo.entropy_schedule) == (0.1, "constant")
    assert not later.deterministic


def test_the_resume_rules_and_the_help_read_the_fields_marks():
    """A field marked resumable is the one list: resume.differences and --help read it."""
    from tests.conftest import run_task
    from trainer import resume

    assert schema.resumable(Config) == {
        "total_steps",
        "overlap",
        "intra_op_threads",
        "deterministic",
        "logdir",
        "staging_dir",
        "checkpoint_interval",
        "eval_interval",
        "eval_episodes",
        "sigterm_budget",
    }
    assert schema.resumable(config.VisionConfig) == {"dagger_iterations"}
    saved = Config()
    wanted = dataclasses.replace(saved, total_steps=1, seed=5, eval_episodes=3)
    assert resume.differences(saved, wanted) == ["seed: run has 0, flags say 5"]
    shown = run_task("train", "--help").stdout
    for name in schema.resumable(Config):
        assert f"--{name}" in shown or f"--[no]{name}" in shown
    marked = [line for line in shown.splitlines() if "a resumed run may change it" in line]
    assert len(marked) == len(schema.resumable(Config) | schema.resumable(config.VisionConfig))


def test_each_agents_own_settings_are_its_own_type_and_the_help_says_whose():
    owners = schema.owners(Config)
    ppo = {f.name for f in dataclasses.fields(config.PPOConfig)}
    sac = {f.name for f in dataclasses.fields(config.SACConfig)}
    # A sample of each (a new setting of one algorithm changes no test).
    assert {"num_epochs", "clip_ratio", "gae_lambda", "normalize_rewards"} <= ppo
    assert {"replay_capacity", "batch_size", "learning_starts", "target_update_tau"} <= sac
    for name in ppo | sac:  # the agents whose settings class holds it (a variant may share)
        holders = (
            a for a, own in config.ALGORITHM_SETTINGS.items() if name in own.__dataclass_fields__
        )
        assert owners[name] == tuple(holders)
    assert (
        set(owners) == ppo | sac and "ppo" in owners["clip_ratio"] and "sac" in owners["batch_size"]
    )
    assert not ppo & {f.name for f in dataclasses.fields(Config)}  # never also shared
    assert schema.reads("sac", "batch_size") and not schema.reads("ppo", "batch_size")
    assert schema.reads("ppo", "seed") and schema.reads("sac", "seed")
    for name, doc in schema.field_docs(Config).items():
        head = doc.partition(": ")[0].split(", ")
        marked = tuple(head) if set(head) <= set(config.AGENTS) else None
        assert marked == owners.get(name), (name, doc)  # the help names the agents that read it
