"""Reliability: exact resume after SIGKILL/SIGTERM, damaged checkpoints, the non-finite
guard, config validation before compilation, determinism."""

import json
import os
import random
import signal
import subprocess
import time

import jax
import jax.numpy as jnp
import pytest

from crl.checkpoint import Checkpointer
from crl.config import ConfigError, from_dict
from crl.run import NonFiniteError, run_training
from crl.rundir import check_output_location
from crl.train import Trainer
from helpers import TINY, crl_env, crl_train, crl_train_cmd, deterministic_columns, read_csv, tensorboard_scalars, tiny_config

# Ten epochs of a tiny run: long enough to be killed in the middle.
LONG = [a for a in TINY if not a.startswith(("train.total_env_steps", "train.num_epochs"))] + [
    "train.total_env_steps=2000",
    "train.num_epochs=10",
]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run: what every interrupted-and-resumed run must reproduce."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    result = crl_train(*LONG, f"hydra.run.dir={run_dir}", cwd=run_dir.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def assert_same_run(run_dir, reference_dir):
    assert deterministic_columns(read_csv(run_dir / "metrics.csv")) == deterministic_columns(
        read_csv(reference_dir / "metrics.csv")
    )
    got, want = tensorboard_scalars(run_dir), tensorboard_scalars(reference_dir)
    assert set(got) == set(want)
    for tag in want:
        assert got[tag] == want[tag], tag


def start_and_wait_for_rows(run_dir, rows):
    proc = subprocess.Popen(
        crl_train_cmd(*LONG, f"hydra.run.dir={run_dir}"), cwd=run_dir.parent, env=crl_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.time() + 300
    csv_path = run_dir / "metrics.csv"
    while time.time() < deadline and proc.poll() is None:
        if csv_path.exists() and len(read_csv(csv_path)) >= rows:
            return proc
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"run never reached {rows} epochs: {proc.stderr.read()[-2000:]}")


