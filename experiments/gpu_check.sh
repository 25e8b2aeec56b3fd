#!/usr/bin/env bash
# One-shot GPU check (issue 15): what a lent accelerator does with this suite, in one JSON.
#
#   experiments/gpu_check.sh [--out gpu_check.json]     # on the GPU machine: about 6-7 minutes
#   experiments/gpu_check.sh --dry-run --out /tmp/x.json  # the same pipeline on a CPU at tiny sizes
#
# Parts, each under its own time limit (the JSON records "ok", "timeout" or "failed" per part,
# and whatever a timed-out part had measured):
#   device   nvidia-smi's GPU name, memory and driver, and jax.devices()
#   bench    crl-bench: matmul ceiling, update at depth 64 and 1024, batch 512      (limit 90 s)
#   e2e      crl-train ant and humanoid at depth 4 and 64, 512 envs, the paper's batch 512,
#            62-step unrolls and 1000-step episodes, for at most 75 s each: env steps/s of
#            every logged epoch after the first (the first includes compilation), and the
#            device's peak memory in use (device_peak_gib)                          (4 x 75 s)
#   memory   crl-train --plan of each e2e run's config: XLA's planned peak beside the
#            measured one                                                     (4 x at most 60 s)
#   seeds    crl-train ant with train.num_seeds 1, 4 and 8 at depth 4 and 16: env steps/s
#            per seed and in all                                             (6 x 60 s)
# Worst case on one H200, every part: ~15 s start + 90 s + 4 x (75 s + 15 s to stop) + 4 x 60 s
# + 6 x (60 s + 15 s) = ~16 min: more than one 15-minute loan, so a loan runs a subset with
# --parts (e.g. "device memory seeds": about 10 min; "device bench e2e": about 7.75 min). The
# runs are cut by SIGTERM (crl-train then ends its epoch and exits), so every part ends
# inside its budget whatever the GPU's speed.
#
# Options: --parts "device bench e2e memory seeds"  --envs "ant humanoid"  --depths "4 64" (dry run: "4")
#          --e2e-seconds 75  --bench-seconds 90  --seed-counts "1 4 8" (dry run: "2": the e2e run is its one-seed run)
#          --seed-depths "4 16" (dry run: "4")  --seed-seconds 60
# Environment: PYTHON (default python), CRL_JAX_CACHE (crl-train's compile cache).
set -u

# Everything runs inside main (bash parses a function whole, so editing this file
# while a check runs cannot change the running check).
main() {

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python}
OUT=gpu_check.json
DRY=0
ENVS="ant humanoid"
DEPTHS=""
E2E_S=75
BENCH_S=90
PARTS="device bench e2e memory seeds"
SEED_COUNTS=""
SEED_DEPTHS=""
SEED_S=60
PLAN_S=60

while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) OUT=$2; shift ;;
    --envs) ENVS=$2; shift ;;
    --depths) DEPTHS=$2; shift ;;
    --e2e-seconds) E2E_S=$2; shift ;;
    --bench-seconds) BENCH_S=$2; shift ;;
    --parts) PARTS=$2; shift ;;
    --seed-counts) SEED_COUNTS=$2; shift ;;
    --seed-depths) SEED_DEPTHS=$2; shift ;;
    --seed-seconds) SEED_S=$2; shift ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/crl_gpu_check.XXXXXX")
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
START=$(date +%s)
# The entry points' modules (crl/apps/ in later layouts of the package).
TRAIN_MOD=crl.apps.train
BENCH_MOD=crl.apps.bench

if [ "$DRY" = 1 ]; then
  # Tiny sizes on whatever device JAX finds: checks the pipeline, measures nothing.
  BENCH_ARGS=(--quick --depths 4 --batches 16)
  # valid under the task configs' paper schedule and window sampling: 1 phase of 2 SGD steps
  E2E_ARGS=(train.num_envs=2 train.batch_size=16 train.unroll_length=10 train.prefill_steps=20
            train.buffer_size=100 env.episode_length=20 train.utd_ratio=0.1 train.num_eval_envs=2
            network.width=32 train.num_epochs=2 train.total_env_steps=80)
  E2E_S=600
  BENCH_S=600
  SEED_S=600
  PLAN_S=600
  DEPTHS=${DEPTHS:-4}
  SEED_COUNTS=${SEED_COUNTS:-2}
  SEED_DEPTHS=${SEED_DEPTHS:-4}
