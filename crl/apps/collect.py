"""Results tables from run directories: one tidy row per run, learning curves, seed means.

    from crl.apps.collect import collect_runs, curves, aggregate
    runs = collect_runs("multirun/2025-01-01_12-00-00")   # one row per run (final epoch)
    table = aggregate(runs)                                # over seeds: mean, s.e., IQM and its 95 % CI
    paper = collect_runs("multirun/...", score="last5")   # the paper's score: time_at_goal_last5, ...

A run directory is any directory under the sweep that holds a `metrics.csv`; its
`config.yaml` (or Hydra's `.hydra/config.yaml`) gives the settings and `run_info.json`
the parameter counts. The console script `crl-collect` wraps these functions.

`load_run` turns a run directory back into (Config, Trainer, params) for analysis and
rendering.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import pathlib
import sys
import warnings

import jax
import pandas as pd
import yaml

from crl.apps.stats import RESAMPLES, SEED, iqm_interval
from crl.config import NetworkConfig, from_dict
from crl.params_file import read_params
from crl.run import build_envs, load_params
from crl.train import Trainer

# Settings that identify a run's configuration, and where they live in config.yaml.
CONFIG_COLUMNS: dict[str, tuple[str, ...]] = {
    "env": ("env", "id"),
    "actor_depth": ("network", "actor_depth"),
    "critic_depth": ("network", "critic_depth"),
    "actor_width": ("network", "actor_width"),
    "critic_width": ("network", "critic_width"),
    "batch_size": ("train", "batch_size"),
    "activation": ("network", "activation"),
    "layer_norm": ("network", "layer_norm"),
    "residual": ("network", "residual"),
    "num_envs": ("train", "num_envs"),
    "episode_length": ("env", "episode_length"),
    "seed": ("seed",),
}
# The columns `aggregate` groups by (every setting except the seed); `agent` is the agent's
# name with "+her" where HER is on (sac+her), "crl" for runs from before agents existed.
GROUP_COLUMNS = ["agent"] + [c for c in CONFIG_COLUMNS if c != "seed"]


def agent_label(cfg: dict) -> str:
    agent = cfg.get("agent") or {}
    return str(agent.get("name", "crl")) + ("+her" if agent.get("her") else "")
METRIC_COLUMNS = ["time_at_goal", "success_any", "final_dist", "min_dist", "episode_length_eval"]

# A run's score: its final evaluation (`final`), or the mean of its last 5 evaluations
# (`last5`, the paper's Table 1 score; fewer where the run has fewer epochs).
SCORES = ("final", "last5")
LAST_EVALS = 5


def check_score(score: str) -> str:
    if score not in SCORES:
        raise ValueError(f"score: unknown score {score!r}; allowed: {', '.join(SCORES)}")
    return score


def score_column(metric: str, score: str = "final") -> str:
    """The column that holds `metric` under `score`: time_at_goal (final), time_at_goal_last5."""
    return metric if check_score(score) == "final" else f"{metric}_{score}"


class CollectError(RuntimeError):
    """A sweep directory that cannot be read (nothing in it, or a broken run)."""


# -- reading one run ----------------------------------------------------------------------


def run_dirs(sweep_dir: str | pathlib.Path) -> list[pathlib.Path]:
    """Every directory under `sweep_dir` (itself included) that holds a metrics.csv, sorted."""
    root = pathlib.Path(sweep_dir)
    if not root.is_dir():
        raise CollectError(f"{root}: not a directory")
    found = {p.parent for p in root.rglob("metrics.csv")}
    return sorted(found, key=_natural_key)


def _natural_key(path: pathlib.Path):
    """Sort `2_x` before `10_x`: Hydra numbers its multirun jobs."""
    rel = path.name
    head = rel.split("_", 1)[0]
    return (int(head) if head.isdigit() else math.inf, str(path))


def read_config(run_dir: str | pathlib.Path) -> dict:
    """The run's resolved config as a nested dict (config.yaml, else .hydra/config.yaml)."""
    run_dir = pathlib.Path(run_dir)
    for candidate in (run_dir / "config.yaml", run_dir / ".hydra" / "config.yaml"):
        if candidate.is_file():
            data = yaml.safe_load(candidate.read_text()) or {}
            data.pop("hydra", None)
            return _resolve_network(data)
    raise CollectError(f"{run_dir}: no config.yaml (nor .hydra/config.yaml)")