def test_sigkill_then_rerun_matches_an_uninterrupted_run(tmp_path, reference):
    run_dir = tmp_path / "run"
    # A random point mid-run; CRL_KILL_SEED=<the seed in a failure's message> replays it.
    seed = int(os.environ.get("CRL_KILL_SEED") or time.time())
    rng = random.Random(seed)
    rows = rng.randint(1, 8)
    proc = start_and_wait_for_rows(run_dir, rows)
    # Inside the next epoch (or its logging and checkpoint): an epoch of this config takes
    # about 0.1 s on an idle machine, so a longer wait could let the run finish first.
    time.sleep(rng.random() * 0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(read_csv(run_dir / "metrics.csv")) < 10, f"CRL_KILL_SEED={seed}"
    result = crl_train(*LONG, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, f"CRL_KILL_SEED={seed}: " + result.stderr[-3000:]
    try:
        assert_same_run(run_dir, reference)
    except AssertionError as err:
        raise AssertionError(f"CRL_KILL_SEED={seed} (killed after {rows} rows): {err}") from None


def test_sigterm_checkpoints_before_exit_and_resumes_exactly(tmp_path, reference):
    run_dir = tmp_path / "run"
    # Periodic checkpoints off (every 100 epochs): any checkpoint comes from the signal.
    args = [*LONG, "checkpoint.every_epochs=100"]
    proc = subprocess.Popen(
        crl_train_cmd(*args, f"hydra.run.dir={run_dir}"), cwd=tmp_path, env=crl_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    while not ((run_dir / "metrics.csv").exists() and len(read_csv(run_dir / "metrics.csv")) >= 3):
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    assert proc.returncode != 0  # the signal's default action still ends the process
    logged = len(read_csv(run_dir / "metrics.csv"))
    saved = [p.name for p in Checkpointer(run_dir / "checkpoints").complete_checkpoints()]
    # saved after the update phase the signal landed in: inside an epoch, or at its end
    assert len(saved) == 1 and logged < 10
    assert saved[0] == f"epoch_{logged:06d}" or saved[0].startswith(f"epoch_{logged:06d}_phase_"), saved
    result = crl_train(*args, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_run(run_dir, reference)


def test_truncated_checkpoint_falls_back_to_the_previous_one(tmp_path, reference):
    run_dir = tmp_path / "run"
    assert crl_train(*LONG, f"hydra.run.dir={run_dir}", cwd=tmp_path).returncode == 0
    newest = Checkpointer(run_dir / "checkpoints").complete_checkpoints()[-1]
    victim = max((p for p in (newest / "state").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    (run_dir / "params.msgpack").unlink()
    result = crl_train(*LONG, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    warning = [line for line in output.splitlines() if "damaged checkpoint" in line]
    assert warning and "epoch_000010" in warning[0] and "truncated" in warning[0]
    assert "resuming from epoch_000009" in warning[0]
    assert_same_run(run_dir, reference)
    assert (run_dir / "params.msgpack").exists()


def test_no_usable_checkpoint_is_a_clear_error(tmp_path):
    run_dir = tmp_path / "run"
    assert crl_train(*TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path).returncode == 0
    for ckpt in Checkpointer(run_dir / "checkpoints").complete_checkpoints():
        (ckpt / "manifest.json").unlink()
    result = crl_train(*TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 4
    assert "crl-train: cannot resume: no usable checkpoint" in result.stderr
    assert "epoch_000002: unreadable manifest" in result.stderr


def test_resuming_with_another_config_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    assert crl_train(*TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path).returncode == 0
    before = read_csv(run_dir / "metrics.csv")
    result = crl_train(*TINY, "train.batch_size=8", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 2
    assert "train.batch_size: 8 differs from 16" in result.stderr
    assert read_csv(run_dir / "metrics.csv") == before and (run_dir / "config.yaml").read_text().count("batch_size: 16")


def test_an_absurd_learning_rate_is_stopped_by_the_guard(tmp_path):
    run_dir = tmp_path / "run"
    result = crl_train(*LONG, "train.critic_lr=1e8", "train.actor_lr=1e8", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 3, result.stderr[-2000:]
    line = [x for x in result.stderr.splitlines() if x.startswith("crl-train: training diverged")]
    assert len(line) == 1
    assert "at epoch 1 (env step 280)" in line[0] and "non-finite train/" in line[0]
    assert Checkpointer(run_dir / "checkpoints").complete_checkpoints() == []


def _tiny_config(**train):
    return from_dict(tiny_config(train={"total_env_steps": 1000, "num_epochs": 5, **train}))


def test_guard_keeps_the_last_good_checkpoint_untouched(tmp_path, monkeypatch):
    original, calls = Trainer.train_phase, []

    def poisoned(self, ts):  # parameters become NaN in the last of the third epoch's 5 update phases
        ts, metrics, finite = original(self, ts)
        calls.append(1)
        if len(calls) == 15:
            critic = ts.learner["critic"]
            critic = critic.replace(params=jax.tree.map(lambda x: x * jnp.nan, critic.params))
            ts = ts.replace(learner={**ts.learner, "critic": critic})
            finite = jnp.array(False)
        return ts, metrics, finite

    monkeypatch.setattr(Trainer, "train_phase", poisoned)
    with pytest.raises(NonFiniteError, match=r"non-finite parameters at epoch 3 \(env step 680\)"):
        run_training(_tiny_config(), tmp_path)
    ckpts = Checkpointer(tmp_path / "checkpoints").complete_checkpoints()
    assert [p.name for p in ckpts] == ["epoch_000001", "epoch_000002"]
    assert Checkpointer.verify(ckpts[-1])["epoch"] == 2  # intact


def test_same_seed_same_metrics_different_seed_differs(tmp_path):
    cfg = _tiny_config()
    a = run_training(cfg, tmp_path / "a")
    b = run_training(cfg, tmp_path / "b")
    c = run_training(from_dict({**cfg.to_dict(), "seed": 1}), tmp_path / "c")
    rows = {k: deterministic_columns(read_csv(tmp_path / k / "metrics.csv")) for k in "abc"}
    assert rows["a"] == rows["b"]
    assert rows["a"] != rows["c"]
    assert a["train/critic_loss"] == b["train/critic_loss"] != c["train/critic_loss"]


def test_without_the_buffer_a_resume_refills_and_says_so(tmp_path, caplog):
    cfg = from_dict({**_tiny_config().to_dict(), "checkpoint": {"include_buffer": False}})
    run_training(cfg, tmp_path)
    (tmp_path / "checkpoints" / "epoch_000005").rename(tmp_path / "checkpoints" / ".partial_epoch_000005")
    with caplog.at_level("WARNING"):
        row = run_training(cfg, tmp_path)
    assert "WITHOUT its replay buffer" in caplog.text and "not exact" in caplog.text
    assert row["epoch"] == 5 and len(read_csv(tmp_path / "metrics.csv")) == 5


def test_a_full_disk_is_reported_before_training(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    cfg = _tiny_config()
    from crl.run import build_envs

    env, _ = build_envs(cfg)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(ConfigError, match=r"hydra.run.dir: .* has 0.00 GiB free; checkpoints need about"):
        check_output_location(cfg, tmp_path, Trainer(cfg, env))


BAD_CONFIGS = [
    ("network.depth=6", "network.depth", "multiple of 4"),
    ("network.actor_depth=10", "network.actor_depth", "multiple of 4"),
    ("network.activation=tanh", "network.activation", "swish, relu"),
    ("network.layer_norm=maybe", "network.layer_norm", "true or false"),
    ("train.energy=manhattan", "train.energy", "l2, l2_squared, dot, cosine"),
    ("train.batch_size=1", "train.batch_size", "at least 2"),
    ("train.batch_size=100000", "train.batch_size", "at most the env steps stored"),
    ("train.discount=1.5", "train.discount", "(0, 1)"),
    ("train.buffer_size=25", "train.buffer_size", "more than env.episode_length"),
    ("train.total_env_steps=10", "train.total_env_steps", "at least train.num_epochs"),
    ("train.num_envs=abc", "train.num_envs", "integer"),
    ("train.sampling=sometimes", "train.sampling", "uniform, window"),
    ("env.id=point_nowhere", "env.id", "known: "),
    ("env.eval_id=point_nowhere", "env.eval_id", "known:"),
    ("env.params.speedd=1", "env.params.speedd", "allowed:"),  # no `+` needed for env.params
    ("env.params.speed=2.0", "env.params.speed", "tunnel"),
    ("env.params.speed=-1", "env.params.speed", "use a number > 0"),
    ("network.critic_depth=3", "network.critic_depth", "multiple of 4"),
    ("+train.bogus=1", "train.bogus", "unknown key"),
    ("hydra.run.dir=/dev/null/run", "hydra.run.dir", "not writable"),
]


@pytest.mark.parametrize("override, key, allowed", BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_bad_configs_fail_with_one_line_and_leave_nothing(tmp_path, override, key, allowed):
    run_dir = tmp_path / "runs" / "run"
    dir_override = [] if override.startswith("hydra.run.dir") else [f"hydra.run.dir={run_dir}"]
    result = crl_train(*TINY, override, *dir_override, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith(f"crl-train: config error: {key}") and allowed in lines[0], lines[0]
    assert not (tmp_path / "runs").exists()
    assert not any(tmp_path.iterdir())


def test_states_with_zero_size_arrays_round_trip(tmp_path):
    """MJX pipeline states carry zero-size arrays, which orbax alone refuses to save."""
    from flax import struct

    @struct.dataclass
    class Toy:
        buffer: jax.Array
        physics: dict

    state = Toy(buffer=jnp.arange(6.0).reshape(2, 3), physics={"contacts": jnp.zeros((0, 3)), "q": jnp.ones(4)})
    ckpt = Checkpointer(tmp_path / "checkpoints")
    ckpt.save(state, epoch=1, env_steps=10)
    restored = ckpt.restore_latest(jax.tree.map(jnp.zeros_like, state))
    assert restored.epoch == 1
    assert restored.state.physics["contacts"].shape == (0, 3)
    assert bool(jnp.all(restored.state.buffer == state.buffer)) and bool(jnp.all(restored.state.physics["q"] == 1))


def test_a_checkpoint_of_another_state_layout_is_refused_in_one_line(tmp_path):
    """Checkpoints from before the learners became Flax TrainStates (their manifest records
    no state fields) are refused with one line, not mistaken for damaged ones."""
    from crl.checkpoint import CheckpointError

    cfg = _tiny_config(total_env_steps=400, num_epochs=2)
    run_training(cfg, tmp_path)
    for manifest_path in (tmp_path / "checkpoints").glob("epoch_*/manifest.json"):
        manifest = json.loads(manifest_path.read_text())
        assert manifest.pop("state_fields") == ["buffer", "env_state", "env_steps", "episode_ids", "epoch", "key",
                                                "learner", "sgd_steps"]
        manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError) as err:
        run_training(cfg, tmp_path)
    message = str(err.value)
    assert "\n" not in message and message.startswith("epoch_000002: written with another training-state layout")
    assert "actor_opt_state" in message and "start a new run directory" in message
    # the layout before the agents layer (actor, critic, alpha as fields of their own)
    before_agents = ["actor", "alpha", "buffer", "critic", "env_state", "env_steps", "episode_ids", "epoch", "key",
                     "sgd_steps"]
    for manifest_path in (tmp_path / "checkpoints").glob("epoch_*/manifest.json"):
        manifest_path.write_text(json.dumps({**json.loads(manifest_path.read_text()), "state_fields": before_agents}))
    with pytest.raises(CheckpointError, match=r"^epoch_000002: written with another training-state layout \(fields "
                                              r"actor, alpha, buffer, critic"):
        run_training(cfg, tmp_path)
