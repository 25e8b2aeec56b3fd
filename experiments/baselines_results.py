"""Publish a `+experiment=baselines_cpu` sweep (or any sweep over agents and depths):

    python experiments/baselines_results.py multirun/baselines_cpu/<time> [--out docs/results/baselines_cpu]

writes to --out:
    summary.csv                 agent, env, depth, n_seeds, time_at_goal_mean/_se, success_any_mean/_se
    runs.csv                    every run's final metrics, wall time and settings
    time_at_goal_vs_depth.png   final time at goal against depth, one line per agent (mean +- s.e.)
    learning_curves.png         time at goal over env steps, one panel per depth, mean over seeds
"""

from __future__ import annotations

import argparse
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
COLORS = {"crl": "tab:blue", "sac+her": "tab:orange", "sac": "tab:red", "td3+her": "tab:green", "td3": "tab:olive",
          "gcsl": "tab:purple"}


def publish(sweep: pathlib.Path, out: pathlib.Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from crl.apps.analysis import depth_summary
    from crl.apps.collect import aggregate, collect_runs, curves

    # A job the launcher lost (its worker stopped) leaves a run dir with Hydra's files only.
    lost = sorted(p.parent.name for p in sweep.glob("*/.hydra") if not (p.parent / "metrics.csv").is_file())
    if lost:
        raise SystemExit(f"baselines_results: {len(lost)} job(s) never trained (no metrics.csv): {', '.join(lost)}; "
                         "rerun each with its overrides (.hydra/overrides.yaml) and hydra.run.dir=<that folder>")
    runs = collect_runs(sweep)
    incomplete = runs[~runs["complete"]] if "complete" in runs else runs.iloc[:0]
    if len(incomplete):
        raise SystemExit(f"baselines_results: {len(incomplete)} run(s) did not finish: "
                         f"{', '.join(map(str, incomplete['path']))}")
    summary = depth_summary(aggregate(runs), by=("agent", "env"))
    out.mkdir(parents=True, exist_ok=True)
    summary.to_csv(out / "summary.csv", index=False, float_format="%.4g")
    keep = [c for c in ("agent", "env", "critic_depth", "seed", "time_at_goal", "success_any", "env_steps", "sgd_steps",
                        "wall_time", "param_count", "path") if c in runs]
    runs[keep].sort_values(["agent", "critic_depth", "seed"]).to_csv(out / "runs.csv", index=False, float_format="%.4g")

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for (agent, env), rows in summary.groupby(["agent", "env"]):
        ax.errorbar(rows.depth, rows.time_at_goal_mean, yerr=rows.time_at_goal_se, marker="o", capsize=3,
                    label=agent, color=COLORS.get(agent))
    ax.set_xscale("log", base=2)
    depths = sorted(summary.depth.unique())
    ax.set_xticks(depths, [str(d) for d in depths])
    ax.set_xlabel("depth (actor and critic)")
    ax.set_ylabel("final time at goal (of the episode's steps)")
    ax.set_title(f"{', '.join(sorted(summary.env.unique()))}: agents against depth")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "time_at_goal_vs_depth.png", dpi=120)
    plt.close(fig)

    curve = curves(sweep)
    fig, axes = plt.subplots(1, len(depths), figsize=(4.5 * len(depths), 3.5), sharey=True, squeeze=False)
    for ax, depth in zip(axes[0], depths):
        for agent, rows in curve[curve.critic_depth == depth].groupby("agent"):
            mean = rows.groupby("env_steps")["time_at_goal"].mean()
            ax.plot(mean.index, mean.values, label=agent, color=COLORS.get(agent))
        ax.set_title(f"depth {depth}")
        ax.set_xlabel("env steps")
    axes[0][0].set_ylabel("time at goal (mean over seeds)")
    axes[0][-1].legend()
    fig.tight_layout()
    fig.savefig(out / "learning_curves.png", dpi=120)
    plt.close(fig)
    return {"summary": summary, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", type=pathlib.Path)
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "docs" / "results" / "baselines_cpu")
    args = parser.parse_args(argv)
    if not args.sweep.is_dir():
        print(f"baselines_results: sweep: {args.sweep} is not a directory", file=sys.stderr)
        return 2
    result = publish(args.sweep, args.out)
    print(result["summary"].to_string(index=False))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