def _resolve_network(data: dict) -> dict:
    """Fill actor_*/critic_* left null (Hydra's composed copy) from depth/width, by the
    library's own rule (NetworkConfig)."""
    net = data.get("network")
    if isinstance(net, dict):
        known = {f.name for f in dataclasses.fields(NetworkConfig)}
        resolved = dataclasses.asdict(NetworkConfig(**{k: v for k, v in net.items() if k in known}))
        data["network"] = {**net, **{k: v for k, v in resolved.items() if k.startswith(("actor_", "critic_"))}}
    return data


def _dig(cfg: dict, path: tuple[str, ...]):
    node = cfg
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _config_row(run_dir: pathlib.Path, cfg: dict) -> dict:
    row = {"agent": agent_label(cfg), **{name: _dig(cfg, path) for name, path in CONFIG_COLUMNS.items()}}
    info_path = run_dir / "run_info.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    actor, critic = info.get("actor_params"), info.get("critic_params")
    row["actor_params"] = actor
    row["critic_params"] = critic
    row["param_count"] = actor + critic if actor is not None and critic is not None else None
    row["num_epochs"] = _dig(cfg, ("train", "num_epochs"))
    overrides = run_dir / ".hydra" / "overrides.yaml"
    row["overrides"] = " ".join(yaml.safe_load(overrides.read_text()) or []) if overrides.is_file() else ""
    return row


def _eval_names(columns) -> dict[str, str]:
    """metrics.csv's eval/x -> x (the headline metrics); train/* keep their prefix."""
    renamed = {c: c[len("eval/"):] for c in columns if c.startswith("eval/")}
    if "eval/episode_length" in renamed:
        renamed["eval/episode_length"] = "episode_length_eval"  # not the configured env.episode_length
    return renamed


def _read_metrics(run_dir: pathlib.Path) -> pd.DataFrame:
    metrics = pd.read_csv(run_dir / "metrics.csv")
    renamed = _eval_names(metrics.columns)
    metrics = metrics.rename(columns=renamed)
    metrics.attrs["eval_columns"] = list(renamed.values())  # what a score averages
    return metrics


def _runs(sweep_dir) -> list[tuple[pathlib.Path, dict, pd.DataFrame]]:
    out = []
    for run_dir in run_dirs(sweep_dir):
        try:
            cfg = read_config(run_dir)
            metrics = _read_metrics(run_dir)
        except (CollectError, pd.errors.EmptyDataError, yaml.YAMLError) as err:
            warnings.warn(f"skipping {run_dir}: {err}", stacklevel=3)
            continue
        if metrics.empty:
            warnings.warn(f"skipping {run_dir}: metrics.csv has no epoch yet", stacklevel=3)
            continue
        out.append((run_dir, _config_row(run_dir, cfg), metrics))
    if not out:
        raise CollectError(f"{sweep_dir}: no run directory with a non-empty metrics.csv under it")
    return out


# -- tables -------------------------------------------------------------------------------


def collect_runs(sweep_dir: str | pathlib.Path, score: str = "final") -> pd.DataFrame:
    """One row per run from its final epoch.

    Columns: the settings (env, actor_depth, critic_depth, actor_width, critic_width,
    batch_size, activation, layer_norm, residual, num_envs, episode_length, seed), the
    final epoch's counters and metrics (epoch, env_steps, sgd_steps, wall_time,
    time_at_goal, success_any, final_dist, min_dist, ...), param_count (actor + critic)
    with actor_params and critic_params, `complete` (the run reached its last epoch),
    `overrides` (Hydra's command-line overrides of that job) and `path`.

    score="last5" (the paper's score): every eval metric (metrics.csv's eval/* columns) is
    the mean over the run's last 5 epochs (all of them when it has fewer) and named
    `<metric>_last5` (time_at_goal_last5, success_any_last5, ...); `score_epochs` says how
    many epochs were averaged. Counters and train/* metrics stay the final epoch's.
    """
    check_score(score)
    rows = []
    for run_dir, config_row, metrics in _runs(sweep_dir):
        last = metrics.iloc[-1].to_dict()
        if score == "last5":
            tail = metrics.iloc[-LAST_EVALS:]
            for name in metrics.attrs["eval_columns"]:
                last[score_column(name, score)] = float(tail[name].mean(skipna=False))
                del last[name]
            last["score_epochs"] = len(tail)
        row = {**config_row, **last, "path": str(run_dir)}
        row["complete"] = bool(config_row["num_epochs"] is not None and int(last["epoch"]) >= config_row["num_epochs"])
        rows.append(row)
    return _tidy(pd.DataFrame(rows))


