#!/usr/bin/env bash
# The factor grid's question at the paper's data scale on one GPU (issue 32, item 4): German, all 14,041 English train
# sentences, all German train sentences but 200 held out for the trace (11,952, unlabelled), the full English dev and
# German test sets; the teacher (3 epochs), then the students of ROWS (default: the ContProto and no_proto rows of the
# winning factor, "contproto_pre no_proto_pre"; names and options from bench/factors.py) for 10 epochs, at the same
# time, from that teacher. Every run is `contproto-fit` with the grid's own arguments plus EXTRA (all runs, e.g.
# "--bs 32" or a precision option) and STUDENT_EXTRA (students only); one CPU thread each.
#
# Needs `.device/` from `python bench/device_pack.py` (pruned e5 file, data, wheels). With a device:
#     run(command="bash bench/gpu_factors.sh", carry=[".device"], timeout_s=590)
# Writes $OUT/factors_gpu.tar.gz (each run's results.json, config.json and log, laid out as runs/<grid>/en-de/seed0/<row>),
# $OUT/grid.log, and the tables of `bench/factors.py tables --grid paper` in $OUT (factors_en-de.md, factors.json, Fig. 3).
# DEADLINE (seconds, default 540) bounds the whole script; exit 0 only when every run finished.
# On a CPU (a check of the script, not a result):
#   DEVICE_CHECK=1 EXTRA="--src-limit 48 --dev-limit 16 --tgt-limit 32 --test-limit 16 --trace-test-limit 16 --teacher-epochs 1" STUDENT_EXTRA="--epochs 2" OUT=/tmp/o bash bench/gpu_factors.sh
set -uo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
P=$PWD/.device; OUT=${OUT:-$PWD/runs/gpu}; RUNS=${RUNS:-/tmp/factors-gpu}; DEADLINE=${DEADLINE:-540}
ROWS=${ROWS:-contproto_pre no_proto_pre}; EXTRA=${EXTRA:-}; STUDENT_EXTRA=${STUDENT_EXTRA:-}
SRC=en; TGT=de
rm -rf "$RUNS"; mkdir -p "$OUT" "$RUNS"          # a fresh run: nothing of an earlier call is reported as new
. bench/device_env.sh                             # wheels, GPU check, e5 file, data in $data
mkdir -p /tmp/bin && printf '#!/usr/bin/env python3\nimport sys\nfrom contproto_fastai.cli import main\nsys.argv[0] = "contproto-fit"\nmain()\n' > /tmp/bin/contproto-fit
chmod +x /tmp/bin/contproto-fit; export PATH=/tmp/bin:$PATH
(cd /tmp && python3 -c 'from contproto_fastai.e5 import e5_path; print("e5-small:", e5_path())') || exit 2   # convert once, not in each run
left=$(( DEADLINE - ($(date +%s) - start) - 40 ))      # 40 s kept for the tables and the archive
[ "$left" -gt 60 ] || { echo "only $left s left of DEADLINE=$DEADLINE: nothing started" >&2; exit 1; }
echo "paper-scale factors: rows $ROWS; extra '$EXTRA' / '$STUDENT_EXTRA'; $left s left at $(date -u +%T)"
n=$(( $(echo $ROWS | wc -w) + 1 ))
timeout --signal=INT --kill-after=20 "$left" python3 bench/factors.py run --grid paper --data "$data" --runs "$RUNS" --results "$OUT" \
    --workers "$n" --rows "$(echo $ROWS | tr ' ' ,)" --extra "$EXTRA" --student-extra "$STUDENT_EXTRA" 2>&1 | tee "$OUT/grid.log"
echo "grid exit ${PIPESTATUS[0]} after $(( $(date +%s) - start )) s"
python3 - "$RUNS" "$OUT" $ROWS <<'PY'
# every run's small files (no weights) in one archive, the tables, one line per run; exit 1 unless every run finished
import json, sys, tarfile
from pathlib import Path
runs, out, rows = Path(sys.argv[1]), Path(sys.argv[2]), ['teacher'] + sys.argv[3:]
dirs = [runs/'en-de'/'seed0'/r for r in rows]
with tarfile.open(out/'factors_gpu.tar.gz', 'w:gz') as tar:
    for f in sorted(runs.glob('en-de/seed0/*.log')) + [d/n for d in dirs for n in ('results.json', 'config.json')]:
        if f.exists(): tar.add(f, arcname=str(f.relative_to(runs)))
done = 0
for d in dirs:
    r = json.loads((d/'results.json').read_text()) if (d/'results.json').exists() else {}
    ok = r.get('status') == 'finished'; done += ok
    f1 = (r.get('student') or r.get('teacher') or {}).get('f1')
    print(f"{d.name}: {'finished' if ok else 'not finished'}" + (f", target test F1 {100 * f1:.2f}" if f1 is not None else '')
          + f", {(r.get('times') or {}).get('total') or 0:.0f} s, {(r.get('machine') or {}).get('gpu', (r.get('machine') or {}).get('device', '?'))}")
print(f"{done} of {len(dirs)} runs finished")
sys.exit(done < len(dirs))
PY
rc=$?
echo "total $(( $(date +%s) - start )) s"
exit $rc
