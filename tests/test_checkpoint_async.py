"""Checkpoints saved in the background (crl/checkpoint.py): the loop waits only for the copy
to the host; a save in progress is finished or abandoned, never left half visible; a process
killed while a save is being written resumes exactly from the previous checkpoint."""

import functools
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import jax
import jax.numpy as jnp
import pytest
from flax import struct

import crl.checkpoint as checkpoint_module
from crl.checkpoint import Checkpointer
from crl.config import from_dict
from crl.run import run_training
from crl.train import Trainer
from helpers import REPO, crl_env, deterministic_columns, read_csv, tensorboard_scalars, tiny_config


@struct.dataclass
class Toy:
    buffer: jax.Array
    learner: dict


def _toy():
    return Toy(buffer=jnp.arange(12.0).reshape(3, 4), learner={"w": jnp.ones(5), "step": jnp.array(3)})


@functools.partial(jax.jit, donate_argnums=0)
def _next_phase(state):
    """Overwrites the state in place, as the donated update phase does."""
    return jax.tree.map(lambda x: x + 100, state)


def _hold_writer(monkeypatch, name="epoch_000001"):
    """Make the writer of checkpoint `name` wait (after orbax wrote its files, before the
    manifest) until the returned event is set."""
    release, real = threading.Event(), checkpoint_module._inventory

    def held(root):
        if name in str(root):
            release.wait(30)
        return real(root)

    monkeypatch.setattr(checkpoint_module, "_inventory", held)
    return release


