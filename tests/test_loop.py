"""The training loop reports every epoch to callbacks; W&B logs offline and reads back."""

import json
import pathlib
import struct
import time

import pytest

from crl.apps.callbacks import WandbLogger, app_callbacks
from crl.config import ConfigError, from_dict
from crl.loop import Callback
from crl.run import run_training
from helpers import TINY_CONFIG, read_csv

TINY = TINY_CONFIG


class Recorder(Callback):
    def __init__(self, stop_after: int | None = None):
        self.events = []
        self.stop_after = stop_after

    def on_start(self, trainer, start_epoch, num_epochs):
        self.events.append(("start", start_epoch, num_epochs))

    def on_epoch(self, progress):
        self.events.append(("epoch", progress.epoch, progress.metrics["env_steps"], progress.done))
        if self.stop_after is not None and progress.epoch >= self.stop_after:
            self.stop_requested = True

    def on_end(self, state, progress):
        self.events.append(("end", None if progress is None else progress.epoch, int(state.epoch)))

    def close(self):
        self.events.append(("close",))


def test_callbacks_see_every_epoch_in_order_and_a_resume_starts_where_it_left(tmp_path):
    cfg = from_dict(TINY)
    first = Recorder()
    row = run_training(cfg, tmp_path, callbacks=[first])
    assert first.events == [("start", 0, 2), ("epoch", 1, 280, False), ("epoch", 2, 480, True), ("end", 2, 2), ("close",)]
    assert row["epoch"] == 2 and (tmp_path / "params.msgpack").is_file()
    again = Recorder()  # the run has finished: no epoch runs, on_end still sees the final state
    assert run_training(cfg, tmp_path, callbacks=[again])["epoch"] == 2
    assert again.events == [("start", 2, 2), ("end", None, 2), ("close",)]


def test_a_callback_can_stop_the_run_after_a_checkpoint(tmp_path):
    cfg = from_dict({**TINY, "train": {**TINY["train"], "num_epochs": 4, "total_env_steps": 800}})
    stopper = Recorder(stop_after=1)
    row = run_training(cfg, tmp_path, callbacks=[stopper])
    # the request made in epoch 1's callbacks is seen after epoch 2's first update phase:
    # that phase is checkpointed, then the loop ends (on_end sees the last whole epoch)
    assert [e[1] for e in stopper.events if e[0] == "epoch"] == [1] and row["epoch"] == 1
    assert stopper.events[-2:] == [("end", 1, 1), ("close",)]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["epoch_000001", "epoch_000001_phase_000001"]
    assert not (tmp_path / "params.msgpack").exists()  # not finished: no final params
    resumed = run_training(cfg, tmp_path)
    assert resumed["epoch"] == 4 and [int(r["epoch"]) for r in read_csv(tmp_path / "metrics.csv")] == [1, 2, 3, 4]


def test_app_callbacks_follow_the_config(tmp_path):
    kinds = lambda cfg: [type(cb).__name__ for cb in app_callbacks(from_dict(cfg), tmp_path)]  # noqa: E731
    assert kinds(TINY) == []
    assert kinds({**TINY, "logging": {"progress_bar": True, "wandb": True}, "video": {"enabled": True}}) == [
        "ProgressBar", "WandbLogger", "Videos"]


def read_wandb_history(run_file: str | pathlib.Path, wait_s: float = 30.0) -> list[dict]:
    """The history rows of a W&B run file (`run-<id>.wandb`, e.g. of an offline run),
    read without W&B's service (wandb 0.31 has no public reader of the file; only this
    test reads one). W&B's writer process may still be flushing the file just
    after `finish()` returns: this waits (up to `wait_s`) for the run's exit record.

    Format: a 7-byte header, then records in 32 KiB blocks, each chunk with a 7-byte
    header (crc32, length, kind: 1 full, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2  # lazy: optional dependency

    deadline = time.monotonic() + wait_s
    while True:
        data = pathlib.Path(run_file).read_bytes()
        block, pos, pending, rows, complete = 32768, 7, b"", [], False
        while pos + 7 <= len(data):
            left = block - pos % block
            _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
            if left < 7 or (length == 0 and kind == 0):  # block padding
                pos += left
                continue
            pending += data[pos + 7:pos + 7 + length]
            pos += 7 + length
            if kind in (1, 4):
                record = wandb_internal_pb2.Record()
                record.ParseFromString(pending)
                pending = b""
                kind_name = record.WhichOneof("record_type")
                complete |= kind_name == "exit"
                if kind_name == "history":
                    rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                                 for item in record.history.item})
        if complete or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_wandb_logs_offline_and_its_history_reads_back(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = from_dict({**TINY, "logging": {"progress_bar": False, "wandb": True}})
    assert WandbLogger.mode(cfg.logging.wandb_mode) == "offline"
    run_training(cfg, tmp_path, callbacks=app_callbacks(cfg, tmp_path))
    run_files = sorted(pathlib.Path(tmp_path).glob("wandb/offline-run-*/run-*.wandb"))
    assert len(run_files) == 1
    history = read_wandb_history(run_files[0])
    csv_rows = read_csv(tmp_path / "metrics.csv")
    assert [h["_step"] for h in history] == [int(r["env_steps"]) for r in csv_rows] == [280, 480]
    for logged, row in zip(history, csv_rows):
        assert logged["eval/time_at_goal"] == pytest.approx(float(row["eval/time_at_goal"]))
        assert logged["train/critic_loss"] == pytest.approx(float(row["train/critic_loss"]))


def test_wandb_settings_are_validated():
    with pytest.raises(ConfigError, match=r"^logging.wandb_mode: 'sometimes' is not allowed; use one of auto"):
        from_dict({"logging": {"wandb_mode": "sometimes"}})
