"""Interval statistics (crl/apps/stats.py, docs/statistics.md): the IQM and its bootstrap
CI in `aggregate`, interval estimates over tasks, the probability of improvement, the
performance profile, and the critical depth's probability of improvement."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from crl.apps import stats as S
from crl.apps.analysis import critical_depths, probability_of_improvement
from crl.apps.collect import aggregate

# The IQM of an Exponential(1): the mean between its quartiles ln(4/3) and ln(4),
# 2 * [(x + 1) e^-x] from ln 4 back to ln(4/3).
EXP_IQM = 2 * ((math.log(4 / 3) + 1) * 0.75 - (math.log(4) + 1) * 0.25)


def seeds_table(values: np.ndarray, metric: str = "time_at_goal") -> pd.DataFrame:
    """One row per (experiment, seed) from values (experiments, seeds)."""
    experiments, seeds = values.shape
    return pd.DataFrame({"experiment": np.repeat(np.arange(experiments), seeds),
                         "seed": np.tile(np.arange(seeds), experiments), metric: values.ravel()})


def test_aggregate_iqm_is_trim_mean_of_the_seeds_and_its_ci_contains_it():
    rng = np.random.default_rng(0)
    values = rng.exponential(size=(3, 12))
    values[1, :3] = np.nan  # runs without a score are left out, as for the mean
    table = aggregate(seeds_table(values), metrics=("time_at_goal",), by=["experiment"])
    assert list(table.columns[:7]) == ["experiment", "n_seeds", "time_at_goal_mean", "time_at_goal_se",
                                       "time_at_goal_iqm", "time_at_goal_iqm_ci_low", "time_at_goal_iqm_ci_high"]
    for row, seeds in zip(table.itertuples(), values):
        seeds = seeds[~np.isnan(seeds)]
        assert row.time_at_goal_iqm == pytest.approx(stats.trim_mean(seeds, 0.25))
        assert row.time_at_goal_se == pytest.approx(np.std(seeds, ddof=1) / math.sqrt(seeds.size))
        assert row.time_at_goal_iqm_ci_low < row.time_at_goal_iqm < row.time_at_goal_iqm_ci_high
    # seeded: the same table twice, another seed moves the CI a little
    again = aggregate(seeds_table(values), metrics=("time_at_goal",), by=["experiment"])
    pd.testing.assert_frame_equal(table, again)
    other = aggregate(seeds_table(values), metrics=("time_at_goal",), by=["experiment"], seed=1)
    assert not np.allclose(other.time_at_goal_iqm_ci_low, table.time_at_goal_iqm_ci_low)
    # one seed: the IQM is its score, no interval (as no standard error)
    single = aggregate(seeds_table(values[:, :1]), metrics=("time_at_goal",), by=["experiment"])
    assert single.time_at_goal_iqm.tolist() == pytest.approx(values[:, 0].tolist(), nan_ok=True)
    assert single.time_at_goal_iqm_ci_low.isna().all() and single.time_at_goal_iqm_ci_high.isna().all()


def test_aggregate_ci_narrows_as_seeds_are_added():
    rng = np.random.default_rng(1)
    pool = rng.normal(50.0, 8.0, size=80)
    widths = []
    for n in (5, 20, 80):
        row = aggregate(seeds_table(pool[None, :n]), metrics=("time_at_goal",), by=["experiment"]).iloc[0]
        assert row.time_at_goal_iqm_ci_low <= row.time_at_goal_iqm <= row.time_at_goal_iqm_ci_high
        widths.append(row.time_at_goal_iqm_ci_high - row.time_at_goal_iqm_ci_low)
    assert widths[0] > widths[1] > widths[2] > 0


def test_the_iqm_ci_covers_the_true_iqm_about_95_percent_of_the_time():
    """300 simulated experiments of 10 seeds from an Exponential(1) (skewed: the IQM is not
    the mean), each through `aggregate`'s bootstrap."""
    rng = np.random.default_rng(2)
    table = aggregate(seeds_table(rng.exponential(size=(300, 10))), metrics=("time_at_goal",), by=["experiment"],
                      resamples=1000)
    covered = (table.time_at_goal_iqm_ci_low <= EXP_IQM) & (EXP_IQM <= table.time_at_goal_iqm_ci_high)
    assert 0.85 <= covered.mean() <= 0.99, covered.mean()


