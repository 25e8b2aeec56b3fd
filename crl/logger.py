"""Per-epoch metrics to TensorBoard (tensorboardX) and to metrics.csv.

The TensorBoard file is written through a private internal of tensorboardX,
`tensorboardX.event_file_writer.EventsWriter` (see _SyncEventWriter); a tensorboardX that
moved it fails at the writer's first use with one line naming the version found and
KNOWN_TENSORBOARDX, the version known to work (tests/test_private_internals.py).
"""

from __future__ import annotations

import csv
import importlib.metadata
import math
import os
import pathlib
import time

KNOWN_TENSORBOARDX = "2.6.5"  # the tensorboardX (constraints.txt) whose EventsWriter this uses


class MetricsLogger:
    """Writes one row per epoch; the CSV header is fixed by the first row."""

    def __init__(self, run_dir: pathlib.Path, tensorboard: bool = True, csv_file: bool = True, purge_step=None):
        """`purge_step`: on a resume, TensorBoard hides events at steps >= it (the epochs
        logged after the checkpoint, which are about to be logged again)."""
        self.run_dir = pathlib.Path(run_dir)
        self.writer = _SyncEventWriter(self.run_dir / "tensorboard", purge_step) if tensorboard else None
        self.csv_path = self.run_dir / "metrics.csv" if csv_file else None
        self._fields: list[str] | None = None

    def log(self, step: int, row: dict[str, float]) -> None:
        """`row` maps 'train/...' and 'eval/...' names (and counters) to floats."""
        if self.writer is not None:
            self.writer.write_scalars(step, {k: float(v) for k, v in row.items() if "/" in k})
        if self.csv_path is not None:
            if self._fields is None:
                self._fields = list(row)
                if not self.csv_path.exists() or self.csv_path.stat().st_size == 0:
                    with open(self.csv_path, "a", newline="") as f:
                        csv.writer(f).writerow(self._fields)
                else:  # resuming: keep the existing column order
                    with open(self.csv_path, newline="") as f:
                        self._fields = next(csv.reader(f))
            with open(self.csv_path, "a", newline="") as f:
                csv.DictWriter(f, self._fields, extrasaction="ignore").writerow(
                    {k: _fmt(row.get(k, math.nan)) for k in self._fields}
                )
                f.flush()
                os.fsync(f.fileno())

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class _SyncEventWriter:
    """A TensorBoard event file written synchronously.

    tensorboardX's SummaryWriter hands events to a background thread, and its flush()
    does not wait for that thread's queue: an event logged just before a checkpoint
    could be lost to a SIGKILL after it. Here `write_scalars` returns only once the
    event is on disk (the record writer fsyncs), so every epoch a checkpoint covers
    is also in TensorBoard."""

    def __init__(self, logdir: pathlib.Path, purge_step=None):
        # lazy: tensorboardX (and its protobufs) only when TensorBoard logging is on
        from tensorboardX.proto.event_pb2 import Event, SessionLog
        from tensorboardX.summary import scalar

        EventsWriter = events_writer_class()

        self._Event, self._scalar = Event, scalar
        logdir.mkdir(parents=True, exist_ok=True)
        # One file per writer; the pid keeps two writers started in the same second apart.
        self._events = EventsWriter(str(logdir / "events"), filename_suffix=f".{os.getpid()}")
        if purge_step is not None:  # TensorBoard hides older events at steps >= purge_step
            self._events.write_event(Event(step=purge_step, session_log=SessionLog(status=SessionLog.START)))
        self._events.flush()

    def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
        event = self._Event(wall_time=time.time(), step=int(step))
        for name, value in scalars.items():
            event.summary.value.extend(self._scalar(name, value).value)
        self._events.write_event(event)
        self._events.flush()

    def close(self) -> None:
        self._events.close()


def events_writer_class():
    """tensorboardX's private EventsWriter (a record writer that fsyncs), or one line naming
    the tensorboardX found and the one known to work when an upgrade moved it."""
    try:
        from tensorboardX.event_file_writer import EventsWriter  # lazy: only with TensorBoard logging
    except ImportError:
        EventsWriter = None
    if EventsWriter is None or not all(hasattr(EventsWriter, m) for m in ("write_event", "flush", "close")):
        raise ImportError(
            f"crl.logger: tensorboardX {importlib.metadata.version('tensorboardX')} has no "
            "tensorboardX.event_file_writer.EventsWriter with write_event, flush and close (a private internal; "
            f"known to work: tensorboardX {KNOWN_TENSORBOARDX}, as pinned in constraints.txt)"
        )
    return EventsWriter


def _fmt(value) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)
