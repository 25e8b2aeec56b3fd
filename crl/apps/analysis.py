"""Analysis helpers for depth studies: the critical-depth rule, the probability of
improvement between two settings (crl.apps.stats) and critic value maps.

The critical depth of a task
----------------------------
Take the seed means m_d and standard errors s_d of a metric (final time at goal) at each
depth d of a sweep, depths sorted d_0 < d_1 < ... . The task's scale is its best mean,
M = max_d m_d. Going from d_{i-1} to d_i, the gain g_i = m_i - m_{i-1} is *large* when

    g_i > max(rel * M, k * sqrt(s_i^2 + s_{i-1}^2))        (defaults rel = 0.1, k = 2)

that is, bigger than a tenth of the best the task reaches AND outside seed noise (two
combined standard errors). The critical depth is the smallest d_i (i >= 1) with a large
gain; there is none when no step qualifies (or nothing was learned, M <= 0). A depth
measured with one seed has no standard error; it counts as 0, so only the relative part
of the rule applies there (the result's `noise_checked` says so).

Using the task's best mean (not the episode length) as the scale makes the rule work on
tasks where even the best agent spends little time at the goal (the paper's ant U5 maze:
about 61 of 1000 steps at depth 64, with the jump at depth 32).

Given the seeds' scores (`critical_depths` on a per-run table), the result also reports
the probability of improvement of the step it found, P(a run at d_i scores higher than a
run at d_{i-1}) with its 95 % bootstrap CI (`probability_of_improvement`, from
crl.apps.stats). The rule itself stays the one above: two CI-based versions (the step's
probability-of-improvement CI above 0.5; the two depths' IQM CIs apart) were simulated
against it at 3, 5 and 10 seeds, and neither was better: the first finds more steps
where there is none at 3 seeds, the second misses more real steps at 5
(docs/statistics.md has the numbers).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from crl.apps.collect import aggregate
from crl.apps.stats import RESAMPLES, SEED, Interval, probability_of_improvement

__all__ = ["CriticalDepth", "Interval", "ValueMap", "critical_depth", "critical_depths", "depth_summary",
           "far_goal", "large_gain_threshold", "maze_cell_size", "probability_of_improvement", "value_map"]

@dataclasses.dataclass(frozen=True)
class CriticalDepth:
    depth: int | None  # the critical depth, None when no step is large
    gain: float  # m_i - m_{i-1} at that depth (NaN when none)
    threshold: float  # the bound the gain exceeded (NaN when none)
    task_max: float  # M, the best mean over depths
    noise_checked: bool  # both depths of the step had a standard error
    # P(a run at `depth` beats a run at the next shallower depth) with its 95 % CI: NaN
    # when no step is large or the seeds' scores were not given (the CI: under 2 seeds)
    p_improvement: float = math.nan
    p_improvement_ci_low: float = math.nan
    p_improvement_ci_high: float = math.nan


def large_gain_threshold(task_max: float, se_low: float, se_high: float, rel: float = 0.1, k: float = 2.0) -> float:
    """The bound a gain must exceed to count as large (see the module docstring)."""
    se_low = 0.0 if se_low is None or math.isnan(se_low) else float(se_low)
    se_high = 0.0 if se_high is None or math.isnan(se_high) else float(se_high)
    return max(rel * task_max, k * math.sqrt(se_low**2 + se_high**2))


def critical_depth(depths, means, ses=None, rel: float = 0.1, k: float = 2.0, scores=None,
                   resamples: int = RESAMPLES, seed: int = SEED) -> CriticalDepth:
    """The smallest depth whose gain over the next shallower depth is large.

    depths, means, ses: one entry per depth (any order; ses may be None or hold NaN).
    scores: optional {depth: the seeds' scores}; with it the result carries the found
    step's probability of improvement and its bootstrap CI (`resamples`, `seed`).
    """
    depths = np.asarray(depths)
    means = np.asarray(means, dtype=float)
    ses = np.full(means.shape, np.nan) if ses is None else np.asarray(ses, dtype=float)
    if not (depths.shape == means.shape == ses.shape) or depths.ndim != 1:
        raise ValueError("critical_depth: depths, means and ses must be 1-D and of one length")
    order = np.argsort(depths, kind="stable")
    depths, means, ses = depths[order], means[order], ses[order]
    task_max = float(np.nanmax(means)) if means.size else math.nan
    none = CriticalDepth(None, math.nan, math.nan, task_max, False)
    if means.size < 2 or not task_max > 0:
        return none
    for i in range(1, len(depths)):
        gain = means[i] - means[i - 1]
        threshold = large_gain_threshold(task_max, ses[i - 1], ses[i], rel, k)
        if gain > threshold:
            checked = not (math.isnan(ses[i - 1]) or math.isnan(ses[i]))
            improvement = Interval(math.nan, math.nan, math.nan)
            if scores is not None:
                deeper, shallower = (scores.get(int(d)) for d in (depths[i], depths[i - 1]))
                if deeper is None or shallower is None:
                    raise ValueError(f"critical_depth: scores: no scores for depth {depths[i - 1]} or {depths[i]}; "
                                     f"give one array of seeds per depth ({', '.join(map(str, depths))})")
                improvement = probability_of_improvement(deeper, shallower, resamples=resamples, seed=seed)
            return CriticalDepth(int(depths[i]), float(gain), float(threshold), task_max, checked, *improvement)
    return none


def critical_depths(table, metric: str = "time_at_goal", depth: str = "critic_depth", by: str = "env",
                    rel: float = 0.1, k: float = 2.0, resamples: int = RESAMPLES, seed: int = SEED):
    """Apply `critical_depth` per task to a `crl.apps.collect.aggregate` table (columns
    `<metric>_mean` and `<metric>_se`) or to a per-run `collect_runs` table (column
    `<metric>`; aggregated over seeds here, and the seeds' scores give the found step's
    probability of improvement with its CI). Select one width and batch first.

    Returns a DataFrame with one row per task: by, critical_depth, gain, threshold,
    task_max, noise_checked, p_improvement, p_improvement_ci_low, p_improvement_ci_high
    (NaN from an aggregate table).
    """
    import pandas as pd  # lazy: the rule itself needs only numpy

    runs = None
    if f"{metric}_mean" not in table:
        if metric not in table:
            raise ValueError(f"critical_depths: metric: the table has no column {metric}_mean nor {metric}")
        runs, table = table, aggregate(table, metrics=(metric,), resamples=resamples, seed=seed)
    rows = []
    for task, group in table.groupby(by, sort=True):
        if group[depth].duplicated().any():
            raise ValueError(f"critical_depths: several configurations per {by} and {depth} ({task}); "
                             "select one width and batch first")
        scores = None
        if runs is not None:
            scores = {d: g[metric].dropna().to_numpy(float) for d, g in runs[runs[by] == task].groupby(depth)}
        result = critical_depth(group[depth], group[f"{metric}_mean"], group.get(f"{metric}_se"), rel, k,
                                scores=scores, resamples=resamples, seed=seed)
        rows.append({by: task, "critical_depth": result.depth, **{
            f.name: getattr(result, f.name) for f in dataclasses.fields(result) if f.name != "depth"
        }})
    return pd.DataFrame(rows)


def depth_summary(table, metrics: tuple[str, ...] = ("time_at_goal", "success_any"), by: tuple[str, ...] = ("env",)):
    """The depth sweep's summary: one row per (task, depth) of runs whose actor and critic
    have the same depth, from a `crl.apps.collect.aggregate` table (`by`: the columns that
    name a curve, e.g. ("agent", "env")). Columns: `by`, depth, n_seeds, then per metric
    `<metric>_mean`, `<metric>_se`, `<metric>_iqm`, `<metric>_iqm_ci_low` and
    `<metric>_iqm_ci_high` (docs/results/*/summary.csv)."""
    same = table[table.actor_depth == table.critic_depth]
    stats = ("mean", "se", "iqm", "iqm_ci_low", "iqm_ci_high")
    columns = [*by, "critic_depth", "n_seeds"] + [f"{m}_{s}" for m in metrics for s in stats]
    missing = [c for c in columns if c not in same]
    if missing:
        raise ValueError(f"depth_summary: the table has no column {', '.join(missing)}")
    if same.duplicated([*by, "critic_depth"]).any():
        raise ValueError(f"depth_summary: several configurations per {', '.join(by)} and depth; "
                         "select one width and batch first")
    out = same[columns].rename(columns={"critic_depth": "depth"}).sort_values([*by, "depth"])
    return out.reset_index(drop=True)


# -- critic value maps -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ValueMap:
    """Critic energies on a grid over a 2-D maze.

    values[i, j] is the energy at (x[i], y[j]); NaN inside walls. A maze cell (row r,
    column c) is centred at (r * cell, c * cell), so `values` drawn as an image (first
    axis down) looks like the layout's text; `extent` is imshow's (left, right, bottom, top).
    `reference` says where the rest of the state came from (a locomotion robot's joints and
    velocities; nothing for a point maze, whose state is x, y).
    """

    values: np.ndarray
    x: np.ndarray
    y: np.ndarray
    goal: np.ndarray
    walls: np.ndarray
    cell_size: float
    reference: str = "none: the state is (x, y)"

    @property
    def extent(self) -> tuple[float, float, float, float]:
        half = self.cell_size / 2
        n_rows, n_cols = self.walls.shape
        return (-half, (n_cols - 0.5) * self.cell_size, (n_rows - 0.5) * self.cell_size, -half)


def maze_cell_size(env) -> float:
    """The edge of a maze cell: a point maze's `cell_size` parameter, a locomotion robot's."""
    return float(env.scene.robot.cell_size if hasattr(env, "scene") else env.params.cell_size)


def far_goal(env) -> np.ndarray:
    """The centre (x, y) of the env's goal cell farthest from its start cell along the corridors."""
    steps = env.maze.cell_distances()
    cells = env.maze.goal_cells
    return cells[np.argmax(steps[tuple(cells.T)])] * maze_cell_size(env)


def value_map(trainer, params: dict, env, goal, points_per_cell: int = 8, reference_key: int = 0) -> ValueMap:
    """The critic's value of the deterministic policy's action for s on a grid over the
    maze's free cells, g fixed: CRL's energy f(phi(s, pi(s, g)), psi(g)), the TD agents'
    min_j Q_j(s, pi(s, g), g) (each agent's `value`; GCSL has no critic).

    trainer: a `crl.train.Trainer`; params: {"actor", "critic", ...} as
    `crl.run.load_params` returns; env: a point maze (state = (x, y)) or a locomotion maze
    (envs.locomotion: ant, humanoid). For a locomotion maze the grid is over the torso's
    x, y and the rest of the state (height, orientation, joints, velocities) is the
    reference: the pose `env.reset(PRNGKey(reference_key))` starts from, with the torso
    moved by `env.set_torso_xy` (`ValueMap.reference` records it). goal: the goal's x, y
    (a 3-D goal's height is the reference episode's).
    """
    value = getattr(trainer.agent, "value", None)
    if value is None:
        raise ValueError(f"value_map: agent {trainer.agent.name} has no critic to map")
    maze = getattr(env, "maze", None)
    locomotion = maze is not None and hasattr(env, "set_torso_xy")
    if maze is None or not (locomotion or env.state_dim == 2):
        raise ValueError(f"value_map: {env.env_id} is not a maze whose state is (x, y) nor a locomotion maze")
    cell = maze_cell_size(env)
    walls = np.asarray(maze.walls)
    n_rows, n_cols = walls.shape
    step = cell / points_per_cell
    # Sample points at the centres of a fine grid covering every cell.
    x = (np.arange(n_rows * points_per_cell) + 0.5) * step - cell / 2
    y = (np.arange(n_cols * points_per_cell) + 0.5) * step - cell / 2
    xx, yy = np.meshgrid(x, y, indexing="ij")
    xy = jnp.asarray(np.stack([xx.ravel(), yy.ravel()], axis=-1).astype(np.float32))
    goal = np.asarray(goal, np.float32).reshape(-1)

    if locomotion:
        def energies(params, xy, goal_xy):
            ref = env.reset(jax.random.PRNGKey(reference_key))
            full_goal = ref.goal.at[: goal_xy.shape[0]].set(goal_xy)
            states = jax.vmap(lambda p: env.set_torso_xy(ref, p).obs[: env.state_dim])(xy)
            return value(params, states, jnp.broadcast_to(full_goal, (xy.shape[0], full_goal.shape[0]))), full_goal

        values, goal = jax.jit(energies)(params, xy, jnp.asarray(goal))
        reference = f"the reset pose of {env.env_id}, key {reference_key}, torso moved to (x, y)"
    else:
        values = jax.jit(value)(params, xy, jnp.broadcast_to(jnp.asarray(goal), (xy.shape[0], goal.shape[0])))
        reference = ValueMap.reference
    values = np.asarray(values).reshape(xx.shape)
    rows = np.floor(xx / cell + 0.5).astype(int).clip(0, n_rows - 1)
    cols = np.floor(yy / cell + 0.5).astype(int).clip(0, n_cols - 1)
    values = np.where(walls[rows, cols], np.nan, values)
    return ValueMap(values=values, x=x, y=y, goal=np.asarray(goal), walls=walls, cell_size=cell, reference=reference)
