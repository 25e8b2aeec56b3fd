"""Issue 15's measuring tools: the benchmarked command means what the issue says, and the
one-shot GPU check runs end to end (on the CPU, at tiny sizes) and writes its JSON.
Timings are never asserted."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))

from bench_train_command import issue_config, summarise  # noqa: E402


def test_benchmarked_command_is_the_paper_codes_ant_configuration():
    cfg = issue_config(4)
    t = cfg.train
    assert (t.num_envs, t.unroll_length, t.env_steps_per_training_step) == (64, 62, 3968)
    assert cfg.sgd_steps_per_training_step == 249 and t.batch_size == 256
    assert cfg.training_steps_per_epoch == 5 and t.prefill_unrolls * t.unroll_length >= 1000
    cfg64 = issue_config(64)
    assert (cfg64.network.actor_depth, cfg64.network.critic_depth) == (64, 64)
    assert cfg64.env.episode_length == 1000 and cfg64.env.id == "ant"


def test_summary_takes_median_min_and_max_per_tree_and_depth():
    runs = [{"tree": "a", "depth": 4, "env_steps_per_s": v, "load_1min_before": 1.0} for v in (3.0, 1.0, 2.0)]
    runs.append({"tree": "b", "depth": 4, "env_steps_per_s": 5.0, "load_1min_before": 2.0})
    table = {s["tree"]: s for s in summarise(runs)}
    assert (table["a"]["median"], table["a"]["min"], table["a"]["max"], table["a"]["runs"]) == (2.0, 1.0, 3.0, 3)
    assert table["b"]["median"] == 5.0


def test_gpu_check_dry_run_writes_one_json(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "CRL_JAX_CACHE": os.environ.get("CRL_JAX_CACHE", str(REPO / ".jax_cache_gpu_check"))}
    # One env keeps the test quick (each Brax env compiles its own programs); humanoid's run
    # differs only in `env=humanoid`, whose composition test_experiments checks.
    cmd = ["bash", str(REPO / "experiments" / "gpu_check.sh"), "--dry-run", "--envs", "ant", "--out", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["dry_run"] is True and report["jax"]["devices"]
    assert report["bench"]["status"] == "ok"
    assert [r["section"] for r in report["bench"]["rows"]] == ["ceiling", "update"]
    assert [(r["env"], r["depth"], r["status"]) for r in report["e2e"]] == [("ant", 4, "ok")]
    for run in report["e2e"]:
        assert run["epochs_logged"] == 2 and run["env_steps_per_s_median"] > 0
        assert run["run_info"]["env_steps_per_epoch"] == 2 * 10
    # the memory plan of the e2e run's config (the CPU reports no device memory to compare it with)
    [plan] = report["memory"]
    assert (plan["env"], plan["depth"], plan["plan_status"]) == ("ant", 4, "ok")
    assert plan["peak_gib"] > plan["state_gib"] > plan["buffer_gib"] > 0 and plan["measured_peak_gib"] is None
    # seeds in one program: env steps/s per seed and in all
    assert [(r["depth"], r["num_seeds"], r["status"]) for r in report["seeds"]] == [(4, 2, "ok")]
    for run in report["seeds"]:
        assert run["epochs_logged"] == 2
        assert run["env_steps_per_s_all_seeds"] == pytest.approx(run["num_seeds"] * run["env_steps_per_s_median"])


def test_the_paper_pipeline_variant_does_the_same_work():
    """--paper-pipeline (issue 15 part 4): the paper's schedule gives the same 249 SGD steps
    and 5 update phases per epoch on the same data sizes."""
    from bench_train_command import PAPER_PIPELINE

    cfg = issue_config(4, list(PAPER_PIPELINE))
    t = cfg.train
    assert (t.sgd_schedule, t.sampling, t.reset_mode, t.prefill_policy, t.update_order) == (
        "paper", "window", "first", "actor", "actor_first")
    assert (cfg.sgd_steps_per_training_step, cfg.training_steps_per_epoch, t.batch_size) == (249, 5, 256)
