"""Experiment tooling: paper presets (grids and composition), launcher presets, results
tables (crl.apps.collect, crl-collect) and the critical-depth rule (crl.apps.analysis)."""

import itertools
import json
import math
import pathlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
EXPERIMENTS = CONF / "experiment"

PAPER_TASKS = [
    "arm_binpick_hard", "arm_push_easy", "arm_push_hard", "ant_u4_maze", "ant_u5_maze",
    "ant_big_maze", "ant_hardest_maze", "humanoid", "humanoid_u_maze", "humanoid_big_maze",
]
DEPTHS = [4, 8, 16, 32, 64]

# preset -> (its sweep grid, the number of runs)
EXPECTED = {
    "main_table": ({"env": PAPER_TASKS, "network.depth": DEPTHS, "seed": [0, 1, 2, 3, 4]}, 250),
    "width_vs_depth": (
        {
            "env": ["humanoid", "ant_big_maze", "arm_push_easy"],
            "+experiment/arch": ["d4_w256", "d4_w512", "d4_w1024", "d4_w2048", "d8_w256", "d32_w256"],
            "seed": [0, 1, 2],
        },
        54,
    ),
    "batch_vs_depth": (
        {"env": ["humanoid"], "train.batch_size": [128, 256, 512, 1024, 2048], "network.depth": DEPTHS, "seed": [0, 1, 2]},
        75,
    ),
    "actor_vs_critic_depth": (
        {
            "env": ["humanoid", "ant_big_maze", "arm_push_easy"],
            "network.actor_depth": DEPTHS,
            "network.critic_depth": DEPTHS,
            "seed": [0, 1, 2],
        },
        225,
    ),
    "deep_runs": ({"env": ["humanoid_u_maze"], "+experiment/arch": ["d256", "d512", "a512_c1024"], "seed": [0, 1]}, 6),
    "ablations": (
        {
            "env": ["humanoid", "ant_big_maze"],
            "+experiment/ablation": ["baseline", "no_layer_norm", "relu", "no_residual"],
            "network.depth": [4, 32],
            "seed": [0, 1, 2],
        },
        48,
    ),
    "cpu_depth_threshold": ({"network.depth": [32, 16, 8, 4], "seed": [0, 1, 2]}, 12),
    "baselines_cpu": ({"network.depth": [16, 4], "agent": ["sac_her", "td3_her", "crl", "gcsl"], "seed": [0, 1, 2]},
                      24),
    "baselines_vs_depth": ({"env": ["humanoid", "ant_big_maze", "ant_u4_maze", "arm_push_easy"],
                            "agent": ["crl", "sac", "sac_her", "td3_her", "gcsl"], "network.depth": DEPTHS,
                            "seed": [0, 1, 2]}, 300),
    "stitching_cpu": ({"network.actor_depth": [16, 4], "network.critic_depth": [16, 4], "seed": [1, 2, 3]}, 12),
    "collector_learner": ({"network.depth": [16, 4]}, 2),  # 3 seeds per job (train.num_seeds)
    "offline_cpu": ({"network.depth": [16, 8, 4], "agent": ["crl", "gcbc"]}, 6),
}
CPU_PRESETS = {"cpu_depth_threshold", "baselines_cpu", "stitching_cpu", "collector_learner", "offline_cpu"}

# The paper's update schedule and data pipeline (train.sgd_schedule, reset_mode, prefill_policy,
# sampling, update_order), which every paper preset must run with.
PAPER_PIPELINE = ("paper", "first", "actor", "window", "actor_first")

# What the variant files must set (network keys), so the grids mean what they say.
ARCH = {
    "d4_w256": {"depth": 4, "width": 256}, "d4_w512": {"depth": 4, "width": 512},
    "d4_w1024": {"depth": 4, "width": 1024}, "d4_w2048": {"depth": 4, "width": 2048},
    "d8_w256": {"depth": 8, "width": 256}, "d32_w256": {"depth": 32, "width": 256},
    "d256": {"actor_depth": 256, "critic_depth": 256, "remat": True},
    "d512": {"actor_depth": 512, "critic_depth": 512, "remat": True},
    "a512_c1024": {"actor_depth": 512, "critic_depth": 1024, "remat": True},
}
ABLATION = {
    "baseline": {"layer_norm": True, "activation": "swish", "residual": True},
    "no_layer_norm": {"layer_norm": False, "activation": "swish", "residual": True},
    "relu": {"layer_norm": True, "activation": "relu", "residual": True},
    "no_residual": {"layer_norm": True, "activation": "swish", "residual": False},
}


