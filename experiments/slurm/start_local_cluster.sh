#!/usr/bin/env bash
# Start a single-node Slurm cluster on this machine: munged, slurmctld and slurmd, with
# this host as the only node and one partition `local`. Run as root. Installs nothing:
# Debian's `slurm-wlm` and `munge` must be there (.ci/run installs them).
#
#   eval "$(bash experiments/slurm/start_local_cluster.sh)"   # exports SLURM_CONF
#   sbatch --wrap 'hostname'; squeue
#   crl-train -m hydra/launcher=submitit_slurm network.depth=0,4
#   bash experiments/slurm/stop_local_cluster.sh
#
# Everything (config, state, logs, pid files) lives in $CRL_SLURM_DIR (default
# /tmp/crl-slurm); /etc/slurm is left alone, so clients find the cluster through
# SLURM_CONF, which this script prints as an `export` line on stdout (and nothing else
# goes to stdout). Running it again while the cluster is up only prints that line.
set -euo pipefail

DIR="${CRL_SLURM_DIR:-/tmp/crl-slurm}"
CONF="$DIR/slurm.conf"
log() { echo "start_local_cluster: $*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (slurmd and munged need it)"
for bin in munged slurmctld slurmd scontrol sinfo sbatch; do
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || die "$bin not found: apt-get install -y slurm-wlm munge"
done
export PATH="$PATH:/usr/sbin"

HOST="$(hostname -s)"
CPUS="${CRL_SLURM_CPUS:-$(nproc)}"
MEM_MB="$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)"

# Already up (a previous call in this boot)? Then only tell the caller where it is.
if [ -f "$CONF" ] && SLURM_CONF="$CONF" timeout 5 scontrol ping 2>/dev/null | grep -q UP; then
  log "cluster already running ($CONF)"
  echo "export SLURM_CONF=$CONF"
  exit 0
fi

mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
# Half a cluster from an earlier start (one daemon died): stop what is left of ours.
for pidfile in "$DIR/slurmd.pid" "$DIR/slurmctld.pid"; do
  if [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null; then sleep 1; fi
  rm -f "$pidfile"
done

# -- munge: the authentication daemon every Slurm daemon and client talks to -------------
if ! pgrep -x munged >/dev/null 2>&1; then
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null 2>&1 || [ -x /usr/sbin/mungekey ]; then
      mungekey --create --keyfile=/etc/munge/munge.key
    else
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
  fi
  chown -R munge:munge /etc/munge
  chmod 0700 /etc/munge
  chmod 0400 /etc/munge/munge.key
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  chown munge:munge /run/munge /var/lib/munge /var/log/munge
  chmod 0755 /run/munge
  # A munged that was killed leaves its socket and pid file behind; they block a restart.
  rm -f /run/munge/munged.pid /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
  runuser -u munge -- munged || die "munged did not start (see /var/log/munge/munged.log)"
fi
for _ in $(seq 50); do timeout 2 munge -n </dev/null >/dev/null 2>&1 && break; sleep 0.1; done
timeout 5 munge -n </dev/null | timeout 5 unmunge >/dev/null 2>&1 || die "munge does not answer"

# -- slurm.conf: this host as the only node ------------------------------------------------
cat >"$CONF" <<EOF
# Written by experiments/slurm/start_local_cluster.sh: a one-node cluster on localhost.
ClusterName=crl-local
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job waits cred_expire seconds before it may start again (default 120).
AuthInfo=cred_expire=10
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
# Jobs are small and short: check on them often, and do not wait long for a killed one.
SchedulerParameters=sched_interval=2
MessageTimeout=20
KillWait=5
InactiveLimit=0
MinJobAge=300
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=local Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

# -- the daemons --------------------------------------------------------------------------
# -c: start clean (no jobs or node states of an earlier run of this cluster).
slurmctld -c -f "$CONF" || die "slurmctld did not start (see $DIR/log/slurmctld.log)"
slurmd -f "$CONF" -N "$HOST" || die "slurmd did not start (see $DIR/log/slurmd.log)"

export SLURM_CONF="$CONF"
for _ in $(seq 100); do
  if sinfo -h -N -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    log "cluster up: node $HOST, $CPUS CPUs, partition local ($CONF)"
    echo "export SLURM_CONF=$CONF"
    exit 0
  fi
  sleep 0.2
done
sinfo -N >&2 || true
tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
die "the node did not become idle within 20 s"