def test_interval_estimates_pool_runs_for_the_iqm_and_average_tasks_for_the_rest():
    rng = np.random.default_rng(3)
    scores = rng.uniform(0.0, 1.2, size=(10, 3))  # (runs, tasks)
    found = S.interval_estimates(scores, resamples=500)
    assert set(found) == {"iqm", "mean", "median", "optimality_gap"}
    assert found["iqm"].estimate == pytest.approx(stats.trim_mean(scores.ravel(), 0.25))
    assert found["mean"].estimate == pytest.approx(scores.mean())
    assert found["median"].estimate == pytest.approx(np.median(scores.mean(axis=0)))
    assert found["optimality_gap"].estimate == pytest.approx(1 - np.minimum(scores, 1).mean())
    for interval in found.values():
        assert interval.ci_low <= interval.estimate <= interval.ci_high
    # tasks of different sizes, as a dict
    ragged = S.interval_estimates({"a": scores[:, 0], "b": scores[:4, 1]}, aggregates=("iqm", "mean"), resamples=500)
    assert ragged["iqm"].estimate == pytest.approx(stats.trim_mean(np.r_[scores[:, 0], scores[:4, 1]], 0.25))
    assert ragged["mean"].estimate == pytest.approx((scores[:, 0].mean() + scores[:4, 1].mean()) / 2)


def test_a_stratified_resample_never_mixes_seeds_across_tasks():
    tasks = {"a": np.arange(0.0, 5.0), "b": np.arange(100.0, 108.0), "c": np.arange(200.0, 203.0)}
    seen = []

    def statistic(resampled, axis):
        assert len(resampled) == 3
        for values, original in zip(resampled, tasks.values()):
            assert np.isin(values, original).all()  # only this task's own seeds
            assert values.shape[axis] == original.size  # as many as it has
        seen.append(resampled)
        return np.mean([v.mean(axis=axis) for v in resampled], axis=0)

    result = S.stratified_bootstrap(tasks, statistic, resamples=300, seed=0)
    assert result.estimate == pytest.approx(np.mean([v.mean() for v in tasks.values()]))
    resampled = [r for r in seen if r[0].ndim == 2]
    assert sum(r[0].shape[0] for r in resampled) == 300  # the resamples went through the check
    a = np.concatenate([r[0] for r in resampled])
    assert (np.sort(a, axis=1) != tasks["a"]).any(axis=1).mean() > 0.9  # drawn with replacement


def test_probability_of_improvement_is_the_mann_whitney_fraction():
    rng = np.random.default_rng(4)
    x, y = rng.integers(0, 6, size=9).astype(float), rng.integers(0, 6, size=7).astype(float)  # with ties
    estimate, low, high = probability_of_improvement(x, y, resamples=500)
    u = stats.mannwhitneyu(x, y).statistic
    pairs = (x[:, None] > y[None, :]).mean() + 0.5 * (x[:, None] == y[None, :]).mean()
    assert estimate == pytest.approx(u / (x.size * y.size)) and estimate == pytest.approx(pairs)
    assert low <= estimate <= high
    # over tasks: the mean of each task's fraction
    xs, ys = rng.normal(size=(6, 3)), rng.normal(0.3, size=(5, 3))
    per_task = [stats.mannwhitneyu(xs[:, t], ys[:, t]).statistic / 30 for t in range(3)]
    assert probability_of_improvement(xs, ys, resamples=200).estimate == pytest.approx(np.mean(per_task))
    # reversed, the estimate is its complement; every run above every other: 1 with a [1, 1] CI
    assert probability_of_improvement(y, x, resamples=200).estimate == pytest.approx(1 - estimate)
    assert tuple(probability_of_improvement([5.0, 6.0, 7.0], [1.0, 2.0], resamples=200)) == (1.0, 1.0, 1.0)


def test_performance_profile_counts_runs_above_each_threshold():
    scores = {"a": np.array([0.1, 0.5, 0.9, 0.9]), "b": np.array([0.2, 0.3])}
    profile = S.score_distribution(scores, [0.0, 0.25, 0.5, 1.0], resamples=300)
    assert profile.fraction.tolist() == pytest.approx([1.0, (0.75 + 0.5) / 2, (0.5 + 0.0) / 2, 0.0])
    assert (profile.ci_low <= profile.fraction + 1e-12).all() and (profile.fraction <= profile.ci_high + 1e-12).all()


