"""Atomic, verifiable checkpoints of the whole TrainState (orbax underneath).

Layout of `<run dir>/checkpoints/`:

    epoch_000004/            a complete checkpoint (renamed into place as the last step)
        state/               orbax StandardCheckpointer output of the TrainState
        manifest.json        epoch, env steps, whether the buffer is included, and the
                             size and SHA-256 of every file under state/
    epoch_000004_phase_000003/  a stop request inside epoch 5, after 3 of its update
                             phases: the manifest also holds those phases' metrics
    .partial_epoch_000005/   a save in progress (or one killed mid-write): ignored, removed
    .old_epoch_000003/       a rotated-out checkpoint being deleted: ignored, removed

A checkpoint counts only if its directory was renamed into place *and* every file still
matches its manifest, so a kill during a write, a truncated file or a missing file is
detected before anything is restored. Rotation renames an old checkpoint out of the
`epoch_*` namespace (one atomic step) before deleting it, so a kill or Ctrl-C during the
deletion never leaves a half-deleted directory that a resume would pick up.

Saving does not stall training (`Checkpointer.start_save`): the training loop waits only
while the state is copied to the host, into memory of its own (the next update phase
donates the device's buffers and overwrites them in place); a writer thread then writes
`.partial_<name>/` with orbax, hashes every file into its manifest, renames it into place
and rotates. One save runs at a time: the next save, the end of the run and a resume each
wait for it first; a second Ctrl-C abandons it (never renamed into place), and a process
killed mid-write leaves only a `.partial_` directory, which the run's next start removes
(`remove_partial`; readers such as `restore_latest` leave it alone, as a live run may be
writing it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import pathlib
import shutil
import threading
import time
from typing import Any, Callable

import jax
import numpy as np

log = logging.getLogger(__name__)
logging.getLogger("absl").setLevel(logging.WARNING)  # orbax reports every save at INFO

_PREFIX = "epoch_"
_PARTIAL = ".partial_"
_OLD = ".old_"


class CheckpointError(RuntimeError):
    """No usable checkpoint where one was expected."""


class LayoutError(CheckpointError):
    """A checkpoint of another training-state layout (written by another version)."""


# The training-state layout written before it was recorded: separate parameter and optimiser
# fields (crl before the learners became Flax TrainStates).
_LEGACY_FIELDS = ["actor_opt_state", "actor_params", "alpha_opt_state", "buffer", "critic_opt_state",
                  "critic_params", "env_state", "episode_ids", "epoch", "env_steps", "key", "log_alpha", "sgd_steps"]


def state_fields(state) -> list[str]:
    """The top-level field names of a training state (what a checkpoint's layout is)."""
    return sorted(f.name for f in dataclasses.fields(state)) if dataclasses.is_dataclass(state) else []


@dataclasses.dataclass(frozen=True)
class Restored:
    state: Any
    epoch: int  # whole epochs done
    env_steps: int
    include_buffer: bool
    path: pathlib.Path
    skipped: tuple[str, ...]  # newer checkpoints that were damaged, with the reason
    phase: int = 0  # update phases of epoch + 1 already done (a stop inside an epoch)
    phase_metrics: tuple[dict, ...] = ()  # those phases' metrics


def complete_checkpoints(directory: str | pathlib.Path) -> list[pathlib.Path]:
    """The renamed-into-place checkpoint dirs in `directory`, oldest first (not yet
    verified; none where the directory does not exist). Needs no orbax."""
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_dir() and p.name.startswith(_PREFIX))


def checkpoint_name(epoch: int, phase: int = 0) -> str:
    """epoch_000004, or epoch_000004_phase_000003 inside epoch 5 (sorts between 4 and 5)."""
    return f"{_PREFIX}{epoch:06d}" + (f"_phase_{phase:06d}" if phase else "")


