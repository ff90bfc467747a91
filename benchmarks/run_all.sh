#!/usr/bin/env bash
# Runs every benchmark of the suite (issue 2's figures). Uses $REDIS_URL when set, an
# embedded Redis otherwise. Numbers depend on the machine: compare on the same one.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-../.venv/bin/python}
"$PY" chain.py --nodes 100 --runs 5
"$PY" diamond.py --executions 1000 --concurrency 50 --runs 3
"$PY" idle.py --seconds 20
"$PY" resume.py --executions 1000 --runs 3