def test_normalised_scores_per_episode_and_per_the_papers_best():
    runs = pd.DataFrame({"env": ["humanoid", "point_u_maze"], "episode_length": [1000, 100],
                         "time_at_goal": [324.5, 40.0]})
    episode = S.normalised_scores(runs)
    assert episode.normalised.tolist() == pytest.approx([0.3245, 0.4])
    paper = S.normalised_scores(runs, normalise="paper")
    assert paper.normalised.tolist() == pytest.approx([324.5 / 649.0, 0.4])  # the paper's depth-64 humanoid: 649
    assert paper.normaliser.tolist() == ["episode_length x paper best", "episode_length"]


def test_setting_intervals_aggregate_over_tasks_per_depth():
    rng = np.random.default_rng(5)
    rows = [{"env": env, "critic_depth": depth, "seed": seed, "episode_length": 100,
             "time_at_goal": rng.normal(30 + depth, 3)}
            for env in ("a", "b") for depth in (4, 16) for seed in range(4)]
    runs = pd.DataFrame(rows)
    table = S.setting_intervals(runs, resamples=300)
    assert table.critic_depth.tolist() == [4, 16] and table.n_tasks.tolist() == [2, 2]
    assert table.n_runs.tolist() == [8, 8]
    deep = runs[runs.critic_depth == 16].time_at_goal / 100
    assert table.iqm.iloc[1] == pytest.approx(stats.trim_mean(deep, 0.25))
    assert (table.iqm_ci_low <= table.iqm).all() and (table.iqm <= table.iqm_ci_high).all()
    assert table.iqm.iloc[1] > table.iqm_ci_high.iloc[0]  # 12 steps apart, 3 of noise


def test_critical_depths_from_runs_report_the_steps_probability_of_improvement():
    rows = [{"env": "maze", "critic_depth": d, "seed": s, "time_at_goal": base + s}
            for d, base in ((4, 10.0), (8, 40.0), (16, 41.0)) for s in range(5)]
    rows[5]["time_at_goal"] = 13.0  # one depth-8 seed among the depth-4 ones (10 to 14)
    runs = pd.DataFrame(rows)
    row = critical_depths(runs, resamples=500).iloc[0]
    assert row.critical_depth == 8
    deep = runs[runs.critic_depth == 8].time_at_goal.to_numpy()
    shallow = runs[runs.critic_depth == 4].time_at_goal.to_numpy()
    expected = probability_of_improvement(deep, shallow, resamples=500)
    assert (row.p_improvement, row.p_improvement_ci_low, row.p_improvement_ci_high) == pytest.approx(tuple(expected))
    assert row.p_improvement == pytest.approx((20 + 3.5) / 25)  # 13 beats 10 to 12, ties 13, loses to 14
    assert row.p_improvement_ci_low < row.p_improvement <= row.p_improvement_ci_high


def test_bad_input_is_refused_in_one_line():
    with pytest.raises(ValueError, match=r"^aggregates: unknown aggregate 'mode'; allowed: iqm, mean, median, "
                                         r"optimality_gap$"):
        S.interval_estimates(np.ones((3, 2)), aggregates=("mode",))
    with pytest.raises(ValueError, match=r"^scores: task 1 has NaN scores; drop the runs without a score first$"):
        S.interval_estimates(np.array([[1.0, 2.0], [3.0, np.nan]]))
    with pytest.raises(ValueError, match=r"^scores: task b has 1 run\(s\); a bootstrap interval needs at least 2"):
        S.interval_estimates({"a": [1.0, 2.0], "b": [3.0]})
    with pytest.raises(ValueError, match=r"^x, y: different tasks \(2: 0, 1 against 3: 0, 1, 2\)"):
        probability_of_improvement(np.ones((3, 2)), np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"^normalise: unknown normalisation 'max'; allowed: episode, paper$"):
        S.normalised_scores(pd.DataFrame({"env": ["a"], "episode_length": [1], "time_at_goal": [1.0]}), normalise="max")
    with pytest.raises(ValueError, match=r"^confidence: 95 is not allowed; use a level in \(0, 1\)"):
        S.iqm_interval([1.0, 2.0], confidence=95)
