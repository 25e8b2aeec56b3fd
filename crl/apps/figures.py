"""The paper's explanatory figures as data (the notebook draws them; no matplotlib here).

    depth_grids(table)                      actor depth x critic depth grid of a score (paper Fig. 11)
    embeddings(trainer, params)             phi(s, a) along evaluation episodes and psi(g), in 2-D (PCA)
    performance_profiles(runs)              per setting, the share of runs above each normalised score,
                                            with stratified-bootstrap CI bands (Agarwal et al. 2021)

The critic's value map over a maze (paper Fig. 5) is `crl.apps.analysis.value_map`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from crl.agents.crl.networks import Critic
from crl.apps.collect import aggregate
from crl.apps.stats import RESAMPLES, SEED, ScoreDistribution, normalised_scores, score_distribution
from crl.evaluate import rollout

# -- the actor-depth x critic-depth grid ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DepthGrid:
    """One task's score over actor depth (rows) x critic depth (columns).

    mean[i, j], se[i, j] and n_seeds[i, j] are those of the runs with actor depth
    actor_depths[i] and critic depth critic_depths[j]; NaN (n_seeds 0) where the sweep has
    no such run. `metric` names the score column, e.g. time_at_goal or time_at_goal_last5.
    """

    env: str
    metric: str
    actor_depths: np.ndarray
    critic_depths: np.ndarray
    mean: np.ndarray
    se: np.ndarray
    n_seeds: np.ndarray


def depth_grids(table: pd.DataFrame, metric: str = "time_at_goal", by: str = "env") -> dict[str, DepthGrid]:
    """{task: DepthGrid} from a `crl.apps.collect` table: an `aggregate` table (columns
    `<metric>_mean`, `<metric>_se`, n_seeds) or a per-run `collect_runs` table (column
    `<metric>`, aggregated over seeds here). One configuration per task and depth pair:
    select one width and batch first."""
    if f"{metric}_mean" not in table:
        if metric not in table:
            raise ValueError(f"depth_grids: metric: the table has no column {metric}_mean nor {metric}")
        table = aggregate(table, metrics=(metric,))
    keys = [by, "actor_depth", "critic_depth"]
    missing = [c for c in keys if c not in table]
    if missing:
        raise ValueError(f"depth_grids: the table has no column {', '.join(missing)}")
    if table.duplicated(keys).any():
        raise ValueError(f"depth_grids: several configurations per {by} and actor/critic depth; "
                         "select one width and batch first")
    grids = {}
    for task, rows in table.groupby(by, sort=True):
        actor = np.array(sorted(rows.actor_depth.unique()))
        critic = np.array(sorted(rows.critic_depth.unique()))
        mean = np.full((len(actor), len(critic)), np.nan)
        se = np.full_like(mean, np.nan)
        n_seeds = np.zeros(mean.shape, np.int64)
        for _, row in rows.iterrows():
            i, j = np.searchsorted(actor, row.actor_depth), np.searchsorted(critic, row.critic_depth)
            mean[i, j] = row[f"{metric}_mean"]
            se[i, j] = row.get(f"{metric}_se", np.nan)
            n_seeds[i, j] = row.get("n_seeds", 1)
        grids[task] = DepthGrid(str(task), metric, actor, critic, mean, se, n_seeds)
    return grids


# -- embeddings ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Embeddings:
    """phi(s_t, a_t) along evaluation episodes and psi(g) of their goals, in 2-D.

    The projection is one PCA (numpy SVD) fitted on the phi points of the running steps and
    the psi points together, so both live in the same plane (the critic compares them).

    phi: (episodes, steps, 2), step t's state s_t and the deterministic action a_t
    psi: (episodes, 2), each episode's goal
    running: (episodes, steps), False once an episode ended (a robot that fell)
    dist: (episodes, steps), the distance to the goal after step t
    goals: (episodes, goal_dim)
    explained_variance: (2,), the share of the variance each component explains
    """

    phi: np.ndarray
    psi: np.ndarray
    running: np.ndarray
    dist: np.ndarray
    goals: np.ndarray
    explained_variance: np.ndarray


def pca_2d(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, components (2, dim), explained variance ratio (2,)) of `points` (n, dim)."""
    points = np.asarray(points, np.float64)
    mean = points.mean(axis=0)
    _, singular, vt = np.linalg.svd(points - mean, full_matrices=False)
    variance = singular**2
    total = variance.sum()
    ratio = variance[:2] / total if total > 0 else np.zeros(min(2, variance.size))
    components = vt[:2]
    if components.shape[0] < 2:  # 1-D points: a zero second axis
        components = np.vstack([components, np.zeros_like(components)])
        ratio = np.append(ratio, 0.0)
    return mean, components, ratio


