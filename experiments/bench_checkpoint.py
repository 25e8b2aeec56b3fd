"""What a checkpoint costs the training loop, the disk and a resume.

    python experiments/bench_checkpoint.py                          # the paper's humanoid buffer (5.50 GiB)
    python experiments/bench_checkpoint.py --gib 2 --json /tmp/ckpt_2gib.json
    python experiments/bench_checkpoint.py --gib 1 --json /tmp/ckpt_1gib.json --keep 2 --saves 3
    python experiments/bench_checkpoint.py --gib 2 --sync           # the old behaviour: wait for the whole save

The training state is the real one of a task's config (`--env`, default humanoid with the
paper's settings from conf/env/: 512 envs, 10,000 buffer steps per env), its shapes from
`crl.plan` (nothing trained), with `train.buffer_size` scaled so that the replay buffer
holds `--gib` GiB (default: the task's own buffer, 5.50 GiB for humanoid). Every leaf is
filled with random bytes, so nothing compresses. It is saved `--saves` times through
`crl.checkpoint.Checkpointer` (rotation with `--keep`) as the training loop saves it; after
each save returns, a donated update changes every leaf in place (as the next update phase
does), then the save is waited for. Then the newest checkpoint is restored (SHA-256
verification included) and compared, leaf by leaf, with the state as it was saved.

Columns and JSON keys (seconds are per save, the mean over the saves; each save's are kept):

    blocked_seconds   how long the training loop waits in the save call (the copy off the device)
    save_seconds      the whole save, background write and SHA-256 manifest included
    bytes_per_checkpoint  one complete checkpoint on disk (allocated blocks)
    bytes_per_run     keep x bytes_per_checkpoint (keep + 1 exist while a save is written)
    restore_seconds   verify (SHA-256) and read back the newest checkpoint
    verified          the restored state equals, byte for byte, the state as it was saved

Run it alone on the machine: the numbers are wall-clock times and depend on the disk, the
page cache and the other load (the 1-minute load average is recorded).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import pathlib
import platform
import shutil
import statistics
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from crl import plan
from crl.apps.overrides import compose_jobs
from crl.apps.train import CONF_DIR
from crl.buffer import capacity_rows
from crl.checkpoint import Checkpointer
from crl.config import from_dict
from crl.run import build_envs, stack_versions
from crl.train import Trainer

GiB = 2**30


def task_config(env_id: str, gib: float | None):
    """The task's config as crl-train composes it, with `train.buffer_size` scaled so the
    replay buffer holds `gib` GiB (whole unrolls); None keeps the task's own buffer."""
    cfg = compose_jobs(str(CONF_DIR), [f"env={env_id}"], multirun=False)[0].cfg
    env, eval_env = build_envs(cfg)
    trainer = Trainer(cfg, env, eval_env)
    if gib is None:
        return cfg, trainer
    t = cfg.train
    per_row = plan.state_sizes(trainer)["buffer_bytes"] / capacity_rows(t.buffer_size, t.unroll_length)
    rows = max(1, round(gib * GiB / per_row / t.unroll_length)) * t.unroll_length
    cfg = from_dict({**cfg.to_dict(), "train": {**cfg.to_dict()["train"], "buffer_size": rows}})
    return cfg, Trainer(cfg, env, eval_env)


def random_state(abstract, seed: int = 0):
    """A state of `abstract`'s shapes, dtypes and shardings, every byte random (booleans
    0 or 1), owned by the device (a copy XLA made, so a donated update may overwrite it)."""
    rng = np.random.default_rng(seed)

    def leaf(x):
        dtype = np.dtype(x.dtype)
        n = int(np.prod(x.shape))
        if dtype == np.bool_:
            return rng.integers(0, 2, size=x.shape).astype(bool)
        return np.frombuffer(rng.bytes(n * dtype.itemsize), dtype=dtype).reshape(x.shape)

    host = jax.tree.map(leaf, abstract)
    shardings = jax.tree.map(lambda x: x.sharding, abstract)
    return jax.jit(lambda t: jax.tree.map(jnp.copy, t), out_shardings=shardings)(host)


@functools.partial(jax.jit, donate_argnums=0)
def touch(state):
    """Change every leaf's first element in place (the state is donated, as the update
    phase donates it): a save that still read the device's copy would see it."""

    def one(x):
        if x.size == 0:
            return x
        first = (0,) * x.ndim
        return x.at[first].set(~x[first] if x.dtype == jnp.bool_ else x[first] + 1)

    return jax.tree.map(one, state)


def digests(state) -> list[str]:
    """SHA-256 of every leaf's bytes (zero-size leaves included), in tree order."""
    return [hashlib.sha256(np.ascontiguousarray(jax.device_get(x))).hexdigest() for x in jax.tree.leaves(state)]


