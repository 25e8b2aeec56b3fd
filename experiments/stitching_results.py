"""Publish a stitching sweep (`+experiment=stitching_cpu`) and the candidates screened for it:

    python experiments/stitching_results.py multirun/stitching_cpu/<time> \
        [--candidates <sweep> <sweep> ...] [--out docs/results/stitching_cpu]

writes to --out:
    summary.csv                  env, depth, n_seeds, time_at_goal_mean/_se (final evaluation),
                                 time_at_goal_last5_mean/_se (the paper's score), success_any_mean/_se
    runs.csv                     every run: settings, final and last-5 time at goal, wall time
    candidates.csv               every candidate run screened (maze, distances, depth, seed, scores)
    time_at_goal_vs_depth.png    final and last-5 time at goal on the far pairs against depth
    learning_curves.png          time at goal on the far pairs over env steps, mean +- s.e. per depth
    value_map.png                the critic's value over the maze for the corridor's far end as goal,
                                 one panel per depth (seed 0)
    embeddings.png               phi(s, a) along far-pair episodes and psi(g), PCA, shallow and deep
    actor_vs_critic_depth.png    the final score per actor x critic depth (when the sweep has both)
"""

from __future__ import annotations

import argparse
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def _pairs(run_path: str) -> tuple[str, str]:
    """(training distances, evaluation distances) of a run, as text."""
    from crl.apps.collect import load_config
    from crl.run import build_envs

    env, eval_env = build_envs(load_config(run_path))
    return (" ".join(map(str, env.params.pair_distances)), " ".join(map(str, eval_env.params.pair_distances)))


def _scores(sweep: pathlib.Path):
    """Every run with its final and last-5 scores and its pair distances."""
    from crl.apps.collect import collect_runs

    runs = collect_runs(sweep)
    last5 = collect_runs(sweep, score="last5").set_index("path")["time_at_goal_last5"]
    runs["time_at_goal_last5"] = runs["path"].map(last5)
    pairs = [_pairs(p) for p in runs["path"]]
    runs["pair_distances"] = [p[0] for p in pairs]
    runs["eval_pair_distances"] = [p[1] for p in pairs]
    return runs


def _summary(runs):
    import pandas as pd

    rows = []
    same = runs[runs.actor_depth == runs.critic_depth]
    for (env, pairs, depth), group in same.groupby(["env", "pair_distances", "critic_depth"]):
        row = {"env": env, "pair_distances": pairs, "eval_pair_distances": group.eval_pair_distances.iloc[0],
               "depth": depth, "n_seeds": group.seed.nunique()}
        for metric in ("time_at_goal", "time_at_goal_last5", "success_any"):
            row[f"{metric}_mean"] = group[metric].mean()
            row[f"{metric}_se"] = group[metric].sem()
        row["wall_time_mean"] = group.wall_time.mean()
        rows.append(row)
    return pd.DataFrame(rows)


