"""Mixed precision and multi-device data parallelism (CPU host devices)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from crl.config import from_dict
from crl.run import run_training
from helpers import REPO, tiny_config

TINY = tiny_config(network={"width": 32, "depth": 8}, train={"total_env_steps": 1200, "num_epochs": 3},
                   checkpoint={"every_epochs": 100})
# The device tests: one residual block (still an nn.scan) is enough to check the sharding; compiles faster.
DEVICES = {**TINY, "network": {**TINY["network"], "depth": 4}}


def _losses(row_dir):
    import csv

    with open(row_dir / "metrics.csv") as f:
        return np.array([float(r["train/critic_loss"]) for r in csv.DictReader(f)])


def test_bfloat16_stays_finite_and_close_to_float32(tmp_path):
    f32 = run_training(from_dict(TINY), tmp_path / "f32")
    bf16 = run_training(from_dict({**TINY, "network": {**TINY["network"], "dtype": "bfloat16"}}), tmp_path / "bf16")
    a, b = _losses(tmp_path / "f32"), _losses(tmp_path / "bf16")
    assert np.all(np.isfinite(b)) and np.isfinite(bf16["train/actor_loss"])
    # Same data and seeds; bfloat16 matmuls only perturb the curve.
    np.testing.assert_allclose(b, a, rtol=0.05)
    assert f32["epoch"] == bf16["epoch"] == 3


RUN = """
import json, sys
import jax
from crl.config import from_dict
from crl.run import run_training
cfg = from_dict(json.loads(sys.argv[1]))
row = run_training(cfg, sys.argv[2])
print(json.dumps({"devices": jax.local_device_count(), "row": row}))
"""


def _run_with_devices(n, run_dir, agent="crl", seed=0, **train):
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}",
           "CRL_JAX_CACHE": str(REPO / ".jax_cache")}
    config = {**DEVICES, "agent": {"name": agent, **({"her": True} if agent == "sac" else {})},
              "train": {**DEVICES["train"], **train}, "seed": seed}
    out = subprocess.run([sys.executable, "-c", RUN, json.dumps(config), str(run_dir)], env=env,
                         capture_output=True, text=True, timeout=600, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("agent", ["crl", "sac"])
def test_two_devices_match_one_device(tmp_path, agent):
    """Sharding is the trainer's, the same for every agent (SAC+HER: twin Q, targets, HER)."""
    one = _run_with_devices(1, tmp_path / "one", agent)
    two = _run_with_devices(2, tmp_path / "two", agent)
    assert one["devices"] == 1 and two["devices"] == 2
    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert np.all(np.isfinite(b))
    # Identical data and randomness; only the order of the cross-device reductions differs.
    np.testing.assert_allclose(b, a, rtol=1e-3)
    info = json.loads((tmp_path / "two" / "run_info.json").read_text())
    assert len(info["devices"]) == 2


def test_seeds_in_one_program_on_two_devices(tmp_path):
    """train.num_seeds with the envs split over 2 devices (the seed axis is not split): seed
    1 of the batched run matches the one-seed, one-device run of seed 1 to the tolerance of
    both effects."""
    two = _run_with_devices(2, tmp_path / "two", num_seeds=2)
    one = _run_with_devices(1, tmp_path / "one", seed=1)
    assert two["devices"] == 2 and one["devices"] == 1
    batched = _losses(tmp_path / "two" / "seed_1")
    assert np.all(np.isfinite(batched)) and len(batched) == 3
    np.testing.assert_allclose(batched, _losses(tmp_path / "one"), rtol=1e-3)
    assert not np.allclose(_losses(tmp_path / "two" / "seed_0"), batched)  # two different seeds
