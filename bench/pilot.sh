#!/usr/bin/env bash
# The refinement pilot (its runs declared in bench/pilot.py): the README command's teacher, then 5-epoch German students
# (1 warm-up + 4 refining) under different refinement choices, two one-thread processes at a time, then its tables.
# Resumable.
set -euo pipefail
cd "$(dirname "$0")/.."
python bench/pilot.py run --runs "${RUNS:-runs/pilot}"