def default_score(sweep_dir: str | pathlib.Path) -> str:
    """The score to report a sweep with: `last5` (the paper's) when every run under it
    trained on the paper's protocol, recognised by `train.sgd_schedule: paper` (every paper
    task config in conf/env/ and so every paper preset sets it), else `final` (our CPU
    tasks, e.g. cpu_depth_threshold, train with the `ratio` schedule)."""
    schedules = set()
    for run_dir in run_dirs(sweep_dir):
        try:
            schedules.add(_dig(read_config(run_dir), ("train", "sgd_schedule")))
        except (CollectError, yaml.YAMLError):
            continue
    return "last5" if schedules == {"paper"} else "final"


def curves(sweep_dir: str | pathlib.Path) -> pd.DataFrame:
    """Every epoch of every run: the settings columns repeated on each of its rows."""
    frames = []
    for run_dir, config_row, metrics in _runs(sweep_dir):
        frame = metrics.copy()
        for name, value in {**config_row, "path": str(run_dir)}.items():
            frame[name] = value
        frames.append(frame)
    return _tidy(pd.concat(frames, ignore_index=True))


def _tidy(df: pd.DataFrame) -> pd.DataFrame:
    """Settings first, then counters and metrics, then the rest; integer settings as ints."""
    for name in ("actor_depth", "critic_depth", "actor_width", "critic_width", "batch_size", "seed",
                 "num_envs", "episode_length", "param_count", "actor_params", "critic_params", "epoch",
                 "env_steps", "sgd_steps"):
        if name in df and df[name].notna().all():
            df[name] = df[name].astype("int64")
    first = [c for c in ("agent", *CONFIG_COLUMNS) if c in df]
    scored = [score_column(m, s) for s in SCORES for m in METRIC_COLUMNS]
    counters = ("epoch", "env_steps", "sgd_steps", "wall_time", *scored, "score_epochs", "param_count")
    first += [c for c in counters if c in df]
    last = [c for c in ("actor_params", "critic_params", "num_epochs", "complete", "overrides", "path") if c in df]
    middle = [c for c in df.columns if c not in first and c not in last]
    return df[first + middle + last]


