#!/usr/bin/env bash
# Stop the cluster that start_local_cluster.sh started: slurmd and slurmctld (by their
# pid files in $CRL_SLURM_DIR). munged is left running (other Slurm clients may use it);
# pass --munge to stop it too.
set -uo pipefail

DIR="${CRL_SLURM_DIR:-/tmp/crl-slurm}"
stop_pidfile() {
  local file="$1"
  [ -f "$file" ] || return 0
  local pid
  pid="$(cat "$file")"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$file"
}

if [ -f "$DIR/slurm.conf" ]; then
  SLURM_CONF="$DIR/slurm.conf" timeout 10 scancel --user=root 2>/dev/null || true
fi
stop_pidfile "$DIR/slurmd.pid"
stop_pidfile "$DIR/slurmctld.pid"
if [ "${1:-}" = "--munge" ] && [ -f /run/munge/munged.pid ]; then
  stop_pidfile /run/munge/munged.pid
fi
echo "stop_local_cluster: stopped" >&2
