"""A run directory belongs to one run: who may write into it, and when.

    lock = RunLock.acquire(run_dir)      # refused (RunDirError) while another process holds it
    ...
    lock.release()

The checks that protect a user's data, each one line (`RunDirError`, a `ConfigError`: the
entry point exits 2) before anything in the directory is written:

- `check_is_run_dir`: an existing directory that is not one of our runs (and not empty) is
  refused, so a user's own files are never overwritten or appended to.
- `check_resumable`: a run whose metrics say it had checkpoints, but whose `checkpoints/`
  holds none, is refused instead of being silently trained again from scratch; starting it
  over is an explicit choice (`checkpoint.restart=true`, which `clear_run` carries out).
- `check_output_location`: the directory is writable and its disk holds the checkpoints.
- `check_same_config`: a run dir belongs to one configuration (`run_config.json`).

`truncate_csv` and `last_csv_row` read and cut back metrics.csv on a resume.

The lock is an advisory `flock` on `<run dir>/.lock`, released by the kernel when its
process dies however it dies; the file keeps the holder's pid and host while it runs, and
is emptied on a clean release, so a non-empty unlocked file means its holder died.
"""

from __future__ import annotations

import csv
import fcntl
import json
import logging
import os
import pathlib
import shutil
import socket
import time

from crl.config_tree import ConfigError

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"
# What crl writes into a run directory (clear_run deletes exactly these), and what Hydra
# writes before our code runs (.hydra/ and its job log).
RUN_OUTPUTS = ("run_config.json", "run_info.json", "config.yaml", "metrics.csv", "tensorboard", "checkpoints",
               "params.msgpack", "videos", "train.log", LOCK_FILE)
HYDRA_FILES = (".hydra",)
MARKER = "run_config.json"  # present in every run directory from its first moment of training


class RunDirError(ConfigError):
    """The run directory cannot be used as asked; the message says why and what to do."""


class RunLock:
    """An exclusive claim on a run directory for the life of one run."""

    def __init__(self, path: pathlib.Path, fd: int):
        self.path = path
        self._fd = fd

    @classmethod
    def acquire(cls, run_dir: str | pathlib.Path, key: str = "hydra.run.dir") -> "RunLock":
        run_dir = pathlib.Path(run_dir)
        path = run_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise _in_use(key, run_dir, holder) from None
        previous = _read_holder(fd)
        if previous != "unknown process":
            log.warning("taking over %s: the run that held it (%s) is no longer running", path, previous)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        os.fsync(fd)
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)  # empty: released cleanly (a dead holder leaves its line)
        except OSError:
            pass
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def _read_holder(fd: int) -> str:
    text = os.pread(fd, 512, 0).decode(errors="replace").strip()
    return text or "unknown process"


def holder(run_dir: str | pathlib.Path) -> str | None:
    """Who holds the run dir's lock now (its lock line), or None when nobody does."""
    path = pathlib.Path(run_dir) / LOCK_FILE
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def check_not_locked(run_dir: str | pathlib.Path, key: str = "hydra.run.dir") -> None:
    """Refuse a run dir another process holds, without taking it (a check before Hydra writes)."""
    who = holder(run_dir)
    if who is not None:
        raise _in_use(key, run_dir, who)


def _in_use(key: str, run_dir, who: str) -> RunDirError:
    return RunDirError(f"{key}: {str(run_dir)!r} is in use by another run ({who}); wait for it to end or use "
                       "another directory")


def check_is_run_dir(run_dir: str | pathlib.Path, key: str = "hydra.run.dir") -> None:
    """An existing directory must be empty, one of our runs, or hold only what Hydra wrote
    for this run before our code ran; anything else is a user's and is left untouched."""
    run_dir = pathlib.Path(run_dir)
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise RunDirError(f"{key}: {str(run_dir)!r} is a file, not a directory; use a new directory")
    if (run_dir / MARKER).is_file():
        return
    foreign = sorted(
        p.name for p in run_dir.iterdir()
        if p.name not in HYDRA_FILES and p.name != LOCK_FILE and not p.name.endswith(".log")
    )
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise RunDirError(
            f"{key}: {str(run_dir)!r} is not empty and not a crl run (it holds {shown}); nothing in it was "
            "changed; use an empty or new directory"
        )


def logged_epochs(run_dir: str | pathlib.Path) -> int:
    """The highest epoch in metrics.csv (0 when there is none)."""
    path = pathlib.Path(run_dir) / "metrics.csv"
    if not path.exists():
        return 0
    with open(path, newline="") as f:
        epochs = [int(row[0]) for row in csv.reader(f) if row and row[0].isdigit()]
    return max(epochs, default=0)