def _same(a, b) -> bool:
    return all(bool(jnp.all(x == y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_a_save_returns_before_it_is_written_and_the_donated_update_cannot_change_it(tmp_path, monkeypatch):
    release = _hold_writer(monkeypatch)
    ckpt = Checkpointer(tmp_path, keep=2)
    state = _toy()
    expected = jax.tree.map(jnp.copy, state)
    leaves = jax.tree.leaves(state)
    assert ckpt.start_save(state, epoch=1, env_steps=10) == tmp_path / "epoch_000001"
    assert ckpt.saving and ckpt.complete_checkpoints() == []  # still being written
    state = _next_phase(state)
    jax.block_until_ready(state)
    # the update really reused the buffers: the save holds no view of them (which on the
    # CPU would make XLA refuse the donation and copy the whole state every phase)
    assert all(x.is_deleted() for x in leaves)
    release.set()
    assert ckpt.finish() == tmp_path / "epoch_000001" and not ckpt.saving
    restored = Checkpointer(tmp_path).restore_latest(jax.tree.map(jnp.zeros_like, expected))
    assert restored.epoch == 1 and _same(restored.state, expected)
    # the next save reuses the host copy of the last one, and writes the new values
    ckpt.save(state, epoch=2, env_steps=20)
    restored = Checkpointer(tmp_path).restore_latest(jax.tree.map(jnp.zeros_like, expected))
    assert restored.epoch == 2 and _same(restored.state, jax.tree.map(lambda x: x + 100, expected))


def test_an_abandoned_save_never_appears_and_the_previous_one_stands(tmp_path, monkeypatch):
    ckpt = Checkpointer(tmp_path, keep=2)
    ckpt.save(_toy(), epoch=1, env_steps=10)
    release = _hold_writer(monkeypatch, "epoch_000002")
    ckpt.start_save(_next_phase(_toy()), epoch=2, env_steps=20)
    assert ckpt.abandon()
    release.set()
    assert ckpt.finish() is None  # waits for the writer, which removes what it wrote
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_000001"]
    restored = Checkpointer(tmp_path).restore_latest(_toy())
    assert restored.epoch == 1 and _same(restored.state, _toy())


def test_a_failed_write_is_raised_by_the_next_wait_and_leaves_nothing_in_place(tmp_path, monkeypatch):
    def full_disk(root):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint_module, "_inventory", full_disk)
    ckpt = Checkpointer(tmp_path)
    ckpt.start_save(_toy(), epoch=1, env_steps=10)
    with pytest.raises(OSError, match="No space left"):
        ckpt.finish()
    assert ckpt.complete_checkpoints() == [] and not ckpt.saving


def test_a_second_ctrl_c_abandons_the_save_in_progress(tmp_path, monkeypatch):
    """KeyboardInterrupt inside the loop (Ctrl-C twice: stop at once) while epoch 2's save is
    written: it is abandoned, and epoch 1's checkpoint is the newest a resume sees."""
    release = _hold_writer(monkeypatch, "epoch_000002")
    original, calls = Trainer.train_phase, []

    def interrupted(self, ts):  # 5 phases per epoch: the 12th call is in epoch 3
        calls.append(1)
        if len(calls) == 12:
            raise KeyboardInterrupt
        return original(self, ts)

    monkeypatch.setattr(Trainer, "train_phase", interrupted)
    cfg = from_dict(tiny_config(train={"num_epochs": 4, "total_env_steps": 800}))
    with pytest.raises(KeyboardInterrupt):
        run_training(cfg, tmp_path)
    release.set()
    deadline = time.time() + 30
    while (tmp_path / "checkpoints" / ".partial_epoch_000002").exists() and time.time() < deadline:
        time.sleep(0.05)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["epoch_000001"]


CHILD = textwrap.dedent("""
    import pathlib, sys, time
    import crl.checkpoint as checkpoint_module
    from crl.apps import enable_compilation_cache
    from crl.config import from_dict
    from crl.run import run_training
    from helpers import tiny_config

    run_dir, marker = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    real = checkpoint_module._inventory

    def stuck(root):  # epoch 2's orbax files are written, its manifest not yet
        if "epoch_000002" in str(root):
            marker.touch()
            time.sleep(600)
        return real(root)

    checkpoint_module._inventory = stuck
    enable_compilation_cache()  # CRL_JAX_CACHE: the suite's cache
    run_training(from_dict(tiny_config(train={"num_epochs": 3, "total_env_steps": 600})), run_dir)
""")


def test_sigkill_while_a_background_save_is_written_resumes_exactly_from_the_previous_one(tmp_path):
    cfg = from_dict(tiny_config(train={"num_epochs": 3, "total_env_steps": 600}))
    run_dir, marker = tmp_path / "run", tmp_path / "writing"
    env = {**crl_env(), "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(run_dir), str(marker)], cwd=tmp_path, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while not marker.exists() and child.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert marker.exists(), child.stderr.read()[-3000:] if child.poll() is not None else "no save of epoch 2"
        time.sleep(0.5)  # the loop trains on (epoch 3) while epoch 2 is being written
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    checkpoints = run_dir / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == [".partial_epoch_000002", "epoch_000001"]
    assert (checkpoints / ".partial_epoch_000002" / "state").is_dir()  # killed mid-write: orbax had written
    assert len(read_csv(run_dir / "metrics.csv")) >= 2  # epochs logged past the last complete checkpoint

    run_training(cfg, run_dir)  # the same command again
    run_training(cfg, tmp_path / "reference")  # never interrupted
    assert sorted(p.name for p in checkpoints.iterdir()) == ["epoch_000002", "epoch_000003"]
    log = (run_dir / "train.log").read_text()
    assert "resuming exactly from epoch_000001" in log
    # the start line states the disk the checkpoints take
    assert re.search(r"run directory \S+; checkpoints take [\d.]+ MiB on disk \(checkpoint.keep=2 x [\d.]+ MiB, "
                     r"replay buffer included; [\d.]+ MiB while a save is written\)", log)
    assert deterministic_columns(read_csv(run_dir / "metrics.csv")) == deterministic_columns(
        read_csv(tmp_path / "reference" / "metrics.csv"))
    assert tensorboard_scalars(run_dir) == tensorboard_scalars(tmp_path / "reference")


def test_the_checkpoint_benchmark_saves_restores_and_verifies(tmp_path, capsys):
    sys.path.insert(0, str(REPO / "experiments"))
    try:
        import bench_checkpoint
    finally:
        sys.path.remove(str(REPO / "experiments"))
    out = tmp_path / "bench.json"
    row = bench_checkpoint.main(["--env", "point_u_maze", "--gib", "0.002", "--json", str(out), "--dir", str(tmp_path)])
    assert row["mode"] == "background" and row["saves"] == 3 and row["verified"] and row["donated"]
    assert 0.0015 < row["buffer_gib"] < 0.0025 and row["bytes_per_checkpoint"] >= row["state_bytes"]
    assert row["bytes_per_run"] == 2 * row["bytes_per_checkpoint"]
    assert set(json.loads(out.read_text())) >= {"blocked_seconds", "save_seconds", "bytes_per_checkpoint",
                                                "bytes_per_run", "restore_seconds", "verified"}
    assert "verified" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]  # its checkpoints are removed
