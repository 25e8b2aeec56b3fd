"""Config validation in-process (the CLI table in test_reliability covers the exit path)."""

import pathlib

import pytest

from crl.config import Config, ConfigError, from_dict


@pytest.mark.parametrize(
    "section, values, key, allowed",
    [
        ("network", {"critic_width": 0}, "network.critic_width", "positive integer"),
        ("network", {"repr_dim": 0}, "network.repr_dim", "positive integer"),
        ("train", {"num_envs": 0}, "train.num_envs", "positive integer"),
        ("train", {"actor_lr": -1.0}, "train.actor_lr", "positive number"),
        ("train", {"contrastive_loss": "sideways"}, "train.contrastive_loss", "forward, backward, symmetric"),
        ("train", {"utd_ratio": 0.0}, "train.utd_ratio", "positive number"),
        ("train", {"prefill_steps": -5}, "train.prefill_steps", ">= 0"),
        ("train", {"logsumexp_penalty": -0.1}, "train.logsumexp_penalty", ">= 0"),
        ("train", {"buffer_size": 10, "unroll_length": 50}, "train.buffer_size", "at least train.unroll_length"),
        ("train", {"num_epochs": 2.5}, "train.num_epochs", "integer"),
        ("checkpoint", {"keep": 0}, "checkpoint.keep", "positive integer"),
        ("checkpoint", {"every_epochs": 0}, "checkpoint.every_epochs", "positive integer"),
        ("env", {"episode_length": 1}, "env.episode_length", ">= 2"),
        ("env", {"params": [1, 2]}, "env.params", "mapping"),
        ("logging", {"csv": "yes"}, "logging.csv", "true or false"),
        ("train", {"sgd_schedule": "fixed"}, "train.sgd_schedule", "ratio, paper"),
        ("train", {"sgd_steps_cap": 0}, "train.sgd_steps_cap", "positive integer"),
        ("train", {"reset_mode": "never"}, "train.reset_mode", "fresh, first"),
        ("train", {"prefill_policy": "expert"}, "train.prefill_policy", "random, actor"),
        ("train", {"sampling": "prioritised"}, "train.sampling", "uniform, window"),
        ("train", {"update_order": "alpha_first"}, "train.update_order", "critic_first, actor_first"),
        # the paper's schedule counts the prefill in total_env_steps (100 x 64 here)
        ("train", {"sgd_schedule": "paper", "total_env_steps": 38_399}, "train.total_env_steps", "includes the prefill"),
        ("train", {"sgd_schedule": "paper", "num_envs": 2, "batch_size": 256, "total_env_steps": 10_000},
         "train.batch_size", "num_envs x (env.episode_length - 1)"),
        # a window needs more than episode_length stored steps per env before the first update
        ("train", {"sampling": "window", "prefill_steps": 50}, "train.prefill_steps", "train.sampling=window"),
        # without replacement: 50 SGD steps x 256 > 64 envs x 99 window transitions
        ("train", {"sampling": "window", "utd_ratio": 0.5, "prefill_steps": 100}, "train.batch_size", "without replacement"),
    ],
)
def test_bad_values_name_their_key(section, values, key, allowed):
    with pytest.raises(ConfigError) as err:
        from_dict({section: values})
    message = str(err.value)
    assert message.startswith(f"{key}:") and allowed in message and "\n" not in message


def test_seed_and_unknown_sections():
    with pytest.raises(ConfigError, match=r"^seed: -1 is not allowed"):
        from_dict({"seed": -1})
    with pytest.raises(ConfigError, match=r"^optimizer: unknown key"):
        from_dict({"optimizer": {}})


def test_defaults_are_valid_and_integers_accept_scientific_notation():
    assert from_dict({}) == Config()
    cfg = from_dict({"train": {"total_env_steps": 1e5}})
    assert cfg.train.total_env_steps == 100_000 and isinstance(cfg.train.total_env_steps, int)


def test_derived_training_sizes():
    cfg = from_dict({"train": {"num_envs": 512, "unroll_length": 62, "utd_ratio": 0.025, "total_env_steps": 100_000_000,
                               "num_epochs": 50, "buffer_size": 10_000, "batch_size": 512, "prefill_steps": 1000},
                     "env": {"episode_length": 1000}})
    assert cfg.train.sgd_schedule == "ratio"
    assert cfg.train.env_steps_per_training_step == 31_744
    assert cfg.sgd_steps_per_training_step == 794  # about 800 per update phase, as in the paper
    assert cfg.training_steps_per_epoch == 64


# The paper's runs: 512 envs, 62-step unrolls, 1000-step episodes, 1000 prefill steps per env,
# 100M env steps (prefill included), 100 epochs (README / job.slurm of its code).
PAPER_RUN = {"unroll_length": 62, "prefill_steps": 1000, "buffer_size": 10_000, "total_env_steps": 100_000_000,
             "num_epochs": 100, "sgd_schedule": "paper"}