else
  DEPTHS=${DEPTHS:-4 64}
  SEED_COUNTS=${SEED_COUNTS:-1 4 8}
  SEED_DEPTHS=${SEED_DEPTHS:-4 16}
  BENCH_ARGS=(--depths 64 1024 --batches 512)
  # The task configs' paper schedule and data pipeline: 2 update phases per epoch (2 x 31,744
  # env steps, 2 x 800 SGD steps; the total counts the 512,000 prefill steps); the time
  # limit, not the epoch count, ends the run.
  E2E_ARGS=(train.num_envs=512 train.batch_size=512 train.unroll_length=62 train.num_epochs=100
            train.total_env_steps=6860800 train.num_eval_envs=128)
fi

has() { case " $PARTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
RUN_ARGS=(checkpoint.include_buffer=false checkpoint.every_epochs=1000 logging.save_params=false
          logging.progress_bar=false logging.tensorboard=false)

# -- device ------------------------------------------------------------------------------
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$WORK/nvidia_smi.txt" 2>&1 \
  || echo "nvidia-smi not available" > "$WORK/nvidia_smi.txt"
timeout 60 "$PY" -c "import jax, json; print(json.dumps({'backend': jax.default_backend(), 'devices': [str(d) for d in jax.devices()], 'device_kind': jax.devices()[0].device_kind}))" \
  > "$WORK/jax_devices.json" 2> "$WORK/jax_devices.err" || echo '{}' > "$WORK/jax_devices.json"

# -- bench -------------------------------------------------------------------------------
if has bench; then
  timeout -k 10 "$BENCH_S" "$PY" -c "from $BENCH_MOD import main; main()" --sections update \
    "${BENCH_ARGS[@]}" --out "$WORK/bench.json" > "$WORK/bench.log" 2>&1
  echo $? > "$WORK/bench.rc"
fi

# -- e2e and memory ----------------------------------------------------------------------
for env in $ENVS; do
  for depth in $DEPTHS; do
    name="${env}_d${depth}"
    if has memory; then
      timeout -k 10 "$PLAN_S" "$PY" -c "from $TRAIN_MOD import main; main()" --plan --plan-json \
        "$WORK/plan_$name.json" "env=$env" "network.depth=$depth" "${E2E_ARGS[@]}" "${RUN_ARGS[@]}" \
        > "$WORK/plan_$name.log" 2>&1
      echo $? > "$WORK/plan_$name.rc"
    fi
    if has e2e || has memory; then
      timeout -s TERM -k 15 "$E2E_S" "$PY" -c "from $TRAIN_MOD import main; main()" \
        "env=$env" "network.depth=$depth" "${E2E_ARGS[@]}" "${RUN_ARGS[@]}" "hydra.run.dir=$WORK/$name" \
        > "$WORK/$name.log" 2>&1
      echo $? > "$WORK/$name.rc"
    fi
  done
done

# -- seeds in one program ----------------------------------------------------------------
if has seeds; then
  for depth in $SEED_DEPTHS; do
    for n in $SEED_COUNTS; do
      name="seeds_ant_d${depth}_n${n}"
      timeout -s TERM -k 15 "$SEED_S" "$PY" -c "from $TRAIN_MOD import main; main()" \
        env=ant "network.depth=$depth" "train.num_seeds=$n" "${E2E_ARGS[@]}" "${RUN_ARGS[@]}" \
        "hydra.run.dir=$WORK/$name" > "$WORK/$name.log" 2>&1
      echo $? > "$WORK/$name.rc"
    done
  done
fi

# -- one JSON ----------------------------------------------------------------------------
"$PY" - "$WORK" "$OUT" "$DRY" "$START" "$E2E_S" "$ENVS" "$DEPTHS" "$PARTS" "$SEED_DEPTHS" "$SEED_COUNTS" "$SEED_S" <<'EOF'
import csv, json, pathlib, statistics, sys, time

work, out, dry, start, e2e_s = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1", int(sys.argv[4]), sys.argv[5]
envs, depths, parts = sys.argv[6].split(), sys.argv[7].split(), sys.argv[8].split()
seed_depths, seed_counts, seed_s = sys.argv[9].split(), sys.argv[10].split(), sys.argv[11]


def status(rc_file, cut_is_ok=False):
    """crl-train runs of the real check are meant to be cut at their time limit (exit 124)."""
    rc = int(rc_file.read_text().strip() or 1)
    if rc == 0:
        return "ok"
    if rc in (124, 137, 143):
        return "ok (stopped at its time limit)" if cut_is_ok else "timeout"
    return f"failed (exit {rc})"


def tail(path, n=1500):
    return path.read_text(errors="replace")[-n:] if path.exists() else ""


def training(name, limit_s):
    """What a (time-limited) crl-train run measured: env steps/s after the first epoch, peak memory."""
    run = {"status": status(work / f"{name}.rc", cut_is_ok=not dry), "limit_s": float(limit_s)}
    run_dir = work / name
    metrics = run_dir / "metrics.csv"
    if not metrics.exists():  # a batched run: seed 0's files (all seeds log the same counters)
        metrics = next(iter(sorted(run_dir.glob("seed_*/metrics.csv"))), metrics)
    rows = list(csv.DictReader(open(metrics, newline=""))) if metrics.exists() else []
    rates = [float(r["train/env_steps_per_second"]) for r in rows[1:]]
    peaks = [float(r["device_peak_gib"]) for r in rows if r.get("device_peak_gib") not in (None, "", "nan")]
    run.update(
        epochs_logged=len(rows),
        first_epoch_wall_s=float(rows[0]["wall_time"]) if rows else None,
        env_steps_per_s_each_epoch_after_first=rates,
        env_steps_per_s_median=statistics.median(rates) if rates else None,
        sgd_steps_per_s_median=statistics.median(float(r["train/sgd_steps_per_second"]) for r in rows[1:]) if rates else None,
        device_peak_gib=max(peaks) if peaks else None,
    )
    info = metrics.parent / "run_info.json"
    if info.exists():
        run["run_info"] = json.loads(info.read_text())
    if not rates:
        run["log_tail"] = tail(work / f"{name}.log")
    return run


smi = (work / "nvidia_smi.txt").read_text().strip()
result = {
    "dry_run": dry,
    "parts": parts,
    "gpu_name": smi.split(",")[0].strip() if "," in smi else None,
    "nvidia_smi": smi,
    "jax": json.loads((work / "jax_devices.json").read_text() or "{}"),
    "e2e": [],
    "memory": [],
    "seeds": [],
}
if "bench" in parts:
    result["bench"] = {"status": status(work / "bench.rc")}
    if (work / "bench.json").exists():
        bench = json.loads((work / "bench.json").read_text())
        result["bench"].update(meta=bench["meta"], rows=bench["rows"])
    else:
        result["bench"]["log_tail"] = tail(work / "bench.log")
for env in envs:
    for depth in depths:
        name = f"{env}_d{depth}"
        if not (work / f"{name}.rc").exists():
            continue
        run = {"env": env, "depth": int(depth), **training(name, e2e_s)}
        if "e2e" in parts:
            result["e2e"].append(run)
        if "memory" in parts:
            plan_file = work / f"plan_{name}.json"
            plan = json.loads(plan_file.read_text())[0] if plan_file.exists() else None
            entry = {"env": env, "depth": int(depth), "plan_status": status(work / f"plan_{name}.rc"),
                     "measured_peak_gib": run["device_peak_gib"]}
            if plan:
                entry.update({k: plan[k] for k in ("peak_gib", "state_gib", "update_temp_gib", "buffer_gib", "params_m",
                                                   "update_xla_peak", "compile_s")})
                if run["device_peak_gib"]:
                    entry["measured_over_planned"] = run["device_peak_gib"] / plan["peak_gib"]
            else:
                entry["log_tail"] = tail(work / f"plan_{name}.log")
            result["memory"].append(entry)
if "seeds" in parts:
    for depth in seed_depths:
        for n in seed_counts:
            run = {"env": "ant", "depth": int(depth), "num_seeds": int(n), **training(f"seeds_ant_d{depth}_n{n}", seed_s)}
            per_seed = run["env_steps_per_s_median"]
            run["env_steps_per_s_all_seeds"] = per_seed * int(n) if per_seed else None
            result["seeds"].append(run)
result["total_s"] = time.time() - start
pathlib.Path(out).write_text(json.dumps(result, indent=2))
summary = [f"{r['env']} d{r['depth']}: {r['status']} {r['env_steps_per_s_median'] or 0:.0f} steps/s" for r in result["e2e"]]
summary += [f"plan {m['env']} d{m['depth']}: {m['plan_status']} {m.get('peak_gib') or 0:.2f} GiB planned, "
            f"{m['measured_peak_gib'] or 0:.2f} measured" for m in result["memory"]]
summary += [f"ant d{r['depth']} x{r['num_seeds']} seeds: {r['status']} {r['env_steps_per_s_all_seeds'] or 0:.0f} steps/s in all"
            for r in result["seeds"]]
print(f"gpu_check: wrote {out} in {result['total_s']:.0f} s (gpu: {result['gpu_name']}; " + "; ".join(summary) + ")")
EOF
rc=$?
rm -rf "$WORK"
return $rc
}

main "$@"
exit $?
