"""Interval estimates for few-seed results: the methods of Agarwal et al., "Deep
Reinforcement Learning at the Edge of the Statistical Precipice" (NeurIPS 2021; the
rliable library), written on numpy and scipy (docs/statistics.md).

    iqm(x)                                    interquartile mean: scipy.stats.trim_mean(x, 0.25)
    iqm_interval(x)                           (IQM, CI low, CI high) of one configuration's seeds
    interval_estimates(scores)                {iqm, mean, median, optimality_gap: Interval} over tasks
    stratified_bootstrap(scores, statistic)   any statistic over tasks, with its stratified-bootstrap CI
    probability_of_improvement(x, y)          P(X > Y) + P(X = Y) / 2, averaged over tasks, with its CI
    normalised_scores(runs)                   time at goal / episode length (optionally / the paper's best)
    setting_intervals(runs, by=...)           interval_estimates per setting (depth, width, batch, agent)
    score_distribution(scores, thresholds)    the performance profile: P(score > tau), with CI bands

`scores` are a (runs,) or (runs, tasks) array (one column per task, rliable's layout) or a
dict {task: 1-D array of its runs} when tasks have different numbers of runs. Every CI
is a percentile bootstrap (`scipy.stats.bootstrap`, method="percentile", as rliable's
default): stratified over tasks, i.e. each task's runs are resampled among themselves
(scipy resamples every sample it is given independently, so each task is one sample).
Every function is seeded (`seed`) and so reproducible; `resamples` sets the bootstrap's size.

A configuration of 3 seeds has IQM = mean (trim_mean cuts floor(0.25 n) runs at each end,
none for n < 4), and its 95 % percentile interval is the range of its seeds.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 2000  # bootstrap resamples (rliable's default is 50,000; docs/statistics.md: 2,000 is within noise)
SEED = 0
AGGREGATES = ("iqm", "mean", "median", "optimality_gap")
TRIM = 0.25  # the IQM drops this share of the runs at each end

# The paper's best time at goal (of 1000 steps) per task: its depth-64 result, the largest
# it reports for every task (/work/shared/PAPER_FACTS.md, "Main result", from Table 1).
PAPER_BEST = {
    "arm_binpick_hard": 219.0,
    "arm_push_easy": 762.0,
    "arm_push_hard": 410.0,
    "ant_u4_maze": 286.0,
    "ant_u5_maze": 61.0,
    "ant_big_maze": 441.0,
    "ant_hardest_maze": 387.0,
    "humanoid": 649.0,
    "humanoid_u_maze": 159.0,
    "humanoid_big_maze": 59.0,
}
PAPER_EPISODE_LENGTH = 1000
NORMALISATIONS = ("episode", "paper")


class Interval(NamedTuple):
    """A point estimate and its confidence interval."""

    estimate: float
    ci_low: float
    ci_high: float


# -- the aggregates --------------------------------------------------------------------------


def iqm(scores, axis=None):
    """Interquartile mean: the mean of the middle half of the runs, scipy.stats.trim_mean(x, 0.25)
    (for n runs it drops floor(n / 4) at each end: nothing for fewer than 4)."""
    return stats.trim_mean(scores, TRIM, axis=axis)


def optimality_gap(scores, threshold: float = 1.0, axis=None):
    """How far the runs stay below `threshold` on average: mean(max(threshold - x, 0))."""
    return np.mean(np.maximum(threshold - np.asarray(scores, dtype=float), 0.0), axis=axis)


def _task_means(tasks, axis):
    return np.stack([np.mean(t, axis=axis) for t in tasks], axis=-1)


# Each takes one array per task (runs along `axis`, resamples along the others) and gives
# the aggregate over tasks, as rliable defines it: the IQM of the pooled runs, the mean and
# the median over tasks of each task's mean, the optimality gap of the runs (task-weighted).
_AGGREGATE_FNS = {
    "iqm": lambda tasks, axis: iqm(np.concatenate(tasks, axis=axis), axis=axis),
    "mean": lambda tasks, axis: np.mean(_task_means(tasks, axis), axis=-1),
    "median": lambda tasks, axis: np.median(_task_means(tasks, axis), axis=-1),
    "optimality_gap": lambda tasks, axis: np.mean(
        np.stack([optimality_gap(t, axis=axis) for t in tasks], axis=-1), axis=-1),
}


def _check_aggregates(aggregates) -> tuple[str, ...]:
    aggregates = (aggregates,) if isinstance(aggregates, str) else tuple(aggregates)
    for name in aggregates:
        if name not in _AGGREGATE_FNS:
            raise ValueError(f"aggregates: unknown aggregate {name!r}; allowed: {', '.join(AGGREGATES)}")
    return aggregates


def _check_confidence(confidence: float, resamples: int) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: {confidence} is not allowed; use a level in (0, 1), e.g. 0.95")
    if int(resamples) < 1:
        raise ValueError(f"resamples: {resamples} is not allowed; use a positive number, e.g. {RESAMPLES}")


def as_tasks(scores, name: str = "scores", min_runs: int = 1) -> dict[str, np.ndarray]:
    """`scores` as {task: 1-D float array of its runs}: a (runs,) array is one task, a
    (runs, tasks) array one task per column (named 0, 1, ...), a dict is taken as it is.
    Refuses NaN and tasks with fewer than `min_runs` runs, in one line naming the task."""
    if isinstance(scores, Mapping):
        tasks = {str(k): np.asarray(v, dtype=float) for k, v in scores.items()}
        if any(v.ndim != 1 for v in tasks.values()):
            raise ValueError(f"{name}: a dict of scores needs one 1-D array of runs per task")
    else:
        array = np.asarray(scores, dtype=float)
        if array.ndim == 1:
            array = array[:, None]
        if array.ndim != 2:
            raise ValueError(f"{name}: shape {array.shape} is not allowed; use (runs,) or (runs, tasks)")
        tasks = {str(i): array[:, i] for i in range(array.shape[1])}
    if not tasks:
        raise ValueError(f"{name}: no task")
    for task, values in tasks.items():
        if np.isnan(values).any():
            raise ValueError(f"{name}: task {task} has NaN scores; drop the runs without a score first")
        if values.size < min_runs:
            raise ValueError(f"{name}: task {task} has {values.size} run(s); a bootstrap interval needs "
                             f"at least {min_runs} per task")
    return tasks


def _bootstrap(samples: tuple[np.ndarray, ...], statistic, resamples: int, confidence: float, seed: int):
    """Percentile bootstrap CI of statistic(*samples, axis=-1), each sample resampled within itself."""
    result = stats.bootstrap(samples, statistic, n_resamples=int(resamples), confidence_level=confidence,
                             method="percentile", vectorized=True, axis=-1, rng=np.random.default_rng(seed))
    return result.confidence_interval.low, result.confidence_interval.high


def stratified_bootstrap(scores, statistic, resamples: int = RESAMPLES, confidence: float = CONFIDENCE,
                         seed: int = SEED) -> Interval:
    """(statistic, CI low, CI high) of `scores` over tasks: statistic(tasks, axis) gets one
    array per task, runs along `axis`, and returns the value; the CI is the percentile
    interval of the statistic over `resamples` stratified resamples, in which each task's
    runs are drawn, with replacement, from that task's runs only. Every task needs at
    least 2 runs."""
    _check_confidence(confidence, resamples)
    tasks = tuple(as_tasks(scores, min_runs=2).values())
    low, high = _bootstrap(tasks, lambda *t, axis: statistic(t, axis), resamples, confidence, seed)
    return Interval(float(statistic(tasks, -1)), float(low), float(high))


def iqm_interval(values, resamples: int = RESAMPLES, confidence: float = CONFIDENCE, seed: int = SEED) -> Interval:
    """(IQM, CI low, CI high) of one configuration's runs (NaN dropped); the CI is NaN for
    fewer than two runs."""
    _check_confidence(confidence, resamples)
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    estimate = float(iqm(values))
    if values.size < 2:
        return Interval(estimate, math.nan, math.nan)
    low, high = _bootstrap((values,), lambda x, axis: iqm(x, axis=axis), resamples, confidence, seed)
    return Interval(estimate, float(low), float(high))


def interval_estimates(scores, aggregates=AGGREGATES, resamples: int = RESAMPLES, confidence: float = CONFIDENCE,
                       seed: int = SEED) -> dict[str, Interval]:
    """{aggregate: Interval} of scores over tasks and runs, with stratified-bootstrap CIs
    (each task's runs resampled among themselves). Aggregates: iqm (of the pooled runs),
    mean and median (over tasks of each task's mean), optimality_gap (below 1: for
    normalised scores). Every task needs at least 2 runs."""
    aggregates = _check_aggregates(aggregates)
    tasks = as_tasks(scores, min_runs=2)
    return {name: stratified_bootstrap(tasks, _AGGREGATE_FNS[name], resamples, confidence, seed) for name in aggregates}


# -- probability of improvement -------------------------------------------------------------


def _improvement(xs, ys, axis=-1):
    """Mean over tasks of the Mann-Whitney fraction U / (n m) = P(X > Y) + P(X = Y) / 2."""
    fractions = [stats.mannwhitneyu(x, y, axis=axis, method="asymptotic").statistic / (x.shape[axis] * y.shape[axis])
                 for x, y in zip(xs, ys)]
    return np.mean(np.stack(fractions, axis=-1), axis=-1)


def probability_of_improvement(x, y, resamples: int = RESAMPLES, confidence: float = CONFIDENCE,
                               seed: int = SEED) -> Interval:
    """The probability that a run of setting X scores higher than a run of setting Y,
    P(X > Y) + P(X = Y) / 2 (the Mann-Whitney U statistic over n x m pairs), averaged over
    tasks, with a stratified-bootstrap CI (X's and Y's runs resampled independently, each
    within its task). x: (n,) or (n, tasks); y: (m,) or (m, tasks), the same tasks in the
    same columns (or dicts with the same task keys). Returns (estimate, ci_low, ci_high);
    the CI is NaN when a task has fewer than 2 runs on either side."""
    _check_confidence(confidence, resamples)
    xt, yt = as_tasks(x, "x"), as_tasks(y, "y")
    if list(xt) != list(yt):
        raise ValueError(f"x, y: different tasks ({len(xt)}: {', '.join(xt)} against {len(yt)}: {', '.join(yt)}); "
                         "give both the same tasks in the same order")
    xs, ys = tuple(xt.values()), tuple(yt.values())
    estimate = float(_improvement(xs, ys))
    if min(v.size for v in xs + ys) < 2:
        return Interval(estimate, math.nan, math.nan)
    k = len(xs)
    low, high = _bootstrap(xs + ys, lambda *s, axis: _improvement(s[:k], s[k:], axis), resamples, confidence, seed)
    return Interval(estimate, float(low), float(high))


# -- scores over tasks, per setting ------------------------------------------------------------


def normalised_scores(runs, metric: str = "time_at_goal", normalise: str = "episode"):
    """A per-run table (`crl.apps.collect.collect_runs`) with the columns `normalised` and
    `normaliser` added.

    normalise="episode": `metric` / the run's episode length (the column `episode_length`,
    the configured env.episode_length): the share of the episode spent at the goal, in [0, 1].
    normalise="paper": for the paper's tasks (PAPER_BEST), divided further by the paper's
    best share (its depth-64 time at goal / 1000), so 1 is the paper's best; other tasks keep
    the episode normalisation. `normaliser` says which one each row got.
    """
    if normalise not in NORMALISATIONS:
        raise ValueError(f"normalise: unknown normalisation {normalise!r}; allowed: {', '.join(NORMALISATIONS)}")
    for column in (metric, "episode_length", "env"):
        if column not in runs:
            raise ValueError(f"normalised_scores: the table has no column {column}")
    out = runs.copy()
    out["normalised"] = out[metric].astype(float) / out["episode_length"].astype(float)
    out["normaliser"] = "episode_length"
    if normalise == "paper":
        best = out["env"].map(PAPER_BEST)
        paper = best.notna()
        out.loc[paper, "normalised"] /= best[paper] / PAPER_EPISODE_LENGTH
        out.loc[paper, "normaliser"] = "episode_length x paper best"
    return out


def setting_intervals(runs, metric: str = "time_at_goal", by=("critic_depth",), normalise: str = "episode",
                      aggregates=AGGREGATES, resamples: int = RESAMPLES, confidence: float = CONFIDENCE,
                      seed: int = SEED):
    """Interval estimates of normalised scores (`normalised_scores`) over tasks (`env`) and
    seeds, one row per setting `by` (e.g. critic_depth, critic_width, batch_size, agent).

    Columns: `by`, n_tasks, n_runs, then per aggregate `<aggregate>`, `<aggregate>_ci_low`,
    `<aggregate>_ci_high` (stratified bootstrap: seeds resampled within each task). A
    setting with a task of one run has NaN intervals (the estimate stays).
    """
    import pandas as pd  # lazy: the statistics above need only numpy and scipy

    aggregates = _check_aggregates(aggregates)
    by = [by] if isinstance(by, str) else list(by)
    missing = [c for c in by if c not in runs]
    if missing:
        raise ValueError(f"setting_intervals: by: the table has no column {', '.join(missing)}")
    scored = normalised_scores(runs, metric, normalise)
    rows = []
    for values, group in scored.groupby(by, sort=True):
        values = values if isinstance(values, tuple) else (values,)
        tasks = {str(task): g["normalised"].to_numpy(float) for task, g in group.groupby("env", sort=True)}
        row = {**dict(zip(by, values)), "n_tasks": len(tasks), "n_runs": len(group)}
        if min(v.size for v in tasks.values()) >= 2:
            found = interval_estimates(tasks, aggregates, resamples, confidence, seed)
        else:
            found = {name: Interval(float(_AGGREGATE_FNS[name](tuple(tasks.values()), -1)), math.nan, math.nan)
                     for name in aggregates}
        for name, interval in found.items():
            row.update({name: interval.estimate, f"{name}_ci_low": interval.ci_low, f"{name}_ci_high": interval.ci_high})
        rows.append(row)
    return pd.DataFrame(rows)


# -- performance profiles ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ScoreDistribution:
    """The performance profile of one setting: fraction[i] is the share of runs whose
    score exceeds thresholds[i] (each task weighted equally), with its CI band."""

    thresholds: np.ndarray
    fraction: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray


def _above(tasks, thresholds):
    """Mean over tasks of the share of runs above each threshold, runs along the last axis
    of each task: shape (..., thresholds)."""
    return np.mean([np.mean(t[..., None] > thresholds, axis=-2) for t in tasks], axis=0)


def score_distribution(scores, thresholds, resamples: int = RESAMPLES, confidence: float = CONFIDENCE,
                       seed: int = SEED) -> ScoreDistribution:
    """The run-score distribution (rliable's performance profile): for each threshold tau,
    the fraction of runs with score > tau (the mean over tasks of each task's fraction),
    with stratified-bootstrap CI bands (NaN when a task has fewer than 2 runs)."""
    _check_confidence(confidence, resamples)
    thresholds = np.asarray(thresholds, dtype=float)
    if thresholds.ndim != 1 or thresholds.size == 0:
        raise ValueError("thresholds: use a 1-D array of at least one score")
    tasks = tuple(as_tasks(scores).values())
    fraction = _above(tasks, thresholds)
    if min(t.size for t in tasks) < 2:
        nan = np.full_like(fraction, np.nan)
        return ScoreDistribution(thresholds, fraction, nan, nan.copy())
    low, high = _bootstrap(tasks, lambda *t, axis: np.moveaxis(_above(t, thresholds), -1, 0), resamples,
                           confidence, seed)
    return ScoreDistribution(thresholds, fraction, np.asarray(low), np.asarray(high))
