#!/usr/bin/env bash
# Refresh constraints.txt, the lock of exact versions that CI and the README install with:
#   experiments/refresh_constraints.sh            (about 2 minutes; needs PyPI)
# It installs the project with its dev extras into a new, empty virtual environment (so
# nothing else on the machine leaks into the lock), then writes every installed
# distribution but the project itself, pinned with ==. Review the diff, run the tests,
# and commit the new file with the versions that changed in the message.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
venv="$(mktemp -d)/venv"
trap 'rm -rf "$(dirname "$venv")"' EXIT
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -e ".[dev]"
{
  echo "# Exact versions of every dependency of deep-crl[dev], for pip's -c (constraints) option:"
  echo "#   pip install -c constraints.txt -e \".[dev]\""
  echo "# Written by experiments/refresh_constraints.sh on $(date -u +%Y-%m-%d) with"
  echo "# $("$venv/bin/python" --version) on $(uname -sm); pyproject.toml keeps the open ranges."
  "$venv/bin/python" -m pip freeze --exclude-editable --all | grep -v -E '^(pip|setuptools|wheel)==' | LC_ALL=C sort -f
} > constraints.txt.tmp
mv constraints.txt.tmp constraints.txt
echo "wrote constraints.txt ($(grep -c '==' constraints.txt) pins)"