def _values(text) -> list:
    """A sweep value string ('a,b,c') as a list of YAML scalars."""
    return [yaml.safe_load(v.strip()) for v in str(text).split(",")]


def sweep_grid(params: dict) -> dict:
    return {key: _values(value) for key, value in params.items()}


def jobs(grid: dict) -> list[list[str]]:
    keys = list(grid)
    return [[f"{k}={v}" for k, v in zip(keys, combo)] for combo in itertools.product(*grid.values())]


# -- presets: the grids, read from the files (no env config needed) -------------------------


def test_every_preset_is_known():
    assert sorted(p.stem for p in EXPERIMENTS.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_file_lists_the_grid_and_documents_compute(name):
    path = EXPERIMENTS / f"{name}.yaml"
    text = path.read_text()
    assert text.startswith("# @package _global_"), name
    assert "Compute" in text, f"{name}: the header must say what compute the preset needs"
    data = yaml.safe_load(text)
    grid = sweep_grid(data["hydra"]["sweeper"]["params"])
    expected, runs = EXPECTED[name]
    assert grid == expected
    assert len(jobs(grid)) == runs
    assert f"multirun/{name}/" in data["hydra"]["sweep"]["dir"]
    for group, variants in (("+experiment/arch", ARCH), ("+experiment/ablation", ABLATION)):
        for choice in grid.get(group, []):
            assert choice in variants, f"{name}: {group}={choice} is not a known variant"
            assert (EXPERIMENTS / group.split("/")[1] / f"{choice}.yaml").is_file()


# -- presets: composed by Hydra ---------------------------------------------------------------


def compose(overrides, hydra_config=False):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import crl.apps.train  # noqa: F401  registers the library's defaults as Hydra's base config

    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return hydra_compose("config", overrides=list(overrides), return_hydra_config=hydra_config)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_composes_and_hydra_sees_its_grid(name):
    cfg = compose([f"+experiment={name}"], hydra_config=True)
    grid = sweep_grid(dict(cfg.hydra.sweeper.params))
    assert grid == EXPECTED[name][0]


def _validate(overrides):
    from omegaconf import OmegaConf

    from crl.config import from_dict

    cfg = compose(overrides)
    return from_dict(OmegaConf.to_container(cfg, resolve=True))


def test_cpu_depth_threshold_every_job_composes_and_validates():
    from crl.run import build_envs

    grid, runs = EXPECTED["cpu_depth_threshold"]
    configs = [_validate(["+experiment=cpu_depth_threshold", *job]) for job in jobs(grid)]
    assert len(configs) == runs
    assert sorted({(c.network.actor_depth, c.network.critic_depth) for c in configs}) == [(4, 4), (8, 8), (16, 16), (32, 32)]
    assert sorted({c.seed for c in configs}) == [0, 1, 2]
    for cfg in configs:
        assert (cfg.env.id, cfg.env.eval_id) == ("point_u_maze", "point_u_maze_eval")  # scored on the far goals
        assert (cfg.network.actor_width, cfg.network.critic_width) == (64, 64)
        assert cfg.train.sgd_schedule == "ratio"  # the point mazes keep ours
        # 256 envs x 50-step unrolls per phase, 83 SGD steps of batch 256 each: 13,280 over the run
        assert (cfg.train.num_envs, cfg.sgd_steps_per_training_step, cfg.train.batch_size) == (256, 83, 256)
        schedule = cfg.schedule()
        assert schedule["training_steps"] * schedule["sgd_steps_per_training_step"] == 13_280
    for cfg in configs[:: len(grid["seed"])]:
        build_envs(cfg)  # the env exists and accepts its parameters (nothing compiles)
    launcher = compose(["+experiment=cpu_depth_threshold"], hydra_config=True).hydra.launcher
    assert launcher._target_.endswith("JoblibLauncher") and launcher.n_jobs == 2  # measured faster on 2 cores
    for choice, target in (("basic", "BasicLauncher"), ("slurm_cpu", "SlurmLauncher")):  # the user's choice wins
        chosen = compose(["+experiment=cpu_depth_threshold", f"hydra/launcher={choice}"], hydra_config=True)
        assert chosen.hydra.launcher._target_.endswith(target), choice


def one_axis_at_a_time(grid: dict) -> list[list[str]]:
    """Jobs that together use every value of every axis (the other axes at their first
    value): enough to show each value composes, at the cost of a sum, not a product."""
    first = {k: v[0] for k, v in grid.items()}
    seen, out = set(), []
    for key, values in grid.items():
        for value in values:
            job = tuple(f"{k}={value if k == key else first[k]}" for k in grid)
            if job not in seen:
                seen.add(job)
                out.append(list(job))
    return out


@pytest.mark.parametrize("name", sorted(set(EXPECTED) - CPU_PRESETS))
def test_preset_jobs_compose_with_every_task(name):
    """Every task of a paper preset has its conf/env file, and every grid value composes
    and validates with each task."""
    grid = dict(EXPECTED[name][0])
    missing = [e for e in grid["env"] if not (CONF / "env" / f"{e}.yaml").is_file()]
    assert not missing, f"{name}: no conf/env file for {', '.join(missing)}"
    grid["seed"] = grid["seed"][:1]
    for job in one_axis_at_a_time(grid):
        cfg = _validate([f"+experiment={name}", *job])
        chosen = dict(o.split("=", 1) for o in job)
        assert cfg.env.id == chosen["env"]
        t = cfg.train  # a paper figure runs with the paper's schedule and data pipeline
        assert (t.sgd_schedule, t.reset_mode, t.prefill_policy, t.sampling, t.update_order) == PAPER_PIPELINE, job
        assert (t.num_epochs, t.sgd_steps_cap) == (100, 800), job  # the paper's runs: --num_epochs 100
        net = cfg.network
        for group, variants in (("+experiment/arch", ARCH), ("+experiment/ablation", ABLATION)):
            if group in chosen:
                for key, value in variants[chosen[group]].items():
                    assert getattr(net, key) == value, (job, key)
        if "network.depth" in chosen:
            assert net.actor_depth == net.critic_depth == int(chosen["network.depth"])
        if "agent" in chosen:
            assert cfg.agent.name == chosen["agent"].split("_")[0]
            assert getattr(cfg.agent, "her", False) == chosen["agent"].endswith("_her"), job
        for key in ("network.actor_depth", "network.critic_depth", "train.batch_size"):
            if key in chosen:
                section, field = key.split(".")
                assert getattr(getattr(cfg, section), field) == int(chosen[key]), (job, key)


def test_why_depth_presets_compose_and_validate_every_job(tmp_path):
    """collector_learner: cpu_depth_threshold's setting with learners of depth 4 and 16 and
    3 seeds per job; offline_cpu: the same from a dataset (here a hand-made file)."""
    import numpy as np

    for job in jobs(EXPECTED["collector_learner"][0]):
        cfg = _validate(["+experiment=collector_learner", *job])
        assert (cfg.env.id, cfg.env.eval_id, cfg.network.width) == ("point_u_maze", "point_u_maze_eval", 64)
        assert (cfg.train.learner_depths, cfg.train.num_seeds, cfg.sgd_steps_per_training_step) == ([4, 16], 3, 83)
        assert cfg.train.dataset is None
    data = tmp_path / "d.npz"
    np.savez(data, observations=np.zeros((4, 2)), actions=np.zeros((4, 2)), terminals=np.array([0, 1, 0, 1]))
    for job in jobs(EXPECTED["offline_cpu"][0]):
        cfg = _validate(["+experiment=offline_cpu", f"train.dataset={data}", *job])
        assert cfg.offline and cfg.train.dataset == str(data) and cfg.agent.name == job[1].split("=")[1]
        assert (cfg.env.eval_id, cfg.train.num_seeds, cfg.sgd_steps_per_training_step) == ("point_u_maze_eval", 3, 83)


def test_variant_files_set_what_their_names_say():
    for name, expected in ARCH.items():
        cfg = _validate([f"+experiment/arch={name}"])
        for key, value in expected.items():
            assert getattr(cfg.network, key) == value, (name, key)
    for name, expected in ABLATION.items():
        cfg = _validate([f"+experiment/ablation={name}"])
        for key, value in expected.items():
            assert getattr(cfg.network, key) == value, (name, key)


def test_launcher_presets_compose():
    cfg = compose(["hydra/launcher=joblib"], hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher")
    for name, target in (("submitit_local", "LocalLauncher"), ("submitit_slurm", "SlurmLauncher")):
        assert compose([f"hydra/launcher={name}"], hydra_config=True).hydra.launcher._target_.endswith(target)
    gpu = compose(["hydra/launcher=slurm_gpu"], hydra_config=True).hydra.launcher
    assert gpu._target_.endswith("SlurmLauncher")
    assert gpu.gres == "gpu:1" and gpu.cpus_per_task >= 1 and gpu.timeout_min >= 60
    assert gpu.max_num_timeout > 0, "a timed-out job must be requeued (it resumes from its checkpoint)"
    cpu = compose(["hydra/launcher=slurm_cpu"], hydra_config=True).hydra.launcher
    assert cpu._target_.endswith("SlurmLauncher") and cpu.max_num_timeout > 0


def test_command_line_narrows_a_preset_sweep():
    """`crl-train -m +experiment=X seed=0` replaces the preset's seed axis (Hydra's rule)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    cfg = compose(["+experiment=main_table"], hydra_config=True)
    params = [f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()] + ["seed=0", "env=humanoid,ant_big_maze"]
    batches = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(params), None)
    assert len(batches[0]) == 2 * 5


# -- results tables -------------------------------------------------------------------------------


def fake_run(root: pathlib.Path, name: str, env="point_u_maze", depth=4, width=256, batch=256, seed=0,
             final=10.0, epochs=3, num_epochs=3, params=(1000, 2000), agent=None, actor_depth=None,
             critic_depth=None, sgd_schedule="ratio") -> pathlib.Path:
    """A run dir as crl-train writes it: config.yaml, metrics.csv, run_info.json. Epoch e
    (1..epochs) evaluates time_at_goal = final * e / epochs and success_any = 0.1 e."""
    run = root / name
    run.mkdir(parents=True)
    cfg = {
        "env": {"id": env, "eval_id": None, "episode_length": 100, "params": {}},
        "network": {"depth": depth, "width": width, "actor_depth": depth if actor_depth is None else actor_depth,
                    "critic_depth": depth if critic_depth is None else critic_depth,
                    "actor_width": width, "critic_width": width, "activation": "swish",
                    "layer_norm": True, "residual": True},
        "train": {"batch_size": batch, "num_envs": 64, "num_epochs": num_epochs, "sgd_schedule": sgd_schedule},
        "seed": seed,
        **({"agent": agent} if agent else {}),
    }
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    rows = [
        {"epoch": e, "env_steps": 1000 * e, "sgd_steps": 10 * e, "wall_time": 2.0 * e,
         "eval/episode_length": 100.0, "eval/time_at_goal": final * e / epochs, "eval/success_any": 0.1 * e,
         "train/critic_loss": 1.0 / e}
        for e in range(1, epochs + 1)
    ]
    pd.DataFrame(rows).to_csv(run / "metrics.csv", index=False)
    (run / "run_info.json").write_text(json.dumps({"actor_params": params[0], "critic_params": params[1]}))
    return run


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "sweep"
    n = 0
    for depth, finals in ((4, (10.0, 14.0)), (8, (40.0, 44.0))):
        for seed, final in enumerate(finals):
            fake_run(root, f"{n}_point_u_maze_a{depth}_c{depth}_w256_b256_s{seed}", depth=depth, seed=seed, final=final)
            n += 1
    fake_run(root, f"{n}_point_u_maze_a8_c8_w256_b256_s2", depth=8, seed=2, final=5.0, epochs=1)  # still running
    (root / "99_broken").mkdir()
    (root / "99_broken" / "metrics.csv").write_text("")  # no epoch yet: skipped with a warning
    return root


def test_collect_runs_gives_one_tidy_row_per_run(sweep):
    from crl.apps.collect import collect_runs

    with pytest.warns(UserWarning, match="99_broken"):
        df = collect_runs(sweep)
    assert len(df) == 5
    for column in ("env", "actor_depth", "critic_depth", "actor_width", "critic_width", "batch_size", "seed",
                   "env_steps", "time_at_goal", "success_any", "wall_time", "param_count", "path"):
        assert column in df, column
    first = df.iloc[0]
    assert (first.env, first.critic_depth, first.seed, first.epoch, first.env_steps) == ("point_u_maze", 4, 0, 3, 3000)
    assert first.time_at_goal == pytest.approx(10.0) and first.param_count == 3000
    assert first.wall_time == pytest.approx(6.0)
    assert list(df.complete) == [True, True, True, True, False]
    assert df.episode_length.iloc[0] == 100 and df.episode_length_eval.iloc[0] == 100.0


def test_curves_keep_every_epoch(sweep):
    from crl.apps.collect import curves

    with pytest.warns(UserWarning):
        df = curves(sweep)
    assert len(df) == 4 * 3 + 1
    one = df[df.path.str.contains("/1_point")]
    assert list(one.epoch) == [1, 2, 3] and list(one.seed) == [1, 1, 1]
    assert one.time_at_goal.tolist() == pytest.approx([14 / 3, 28 / 3, 14.0])


def test_aggregate_gives_mean_and_standard_error_over_seeds(sweep):
    from crl.apps.collect import aggregate, collect_runs

    with pytest.warns(UserWarning):
        table = aggregate(collect_runs(sweep))
    assert list(table.critic_depth) == [4, 8] and list(table.n_seeds) == [2, 3]
    assert table.time_at_goal_mean.tolist() == pytest.approx([12.0, 89 / 3])
    se8 = np.std([40.0, 44.0, 5.0], ddof=1) / math.sqrt(3)
    assert table.time_at_goal_se.tolist() == pytest.approx([np.std([10.0, 14.0], ddof=1) / math.sqrt(2), se8])
    single = aggregate(collect_runs(sweep).query("seed == 0"))
    assert single.time_at_goal_se.isna().all()  # one seed: no standard error


def test_last5_score_is_the_mean_of_each_runs_last_five_evaluations(tmp_path):
    from crl.apps.collect import aggregate, collect_runs

    root = tmp_path / "sweep"
    fake_run(root, "0_long", seed=0, final=16.0, epochs=8, num_epochs=8)  # 2, 4, ..., 16: last 5 from 8
    fake_run(root, "1_long", seed=1, final=32.0, epochs=8, num_epochs=8)  # 4, 8, ..., 32: last 5 from 16
    fake_run(root, "2_short", seed=2, final=9.0, epochs=3, num_epochs=8)  # 3, 6, 9: fewer than 5 epochs
    runs = collect_runs(root, score="last5")
    assert runs.time_at_goal_last5.tolist() == pytest.approx([12.0, 24.0, 6.0])  # (8+10+12+14+16)/5, ..., 18/3
    assert runs.success_any_last5.tolist() == pytest.approx([0.6, 0.6, 0.2])
    assert runs.episode_length_eval_last5.tolist() == pytest.approx([100.0] * 3)
    assert list(runs.score_epochs) == [5, 5, 3]
    assert not {"time_at_goal", "success_any"} & set(runs.columns)  # the name says which score
    assert list(runs.epoch) == [8, 8, 3] and runs["train/critic_loss"].iloc[0] == pytest.approx(1 / 8)  # final epoch's
    table = aggregate(runs)  # the score's columns by default
    assert table.time_at_goal_last5_mean.iloc[0] == pytest.approx(14.0) and table.n_seeds.iloc[0] == 3
    assert table.time_at_goal_last5_se.iloc[0] == pytest.approx(np.std([12.0, 24.0, 6.0], ddof=1) / math.sqrt(3))
    assert "success_any_last5_mean" in table and "time_at_goal_mean" not in table
    assert collect_runs(root).time_at_goal.tolist() == pytest.approx([16.0, 32.0, 9.0])  # final: unchanged
    with pytest.raises(ValueError, match=r"^score: unknown score 'last10'; allowed: final, last5$"):
        collect_runs(root, score="last10")


def test_default_score_is_the_papers_for_runs_of_the_papers_protocol(tmp_path):
    from crl.apps.collect import default_score

    fake_run(tmp_path / "paper", "0_run", sgd_schedule="paper")
    fake_run(tmp_path / "paper", "1_run", sgd_schedule="paper", seed=1)
    fake_run(tmp_path / "ours", "0_run")
    fake_run(tmp_path / "mixed" / "a", "0_run", sgd_schedule="paper")
    fake_run(tmp_path / "mixed" / "b", "0_run")
    assert default_score(tmp_path / "paper") == "last5"
    assert default_score(tmp_path / "ours") == "final"
    assert default_score(tmp_path / "mixed") == "final"


def test_depth_grids_place_each_configuration_at_its_actor_and_critic_depth(tmp_path):
    from crl.apps.collect import aggregate, collect_runs
    from crl.apps.figures import depth_grids

    root = tmp_path / "sweep"
    n = 0
    for env, offset in (("point_u_maze", 0), ("point_big_maze", 100)):
        for actor in (4, 16):
            for critic in (4, 16, 64) if offset == 0 else (4, 16):
                for seed in (0, 1):
                    fake_run(root, f"{n}_{env}_a{actor}_c{critic}_s{seed}", env=env, actor_depth=actor,
                             critic_depth=critic, seed=seed, final=actor + critic + 2 * seed + offset)
                    n += 1
    fake_run(root, f"{n}_x", actor_depth=4, critic_depth=64, seed=2, final=99.0)  # a third seed
    runs = collect_runs(root)
    grids = depth_grids(aggregate(runs))
    assert sorted(grids) == ["point_big_maze", "point_u_maze"]
    u = grids["point_u_maze"]
    assert list(u.actor_depths) == [4, 16] and list(u.critic_depths) == [4, 16, 64] and u.metric == "time_at_goal"
    np.testing.assert_allclose(u.mean, [[9.0, 21.0, 79.0], [21.0, 33.0, 81.0]])  # actor + critic + mean seed offset
    np.testing.assert_array_equal(u.n_seeds, [[2, 2, 3], [2, 2, 2]])
    assert u.se[0, 0] == pytest.approx(1.0)  # seeds 8 and 10
    big = grids["point_big_maze"]
    assert big.mean.shape == (2, 2) and big.mean[1, 1] == pytest.approx(133.0)
    # A per-run table is aggregated first; the last-5 score by its column name.
    np.testing.assert_allclose(depth_grids(runs)["point_u_maze"].mean, u.mean)
    last5 = depth_grids(collect_runs(root, score="last5"), metric="time_at_goal_last5")["point_u_maze"]
    assert last5.mean[0, 0] == pytest.approx(np.mean([8 * 2 / 3, 10 * 2 / 3]))  # epochs 1-3 of 3: mean = 2/3 final
    with pytest.raises(ValueError, match=r"^depth_grids: metric: the table has no column time_at_goal_last5_mean nor"):
        depth_grids(runs, metric="time_at_goal_last5")
    wide = pd.concat([runs, runs.assign(critic_width=512)])
    with pytest.raises(ValueError, match="several configurations per env and actor/critic depth"):
        depth_grids(aggregate(wide))


def crl_collect(*args, capsys=None):
    """Run the console script's main in this process (its imports are already paid for)."""
    from crl.apps.collect import main

    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_agents_are_a_column_and_the_baselines_summary_is_published(tmp_path):
    """crl-collect's `agent` column (crl for runs from before agents; sac+her where HER is on)
    groups the aggregate; experiments/baselines_results.py writes the issue's summary.csv
    and figures from such a sweep."""
    import importlib.util

    from crl.apps.collect import aggregate, collect_runs

    root = tmp_path / "sweep"
    n = 0
    for agent, name in ((None, "crl"), ({"name": "sac", "her": True}, "sac+her"), ({"name": "gcsl"}, "gcsl")):
        for depth in (4, 16):
            for seed in (0, 1):
                fake_run(root, f"{n}_{name}_d{depth}_s{seed}", depth=depth, seed=seed, agent=agent,
                         final=depth + seed + (10 if name == "crl" else 0))
                n += 1
    df = collect_runs(root)
    assert sorted(df.agent.unique()) == ["crl", "gcsl", "sac+her"] and list(df.columns)[0] == "agent"
    table = aggregate(df)
    assert len(table) == 6 and set(table.n_seeds) == {2}
    spec = importlib.util.spec_from_file_location("baselines_results", REPO / "experiments" / "baselines_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "out"
    assert module.main([str(root), "--out", str(out)]) == 0
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns[:6]) == ["agent", "env", "depth", "n_seeds", "time_at_goal_mean", "time_at_goal_se"]
    crl16 = summary[(summary.agent == "crl") & (summary.depth == 16)].iloc[0]
    assert crl16.time_at_goal_mean == pytest.approx(26.5) and crl16.n_seeds == 2
    assert (out / "time_at_goal_vs_depth.png").stat().st_size > 1000 and (out / "learning_curves.png").is_file()


def test_crl_collect_writes_csv_and_aggregates(sweep, tmp_path, capsys):
    out = tmp_path / "table.csv"
    code, stdout, err = crl_collect(sweep, "--out", out, capsys=capsys)
    assert code == 0, err
    assert len(pd.read_csv(out)) == 5 and "wrote 5 rows" in stdout
    code, _, err = crl_collect(sweep, "--aggregate", "--out", out, capsys=capsys)
    assert code == 0, err
    assert list(pd.read_csv(out).n_seeds) == [2, 3]
    code, stdout, _ = crl_collect(sweep, "--aggregate", capsys=capsys)
    assert code == 0 and "time_at_goal_mean" in stdout
    code, stdout, _ = crl_collect(sweep, "--curves", "--out", out, capsys=capsys)
    assert code == 0 and len(pd.read_csv(out)) == 13


def test_crl_collect_score_last5_names_its_columns(sweep, tmp_path, capsys):
    out = tmp_path / "table.csv"
    code, _, err = crl_collect(sweep, "--score", "last5", "--out", out, capsys=capsys)
    assert code == 0, err
    table = pd.read_csv(out)
    # 3-epoch runs: the mean of all three evaluations, final * (1 + 2 + 3) / 3 / 3; the running run has one
    assert table.time_at_goal_last5.tolist() == pytest.approx([f * 2 / 3 for f in (10.0, 14.0, 40.0, 44.0)] + [5.0])
    code, _, err = crl_collect(sweep, "--score", "last5", "--aggregate", "--out", out, capsys=capsys)
    assert code == 0, err
    table = pd.read_csv(out)
    assert {"time_at_goal_last5_mean", "time_at_goal_last5_se", "success_any_last5_mean"} <= set(table.columns)
    assert table.time_at_goal_last5_mean.tolist() == pytest.approx([8.0, ((40.0 + 44.0) * 2 / 3 + 5.0) / 3])
    with pytest.raises(SystemExit):
        crl_collect(sweep, "--score", "best", capsys=capsys)
    err = capsys.readouterr().err
    assert "--score: invalid choice: 'best' (choose from 'final', 'last5')" in err
    with pytest.raises(SystemExit):
        crl_collect(sweep, "--score", "last5", "--curves", capsys=capsys)
    assert "--score applies to the one-row-per-run table" in capsys.readouterr().err


def test_crl_collect_errors_are_one_line(tmp_path, sweep, capsys):
    code, _, err = crl_collect(tmp_path / "nowhere", capsys=capsys)
    assert code == 2 and err.startswith("crl-collect: ") and "not a directory" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = crl_collect(empty, capsys=capsys)
    assert code == 2 and "no run directory" in err
    code, _, err = crl_collect(sweep, "--out", tmp_path / "table.xlsx", capsys=capsys)
    assert code == 2 and ".csv or .parquet" in err
    import importlib.util

    code, _, err = crl_collect(sweep, "--out", tmp_path / "table.parquet", capsys=capsys)
    if importlib.util.find_spec("pyarrow") is None and importlib.util.find_spec("fastparquet") is None:
        assert code == 2 and "pyarrow" in err and err.count("\n") == 1
    else:
        assert code == 0 and len(pd.read_parquet(tmp_path / "table.parquet")) == 5
    # The console script is installed and wired to the same main.
    result = subprocess.run([sys.executable, "-m", "crl.apps.collect", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--aggregate" in result.stdout


# -- the critical-depth rule ---------------------------------------------------------------------


def test_critical_depth_finds_the_first_large_jump():
    from crl.apps.analysis import critical_depth

    # The paper's ant U5 maze shape: nothing until depth 32. M = 61, 10% = 6.1.
    result = critical_depth([4, 8, 16, 32, 64], [1.0, 2.0, 4.0, 40.0, 61.0], [0.7, 1.0, 1.5, 10.0, 18.0])
    assert result.depth == 32 and result.gain == pytest.approx(36.0) and result.noise_checked
    assert result.threshold == pytest.approx(max(6.1, 2 * math.hypot(1.5, 10.0)))
    # Order of the inputs does not matter.
    assert critical_depth([64, 4, 32, 16, 8], [61.0, 1.0, 40.0, 4.0, 2.0]).depth == 32


def test_critical_depth_ignores_jumps_inside_seed_noise_or_too_small():
    from crl.apps.analysis import critical_depth

    # 4 -> 8 gains 30 but the standard errors (20 each) make 2 x 28.3 = 56.6 the bound.
    noisy = critical_depth([4, 8, 16], [10.0, 40.0, 45.0], [20.0, 20.0, 1.0])
    assert noisy.depth is None
    # A gain outside the noise but under 10% of the best mean is not large either.
    small = critical_depth([4, 8, 16], [100.0, 108.0, 200.0], [0.1, 0.1, 0.1])
    assert small.depth == 16
    # Nothing learned at any depth: no critical depth.
    assert critical_depth([4, 8], [0.0, 0.0], [0.0, 0.0]).depth is None
    # One seed (NaN standard errors): only the relative bound applies, and the result says so.
    single = critical_depth([4, 8], [1.0, 50.0], [float("nan")] * 2)
    assert single.depth == 8 and not single.noise_checked


def test_critical_depths_per_task_from_an_aggregate_table():
    from crl.apps.analysis import critical_depths

    table = pd.DataFrame({
        "env": ["a", "a", "a", "b", "b"],
        "critic_depth": [4, 8, 16, 4, 8],
        "time_at_goal_mean": [5.0, 50.0, 60.0, 10.0, 11.0],
        "time_at_goal_se": [1.0, 2.0, 2.0, 1.0, 1.0],
    })
    result = critical_depths(table).set_index("env")
    assert result.loc["a", "critical_depth"] == 8
    assert result.loc["b", "critical_depth"] is None or pd.isna(result.loc["b", "critical_depth"])


# -- critic value maps --------------------------------------------------------------------------


def test_value_map_masks_walls_and_is_finite_in_free_cells(key):
    import jax

    from crl.apps.analysis import value_map
    from crl.config import from_dict
    from crl.run import build_envs
    from crl.train import Trainer

    cfg = from_dict({"network": {"depth": 0, "width": 8}})
    env, eval_env = build_envs(cfg)
    trainer = Trainer(cfg, env, eval_env)
    params = trainer.init_params(key)
    vm = value_map(trainer, params, env, goal=[3.0, 1.0], points_per_cell=4)
    walls = env.maze.walls
    assert vm.values.shape == (walls.shape[0] * 4, walls.shape[1] * 4)
    wall_pixels = np.kron(walls, np.ones((4, 4), bool))
    assert np.isnan(vm.values[wall_pixels]).all()
    assert np.isfinite(vm.values[~wall_pixels]).all()
    assert jax.numpy.asarray(vm.values[~wall_pixels]).max() <= 0  # -||phi - psi|| energies
