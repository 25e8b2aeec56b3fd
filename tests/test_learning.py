"""Learning, honestly: a short CPU training must clearly beat the untrained actor and a
random policy on the point U-maze, with fixed seeds."""

import jax

from crl.config import from_dict
from crl.evaluate import evaluate, random_policy
from crl.run import build_envs, run_training
from crl.train import Trainer

CONFIG = {
    "env": {"id": "point_u_maze", "episode_length": 100},
    "train": {
        "num_envs": 64,
        "total_env_steps": 32_000,
        "num_epochs": 2,
        "unroll_length": 50,
        "prefill_steps": 100,
        "utd_ratio": 1 / 32,
        "batch_size": 256,
        "buffer_size": 1000,
        "num_eval_envs": 256,
    },
    "network": {"actor_depth": 4, "critic_depth": 4, "actor_width": 128, "critic_width": 128},
    "logging": {"progress_bar": False},
    "seed": 1,
}


def test_short_training_beats_untrained_and_random(tmp_path):
    cfg = from_dict(CONFIG)
    env, eval_env = build_envs(cfg)
    trainer = Trainer(cfg, env, eval_env)
    key = jax.random.PRNGKey(123)
    untrained = trainer.init(jax.random.PRNGKey(cfg.seed))
    before = float(trainer.evaluate(untrained.actor_params, key)["time_at_goal"])
    rand = float(
        jax.jit(lambda k: evaluate(eval_env, random_policy(env.action_size), None, k, 256, 100))(key)["time_at_goal"]
    )
    row = run_training(cfg, tmp_path)
    after = row["eval/time_at_goal"]
    print(f"time_at_goal: untrained {before:.1f}, random {rand:.1f}, trained {after:.1f}")
    assert after > max(before, rand) + 15, (before, rand, after)
    assert row["eval/success_any"] > 0.5
