"""Publish the two "why does depth help" sweeps (issue 21):

    python experiments/why_depth_results.py offline <sweep> [--source <run dir>] [--out docs/results/offline_cpu]
    python experiments/why_depth_results.py collector-learner <sweep> [--out docs/results/collector_learner_cpu]

`offline`: a sweep of `+experiment=offline_cpu` (agents x depths trained from one fixed
dataset, `train.num_seeds` seeds per job); `--source` is the run the dataset was exported
from (its online score is drawn as a reference). `collector-learner`: a sweep of
`+experiment=collector_learner` (one job per collector depth, with `train.learner_depths`).

Writes to --out:
    runs.csv                 every seed: settings, final and last-5 time at goal of each policy
    summary.csv              per setting (and learner): n_seeds, mean and s.e. of the final and
                             last-5 time at goal, IQM with its 95 % bootstrap CI (crl/apps/stats.py;
                             with 3 seeds the IQM is the mean and the CI the seeds' range), the seeds
    improvement.csv          probabilities of improvement P(X > Y) with 95 % CIs for the comparisons
                             the test is about (final and last-5 scores)
    paired.csv               collector-learner: per collector depth, the per-seed differences of two
                             policies trained on the same data (same seed = same buffer), their mean
                             and s.e.
    time_at_goal.png         left: the final time at goal per setting, seeds as dots, mean +- s.e.;
                             right: time at goal over the run (mean +- s.e. over seeds)
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np
import pandas as pd
import yaml

from crl.apps.stats import iqm_interval, probability_of_improvement

LAST = 5  # the paper's score: the mean of the last 5 evaluations


def _seed_runs(sweep: pathlib.Path) -> list[tuple[pathlib.Path, dict, pd.DataFrame]]:
    """(run dir, config, metrics) of every finished seed directory under `sweep`."""
    out = []
    for metrics in sorted(sweep.glob("**/metrics.csv")):
        run = metrics.parent
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        df = pd.read_csv(metrics)
        if len(df) == cfg["train"]["num_epochs"]:
            out.append((run, cfg, df))
    if not out:
        raise SystemExit(f"no finished runs under {sweep}")
    return out


def _scores(df: pd.DataFrame, column: str) -> dict:
    return {"final": float(df[column].iloc[-1]), "last5": float(df[column].iloc[-LAST:].mean())}


def _se(x) -> float:
    x = np.asarray(x, float)
    return float(np.std(x, ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")


def _summary(runs: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    rows = []
    for keys, g in runs.groupby(by, sort=True):
        row = dict(zip(by, keys if isinstance(keys, tuple) else (keys,)))
        row["n_seeds"] = len(g)
        for score in ("final", "last5"):
            row[f"time_at_goal_{score}_mean"] = g[score].mean()
            row[f"time_at_goal_{score}_se"] = _se(g[score])
        for score in ("final", "last5"):
            est = iqm_interval(g[score].to_numpy())
            for name, value in zip(("iqm", "iqm_ci_low", "iqm_ci_high"), est):
                row[f"time_at_goal_{score}_{name}"] = value
        row["seeds_final"] = " ".join(f"{v:.1f}" for v in g.sort_values("seed")["final"])
        rows.append(row)
    return pd.DataFrame(rows)


def offline(sweep: pathlib.Path, source: pathlib.Path | None):
    rows, curves = [], []
    for run, cfg, df in _seed_runs(sweep):
        net = cfg["network"]
        setting = {"agent": cfg["agent"]["name"], "actor_depth": net["actor_depth"], "critic_depth": net["critic_depth"],
                   "seed": cfg["seed"], "sgd_steps": int(df["sgd_steps"].iloc[-1]), "wall_time_s": float(df["wall_time"].iloc[-1]),
                   "path": str(run.relative_to(sweep))}
        rows.append({**setting, **_scores(df, "eval/time_at_goal")})
        curves.append(df.assign(agent=setting["agent"], depth=net["critic_depth"], seed=cfg["seed"]))
    runs = pd.DataFrame(rows).sort_values(["agent", "critic_depth", "seed"])
    ref = None
    if source is not None:
        src = pd.read_csv(source / "metrics.csv")
        src_cfg = yaml.safe_load((source / "config.yaml").read_text())
        ref = {"label": f"online CRL depth {src_cfg['network']['critic_depth']} (the data's collector, seed "
                        f"{src_cfg['seed']})", **_scores(src, "eval/time_at_goal")}
    return runs, _summary(runs, ["agent", "critic_depth"]), pd.concat(curves), ref


def collector_learner(sweep: pathlib.Path):
    rows, curves = [], []
    for run, cfg, df in _seed_runs(sweep):
        collector = cfg["network"]["critic_depth"]
        policies = {"collector (acts)": "eval/time_at_goal"}
        policies.update({f"learner depth {d}": f"eval/depth_{d}/time_at_goal" for d in cfg["train"]["learner_depths"]})
        for name, column in policies.items():
            rows.append({"collector_depth": collector, "policy": name, "seed": cfg["seed"],
                         "wall_time_s": float(df["wall_time"].iloc[-1]), "path": str(run.relative_to(sweep)),
                         **_scores(df, column)})
            curves.append(pd.DataFrame({"epoch": df["epoch"], "env_steps": df["env_steps"], "value": df[column],
                                        "collector_depth": collector, "policy": name, "seed": cfg["seed"]}))
    runs = pd.DataFrame(rows).sort_values(["collector_depth", "policy", "seed"])
    return runs, _summary(runs, ["collector_depth", "policy"]), pd.concat(curves)


def _improvements(runs: pd.DataFrame, pairs: list[tuple[dict, dict, str]]) -> pd.DataFrame:
    """P(X > Y) with its CI for each (X selector, Y selector, label), final and last-5 scores."""
    rows = []
    for x, y, label in pairs:
        pick = lambda sel: runs.loc[np.logical_and.reduce([runs[k] == v for k, v in sel.items()])]
        for score in ("final", "last5"):
            est, low, high = probability_of_improvement(pick(x)[score].to_numpy(), pick(y)[score].to_numpy())
            rows.append({"comparison": label, "score": score, "p_improvement": est, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


def _paired(runs: pd.DataFrame, pairs: list[tuple[str, str]]) -> pd.DataFrame:
    """Per collector depth: X - Y seed by seed for policies X, Y of the same run (same data)."""
    rows = []
    for c, g in runs.groupby("collector_depth"):
        for x, y in pairs:
            if x not in set(g.policy) or y not in set(g.policy):
                continue
            for score in ("final", "last5"):
                a = g[g.policy == x].set_index("seed")[score]
                b = g[g.policy == y].set_index("seed")[score]
                d = (a - b).dropna()
                rows.append({"collector_depth": c, "difference": f"{x} - {y}", "score": score, "mean": d.mean(),
                             "se": _se(d), "per_seed": " ".join(f"{v:+.1f}" for v in d)})
    return pd.DataFrame(rows)


def _order(value) -> tuple:
    """Bars in a readable order: the collector first, then learners and depths by number."""
    text = str(value)
    digits = "".join(c for c in text if c.isdigit())
    return (not text.startswith("collector"), int(digits) if digits else 0, text)


def _bars(ax, summary, runs, group: str, member: str, ylabel: str):
    groups = sorted(summary[group].unique())
    members = sorted(summary[member].unique(), key=_order)
    width = 0.8 / len(members)
    for j, m in enumerate(members):
        for i, gval in enumerate(groups):
            s = summary[(summary[group] == gval) & (summary[member] == m)]
            if s.empty:
                continue
            x = i + (j - (len(members) - 1) / 2) * width
            ax.bar(x, s["time_at_goal_final_mean"].iloc[0], width * 0.9, yerr=s["time_at_goal_final_se"].iloc[0],
                   color=f"C{j}", alpha=0.6, capsize=3, label=str(m) if i == 0 else None)
            seeds = runs[(runs[group] == gval) & (runs[member] == m)]["final"]
            ax.scatter(np.full(len(seeds), x), seeds, color=f"C{j}", edgecolor="k", zorder=3, s=18)
    ax.set_xticks(range(len(groups)), [str(g) for g in groups])
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.35 * runs["final"].max())  # room for the legend above the bars
    ax.legend(fontsize=8, loc="upper left", ncol=2)


def _curves(ax, curves: pd.DataFrame, keys: list[str], x: str):
    for i, (k, g) in enumerate(curves.groupby(keys, sort=True)):
        stats = g.groupby(x)["value"].agg(["mean", "std", "count"])
        se = stats["std"] / np.sqrt(stats["count"])
        ax.plot(stats.index, stats["mean"], color=f"C{i}", label=" / ".join(map(str, k if isinstance(k, tuple) else (k,))))
        ax.fill_between(stats.index, stats["mean"] - se, stats["mean"] + se, color=f"C{i}", alpha=0.2)
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel("time at goal (of 100 steps)")
    ax.legend(fontsize=7)


def main(argv=None) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=("offline", "collector-learner"))
    parser.add_argument("sweep", type=pathlib.Path)
    parser.add_argument("--source", type=pathlib.Path, help="offline: the run the dataset was exported from")
    parser.add_argument("--out", type=pathlib.Path)
    args = parser.parse_args(argv)
    out = args.out or pathlib.Path("docs/results") / ("offline_cpu" if args.kind == "offline" else "collector_learner_cpu")
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    if args.kind == "offline":
        runs, summary, curves, ref = offline(args.sweep, args.source)
        depths = sorted(runs.critic_depth.unique())
        pairs = [({"agent": a, "critic_depth": d}, {"agent": a, "critic_depth": depths[0]}, f"{a} depth {d} > depth {depths[0]}")
                 for a in sorted(runs.agent.unique()) for d in depths[1:]]
        pairs += [({"agent": "crl", "critic_depth": d}, {"agent": "gcbc", "critic_depth": d}, f"crl > gcbc at depth {d}")
                  for d in depths if {"crl", "gcbc"} <= set(runs.agent)]
        _bars(axes[0], summary, runs, "critic_depth", "agent", "final time at goal, far goals (of 100)")
        axes[0].set_xlabel("depth (actor and critic)")
        if ref:
            axes[0].axhline(ref["final"], color="k", ls="--", lw=1, label=ref["label"])
            axes[0].legend(fontsize=7, loc="upper left", ncol=2)
        curves = curves.rename(columns={"eval/time_at_goal": "value"})
        _curves(axes[1], curves, ["agent", "depth"], "sgd_steps")
        fig.suptitle("Offline: trained from one fixed dataset")
    else:
        runs, summary, curves = collector_learner(args.sweep)
        depths = sorted(runs.collector_depth.unique())
        shallow, deep = depths[0], depths[-1]
        learners = sorted((p for p in runs.policy.unique() if p.startswith("learner")), key=_order)
        pairs = [({"collector_depth": deep, "policy": p}, {"collector_depth": shallow, "policy": p},
                  f"{p}: on the depth-{deep} collector's data > on the depth-{shallow}'s") for p in learners]
        pairs += [({"collector_depth": c, "policy": learners[-1]}, {"collector_depth": c, "policy": learners[0]},
                   f"collector {c}: {learners[-1]} > {learners[0]}") for c in depths]
        pairs += [({"collector_depth": c, "policy": f"learner depth {c}"}, {"collector_depth": c, "policy": "collector (acts)"},
                   f"collector {c}: its passive twin (learner depth {c}) > the collector") for c in depths
                  if f"learner depth {c}" in set(runs.policy)]
        _bars(axes[0], summary, runs, "collector_depth", "policy", "final time at goal, far goals (of 100)")
        axes[0].set_xlabel("collector depth")
        _curves(axes[1], curves, ["collector_depth", "policy"], "env_steps")
        fig.suptitle("Collector and learners: one buffer, several networks")
    fig.tight_layout()
    fig.savefig(out / "time_at_goal.png", dpi=120)
    runs.to_csv(out / "runs.csv", index=False)
    if args.kind == "collector-learner":
        paired = _paired(runs, [(learners[-1], learners[0])] + [(f"learner depth {c}", "collector (acts)")
                                                                for c in depths if f"learner depth {c}" in set(runs.policy)])
        paired.to_csv(out / "paired.csv", index=False)
        print(paired.round(2).to_string(index=False))
    improvement = _improvements(runs, pairs)
    improvement.to_csv(out / "improvement.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summary.drop(columns=[c for c in summary.columns if c.endswith("_se")]).to_string(index=False))
        print(summary[[c for c in summary.columns if c.endswith("_se")]].round(2).to_string(index=False))
    print(improvement.round(2).to_string(index=False))
    if args.kind == "offline" and ref:
        print(f"reference: {ref['label']}: final {ref['final']:.1f}, last-5 {ref['last5']:.1f}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
