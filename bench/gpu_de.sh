#!/usr/bin/env bash
# The German main rows at the paper's budget on one GPU (issue 12, §4): all 14,041 CoNLL English train sentences, all
# 12,152 German train sentences (unlabelled), the full English dev (model selection) and German test sets, teacher and
# students EPOCHS epochs (default 10), batches 16 + 16, random batches, students from the pretrained encoder (paper),
# encoder multilingual-e5-small. Rows: zero-shot (the teacher), vanilla self-training, ContProto (paper preset),
# ContProto (authors' preset); the three students share the teacher and train at the same time on the one GPU.
#
# Needs `.device/` from `python bench/device_pack.py` (pruned e5 file, data, wheels: the GPU machine has neither PyPI
# nor ../shared). With the device tool:
#     run(command="bash bench/gpu_de.sh", carry=[".device"], timeout_s=590)
# Writes $OUT/gpu_en-de-e5.md and .json (the table, GPU name, wall times) and one log per run.
# DEADLINE (seconds, default 540) bounds the whole script: a run still going then is stopped and reported as such.
# On a CPU (a check of the script, the wheels' install included; not a result): DEVICE_CHECK=1 EPOCHS=1 LIMITS="--src-limit 64 --dev-limit 32 --tgt-limit 64 --test-limit 64" OUT=/tmp/o bash bench/gpu_de.sh
set -uo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
P=$PWD/.device; OUT=${OUT:-$PWD/runs/gpu}; RUNS=${RUNS:-/tmp/contproto-gpu}; EPOCHS=${EPOCHS:-10}; DEADLINE=${DEADLINE:-540}
SRC=${SRC:-en}; TGT=${TGT:-de}
rm -rf "$RUNS"; mkdir -p "$OUT" "$RUNS"          # a fresh run: nothing of an earlier call is reported as new
. bench/device_env.sh                                   # wheels, GPU check, e5 file, data in $data
export TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1
ARGS=(--data "$data" --src "$SRC" --tgt "$TGT" --epochs "$EPOCHS" --bs 16 --quiet --checkpoint-every 0 --checkpoint-size weights ${LIMITS:-})   # one run, no resume: small, rare checkpoints
left() { echo $(( DEADLINE - ($(date +%s) - start) )); }
fit() {   # fit LOG ARGS...: contproto-fit under what is left of the deadline (none left: not started)
    local log=$1 l; shift; l=$(left)
    if [ "$l" -le 30 ]; then echo "deadline reached: not started" > "$log"; return 124; fi
    timeout --signal=INT --kill-after=20 "$l" python3 -c 'import sys; from contproto_fastai.cli import main; sys.argv[0] = "contproto-fit"; main()' "$@" > "$log" 2>&1
}

echo "[teacher] $(date -u +%T)"
fit "$OUT/teacher.log" "${ARGS[@]}" --epochs 0 --teacher-epochs "$EPOCHS" --out "$RUNS/teacher"; rc=$?
echo "teacher exit $rc after $(( $(date +%s) - start )) s"; tail -n 3 "$OUT/teacher.log"
declare -A pid
if [ $rc -eq 0 ] && [ -f "$RUNS/teacher/pseudo_labels.pt" ]; then
    for row in vanilla contproto authors; do
        echo "[$row] $(date -u +%T)"
        fit "$OUT/$row.log" "${ARGS[@]}" --ablation "$row" --teacher-from "$RUNS/teacher" --out "$RUNS/$row" &
        pid[$row]=$!
    done
    for row in vanilla contproto authors; do wait "${pid[$row]}"; echo "$row exit $?"; done
else echo "no teacher: students not started"; fi
echo "students done after $(( $(date +%s) - start )) s"
python3 - "$RUNS" "$OUT" "${ARGS[*]}" <<'EOF'
import json, sys, traceback
from pathlib import Path
sys.path.insert(0, 'bench')
from reproduce import table
runs, out, args = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].split()
load = lambda d: json.loads((runs/d/'results.json').read_text()) if (runs/d/'results.json').exists() else None
teacher, rows = load('teacher'), {r: load(r) for r in ('vanilla', 'contproto', 'authors')}
done = {r: v for r, v in rows.items() if v and 'student' in v}
gpu = (out/'gpu.txt').read_text().strip() if (out/'gpu.txt').exists() else 'no GPU (a check of the script)'
print('finished:', ', '.join(['teacher'] * bool(teacher and 'machine' in teacher) + list(done)) or 'nothing')
try:
    t_time = (teacher or {}).get('times', {}).get('teacher')
    if t_time is not None and 'vanilla' in done:       # the teacher's own training time (vanilla only loaded it)
        v = done['vanilla']; v['times']['teacher'] = t_time
        v.setdefault('cpu_times', {})['teacher'] = teacher.get('cpu_times', {}).get('teacher')
        v['times_unknown'] = [k for k in v.get('times_unknown', []) if k != 'teacher'] + [k for k in teacher.get('times_unknown', []) if k == 'teacher']
    md = table({0: done}, f"en-de-e5 at the paper's budget on {gpu}", args, 'bash bench/gpu_de.sh', 'de') if done else ''
    if teacher and 'teacher' in teacher and 'vanilla' not in done:
        md += f"\nzero-shot (teacher) target test F1 {100 * teacher['teacher']['f1']:.2f} (training {t_time or 0:.0f} s); vanilla did not finish.\n"
    md += ("\nThe three students trained at the same time on the one GPU: each wall time is shared, not exclusive. "
           "Matrix products in TF32 (TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1).\n")
    print(md); (out/'gpu_en-de-e5.md').write_text(md)
except Exception: traceback.print_exc()
(out/'gpu_en-de-e5.json').write_text(json.dumps(dict(gpu=gpu, args=args, tf32=True, teacher=teacher, runs=rows), indent=1, default=str))
EOF
echo "total $(( $(date +%s) - start )) s"
