"""Fixed data for offline training (`train.dataset`) and its file format.

A dataset is a flat sequence of transitions in OGBench's layout, one array per field,
every array with the same first axis N (trajectories stored one after another):

    observations       (N, state_dim)   the env's state at each step (our obs without the goal)
    actions            (N, action_size) the action taken there, in [-1, 1]
    terminals          (N,)             1 at the last step of each trajectory, else 0
    next_observations  (N, state_dim)   optional: the state after the step; where present it
                                        must equal the next row's observation inside a trajectory
    goals              (N, goal_dim)    ours, optional: the goal the env commanded at that step
                                        (the TD agents without HER need it)

Other fields OGBench documents (`rewards`, `masks`, `qpos`, `qvel`, ...) are accepted and
not used: rewards are recomputed for each relabelled goal, as online.

Where it comes from (`load`): a `.npz` file in that layout, which users bring themselves
(nothing is downloaded), or a run directory of ours, whose newest intact checkpoint's
replay buffer is read and laid out flat (each env's rows from oldest to newest, env after
env; an episode that the ring cut or that was still running is a trajectory of its own).
`crl-export-data` writes a run's buffer as such a file (`write_npz`), so both paths give
the same transitions.

`to_buffer` lays the transitions into a `crl.buffer.ReplayBuffer` of `columns` columns
(one per device, so the buffer splits over devices as online) of N // columns rows each,
episode ids counted from the terminals: the sampler and hindsight relabelling then work on
it exactly as on an online buffer (a trajectory cut between two columns becomes two).
"""

from __future__ import annotations

import hashlib
import os
import pathlib

import numpy as np

from crl import buffer as replay
from crl.checkpoint import CheckpointError, Checkpointer, complete_checkpoints
from crl.config_tree import ConfigError

REQUIRED = ("observations", "actions", "terminals")
OPTIONAL = ("next_observations", "goals")


class DatasetError(ConfigError):
    """A dataset that cannot be used: one line naming `train.dataset`, the field and the sizes."""


def _fail(path, message: str):
    raise DatasetError(f"train.dataset: {str(path)!r}: {message}")


def check_path(path: str | os.PathLike) -> pathlib.Path:
    """The dataset's path if it is a run directory of ours or a .npz file (cheap, no reading)."""
    p = pathlib.Path(path).expanduser()
    if p.is_dir():
        if not (p / "checkpoints").is_dir():
            _fail(path, "a directory without checkpoints/ is not a run of ours; give a run directory or a .npz file")
        return p
    if p.suffix != ".npz":
        _fail(path, "use a run directory of ours or a .npz file in OGBench's layout")
    if not p.is_file():
        _fail(path, "no such file")
    return p


# -- reading ------------------------------------------------------------------------------


def load(path: str | os.PathLike, state_dim: int, action_size: int, goal_dim: int) -> dict[str, np.ndarray]:
    """The dataset at `path` (a run directory or a .npz file) as float32/int arrays, checked
    against the env's sizes; a bad one raises `DatasetError`."""
    p = check_path(path)
    data = from_run(p) if p.is_dir() else read_npz(p)
    check(data, path, state_dim, action_size, goal_dim)
    return data


def read_npz(path: pathlib.Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in REQUIRED if k not in f.files]
            if missing:
                _fail(path, f"missing field {missing[0]!r} (needs {', '.join(REQUIRED)}; has {', '.join(f.files) or 'none'})")
            return {k: np.asarray(f[k]) for k in (*REQUIRED, *OPTIONAL) if k in f.files}
    except DatasetError:
        raise
    except (OSError, ValueError) as err:
        _fail(path, f"not a readable .npz file ({err.__class__.__name__}: {str(err)[:120]})")


def from_run(run_dir: pathlib.Path) -> dict[str, np.ndarray]:
    """The replay buffer of the run's newest intact checkpoint, as flat transitions."""
    directory = run_dir / "checkpoints"
    damaged = []
    for path in reversed(complete_checkpoints(directory)):
        try:
            manifest = Checkpointer.verify(path)
        except CheckpointError as err:
            damaged.append(str(err))
            continue
        if not manifest.get("include_buffer", True):
            _fail(run_dir, f"checkpoint {path.name} holds no replay buffer (the run set checkpoint.include_buffer=false)")
        import orbax.checkpoint as ocp  # lazy: slow to import

        state = ocp.StandardCheckpointer().restore(path / "state")
        buf = state["buffer"]
        return flatten_buffer(buf["states"], buf["actions"], buf["episode_ids"], buf["goals"],
                              int(buf["insert_row"]), int(buf["size"]))
    reason = f" ({'; '.join(damaged)})" if damaged else ""
    _fail(run_dir, f"no intact checkpoint to read a replay buffer from{reason}")