def publish(sweep: pathlib.Path, candidates: list[pathlib.Path], out: pathlib.Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import jax
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    from crl.apps.analysis import value_map
    from crl.apps.collect import curves, load_run
    from crl.apps.figures import depth_grids, embeddings

    runs = _scores(sweep)
    if not runs["complete"].all():
        raise SystemExit(f"stitching_results: runs did not finish: {', '.join(runs.path[~runs.complete])}")
    out.mkdir(parents=True, exist_ok=True)
    summary = _summary(runs)
    summary.to_csv(out / "summary.csv", index=False, float_format="%.4g")
    keep = ["env", "pair_distances", "eval_pair_distances", "actor_depth", "critic_depth", "seed", "time_at_goal",
            "time_at_goal_last5", "success_any", "env_steps", "sgd_steps", "wall_time"]
    runs[keep].sort_values(["actor_depth", "critic_depth", "seed"]).to_csv(out / "runs.csv", index=False,
                                                                         float_format="%.4g")
    if candidates:
        screened = pd.concat([_scores(c) for c in candidates], ignore_index=True)
        cols = ["env", "pair_distances", "eval_pair_distances", "critic_depth", "seed", "time_at_goal",
                "time_at_goal_last5", "wall_time"]
        screened[cols].rename(columns={"critic_depth": "depth"}).to_csv(out / "candidates.csv", index=False,
                                                                       float_format="%.4g")

    title = f"{summary.env.iloc[0]}: train on pairs {summary.pair_distances.iloc[0]} cells apart, " \
            f"evaluate on {summary.eval_pair_distances.iloc[0]}"
    depths = sorted(summary.depth.unique())
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for metric, label, marker in (("time_at_goal", "final evaluation", "o"),
                                  ("time_at_goal_last5", "mean of the last 5 (the paper's score)", "s")):
        ax.errorbar(summary.depth, summary[f"{metric}_mean"], yerr=summary[f"{metric}_se"], marker=marker, capsize=3,
                    label=label)
        for _, r in runs[runs.actor_depth == runs.critic_depth].iterrows():
            ax.scatter(r.critic_depth, r[metric], s=10, color="grey", alpha=0.6)
    ax.set_xscale("log", base=2)
    ax.set_xticks(depths, [str(d) for d in depths])
    ax.set_xlabel("depth (actor and critic)")
    ax.set_ylabel("time at goal on the far pairs (of 100 steps)")
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "time_at_goal_vs_depth.png", dpi=120)
    plt.close(fig)

    curve = curves(sweep)
    curve = curve[curve.actor_depth == curve.critic_depth]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for depth, rows in curve.groupby("critic_depth"):
        stats = rows.groupby("env_steps")["time_at_goal"].agg(["mean", "std", "count"])
        se = stats["std"] / np.sqrt(stats["count"])
        ax.plot(stats.index, stats["mean"], label=f"depth {depth}")
        ax.fill_between(stats.index, stats["mean"] - se, stats["mean"] + se, alpha=0.2)
    ax.set_xlabel("env steps")
    ax.set_ylabel("time at goal on the far pairs (mean +- s.e.)")
    ax.set_title(title, fontsize=8)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "learning_curves.png", dpi=120)
    plt.close(fig)

    # Value maps and embeddings: seed 0 of each depth (actor = critic)
    chosen = runs[(runs.actor_depth == runs.critic_depth) & (runs.seed == runs.seed.min())].sort_values("critic_depth")
    fig, axes = plt.subplots(1, len(chosen), figsize=(3.6 * len(chosen), 3.4), squeeze=False)
    for ax, (_, row) in zip(axes[0], chosen.iterrows()):
        _, trainer, params = load_run(row.path)
        env = trainer.eval_env
        path = env.maze.forward_path()
        goal = np.asarray(path[-1], np.float32) * float(env.params.cell_size)
        vm = value_map(trainer, params, env, goal)
        image = ax.imshow(vm.values, extent=vm.extent, cmap="viridis")
        ax.plot(goal[1], goal[0], "r*", markersize=12)
        start = np.asarray(path[0]) * float(env.params.cell_size)
        ax.plot(start[1], start[0], "wo", markersize=6)
        ax.set_title(f"depth {row.critic_depth}, seed {row.seed}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.suptitle("critic energy f(phi(s, pi(s, g)), psi(g)); star: goal (corridor end), dot: R", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "value_map.png", dpi=120)
    plt.close(fig)

    ends = chosen.iloc[[0, -1]] if len(chosen) > 1 else chosen
    fig, axes = plt.subplots(1, len(ends), figsize=(4.2 * len(ends), 3.8), squeeze=False)
    for ax, (_, row) in zip(axes[0], ends.iterrows()):
        _, trainer, params = load_run(row.path)
        emb = embeddings(trainer, params, trainer.eval_env, num_episodes=6, seed=0)
        colors = plt.cm.tab10(np.arange(len(emb.psi)))
        for e, color in enumerate(colors):
            pts = emb.phi[e][emb.running[e]]
            ax.plot(pts[:, 0], pts[:, 1], "-", color=color, alpha=0.6, linewidth=1)
            ax.scatter(pts[0, 0], pts[0, 1], color=color, marker="o", s=18)
            ax.scatter(emb.psi[e, 0], emb.psi[e, 1], color=color, marker="*", s=120, edgecolor="k")
        ev = emb.explained_variance
        ax.set_title(f"depth {row.critic_depth} (PCA: {ev[0]:.0%}, {ev[1]:.0%} of variance)", fontsize=9)
    fig.suptitle("phi(s, a) along far-pair episodes (dot: start) and psi(g) of their goals (star)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "embeddings.png", dpi=120)
    plt.close(fig)
    jax.clear_caches()

    grids = depth_grids(runs, "time_at_goal")
    grid = next(iter(grids.values()))
    if (grid.n_seeds > 0).sum() > min(len(grid.actor_depths), len(grid.critic_depths)):  # off the diagonal too
        fig, ax = plt.subplots(figsize=(4.5, 3.8))
        image = ax.imshow(grid.mean, cmap="viridis", origin="lower")
        ax.set_xticks(range(len(grid.critic_depths)), grid.critic_depths)
        ax.set_yticks(range(len(grid.actor_depths)), grid.actor_depths)
        for i in range(len(grid.actor_depths)):
            for j in range(len(grid.critic_depths)):
                if not np.isnan(grid.mean[i, j]):
                    ax.text(j, i, f"{grid.mean[i, j]:.1f}\n±{grid.se[i, j]:.1f}", ha="center", va="center",
                            color="w", fontsize=9)
        ax.set_xlabel("critic depth")
        ax.set_ylabel("actor depth")
        ax.set_title("final time at goal on the far pairs (mean ± s.e.)", fontsize=9)
        fig.colorbar(image, ax=ax)
        fig.tight_layout()
        fig.savefig(out / "actor_vs_critic_depth.png", dpi=120)
        plt.close(fig)
    return {"summary": summary, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", type=pathlib.Path)
    parser.add_argument("--candidates", type=pathlib.Path, nargs="*", default=[])
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "docs" / "results" / "stitching_cpu")
    args = parser.parse_args(argv)
    for path in [args.sweep, *args.candidates]:
        if not path.is_dir():
            print(f"stitching_results: {path} is not a directory", file=sys.stderr)
            return 2
    result = publish(args.sweep, args.candidates, args.out)
    print(result["summary"].to_string(index=False))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
