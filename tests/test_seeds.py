"""Seeds in one program (`train.num_seeds`, crl/seeds.py): each seed a complete run of its
own, equal to the one-seed run to a stated float tolerance, resumable exactly."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import yaml

import helpers
from crl.apps import collect
from crl.config import ConfigError, from_dict
from crl.loop import Callback
from crl.run import run_training

BASE = helpers.tiny_config(train={"num_epochs": 3, "total_env_steps": 600})
# Seed i of a batched run against the run `seed + i` on its own: the same programs under
# jax.vmap, whose batched matrix products XLA rounds differently. Measured on the 2-core
# CPU over these 3 epochs: at most 2e-6 relative on any metric (docs/benchmarks.md).
RTOL, ATOL = 1e-4, 1e-6


def _cfg(seed=0, **train):
    return from_dict({**BASE, "seed": seed, "train": {**BASE["train"], **train}})


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _numbers(rows):
    return [{k: float(v) for k, v in r.items() if k not in helpers.TIMING_COLUMNS} for r in rows]


@pytest.fixture(scope="module")
def batched(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds")
    run_training(_cfg(seed=5, num_seeds=2), root / "batched")
    return root


def test_each_seed_is_a_complete_run_equal_to_its_single_run(batched):
    root = batched
    for seed in (5, 6):
        single = root / f"single_{seed}"
        run_training(_cfg(seed=seed), single)
        mine = batched / "batched" / f"seed_{seed}"
        # a complete run directory: a one-seed run of seed `seed`, resumable on its own
        for name in ("config.yaml", "run_config.json", "run_info.json", "metrics.csv", "params.msgpack"):
            assert (mine / name).is_file(), name
        assert (mine / "tensorboard").is_dir() and sorted(p.name for p in (mine / "checkpoints").iterdir())
        config = yaml.safe_load((mine / "config.yaml").read_text())
        assert config["seed"] == seed and config["train"]["num_seeds"] == 1
        a, b = _numbers(_rows(mine / "metrics.csv")), _numbers(_rows(single / "metrics.csv"))
        assert [r["epoch"] for r in a] == [1, 2, 3] and len(a) == len(b)
        for ra, rb in zip(a, b):
            assert ra.keys() == rb.keys()
            for k in ("epoch", "env_steps", "sgd_steps"):
                assert ra[k] == rb[k]
            np.testing.assert_allclose([ra[k] for k in ra], [rb[k] for k in ra], rtol=RTOL, atol=ATOL)
    # the two seeds are different runs
    assert _rows(batched / "batched" / "seed_5" / "metrics.csv")[-1]["train/critic_loss"] != \
        _rows(batched / "batched" / "seed_6" / "metrics.csv")[-1]["train/critic_loss"]
    parent = json.loads((batched / "batched" / "run_config.json").read_text())
    assert parent["train"]["num_seeds"] == 2 and parent["seed"] == 5


def test_crl_collect_reads_a_batched_run_as_its_seeds(batched):
    table = collect.collect_runs(batched / "batched")
    assert sorted(table["seed"]) == [5, 6] and set(table["epoch"]) == {3}
    assert table["time_at_goal"].notna().all()


class _StopAfterPhases(Callback):
    """A stop request after `n` update phases: the loop pauses inside an epoch."""

    def __init__(self, n: int):
        self.asked, self.n = 0, n

    @property
    def stop_requested(self) -> bool:
        self.asked += 1
        return self.asked > self.n


def test_a_batched_run_resumes_exactly_after_a_stop_inside_an_epoch_and_a_lost_checkpoint(batched, tmp_path):
    reference = batched / "batched"
    run_dir = tmp_path / "cut"
    cfg = _cfg(seed=5, num_seeds=2)
    # stopped inside epoch 2 (each seed saves that point), then resumed to the end
    run_training(cfg, run_dir, callbacks=[_StopAfterPhases(5)])
    names = {s: sorted(p.name for p in (run_dir / f"seed_{s}" / "checkpoints").iterdir()) for s in (5, 6)}
    assert names[5] == names[6] and "_phase_" in names[5][-1], names
    run_training(cfg, run_dir)
    for s in (5, 6):
        assert _numbers(_rows(run_dir / f"seed_{s}" / "metrics.csv")) == \
            _numbers(_rows(reference / f"seed_{s}" / "metrics.csv"))
    # a kill between two seeds' saves: seed 6 lost its newest checkpoint; both go back to epoch 2
    newest = run_dir / "seed_6" / "checkpoints" / "epoch_000003"
    shutil.rmtree(newest)
    run_training(cfg, run_dir)
    for s in (5, 6):
        assert _numbers(_rows(run_dir / f"seed_{s}" / "metrics.csv")) == \
            _numbers(_rows(reference / f"seed_{s}" / "metrics.csv"))
    assert "resuming every seed from epoch_000002" in (run_dir / "train.log").read_text()


def test_num_seeds_is_validated_and_a_batched_run_cannot_resume_with_another_count(batched):
    with pytest.raises(ConfigError, match=r"^train\.num_seeds: 0 is not allowed"):
        _cfg(num_seeds=0)
    with pytest.raises(ConfigError, match=r"^train\.num_seeds: 3 differs from 2"):
        run_training(_cfg(seed=5, num_seeds=3), batched / "batched")