def flatten_buffer(states, actions, episode_ids, goals, insert_row: int, size: int) -> dict[str, np.ndarray]:
    """A ring buffer `[row, env]` -> flat transitions: each env's written rows from oldest to
    newest, env after env; terminals where the episode id changes or the env's rows end."""
    states, actions, episode_ids, goals = (np.asarray(x) for x in (states, actions, episode_ids, goals))
    capacity = states.shape[0]
    rows = (np.arange(size) + (insert_row - size)) % capacity  # oldest first
    ids = episode_ids[rows].T  # (envs, size)
    last = np.ones_like(ids, dtype=bool)
    last[:, :-1] = ids[:, 1:] != ids[:, :-1]

    def flat(x):
        x = np.swapaxes(x[rows], 0, 1)  # (envs, size, ...)
        return x.reshape((-1,) + x.shape[2:])

    out = {
        "observations": flat(states).astype(np.float32),
        "actions": flat(actions).astype(np.float32),
        "terminals": last.reshape(-1).astype(np.float32),
    }
    if goals.shape[-1]:
        out["goals"] = flat(goals).astype(np.float32)
    return out


def check(data: dict, path, state_dim: int, action_size: int, goal_dim: int) -> None:
    """Refuse, in one line naming the field and the sizes, a dataset that does not fit the env."""
    obs = data["observations"]
    n = obs.shape[0] if obs.ndim else 0
    want = {"observations": (n, state_dim), "actions": (n, action_size), "terminals": (n,),
            "next_observations": (n, state_dim), "goals": (n, goal_dim)}
    for name, shape in want.items():
        if name not in data:
            continue
        x = data[name]
        if tuple(x.shape) != shape:
            _fail(path, f"field {name!r} has shape {tuple(x.shape)}; this env needs {shape} "
                        f"(N transitions, state_dim {state_dim}, action_size {action_size}, goal_dim {goal_dim})")
        if not np.issubdtype(x.dtype, np.number) and x.dtype != bool:
            _fail(path, f"field {name!r} has dtype {x.dtype}; use numbers")
        bad = ~np.isfinite(x.astype(np.float64))
        if bad.any():
            _fail(path, f"field {name!r} holds {int(bad.sum())} non-finite values (first at row {int(np.argwhere(bad)[0][0])})")
    if n < 2:
        _fail(path, f"field 'observations' holds {n} transitions; use at least 2")
    terminals = data["terminals"]
    if not np.isin(terminals, (0, 1)).all():
        _fail(path, "field 'terminals' must hold only 0 and 1 (1 at the last step of each trajectory)")
    if np.abs(data["actions"]).max() > 1.0 + 1e-6:
        _fail(path, f"field 'actions' reaches {float(np.abs(data['actions']).max()):.3g}; actions must lie in [-1, 1]")
    if "next_observations" in data:
        inside = terminals[:-1] == 0
        gap = np.abs(data["next_observations"][:-1][inside] - obs[1:][inside])
        if gap.size and gap.max() > 1e-5:
            row = int(np.flatnonzero(inside)[np.argmax(gap.max(axis=1))])
            _fail(path, f"field 'next_observations' at row {row} differs from the next row's observation inside a "
                        "trajectory (terminals must mark every trajectory's last step)")


def digest(data: dict[str, np.ndarray]) -> str:
    """SHA-256 of the fields a run uses (run_info.json records it)."""
    h = hashlib.sha256()
    for name in sorted(data):
        h.update(name.encode())
        h.update(np.ascontiguousarray(data[name]).tobytes())
    return h.hexdigest()


# -- laying it out for the sampler ------------------------------------------------------------


def to_buffer(data: dict[str, np.ndarray], columns: int, goal_dim: int):
    """A full `ReplayBuffer` of `columns` columns holding the transitions (see the module
    doc); the last N mod columns transitions are left out (at most columns - 1)."""
    n = data["observations"].shape[0]
    rows = n // columns
    if rows < 2:
        raise DatasetError(f"train.dataset: {n} transitions cannot fill {columns} columns (one per device) of 2 rows")
    # episode ids: a new one after every terminal
    ids = np.concatenate([[0], np.cumsum(data["terminals"][:-1] > 0.5)]).astype(np.int32)
    goals = data.get("goals", np.zeros((n, goal_dim), np.float32))

    def lay(x):
        x = np.asarray(x[: rows * columns]).reshape((columns, rows) + x.shape[1:])
        return np.ascontiguousarray(np.swapaxes(x, 0, 1))

    return replay.ReplayBuffer(
        states=lay(data["observations"].astype(np.float32)),
        actions=lay(data["actions"].astype(np.float32)),
        episode_ids=lay(ids),
        goals=lay(goals.astype(np.float32)),
        insert_row=np.zeros((), np.int32),  # full: the newest row is the last one
        size=np.asarray(rows, np.int32),
    )


# -- writing ---------------------------------------------------------------------------------


def write_npz(data: dict[str, np.ndarray], out: str | os.PathLike) -> pathlib.Path:
    """Write `data` as an OGBench-layout .npz (with `next_observations`); never overwrites a
    file, and a stopped write leaves nothing under the final name."""
    out = pathlib.Path(out)
    if out.suffix != ".npz":
        raise DatasetError(f"out: {str(out)!r} is not allowed; give a file name ending in .npz")
    if out.exists():
        raise DatasetError(f"out: {str(out)!r} exists; give a new file name (files are never overwritten)")
    obs, terminals = data["observations"], data["terminals"]
    next_obs = np.concatenate([obs[1:], obs[-1:]])  # a trajectory's last step: its own state (no next one stored)
    fields = {**data, "next_observations": next_obs, "rewards": np.zeros_like(terminals),
              "masks": 1.0 - terminals}
    tmp = out.with_name(f".{out.name}.partial")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **fields)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