def check_resumable(run_dir: str | pathlib.Path, has_checkpoint: bool, first_checkpoint_epoch: int) -> None:
    """Refuse to train a run again from scratch when its checkpoints are gone.

    Metrics up to the first checkpoint's epoch can exist without any checkpoint (a kill
    between logging that epoch and saving it) and are recomputed identically; rows past
    it, or params.msgpack (a finished run), mean checkpoints were written and removed."""
    run_dir = pathlib.Path(run_dir)
    if has_checkpoint:
        return
    epochs = logged_epochs(run_dir)
    finished = (run_dir / "params.msgpack").exists()
    if epochs > first_checkpoint_epoch or finished:
        what = f"{epochs} logged epochs in metrics.csv" + (" and params.msgpack" if finished else "")
        raise RunDirError(
            f"checkpoint.restart: {str(run_dir)!r} holds a run ({what}) but no checkpoint in checkpoints/ to "
            "continue from; nothing was changed. To train it again from scratch on purpose add "
            "checkpoint.restart=true (deletes its metrics, TensorBoard events and params), or use a new directory"
        )


def clear_run(run_dir: str | pathlib.Path) -> list[str]:
    """checkpoint.restart=true on a run whose checkpoints are gone: delete this run's outputs
    (never anything else); returns the names removed. The lock, train.log and Hydra's files
    stay."""
    run_dir = pathlib.Path(run_dir)
    removed = []
    for name in RUN_OUTPUTS:
        path = run_dir / name
        if name in (LOCK_FILE, "train.log") or not (path.exists() or path.is_symlink()):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        removed.append(name)
    if removed:
        log.warning("checkpoint.restart=true: removed %s from %s", ", ".join(removed), run_dir)
    return removed


# -- the output location and the run's own files (crl.run's) -----------------------------------------------------------------


def _checkpoint_peak_bytes(cfg, trainer) -> int:
    """The disk the run's checkpoints take at most (crl.plan.checkpoint_sizes: keep + 1 states
    per seed, without the buffer where checkpoint.include_buffer is false)."""
    import jax  # lazy: this module is imported before the config is checked

    from crl import plan  # lazy: crl.plan imports crl.config (the agents and JAX)

    shapes = jax.eval_shape(trainer.init, jax.random.PRNGKey(0))
    sizes = plan.checkpoint_sizes(cfg, plan.tree_bytes(shapes), plan.tree_bytes(shapes.buffer))
    return sizes["checkpoints_peak_bytes"]


def check_output_location(cfg, run_dir: pathlib.Path, trainer) -> None:
    """Fail now, with one line, if the run dir cannot be written or cannot hold checkpoints."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write_probe"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"hydra.run.dir: {str(run_dir)!r} is not writable ({err.strerror or err})") from None
    need = _checkpoint_peak_bytes(cfg, trainer) + (64 << 20)  # and room for the logs
    free = shutil.disk_usage(run_dir).free
    if free < need:
        raise ConfigError(
            f"hydra.run.dir: {str(run_dir)!r} has {free / 2**30:.2f} GiB free; checkpoints need about "
            f"{need / 2**30:.2f} GiB (checkpoint.keep={cfg.checkpoint.keep}, checkpoint.include_buffer="
            f"{str(cfg.checkpoint.include_buffer).lower()})"
        )


def check_same_config(cfg, run_dir: pathlib.Path) -> None:
    """A run dir belongs to one configuration: resuming it with another is refused."""
    from crl.config import from_dict  # lazy: crl.config imports the agents (and JAX)

    path = run_dir / "run_config.json"
    mine = json.loads(json.dumps(cfg.to_dict()))
    if path.exists():
        theirs = json.loads(path.read_text())
        defaults = json.loads(json.dumps(from_dict({}).to_dict()))
        ignore = {"logging", "checkpoint"}  # how a run is logged/saved may change on resume
        for section in sorted(set(mine) | set(theirs)):
            if section in ignore | {"video"}:
                continue
            a, b = mine.get(section), theirs.get(section)
            if isinstance(a, dict) and isinstance(b, dict):
                # a key added since that run was written: it ran with the key's default
                b = {**{k: v for k, v in defaults.get(section, {}).items() if k in a and k not in b}, **b}
            if a != b:
                if isinstance(a, dict) and isinstance(b, dict):
                    key = next(k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))
                    a, b, section = a.get(key), b.get(key), f"{section}.{key}"
                raise ConfigError(
                    f"{section}: {a!r} differs from {b!r} of the run already in {str(run_dir)!r}; "
                    "use a new hydra.run.dir or the same config"
                )
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(mine, indent=2))
    tmp.replace(path)


def truncate_csv(path: pathlib.Path, last_epoch: int) -> None:
    """Drop rows logged after the checkpoint we resume from (they are recomputed)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    keep = [r for r in body if r and int(r[0]) <= last_epoch]
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows([header, *keep])
    tmp.replace(path)


def last_csv_row(path: pathlib.Path) -> dict:
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: float(v) for k, v in rows[-1].items()} if rows else {}
