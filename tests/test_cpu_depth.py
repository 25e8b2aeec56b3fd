"""The CPU depth-effect preset (conf/experiment/cpu_depth_threshold.yaml) and its published
results (docs/results/cpu_depth/): a two-depth, one-seed miniature of the sweep end to end,
and the summary and critical-depth rule checked on a saved copy of the real sweep's
metrics (tests/data/cpu_depth_sweep/, written by experiments/cpu_depth_results.py)."""

import pathlib

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import crl_train

REPO = pathlib.Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "cpu_depth_sweep"
RESULTS = REPO / "docs" / "results" / "cpu_depth"

# The preset at toy size: its env, eval env, width-free settings and launcher, with the sizes cut.
MINIATURE = [
    "network.depth=4,8", "seed=0", "network.width=16", "train.num_envs=8", "train.total_env_steps=1600",
    "train.num_epochs=2", "train.unroll_length=10", "train.prefill_steps=20", "train.batch_size=32",
    "train.buffer_size=200", "train.num_eval_envs=8", "env.episode_length=30",
]


def test_a_miniature_of_the_preset_runs_end_to_end(tmp_path):
    from crl.apps.analysis import critical_depths, depth_summary
    from crl.apps.collect import aggregate, collect_runs

    sweep = tmp_path / "sweep"
    result = crl_train("-m", "+experiment=cpu_depth_threshold", *MINIATURE, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Joblib" in result.stdout + result.stderr  # the preset's launcher
    runs = collect_runs(sweep)
    assert sorted(runs.critic_depth) == [4, 8] and runs.complete.all()
    for path in runs.path:
        cfg = yaml.safe_load((pathlib.Path(path) / "config.yaml").read_text())
        assert (cfg["env"]["id"], cfg["env"]["eval_id"]) == ("point_u_maze", "point_u_maze_eval")
        assert (pathlib.Path(path) / "params.msgpack").is_file()  # the value map's input
    summary = depth_summary(aggregate(runs))
    assert list(summary.columns[:5]) == ["env", "depth", "n_seeds", "time_at_goal_mean", "time_at_goal_se"]
    assert list(summary.depth) == [4, 8] and list(summary.n_seeds) == [1, 1]
    assert np.isfinite(summary.time_at_goal_mean).all() and summary.time_at_goal_se.isna().all()
    assert len(critical_depths(aggregate(runs))) == 1  # the rule runs on it (one seed: relative bound only)


@pytest.fixture(scope="module")
def saved():
    from crl.apps.collect import aggregate, collect_runs

    runs = collect_runs(DATA)
    return runs, aggregate(runs)


def test_the_saved_sweep_is_the_whole_preset(saved):
    runs, table = saved
    assert runs.complete.all() and len(runs) == 12
    assert sorted(set(zip(runs.critic_depth, runs.seed))) == [(d, s) for d in (4, 8, 16, 32) for s in (0, 1, 2)]
    assert set(runs.actor_depth == runs.critic_depth) == {True} and set(runs.critic_width) == {64}
    assert (table.n_seeds >= 3).all()


def test_summary_csv_is_the_saved_sweep_aggregated(saved):
    from crl.apps.analysis import depth_summary

    _, table = saved
    published = pd.read_csv(RESULTS / "summary.csv")
    assert list(published.columns[:5]) == ["env", "depth", "n_seeds", "time_at_goal_mean", "time_at_goal_se"]
    pd.testing.assert_frame_equal(depth_summary(table), published, check_dtype=False, rtol=1e-9)


def test_the_figures_are_published():
    for name in ("time_at_goal_vs_depth.png", "learning_curves.png", "value_map.png", "interval_estimates.png",
                 "performance_profile.png"):
        path = RESULTS / name
        assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_the_critical_depth_rule_on_the_real_sweep(saved):
    """docs/results/cpu_depth/README.md reports these: depth 4 -> 8 is the jump, with a
    probability of improvement of 1.0 [1.0, 1.0]."""
    from crl.apps.analysis import critical_depths, depth_summary

    _, table = saved
    critical = critical_depths(table).iloc[0]
    assert (critical.env, critical.critical_depth, bool(critical.noise_checked)) == ("point_u_maze", 8, True)
    # from the runs, the step's probability of improvement: every depth-8 seed beat every depth-4 seed
    runs, _ = saved
    found = critical_depths(runs).iloc[0]
    assert found.critical_depth == 8
    assert (found.p_improvement, found.p_improvement_ci_low, found.p_improvement_ci_high) == (1.0, 1.0, 1.0)
    assert critical.gain > critical.threshold > 2 * table.time_at_goal_se.min()
    # the issue's bar: a deeper depth whose mean - s.e. clears depth 4's mean + s.e.
    summary = depth_summary(table).set_index("depth")
    bar = summary.time_at_goal_mean[4] + summary.time_at_goal_se[4]
    above = [d for d in (8, 16, 32) if summary.time_at_goal_mean[d] - summary.time_at_goal_se[d] > bar]
    assert above == [8, 16, 32]
    readme = (RESULTS / "README.md").read_text()
    assert "critical depth is **8**" in readme
