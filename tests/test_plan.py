"""The memory plan (crl/plan.py, `crl-train --plan`): from shapes alone, equal to what XLA
reports for the programs the run compiles from its real state."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

import helpers
from crl import plan as memplan
from crl.apps import train as train_app
from crl.config import ConfigError, from_dict
from crl.networks import param_count
from crl.run import build_envs
from crl.train import Trainer


def _trainer(**network):
    cfg = from_dict(helpers.tiny_config(network={"width": 16, **network}))
    env, eval_env = build_envs(cfg)
    return Trainer(cfg, env, eval_env)


def test_the_plan_from_shapes_is_what_xla_reports_for_the_real_update_phase():
    trainer = _trainer(depth=8)
    plan = memplan.memory_plan(trainer)
    ts = trainer.init(jax.random.PRNGKey(3))  # the real state, as a run allocates it
    real = Trainer.train_phase.lower(trainer, ts).compile().memory_analysis()
    assert plan["update_argument"] == real.argument_size_in_bytes
    assert plan["update_output"] == real.output_size_in_bytes
    assert plan["update_alias"] == real.alias_size_in_bytes  # the state is donated: updated in place
    assert plan["update_temp"] == real.temp_size_in_bytes > 0
    # the sizes that need no compiler
    assert plan["state_bytes"] == plan["state_bytes_per_device"] == sum(x.nbytes for x in jax.tree.leaves(ts))
    assert plan["buffer_bytes"] == sum(x.nbytes for x in jax.tree.leaves(ts.buffer))
    assert plan["learner_bytes"] == sum(x.nbytes for x in jax.tree.leaves(ts.learner))
    assert plan["actor_params"] == param_count(ts.actor_params)
    assert plan["actor_params"] + plan["critic_params"] == param_count(trainer.params(ts))
    # the disk its checkpoints take: checkpoint.keep (2) whole states, one more while a save is written
    assert plan["checkpoint_bytes"] == plan["state_bytes"]
    assert plan["checkpoints_bytes"] == 2 * plan["state_bytes"]
    assert plan["checkpoints_peak_bytes"] == 3 * plan["state_bytes"]
    # the peak holds the whole state and the update's temporaries at once
    assert plan["update_argument"] == plan["state_bytes"]
    assert plan["peak_bytes"] >= plan["update_footprint"] == plan["state_bytes"] + plan["update_temp"] + (
        plan["update_output"] - plan["update_alias"])
    assert plan["peak_bytes"] >= plan["evaluate_footprint"] > plan["state_bytes"]


def test_a_state_larger_than_the_device_is_refused_in_one_line_before_compiling():
    trainer = _trainer()
    state = memplan.state_sizes(trainer)["state_bytes_per_device"]
    memplan.check_fits(trainer, limit=state)  # exactly fits
    with pytest.raises(ConfigError) as err:
        memplan.check_fits(trainer, limit=state - 1)
    line = str(err.value)
    assert "\n" not in line and line.startswith("train.buffer_size: the training state needs")
    assert "buffer_size=200 x num_envs=4" in line and "--plan" in line


def test_crl_train_plan_prints_each_job_and_trains_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CRL_JAX_CACHE", str(helpers.REPO / ".jax_cache"))
    out = tmp_path / "plan.json"
    train_app.plan(["-m", *helpers.TINY, "network.depth=4,16", "network.remat=false,true", "--plan",
                    "--plan-json", str(out)])
    printed = capsys.readouterr().out
    rows = json.loads(out.read_text())
    assert [(r["actor_depth"], r["remat"]) for r in rows] == [(4, False), (4, True), (16, False), (16, True)]
    assert "peak GiB" in printed and len([line for line in printed.splitlines() if "point_u_maze" in line]) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]  # no run, no multirun dir
    by = {(r["actor_depth"], r["remat"]): r for r in rows}
    # deeper: more parameters, more to keep for the backward pass; remat trades it for compute
    assert by[16, False]["actor_params"] > by[4, False]["actor_params"]
    assert by[16, False]["update_temp"] > by[4, False]["update_temp"]
    assert by[16, True]["update_temp"] < by[16, False]["update_temp"]
    assert by[16, True]["state_bytes"] == by[16, False]["state_bytes"]
    assert all(r["fits"] == "?" for r in rows) and np.all([r["peak_bytes"] > 0 for r in rows])
    # the disk of the sweep's checkpoints: each job's, and all four together
    assert all(r["checkpoints_bytes"] == 2 * r["state_bytes"] for r in rows)
    total = sum(r["checkpoints_bytes"] for r in rows) / memplan.GiB
    assert f"all 4 jobs: {total:.2f} GiB on disk" in printed and "ckpts disk GiB" in printed


def test_checkpoint_sizes_follow_keep_seeds_and_the_buffer():
    state, buffer = 1000, 800
    cfg = from_dict(helpers.tiny_config(checkpoint={"keep": 3}, train={"num_seeds": 2}))
    assert memplan.checkpoint_sizes(cfg, state, buffer) == {
        "checkpoint_bytes": 1000, "checkpoints_bytes": 2 * 3 * 1000, "checkpoints_peak_bytes": 2 * 4 * 1000}
    line = memplan.describe_checkpoints(cfg, memplan.checkpoint_sizes(cfg, state, buffer))
    assert "take 0.0 MiB on disk (2 seeds x checkpoint.keep=3 x 0.0 MiB" in line
    assert "replay buffer included" in line
    big = memplan.checkpoint_sizes(cfg, 3 * memplan.GiB, memplan.GiB)
    assert memplan.describe_checkpoints(cfg, big).startswith(
        "checkpoints take 18.00 GiB on disk (2 seeds x checkpoint.keep=3 x 3.00 GiB, replay buffer included; "
        "24.00 GiB while a save is written)")
    cfg = from_dict(helpers.tiny_config(checkpoint={"include_buffer": False}))
    assert memplan.checkpoint_sizes(cfg, state, buffer)["checkpoints_bytes"] == 2 * 200
    line = memplan.describe_checkpoints(cfg, memplan.checkpoint_sizes(cfg, state, buffer))
    assert "replay buffer not included" in line


def test_crl_train_plan_refuses_a_bad_key_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        train_app.plan(["network.depht=4", "--plan"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "network.depht" in err
