#!/usr/bin/env bash
# German seeds of the 10-epoch schedule grid (bench/schedule.py) on one GPU, with the grid's own code and arguments:
# the zero-shot teacher of each seed in SEEDS (default "2 3"), all at once, then the six rows (vanilla, contproto,
# no_proto, fixed_margin, authors, glode) of every seed whose teacher finished, all at once, from that teacher; one CPU
# thread per run. No ceiling row (the grid has it on seed 0 only). Matrix products in full FP32 (no TF32), as on the CPU.
# Exit status: 0 when every run finished, 1 otherwise (the archive is written either way).
#
# Needs `.device/` from `python bench/device_pack.py` and the grid's code, its fixed commit 870c632 with one fix that
# only a GPU needs (c43d442: GLoDe's labels moved to the GPU; CPU runs unchanged), in .device/grid:
#     mkdir -p .device/grid && git archive 870c632 contproto_fastai bench/schedule.py | tar -x -C .device/grid
#     git show c43d442 -- contproto_fastai/glode.py | patch -d .device/grid -p1
# then, with a device: run(command="bash bench/gpu_schedule.sh", carry=[".device"], timeout_s=590)
# Writes $OUT/schedule_gpu.tar.gz (each run's results.json, config.json and log, laid out as the grid's
# runs/schedule/en-de/seed<k>/<row>), $OUT/grid.log and a one-line-per-run summary on stdout.
# DEADLINE (seconds, default 540) bounds the whole script: runs still going then are stopped (and not reported as finished).
# On a CPU (a check of the script, not a result):
#   DEVICE_CHECK=1 SEEDS=2 LIMITS="--src-limit 48 --dev-limit 16 --tgt-limit 32 --trace-test-limit 16 --teacher-epochs 1" EPOCHS=2 OUT=/tmp/o bash bench/gpu_schedule.sh
set -uo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
P=$PWD/.device; CODE=${CODE:-$P/grid}; OUT=${OUT:-$PWD/runs/gpu}; RUNS=${RUNS:-/tmp/schedule-gpu}; DEADLINE=${DEADLINE:-540}
export SEEDS=${SEEDS:-2 3} LIMITS=${LIMITS:-} EPOCHS=${EPOCHS:-}
SRC=en; TGT=de
[ -f "$CODE/bench/schedule.py" ] || { echo "no grid code in $CODE (see the head of this script)" >&2; exit 2; }
grep -q 'gather(1, labels\[:, None\].to(values.device))' "$CODE/contproto_fastai/glode.py" ||
    { echo "$CODE/contproto_fastai/glode.py lacks the GPU fix c43d442 (see the head of this script)" >&2; exit 2; }
rm -rf "$RUNS"; mkdir -p "$OUT" "$RUNS"          # a fresh run: nothing of an earlier call is reported as new
. bench/device_env.sh                             # wheels, GPU check, e5 file, data in $data
export data CODE
mkdir -p /tmp/bin && printf '#!/usr/bin/env python3\nimport sys\nfrom contproto_fastai.cli import main\nsys.argv[0] = "contproto-fit"\nmain()\n' > /tmp/bin/contproto-fit
chmod +x /tmp/bin/contproto-fit; export PATH=/tmp/bin:$PATH
(cd /tmp && python3 -c 'from contproto_fastai.e5 import e5_path; print("e5-small:", e5_path())') || exit 2   # convert once, not in each run; from /tmp: CODE's package, not the checkout's