def disk_bytes(path: pathlib.Path) -> int:
    """Bytes allocated on disk for every file under `path`."""
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def bench(cfg, trainer, keep: int, saves: int, sync: bool, work: pathlib.Path) -> dict:
    abstract = plan.abstract_state(trainer)
    sizes = plan.state_sizes(trainer, abstract)
    directory = work / "checkpoints"
    checkpointer = Checkpointer(directory, keep=keep)
    start_save = None if sync else getattr(checkpointer, "start_save", None)  # absent before issue 26
    if start_save is not None:
        checkpointer.prepare(abstract)  # as a run does at its start; a wait left over counts in save 1
    state = random_state(abstract)
    update = touch.lower(abstract).compile()  # compiled before the clock starts
    blocked, total, donated = [], [], []
    saved_digests = None
    env_steps = 0
    for epoch in range(1, saves + 1):
        saved_digests = digests(state)
        leaves = jax.tree.leaves(state)
        timings = {}
        begin = time.perf_counter()
        if start_save is None:
            checkpointer.save(state, epoch, env_steps)
        else:
            start_save(state, epoch, env_steps, on_done=lambda path, t: timings.update(t))
        blocked.append(time.perf_counter() - begin)
        state = update(state)  # the next update phase, donating the state
        jax.block_until_ready(state)
        donated.append(all(x.is_deleted() for x in leaves if x.size))
        del leaves
        if start_save is not None:
            checkpointer.finish()  # the writer measured its end: the update above is not counted
        total.append(timings.get("save_seconds", blocked[-1]))
        print(f"save {epoch}/{saves}: blocked {blocked[-1]:.2f} s, whole save {total[-1]:.2f} s", file=sys.stderr,
              flush=True)
    newest = checkpointer.complete_checkpoints()[-1]
    per_checkpoint = disk_bytes(newest)
    on_disk = disk_bytes(directory)
    del state  # free the device's copy before restoring
    begin = time.perf_counter()
    restored = Checkpointer(directory, keep=keep).restore_latest(abstract)
    restore_seconds = time.perf_counter() - begin
    verified = restored is not None and restored.epoch == saves and digests(restored.state) == saved_digests
    t = cfg.train
    return {
        "env": cfg.env.id, "num_envs": t.num_envs, "buffer_size": t.buffer_size, "buffer_bytes": sizes["buffer_bytes"],
        "buffer_gib": sizes["buffer_bytes"] / GiB, "state_bytes": sizes["state_bytes"], "keep": keep, "saves": saves,
        "mode": "sync" if start_save is None else "background",
        "blocked_seconds": statistics.fmean(blocked), "blocked_seconds_max": max(blocked),
        "save_seconds": statistics.fmean(total), "blocked_seconds_each": blocked, "save_seconds_each": total,
        "bytes_per_checkpoint": per_checkpoint, "bytes_per_run": keep * per_checkpoint,
        "bytes_on_disk_after": on_disk, "restore_seconds": restore_seconds, "verified": bool(verified),
        "donated": all(donated),
    }


def print_table(row: dict) -> None:
    cells = [
        ("buffer GiB", f"{row['buffer_gib']:.2f}"), ("mode", row["mode"]),
        ("blocked s", f"{row['blocked_seconds']:.2f}"), ("save s", f"{row['save_seconds']:.2f}"),
        ("ckpt GiB", f"{row['bytes_per_checkpoint'] / GiB:.2f}"),
        (f"run GiB (keep {row['keep']})", f"{row['bytes_per_run'] / GiB:.2f}"),
        ("restore s", f"{row['restore_seconds']:.2f}"), ("verified", "yes" if row["verified"] else "NO"),
    ]
    widths = [max(len(h), len(v)) for h, v in cells]
    print("  ".join(h.rjust(w) for (h, _), w in zip(cells, widths)))
    print("  ".join("-" * w for w in widths))
    print("  ".join(v.rjust(w) for (_, v), w in zip(cells, widths)))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gib", type=float, default=None,
                        help="replay buffer size in GiB (default: the task's own, the paper's for humanoid)")
    parser.add_argument("--env", default="humanoid", help="the task whose state is saved (conf/env/<env>.yaml)")
    parser.add_argument("--keep", type=int, default=None, help="checkpoints kept (default: checkpoint.keep)")
    parser.add_argument("--saves", type=int, default=None, help="saves in a row (default: keep + 1)")
    parser.add_argument("--sync", action="store_true", help="wait for each whole save (the behaviour before issue 26)")
    parser.add_argument("--dir", default=None, help="where to write the checkpoints (default: a new temporary dir)")
    parser.add_argument("--json", default=None, help="write the row as JSON here")
    args = parser.parse_args(argv)
    cfg, trainer = task_config(args.env, args.gib)
    keep = cfg.checkpoint.keep if args.keep is None else args.keep
    saves = keep + 1 if args.saves is None else args.saves
    load = os.getloadavg()[0]
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench_checkpoint_", dir=args.dir))
    try:
        row = bench(cfg, trainer, keep, saves, args.sync, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    row.update({
        "gib_requested": args.gib, "load_average_1min_before": load, "cpus": os.cpu_count(),
        "machine": platform.node(), "devices": [str(d) for d in jax.devices()],
        "versions": {k: v for k, v in stack_versions().items() if k in ("python", "jax", "orbax-checkpoint", "numpy")},
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    })
    print_table(row)
    if args.json:
        path = pathlib.Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(row, indent=2))
        print(f"wrote {path}")
    return row


if __name__ == "__main__":
    main()
