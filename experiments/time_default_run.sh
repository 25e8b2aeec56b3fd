#!/usr/bin/env bash
# The README's default run, timed as a user meets it: once with an empty JAX compilation
# cache, then warm for seeds 0, 1 and 2. Writes one line per run (load average before it,
# wall seconds, final time at goal) to <out dir>/results.txt.
#
#   bash experiments/time_default_run.sh /tmp/default_run
set -euo pipefail
out=$(realpath -m "${1:-/tmp/crl_default_run}")
mkdir -p "$out"
cd "$out"
rm -rf runs cache results.txt
export CRL_JAX_CACHE="$out/cache"
for spec in "cold 0" "warm 0" "warm 1" "warm 2"; do
  set -- $spec
  load=$(cut -d' ' -f1 /proc/loadavg)
  start=$(date +%s.%N)
  crl-train seed="$2" logging.progress_bar=false > "out_$1_$2.txt" 2>&1
  end=$(date +%s.%N)
  echo "$1 seed=$2 load=$load wall_s=$(echo "$end - $start" | bc) $(tail -1 "out_$1_$2.txt")" | tee -a results.txt
done