left=$(( DEADLINE - ($(date +%s) - start) - 40 ))      # 40 s kept for the summary and the archive
[ "$left" -gt 60 ] || { echo "only $left s left of DEADLINE=$DEADLINE: nothing started" >&2; exit 1; }
echo "grid: seeds $SEEDS, $left s left at $(date -u +%T)"
(cd /tmp && timeout --signal=INT --kill-after=20 "$left" python3 - "$RUNS") <<'PY' 2>&1 | tee "$OUT/grid.log"
# the grid's own jobs and runner (bench/schedule.py of its fixed commit), its data path the unpacked pack, these seeds
import os, sys
from pathlib import Path
sys.path.insert(0, os.environ['CODE'] + '/bench')
import schedule as S
seeds, limits, epochs = [int(s) for s in os.environ['SEEDS'].split()], os.environ['LIMITS'].split(), os.environ['EPOCHS']
S.DATA['conll'] = Path(os.environ['data'])
grid = dict(S.GRID, targets=dict(de=dict(S.GRID['targets']['de'], seeds=seeds)), plots=set())
def patch(args, student):
    args = list(args)
    if student and epochs: args[args.index('--epochs') + 1] = epochs
    cut = len(args) - 2 if student else len(args)            # students end in '--teacher-from', None (the teacher's folder)
    return args[:cut] + ['--checkpoint-every', '0', '--checkpoint-size', 'weights'] + limits + args[cut:]
todo = [(f, patch(a, dep is not None), dep) for f, a, dep in S.jobs(grid, targets=['de']) if f.name != 'ceiling']
runs = Path(sys.argv[1])
(runs/'jobs.txt').write_text(''.join(f'{f}\n' for f, *_ in todo))     # what the summary below counts as expected
def run(part):
    "The grid's run_grid over `part`, all at once (it exits non-zero when a run failed: the others still count)."
    S.jobs = lambda *a, **k: part
    try: S.run_grid(runs, workers=max(len(part), 1))
    except SystemExit as e: print(e, flush=True)
run([j for j in todo if j[2] is None])     # teachers first (the grid's run_grid, at that commit, could start a row beside its teacher)
run([j for j in todo if j[2] is not None and S.finished(runs/j[2])])
PY
echo "grid exit ${PIPESTATUS[0]} after $(( $(date +%s) - start )) s"
python3 - "$RUNS" "$OUT" <<'PY'
# every run's small files (no weights) in one archive, then one line per run; exit 1 unless every run finished
import json, sys, tarfile
from pathlib import Path
runs, out = Path(sys.argv[1]), Path(sys.argv[2])
jobs = (runs/'jobs.txt').read_text().split() if (runs/'jobs.txt').exists() else []
dirs = [runs/j for j in jobs]
with tarfile.open(out/'schedule_gpu.tar.gz', 'w:gz') as tar:
    for f in sorted(runs.glob('en-de/seed*/*.log')) + [d/n for d in dirs for n in ('results.json', 'config.json')]:
        if f.exists(): tar.add(f, arcname=str(f.relative_to(runs)))
print('archive:', out/'schedule_gpu.tar.gz', f"{(out/'schedule_gpu.tar.gz').stat().st_size/1e3:.0f} kB")
done = 0
for d in dirs:
    try:
        if not d.is_dir(): print(f"{d.relative_to(runs)}: not started"); continue
        r = json.loads((d/'results.json').read_text()) if (d/'results.json').exists() else {}
        rel, t = d.relative_to(runs), (r.get('times') or {}).get('total') or 0
        if 'student' in r:
            c = r.get('pseudo_label_f1_curve') or [None]
            pf = ' -> '.join('—' if v is None else f"{100*v:.2f}" for v in (c[0], c[-1]))
            print(f"{rel}: student F1 {100*r['student']['f1']:.2f} (kept epoch {r.get('kept_epoch')}), pseudo-label F1 {pf}, {t:.0f} s"); done += 1
        elif 'teacher' in r and 'machine' in r:
            print(f"{rel}: teacher F1 {100*r['teacher']['f1']:.2f}, {t:.0f} s, {r['machine'].get('gpu', r['machine'].get('device'))}"); done += 1
        else: print(f"{rel}: not finished")
    except Exception as e: print(f"{d}: unreadable results ({e})")
print(f"{done} of {len(jobs)} runs finished")
sys.exit(not jobs or done < len(jobs))
PY
rc=$?
echo "total $(( $(date +%s) - start )) s"
exit $rc