def embeddings(trainer, params: dict, env=None, num_episodes: int = 8, steps: int | None = None,
               seed: int = 0) -> Embeddings:
    """CRL's phi(s, a) along `num_episodes` episodes of the deterministic policy (the shared
    `crl.evaluate.rollout`) on `env` (default: the trainer's eval env) for `steps` steps
    (default: env.episode_length), and psi(g) of each episode's goal, projected to 2-D.

    trainer: a `crl.train.Trainer` of a CRL run; params as `crl.run.load_params` returns.
    """
    critic = getattr(trainer.agent, "critic", None)
    if not isinstance(critic, Critic):
        raise ValueError(f"embeddings: agent {trainer.agent.name} has no phi(s, a) and psi(g) encoders (only crl has)")
    env = env or trainer.eval_env
    steps = int(steps or trainer.cfg.env.episode_length)

    def encode(params, key):
        traj = rollout(env, trainer.policy_deterministic, params["actor"], key, num_episodes, steps, with_actions=True)
        goals = jnp.broadcast_to(traj["goal"], traj["state"].shape[:2] + traj["goal"].shape[-1:])
        phi, psi = critic.apply({"params": params["critic"]}, traj["state"], traj["action"], goals)
        return phi, psi[0], traj["running"], traj["dist"], traj["goal"]

    phi, psi, running, dist, goals = (np.asarray(a) for a in jax.jit(encode)(params, jax.random.PRNGKey(seed)))
    running = running > 0
    mean, components, ratio = pca_2d(np.concatenate([phi[running], psi]))
    return Embeddings(
        phi=((phi - mean) @ components.T).swapaxes(0, 1),  # time-major -> episode-major
        psi=(psi - mean) @ components.T,
        running=running.T,
        dist=dist.T,
        goals=goals,
        explained_variance=ratio,
    )


# -- performance profiles ----------------------------------------------------------------------


def performance_profiles(runs: pd.DataFrame, metric: str = "time_at_goal", by: str = "critic_depth",
                         normalise: str = "episode", thresholds=None, resamples: int = RESAMPLES,
                         seed: int = SEED) -> dict:
    """{setting: ScoreDistribution} from a per-run `collect_runs` table: for each value of
    `by` (a depth, width, batch size or agent), the share of its runs whose normalised
    score (`crl.apps.stats.normalised_scores`: `metric` / episode length, with
    normalise="paper" also / the paper's best on its tasks) exceeds each threshold, each
    task weighted equally, with 95 % stratified-bootstrap CI bands (seeds resampled within
    each task; NaN bands where a task has one run). `thresholds` default to 51 points from
    0 to the largest of 1 and the best score."""
    if by not in runs:
        raise ValueError(f"performance_profiles: by: the table has no column {by}")
    scored = normalised_scores(runs, metric, normalise)
    if thresholds is None:
        thresholds = np.linspace(0.0, max(1.0, float(scored["normalised"].max())), 51)
    profiles: dict = {}
    for setting, group in scored.groupby(by, sort=True):
        tasks = {str(task): g["normalised"].to_numpy(float) for task, g in group.groupby("env", sort=True)}
        profiles[setting] = score_distribution(tasks, thresholds, resamples=resamples, seed=seed)
    return profiles


__all__ = ["DepthGrid", "Embeddings", "ScoreDistribution", "depth_grids", "embeddings", "pca_2d",
           "performance_profiles"]
