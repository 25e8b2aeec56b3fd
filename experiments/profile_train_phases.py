"""Where the time of one training epoch goes: XLA op time per phase from a `jax.profiler` trace.

    python experiments/profile_train_phases.py                    # the issue-15 ant command, depth 4
    python experiments/profile_train_phases.py --depth 64 --out docs/benchmarks/train_phases_d64.json

Builds the trainer exactly as `crl-train` would for the command in
`experiments/bench_train_command.py` (same Hydra composition and overrides), runs the
prefill and one warm-up epoch, then traces one more epoch (the span `crl.loop` times:
its `train_phase` calls, each followed by the `device_get` of its metrics and finiteness flag).

Each phase's functions are wrapped in a `jax.named_scope` for the trace only (the
computation is unchanged), so every XLA op carries its phase in its metadata:

    collect/actor     the stochastic actor's forward pass in the unroll
    collect/env       env step incl. truncation and auto-reset
    insert            buffer.insert of the unroll
    sample            buffer.sample: index draws, episode-end search, gathers, relabelling
    update            Trainer.update: critic, actor and alpha losses, gradients, Adam
    training_step     the rest of a training step (key splits, the per-SGD-step metric means)
    epoch             ops outside those scopes: the epoch's metric means and finiteness check,
                      loop bookkeeping, and ops whose metadata lost the scope

Op time is the sum of the durations of the leaf thunks (control-flow thunks such as
`while`/`conditional` are containers and not counted) over all threads; shares of it are
robust to load on a shared machine, absolute numbers are not. The wall time of the traced
epoch and the host gap (wall minus the busiest thread's op time) are reported too.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import pathlib
import re
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.append(str(REPO))  # after PYTHONPATH, so PYTHONPATH=<other tree> profiles that tree's code
sys.path.append(str(REPO / "experiments"))

import jax  # noqa: E402

from bench_train_command import issue_config, machine_meta  # noqa: E402

PHASES = ("collect/actor", "collect/env", "insert", "sample", "update", "training_step", "epoch")
CONTROL_FLOW = ("while", "conditional", "call")


def scoped(name, fn):
    def wrapped(*args, **kwargs):
        with jax.named_scope(f"phase_{name}"):
            return fn(*args, **kwargs)

    return wrapped


def instrument(trainer) -> None:
    """Name-scope each phase (only the ops' metadata changes, not what is computed)."""
    from crl import buffer as replay

    for attr in ("sample", "insert"):
        if not hasattr(getattr(replay, attr), "__wrapped_phase__"):
            fn = scoped(attr, getattr(replay, attr))
            fn.__wrapped_phase__ = True
            setattr(replay, attr, fn)
    trainer.update = scoped("update", trainer.update)
    trainer.policy_sample = scoped("collect/actor", trainer.policy_sample)
    trainer.train_env.step = scoped("collect/env", trainer.train_env.step)
    trainer.training_step = scoped("training_step", trainer.training_step)


def hlo_op_names(hlo_text: str) -> dict[str, str]:
    """HLO instruction name -> its op_name metadata (the JAX call path), from the compiled module."""
    out = {}
    pattern = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=.*?op_name=\"([^\"]*)\"")
    for line in hlo_text.splitlines():
        m = pattern.match(line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def op_kind(op: str) -> str:
    """A coarse class of an XLA CPU thunk, from its name."""
    base = re.sub(r"\.\d+$", "", op)
    if base.startswith(("ynn_fusion", "dot", "xnn_fusion", "custom-call")):
        return "matmul"
    if "reduce-window" in base or base.startswith(("pad_", "bitcast_slice")):
        return "reduce-window/pad/slice"
    if base.startswith("copy") or base.startswith("transpose"):
        return "copy/transpose"
    if "gather" in base or "scatter" in base or "dynamic" in base:
        return "gather/scatter/dynamic-slice"
    return "elementwise/reduce fusion"


def phase_of(op_name: str) -> str:
    # the innermost phase scope wins
    scopes = re.findall(r"phase_(collect/actor|collect/env|sample|insert|update|training_step)", op_name)
    return scopes[-1] if scopes else "epoch"


def leaf_events(xplane_path: str):
    """(line id, hlo_op, start ns, duration ns) of every leaf XLA thunk in the trace."""
    from jax.profiler import ProfileData

    data = ProfileData.from_file(xplane_path)
    for plane in data.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        for i, line in enumerate(plane.lines):
            for ev in line.events:
                stats = dict(ev.stats)
                op = stats.get("hlo_op")
                if op is None or str(op).split(".")[0] in CONTROL_FLOW:
                    continue
                yield i, str(op), ev.start_ns, ev.duration_ns


def profile(depth: int, out: str | None, top: int = 20, extra: list[str] = ()) -> dict:
    from crl.run import build_envs
    from crl.train import Trainer

    cfg = issue_config(depth, extra)
    env, eval_env = build_envs(cfg)
    trainer = Trainer(cfg, env, eval_env)
    instrument(trainer)
    t = cfg.train
    ts = trainer.prefill(trainer.init(jax.random.PRNGKey(0)))
    compiled = trainer.train_phase.lower(trainer, ts).compile()  # jit of a method: self is static
    op_names = hlo_op_names(compiled.as_text())

    def epoch(ts):  # as crl.loop runs it: the phases, each's metrics fetched before the next
        for _ in range(cfg.training_steps_per_epoch):
            ts, m, ok = compiled(ts)
            jax.device_get((m, ok))
        return ts

    ts = epoch(ts)  # warm-up epoch (epoch 1 of a run)
    trace_dir = tempfile.mkdtemp(prefix="crl_trace_")
    jax.profiler.start_trace(trace_dir)
    t0 = time.perf_counter()
    ts = epoch(ts)
    wall = time.perf_counter() - t0
    jax.profiler.stop_trace()
    path = glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True)[0]

    per_phase = collections.Counter()
    per_op = collections.Counter()
    per_kind = collections.Counter()
    per_line = collections.Counter()
    counts = collections.Counter()
    unknown = collections.Counter()
    for line, op, _, dur in leaf_events(path):
        if op not in op_names:
            unknown[op] += dur
        phase = phase_of(op_names.get(op, ""))
        per_phase[phase] += dur
        per_op[(phase, op)] += dur
        per_kind[(phase, op_kind(op))] += dur
        per_line[line] += dur
        counts[phase] += 1
    total = sum(per_phase.values())
    steps = cfg.training_steps_per_epoch
    rows = []
    for phase in PHASES:
        ns = per_phase.get(phase, 0)
        rows.append({"phase": phase, "op_s_per_epoch": ns / 1e9, "op_s_per_training_step": ns / 1e9 / steps,
                     "share": ns / total if total else 0.0})
    busiest = max(per_line.values()) / 1e9 if per_line else 0.0
    result = {
        "depth": depth, "training_steps_per_epoch": steps,
        "sgd_steps_per_training_step": cfg.sgd_steps_per_training_step,
        "env_steps_per_epoch": steps * t.env_steps_per_training_step,
        "epoch_wall_s": wall, "env_steps_per_s": steps * t.env_steps_per_training_step / wall,
        "op_s_total": total / 1e9, "op_s_busiest_thread": busiest, "host_gap_s": wall - busiest,
        "phases": rows,
        "thunks_per_epoch": dict(counts),
        "kinds": [{"phase": ph, "kind": kind, "op_s_per_epoch": ns / 1e9, "share": ns / total}
                  for (ph, kind), ns in per_kind.most_common()],
        "top_ops": [{"phase": ph, "op": op, "op_s_per_epoch": ns / 1e9, "share": ns / total,
                     "op_name": op_names.get(op, "")[-160:]} for (ph, op), ns in per_op.most_common(top)],
        "unmapped_op_s": sum(unknown.values()) / 1e9,
    }
    print(f"depth {depth}: traced epoch {wall:.2f} s wall = {result['env_steps_per_s']:.0f} env steps/s; "
          f"op time {total / 1e9:.2f} s over all threads, busiest thread {busiest:.2f} s")
    print(f"  {'phase':<14} {'op s/epoch':>10} {'s/step':>8} {'share':>6}")
    for r in rows:
        print(f"  {r['phase']:<14} {r['op_s_per_epoch']:>10.3f} {r['op_s_per_training_step']:>8.3f} {r['share']:>6.1%}")
    print("  op kinds (share of all op time):")
    for r in result["kinds"]:
        if r["share"] >= 0.002:
            print(f"    {r['phase']:<14} {r['kind']:<30} {r['share']:>6.1%}")
    print("  top ops:")
    for r in result["top_ops"]:
        print(f"    {r['phase']:<14} {r['op']:<32} {r['op_s_per_epoch']:>8.3f} s {r['share']:>6.1%}  {r['op_name'][-70:]}")
    if out:
        meta = {**machine_meta(), "jax_devices": [str(d) for d in jax.devices()], "jax": jax.__version__}
        pathlib.Path(out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(out).write_text(json.dumps({"meta": meta, **result}, indent=2))
        print(f"wrote {out}")
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--out", default=None, help="write the table as JSON here")
    parser.add_argument("extra", nargs="*", help="further key=value overrides (e.g. a tiny smoke run)")
    args = parser.parse_args(argv)
    profile(args.depth, args.out, args.top, args.extra)


if __name__ == "__main__":
    main()