def aggregate(
    df: pd.DataFrame,
    metrics: tuple[str, ...] | None = None,
    by: list[str] | None = None,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> pd.DataFrame:
    """Mean, standard error and IQM with its 95 % bootstrap CI over seeds: one row per
    configuration.

    Groups by every settings column except `seed` (or by `by`). Output columns: the
    group keys, `n_seeds`, then for each metric `<metric>_mean`, `<metric>_se` (sample
    std / sqrt(n)), `<metric>_iqm` (scipy.stats.trim_mean(x, 0.25): the mean for fewer
    than 4 seeds), `<metric>_iqm_ci_low` and `<metric>_iqm_ci_high` (percentile bootstrap
    over the seeds, `resamples` resamples, seeded by `seed`: reproducible;
    crl.apps.stats.iqm_interval), and the group's `param_count`, mean `env_steps` and mean
    `wall_time` where present. A group of one seed has a NaN standard error and CI.
    `metrics` defaults to time_at_goal and success_any under the table's score:
    time_at_goal_last5 and success_any_last5 in a `collect_runs(..., score="last5")` table.
    """
    if metrics is None:
        metrics = tuple(score_column(m, s) for s in SCORES for m in ("time_at_goal", "success_any")
                        if score_column(m, s) in df)
    keys = [c for c in (by or GROUP_COLUMNS) if c in df]
    if not keys:
        raise CollectError(f"aggregate: none of the grouping columns {by or GROUP_COLUMNS} is in the table")
    metrics = [m for m in metrics if m in df]
    groups = df.groupby(keys, dropna=False, sort=True)
    named = {"n_seeds": ("seed", "nunique") if "seed" in df else (keys[0], "size")}
    for metric in metrics:
        named[f"{metric}_mean"] = (metric, "mean")
        named[f"{metric}_se"] = (metric, "sem")
    named.update({extra: (extra, "mean") for extra in ("env_steps", "wall_time") if extra in df})
    if "param_count" in df:
        named["param_count"] = ("param_count", "first")
    table = groups.agg(**named)
    for metric in metrics:
        intervals = groups[metric].agg(lambda x: iqm_interval(x, resamples=resamples, seed=seed))
        for i, suffix in enumerate(("iqm", "iqm_ci_low", "iqm_ci_high")):
            table[f"{metric}_{suffix}"] = intervals.map(lambda interval, i=i: interval[i])
    order = ["n_seeds"] + [f"{m}_{s}" for m in metrics for s in ("mean", "se", "iqm", "iqm_ci_low", "iqm_ci_high")]
    return table[order + [c for c in table.columns if c not in order]].reset_index()


# -- loading a trained run ---------------------------------------------------------------


def load_config(run_dir: str | pathlib.Path):
    """The run's `crl.config.Config`, validated."""
    return from_dict(read_config(run_dir))


def load_run(run_dir: str | pathlib.Path, params_path: str | pathlib.Path | None = None):
    """(cfg, trainer, params) of a finished run; `params` is the dict that
    `crl.run.load_params` returns ({"actor", "critic", "log_alpha"}).

    `params_path` reads another params file of the same run (default: run_dir/params.msgpack).
    A params file that is damaged or of another network raises `crl.params_file.ParamsError`
    (a ValueError; one line naming the file).
    """
    run_dir = pathlib.Path(run_dir)
    cfg = load_config(run_dir)
    env, eval_env = build_envs(cfg)
    trainer = Trainer(cfg, env, eval_env)
    path = pathlib.Path(params_path) if params_path else run_dir / "params.msgpack"
    if not path.is_file():
        raise CollectError(f"{path}: no such params file (was the run finished with logging.save_params=true?)")
    if path.name == "params.msgpack":
        return cfg, trainer, load_params(path.parent, trainer)
    # Only the structure is needed as a template: eval_shape builds it without computing.
    return cfg, trainer, read_params(path, jax.eval_shape(trainer.init_params, jax.random.PRNGKey(0)))


# -- the console script -----------------------------------------------------------------


def _check_out(out: pathlib.Path) -> None:
    """Reject an output file we cannot write before reading any run."""
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise CollectError(f"--out {out}: unknown table format {suffix or '(none)'!r}; use .csv or .parquet")
    if suffix != ".csv" and importlib.util.find_spec("pyarrow") is None and importlib.util.find_spec("fastparquet") is None:
        raise CollectError(f"--out {out}: writing parquet needs pyarrow (pip install pyarrow); or write a .csv")


def _write(df: pd.DataFrame, out: pathlib.Path) -> None:
    _check_out(out)
    if out.suffix.lower() == ".csv":
        df.to_csv(out, index=False)
    else:
        df.to_parquet(out, index=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="crl-collect",
        description="Tabulate a sweep: one row per run (final epoch; --score last5: the mean of its last 5 "
                    "evaluations), or per configuration over seeds with --aggregate (mean, s.e., IQM and its CI).",
    )
    parser.add_argument("sweep_dir", type=pathlib.Path, help="a multirun directory (or any folder of run dirs)")
    parser.add_argument("--out", type=pathlib.Path, help="write the table to this .csv or .parquet file")
    parser.add_argument("--aggregate", action="store_true",
                        help="per configuration: mean, standard error, IQM and its 95%% bootstrap CI over seeds")
    parser.add_argument("--resamples", type=int, default=RESAMPLES,
                        help=f"bootstrap resamples of --aggregate's IQM CI (default {RESAMPLES}; seeded: reproducible)")
    parser.add_argument("--curves", action="store_true", help="every epoch of every run instead of the final one")
    parser.add_argument("--score", choices=SCORES, default="final",
                        help="each run's eval metrics: its final evaluation (default), or last5: the mean of its "
                             "last 5 evaluations, the paper's score (columns named <metric>_last5)")
    args = parser.parse_args(argv)
    if args.aggregate and args.curves:
        parser.error("--aggregate and --curves do not combine")
    if args.resamples < 1:
        parser.error(f"--resamples: {args.resamples} is not allowed; use a positive number (default {RESAMPLES})")
    if args.curves and args.score != "final":
        parser.error("--score applies to the one-row-per-run table, not to --curves (every epoch)")
    try:
        if args.out is not None:
            _check_out(args.out)
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            df = curves(args.sweep_dir) if args.curves else collect_runs(args.sweep_dir, score=args.score)
        if args.aggregate:
            df = aggregate(df, resamples=args.resamples)
        if args.out is not None:
            _write(df, args.out)
            print(f"crl-collect: wrote {len(df)} rows to {args.out}")
        else:
            with pd.option_context("display.max_columns", None, "display.width", 200):
                shown = df.drop(columns=[c for c in ("path", "overrides") if c in df])
                print(shown.to_string(index=False))
    except CollectError as err:
        print(f"crl-collect: {err}", file=sys.stderr)
        return 2
    return 0


def cli() -> None:
    raise SystemExit(main())


if __name__ == "__main__":
    cli()