@pytest.mark.parametrize(
    "num_envs, batch_size, sgd_steps, phases_per_epoch",
    [
        # sgd = min(800, num_envs x 999 // batch); phases = (1e8 - 1000 num_envs) // (100 x num_envs x 62)
        (512, 256, 800, 31),
        (512, 512, 800, 31),
        (512, 1024, 499, 31),
        (512, 2048, 249, 31),
        (64, 256, 249, 251),
    ],
)
def test_paper_schedule_gives_the_paper_codes_numbers(num_envs, batch_size, sgd_steps, phases_per_epoch):
    cfg = from_dict({"train": {**PAPER_RUN, "num_envs": num_envs, "batch_size": batch_size},
                     "env": {"episode_length": 1000}})
    assert cfg.sgd_steps_per_training_step == sgd_steps
    assert cfg.training_steps_per_epoch == phases_per_epoch
    info = cfg.schedule()
    assert info["sgd_schedule"] == "paper"
    assert (info["sgd_steps_per_training_step"], info["training_steps"]) == (sgd_steps, 100 * phases_per_epoch)


def test_paper_schedule_cap_and_epochs():
    base = {"train": {**PAPER_RUN, "num_envs": 512, "batch_size": 256}, "env": {"episode_length": 1000}}
    capped = from_dict({**base, "train": {**base["train"], "sgd_steps_cap": 100}})
    assert capped.sgd_steps_per_training_step == 100
    # 400M steps over 100 epochs (the U5 and humanoid mazes): 125 phases per epoch, as the paper's code
    long = from_dict({**base, "train": {**base["train"], "total_env_steps": 400_000_000}})
    assert long.training_steps_per_epoch == 125
    # 50 epochs floor differently: 62 x 50 = 3100 phases, the same total as 31 x 100 here
    fifty = from_dict({**base, "train": {**base["train"], "num_epochs": 50}})
    assert fifty.training_steps_per_epoch == 62


def test_the_library_defaults_are_our_schedule_and_pipeline():
    t = Config().train
    assert (t.sgd_schedule, t.reset_mode, t.prefill_policy, t.sampling, t.update_order) == (
        "ratio", "fresh", "random", "uniform", "critic_first"
    )


# -- one source of defaults: Hydra composes the dataclasses' own defaults ------------------

CONF = pathlib.Path(__file__).resolve().parents[1] / "conf"


def _compose(overrides=()):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    import crl.apps.train  # noqa: F401  registers the defaults

    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return OmegaConf.to_container(compose("config", overrides=list(overrides)), resolve=True)


def test_hydra_composes_exactly_the_library_defaults():
    assert from_dict(_compose()) == Config()


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"depth": 8}, (8, 8, 256, 256)),
        ({"width": 32}, (4, 4, 32, 32)),
        ({"depth": 16, "critic_depth": 32, "actor_width": 64}, (16, 32, 64, 256)),
    ],
)
def test_depth_and_width_derive_alike_from_python_and_the_command_line(overrides, expected):
    from_python = from_dict({"network": overrides}).network
    from_cli = from_dict(_compose([f"network.{k}={v}" for k, v in overrides.items()])).network
    assert from_python == from_cli
    assert (from_python.actor_depth, from_python.critic_depth, from_python.actor_width, from_python.critic_width) == expected


def test_readme_library_example_builds_the_depth_it_asks_for():
    """README: from_dict({"env": {"id": "point_u_maze"}, "network": {"depth": 8}}) trains depth 8:
    the built actor and critic carry 8 / 4 = 2 scanned residual blocks."""
    import jax

    from crl.run import build_envs
    from crl.train import Trainer

    cfg = from_dict({"env": {"id": "point_u_maze"}, "network": {"depth": 8}})
    env, eval_env = build_envs(cfg)
    params = jax.eval_shape(Trainer(cfg, env, eval_env).init_params, jax.random.PRNGKey(0))
    for params in (params["actor"], params["critic"]):
        block_axes = {leaf.shape[0] for path, leaf in jax.tree_util.tree_leaves_with_path(params)
                      if any("blocks" in str(p).lower() or "scan" in str(p).lower() for p in path)}
        assert block_axes == {2}, block_axes


def test_env_params_need_no_plus_on_the_command_line():
    from crl.apps.train import env_param_overrides

    overrides = env_param_overrides(["env.params.speed=0.3", "network.depth=8"])
    assert overrides == ["++env.params.speed=0.3", "network.depth=8"]
    assert from_dict(_compose(overrides)).env.params == {"speed": 0.3}
