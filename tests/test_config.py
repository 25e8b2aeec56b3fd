"""Config validation in-process (the CLI table in test_reliability covers the exit path)."""

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
    t = from_dict({"train": {"num_envs": 512, "unroll_length": 62, "utd_ratio": 0.025, "total_env_steps": 100_000_000,
                             "num_epochs": 50, "buffer_size": 10_000, "batch_size": 512, "prefill_steps": 1000},
                   "env": {"episode_length": 1000}}).train
    assert t.env_steps_per_training_step == 31_744
    assert t.sgd_steps_per_training_step == 794  # about 800 per update phase, as in the paper
    assert t.training_steps_per_epoch == 64


# -- one source of defaults: Hydra composes the dataclasses' own defaults ------------------

CONF = __import__("pathlib").Path(__file__).resolve().parents[1] / "conf"


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
    learner = jax.eval_shape(Trainer(cfg, env, eval_env).init_learner, jax.random.PRNGKey(0))
    for params in (learner["actor_params"], learner["critic_params"]):
        block_axes = {leaf.shape[0] for path, leaf in jax.tree_util.tree_leaves_with_path(params)
                      if any("blocks" in str(p).lower() or "scan" in str(p).lower() for p in path)}
        assert block_axes == {2}, block_axes


def test_env_params_need_no_plus_on_the_command_line():
    from crl.apps.train import env_param_overrides

    overrides = env_param_overrides(["env.params.speed=0.3", "network.depth=8"])
    assert overrides == ["++env.params.speed=0.3", "network.depth=8"]
    assert from_dict(_compose(overrides)).env.params == {"speed": 0.3}
