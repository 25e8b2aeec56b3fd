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
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import pathlib
import shutil
from typing import Any

import jax

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


class Checkpointer:
    def __init__(self, directory: str | pathlib.Path, keep: int = 2, include_buffer: bool = True):
        import orbax.checkpoint as ocp  # lazy: slow to import, and only runs that checkpoint need it

        self.directory = pathlib.Path(directory).absolute()
        self.keep = keep
        self.include_buffer = include_buffer
        self._ocp = ocp.StandardCheckpointer()

    # -- saving ---------------------------------------------------------------------------

    def save(self, state, epoch: int, env_steps: int, phase: int = 0, phase_metrics=()) -> pathlib.Path:
        """Write `state` as checkpoint `epoch` (after `phase` update phases of the next epoch,
        whose metrics are `phase_metrics`); returns its directory once complete."""
        self.directory.mkdir(parents=True, exist_ok=True)
        name = checkpoint_name(epoch, phase)
        partial = self.directory / f"{_PARTIAL}{name}"
        final = self.directory / name
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        to_save = state if self.include_buffer else state.replace(buffer=None)
        self._ocp.save(partial / "state", _drop_empty(jax.device_get(to_save)))
        self._ocp.wait_until_finished()
        manifest = {
            "epoch": epoch,
            "env_steps": env_steps,
            "include_buffer": self.include_buffer,
            "state_fields": state_fields(state),
            "phase": phase,
            "phase_metrics": [{k: float(v) for k, v in m.items()} for m in phase_metrics],
            "files": _inventory(partial / "state"),
        }
        with open(partial / "manifest.json", "w") as f:
            json.dump(manifest, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(partial)
        if final.exists():  # re-saving an epoch (after a resume): replace the old copy
            self._discard(final)
        os.replace(partial, final)
        _fsync_dir(self.directory)
        self._prune()
        return final

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

        Damaged newer checkpoints are skipped with a warning that names them and the one
        used. Returns None when there are no checkpoints at all; raises CheckpointError
        when there are some but none is usable.
        """
        self.remove_partial()
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