def _file_digest(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _inventory(root: pathlib.Path) -> dict[str, dict]:
    return {
        str(p.relative_to(root)): {"size": p.stat().st_size, "sha256": _file_digest(p)}
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _fsync_dir(path: pathlib.Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _drop_empty(tree):
    """Zero-size arrays (MJX states hold some) -> None: orbax refuses to save them."""
    return jax.tree.map(lambda x: None if getattr(x, "size", 1) == 0 else x, tree)


def _refill_empty(restored, template):
    """Put the template's zero-size arrays back where `_drop_empty` left None."""
    return jax.tree.map(lambda r, t: t if r is None else r, restored, template, is_leaf=lambda x: x is None)


def _copied(leaf) -> bool:
    """Whether a save copies this leaf itself: it lives in host memory (the CPU backend, a
    numpy array), where the next donated update may overwrite it; an accelerator's transfer
    to the host is a copy already. `leaf` may be abstract (a ShapeDtypeStruct)."""
    if isinstance(leaf, jax.Array):
        devices = leaf.devices()
    elif getattr(leaf, "sharding", None) is not None:
        devices = leaf.sharding.device_set
    elif isinstance(leaf, jax.ShapeDtypeStruct):
        devices = jax.devices()[:1]  # where an unplaced array goes: the default backend
    else:
        return True
    return any(d.platform == "cpu" for d in devices)


def _host_copy(tree, staging: list) -> tuple[Any, list]:
    """`tree` with every array on the host, in memory of its own: the training loop may
    donate the state to its next update phase, which overwrites the device's buffers in
    place, and on the CPU `jax.device_get` returns views of them. So a leaf on the CPU (or
    a numpy array) is copied, into the previous save's host array where it fits (`staging`:
    no new pages, just a memcpy); a leaf on an accelerator is copied by the transfer itself.
    Returns (the host tree, the next save's staging: the copies made here)."""
    leaves, treedef = jax.tree.flatten(tree)
    fetched = jax.device_get(leaves)  # starts every transfer, then waits for all
    out, copies = [], []
    for i, (source, value) in enumerate(zip(leaves, fetched)):
        value = np.asarray(value)
        copy = None
        if _copied(source):
            copy = staging[i] if i < len(staging) else None
            if copy is None or copy.shape != value.shape or copy.dtype != value.dtype:
                copy = np.empty_like(value)
            np.copyto(copy, value)
            value = copy
        out.append(value)
        copies.append(copy)
    return jax.tree.unflatten(treedef, out), copies


@dataclasses.dataclass(eq=False)
class _Save:
    """One save in progress (see Checkpointer.start_save)."""

    final: pathlib.Path
    partial: pathlib.Path
    host: Any
    manifest: dict
    on_done: Callable | None
    begin: float
    blocked_seconds: float = 0.0
    thread: threading.Thread | None = None
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    abandoned: bool = False
    renamed: bool = False
    error: BaseException | None = None


class Checkpointer:
    """Saves in the background: `start_save` returns once the state is copied to the host;
    a writer thread then writes it with orbax, hashes every file into the manifest and
    renames the directory into place. One save is in progress at most: the next
    `start_save`, `finish` and `restore_latest` first wait for it; `abandon` gives it up
    (it is never renamed into place). `save` is `start_save` then `finish`."""

    def __init__(self, directory: str | pathlib.Path, keep: int = 2, include_buffer: bool = True):
        import orbax.checkpoint as ocp  # lazy: slow to import, and only runs that checkpoint need it

        self.directory = pathlib.Path(directory).absolute()
        self.keep = keep
        self.include_buffer = include_buffer
        self._ocp = ocp.StandardCheckpointer()
        self._pending: _Save | None = None
        self._staging: list = []  # the previous save's host copies, reused by the next (CPU: no new pages)
        self._preparing: threading.Thread | None = None  # `prepare`: the first save's host memory
        self.last_complete: pathlib.Path | None = None  # the newest checkpoint this object completed

    # -- saving ---------------------------------------------------------------------------

    def save(self, state, epoch: int, env_steps: int, phase: int = 0, phase_metrics=()) -> pathlib.Path:
        """Write `state` as checkpoint `epoch` (after `phase` update phases of the next epoch,
        whose metrics are `phase_metrics`) and wait for it; returns its directory once complete."""
        self.start_save(state, epoch, env_steps, phase, phase_metrics)
        return self.finish()

    def start_save(self, state, epoch: int, env_steps: int, phase: int = 0, phase_metrics=(),
                   on_done: Callable[[pathlib.Path, dict], None] | None = None) -> pathlib.Path:
        """Start saving `state` as checkpoint `epoch` (see `save`) and return its future
        directory as soon as the state is copied to the host: the caller may then donate or
        change `state`. A save still in progress is finished first. `on_done(path, timings)`
        runs in the writer thread once the checkpoint is in place."""
        begin = time.perf_counter()
        self.finish()
        self._wait_prepared()
        self.directory.mkdir(parents=True, exist_ok=True)
        name = checkpoint_name(epoch, phase)
        host, self._staging = _host_copy(_drop_empty(self._to_save(state)), self._staging)
        manifest = {
            "epoch": epoch,
            "env_steps": env_steps,
            "include_buffer": self.include_buffer,
            "state_fields": state_fields(state),
            "phase": phase,
            "phase_metrics": [{k: float(v) for k, v in m.items()} for m in phase_metrics],
        }
        job = _Save(self.directory / name, self.directory / f"{_PARTIAL}{name}", host, manifest, on_done, begin)
        job.blocked_seconds = time.perf_counter() - begin
        job.thread = threading.Thread(target=self._write, args=(job,), name=f"checkpoint {name}", daemon=True)
        self._pending = job
        job.thread.start()
        return job.final

    def prepare(self, state) -> None:
        """Allocate, and write once, in a background thread, the host memory that the first
        save copies `state` into (`state` may be abstract: only its shapes are read), so that
        even the first save's copy takes no new pages (fresh pages are slow to come by; on
        this project's 2-core VM the first touch of 2 GiB took 6 s, docs/benchmarks.md)."""
        specs = [(x.shape, x.dtype) if _copied(x) else None
                 for x in jax.tree.leaves(_drop_empty(self._to_save(state)))]

        def allocate():
            staging = []
            for spec in specs:
                staging.append(None if spec is None else np.empty(*spec))
                if spec is not None:
                    staging[-1].fill(0)  # touch every page now, not in the save
            self._staging = staging

        self._wait_prepared()
        self._preparing = threading.Thread(target=allocate, name="checkpoint host memory", daemon=True)
        self._preparing.start()

    def _wait_prepared(self) -> None:
        if self._preparing is not None:
            while self._preparing.is_alive():
                self._preparing.join(0.1)
            self._preparing = None

    def _to_save(self, state):
        return state if self.include_buffer else state.replace(buffer=None)

    @property
    def saving(self) -> bool:
        """A save was started and not yet finished or abandoned by `finish`."""
        return self._pending is not None

    def finish(self) -> pathlib.Path | None:
        """Wait for the save in progress; its directory once complete (None when there was
        none, or it was abandoned). The writer's error, if it failed, is raised here."""
        job = self._pending
        if job is None:
            return None
        while job.thread.is_alive():  # a timeout keeps the wait interruptible (Ctrl-C) everywhere
            job.thread.join(0.1)
        self._pending = None  # only now: its host copy is free for the next save to overwrite
        if job.abandoned:
            return None
        if job.error is not None:
            raise job.error
        return job.final

    def abandon(self) -> bool:
        """Give up the save in progress without waiting: it is never renamed into place, and
        the writer removes what it wrote once orbax returns (what a dying process leaves is
        a `.partial_` directory, removed at the next start). False if it had already
        completed (or there was none)."""
        job = self._pending
        if job is None:
            return False
        with job.lock:
            if job.renamed:
                return False
            job.abandoned = True
        log.warning("checkpoint %s abandoned before it was complete; the previous checkpoint stands", job.final.name)
        return True

    def _write(self, job: "_Save") -> None:
        """The writer thread: orbax, manifest, rename into place, rotation."""
        try:
            shutil.rmtree(job.partial, ignore_errors=True)
            job.partial.mkdir()
            if not job.abandoned:
                self._ocp.save(job.partial / "state", job.host)
                self._ocp.wait_until_finished()
            if not job.abandoned:
                job.manifest["files"] = _inventory(job.partial / "state")
                with open(job.partial / "manifest.json", "w") as f:
                    json.dump(job.manifest, f, indent=1)
                    f.flush()
                    os.fsync(f.fileno())
                _fsync_dir(job.partial)
            with job.lock:  # abandon() and the rename exclude each other
                if not job.abandoned:
                    final = job.final
                    if final.exists():  # re-saving an epoch (after a resume): replace the old copy
                        self._discard(final)
                    os.replace(job.partial, final)
                    job.renamed = True
            if job.abandoned:
                shutil.rmtree(job.partial, ignore_errors=True)
                return
            _fsync_dir(self.directory)
            self.last_complete = job.final
            self._prune()
            if job.on_done is not None:
                job.on_done(job.final, {"blocked_seconds": job.blocked_seconds,
                                        "save_seconds": time.perf_counter() - job.begin})
        except BaseException as err:  # handed to the main thread by finish()
            job.error = err
        finally:
            job.host = None  # the host copy stays alive only as the next save's staging

    def _discard(self, path: pathlib.Path) -> None:
        """Rename out of the checkpoint namespace (atomic), then delete at leisure."""
        old = self.directory / f"{_OLD}{path.name}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        _fsync_dir(self.directory)
        shutil.rmtree(old, ignore_errors=True)

    def _prune(self) -> None:
        complete = self.complete_checkpoints()
        for old in complete[: max(0, len(complete) - self.keep)]:
            self._discard(old)

    # -- finding and restoring ------------------------------------------------------------

    def complete_checkpoints(self) -> list[pathlib.Path]:
        """Renamed-into-place checkpoint dirs, oldest first (not yet verified)."""
        return complete_checkpoints(self.directory)

    def remove_partial(self) -> None:
        """Remove unfinished saves and rotated-out checkpoints whose deletion was cut short."""
        if self.directory.is_dir():
            for p in self.directory.iterdir():
                if p.name.startswith((_PARTIAL, _OLD)):
                    shutil.rmtree(p, ignore_errors=True)

    @staticmethod
    def verify(path: pathlib.Path) -> dict:
        """The manifest if every listed file is present and intact; raises CheckpointError."""
        manifest_path = path / "manifest.json"
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as err:
            raise CheckpointError(f"{path.name}: unreadable manifest ({err.__class__.__name__})") from None
        for rel, meta in manifest["files"].items():
            f = path / "state" / rel
            if not f.is_file():
                raise CheckpointError(f"{path.name}: missing file state/{rel}")
            if f.stat().st_size != meta["size"]:
                raise CheckpointError(
                    f"{path.name}: state/{rel} has {f.stat().st_size} bytes, expected {meta['size']} (truncated)"
                )
            if _file_digest(f) != meta["sha256"]:
                raise CheckpointError(f"{path.name}: state/{rel} does not match its checksum")
        return manifest

    @staticmethod
    def _check_layout(path: pathlib.Path, manifest: dict, template) -> None:
        """Refuse, in one line, a checkpoint whose state has other fields than `template`."""
        theirs, ours = manifest.get("state_fields", _LEGACY_FIELDS), state_fields(template)
        if ours and theirs != ours:
            raise LayoutError(
                f"{path.name}: written with another training-state layout (fields {', '.join(theirs)}; this "
                f"version has {', '.join(ours)}), by an older or newer crl; resume it with the version that "
                "wrote it, or start a new run directory"
            )

    def restore_latest(self, template, newest: str | None = None) -> Restored | None:
        """The newest intact checkpoint restored into `template`'s structure (none named
        after `newest`: a batched run's seeds resume from a point they all have).

        Waits for this object's own save in progress; leaves `.partial_` directories alone
        (a running run may be writing one: its own start removes them). Damaged newer
        checkpoints are skipped with a warning that names them and the one used. Returns
        None when there are no checkpoints at all; raises CheckpointError when there are
        some but none is usable.
        """
        self.finish()
        candidates = [p for p in self.complete_checkpoints() if newest is None or p.name <= newest]
        if not candidates:
            return None
        skipped: list[str] = []
        for path in reversed(candidates):
            try:
                manifest = self.verify(path)
                self._check_layout(path, manifest, template)
                target = template if manifest["include_buffer"] else template.replace(buffer=None)
                abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), _drop_empty(target))
                state = _refill_empty(self._ocp.restore(path / "state", abstract), target)
            except LayoutError:
                raise
            except CheckpointError as err:
                skipped.append(str(err))
                continue
            except Exception as err:  # orbax could not read it: treat as damaged
                skipped.append(f"{path.name}: unreadable ({err.__class__.__name__}: {str(err)[:200]})")
                continue
            if not manifest["include_buffer"]:
                state = state.replace(buffer=template.buffer)
            if skipped:
                log.warning("damaged checkpoint(s) skipped: %s; resuming from %s", "; ".join(skipped), path.name)
            return Restored(
                state, manifest["epoch"], manifest["env_steps"], manifest["include_buffer"], path, tuple(skipped),
                manifest.get("phase", 0), tuple(manifest.get("phase_metrics", ())),
            )
        raise CheckpointError(
            f"no usable checkpoint in {self.directory}: " + "; ".join(skipped)
        )
