#!/usr/bin/env bash
# German seeds of the 10-epoch schedule grid (bench/schedule.py) on one GPU, with the grid's own code and arguments:
# for each seed in SEEDS (default "2 3") the zero-shot teacher, then its six rows (vanilla, contproto, no_proto,
# fixed_margin, authors, glode) from that teacher, every run at once on the one GPU, one CPU thread each. No ceiling
# row (the grid has it on seed 0 only). Matrix products in full FP32 (no TF32), as on the CPU.
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
rm -rf "$RUNS"; mkdir -p "$OUT" "$RUNS"          # a fresh run: nothing of an earlier call is reported as new
. bench/device_env.sh                             # wheels, GPU check, e5 file, data in $data
export data CODE
mkdir -p /tmp/bin && printf '#!/usr/bin/env python3\nimport sys\nfrom contproto_fastai.cli import main\nsys.argv[0] = "contproto-fit"\nmain()\n' > /tmp/bin/contproto-fit
chmod +x /tmp/bin/contproto-fit; export PATH=/tmp/bin:$PATH
python3 -c 'from contproto_fastai.e5 import e5_path; print("e5-small:", e5_path())' || exit 2   # convert once, not in each run

left=$(( DEADLINE - ($(date +%s) - start) - 40 ))      # 40 s kept for the summary and the archive
echo "grid: seeds $SEEDS, $left s left at $(date -u +%T)"
timeout --signal=INT --kill-after=20 "$left" python3 - "$RUNS" <<'PY' 2>&1 | tee "$OUT/grid.log"
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
for part in ([j for j in todo if j[2] is None], [j for j in todo if j[2] is not None]):   # teachers, then their rows
    S.jobs = lambda targets=None: part       # (the grid's run_grid, at that commit, could start a row beside its teacher)
    S.run_grid(Path(sys.argv[1]), workers=len(part))
PY
echo "grid exit ${PIPESTATUS[0]} after $(( $(date +%s) - start )) s"
python3 - "$RUNS" "$OUT" <<'PY'
# one line per run, and every run's small files (no weights) in one archive
import json, sys, tarfile
from pathlib import Path
runs, out = Path(sys.argv[1]), Path(sys.argv[2])
with tarfile.open(out/'schedule_gpu.tar.gz', 'w:gz') as tar:
    for d in sorted(runs.glob('en-de/seed*/*')):
        if d.is_dir():
            for f in ('results.json', 'config.json'):
                if (d/f).exists(): tar.add(d/f, arcname=str(d.relative_to(runs)/f))
        elif d.suffix == '.log': tar.add(d, arcname=str(d.relative_to(runs)))
        if not d.is_dir(): continue
        r = json.loads((d/'results.json').read_text()) if (d/'results.json').exists() else {}
        rel, t = d.relative_to(runs), r.get('times', {}).get('total')
        if 'student' in r: print(f"{rel}: student F1 {100*r['student']['f1']:.2f} (kept epoch {r.get('kept_epoch')}), pseudo-label F1 {100*r['pseudo_label_f1_curve'][0]:.2f} -> {100*r['pseudo_label_f1_curve'][-1]:.2f}, {t:.0f} s")
        elif 'teacher' in r and 'machine' in r: print(f"{rel}: teacher F1 {100*r['teacher']['f1']:.2f}, {t:.0f} s, {r['machine'].get('gpu', r['machine'].get('device'))}")
        else: print(f"{rel}: not finished")
print('archive:', out/'schedule_gpu.tar.gz', f"{(out/'schedule_gpu.tar.gz').stat().st_size/1e3:.0f} kB")
PY
echo "total $(( $(date +%s) - start )) s"
