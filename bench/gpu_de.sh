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
# On a CPU (a check of the script, not a result): DEVICE_CHECK=1 EPOCHS=1 LIMITS="--src-limit 64 --dev-limit 32 --tgt-limit 64 --test-limit 64" OUT=/tmp/o bash bench/gpu_de.sh
set -uo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
P=$PWD/.device; OUT=${OUT:-$PWD/runs/gpu}; RUNS=${RUNS:-/tmp/contproto-gpu}; EPOCHS=${EPOCHS:-10}; DEADLINE=${DEADLINE:-540}
mkdir -p "$OUT" "$RUNS"
[ -f "$P/e5-small.bin" ] || { echo "no $P/e5-small.bin: run python bench/device_pack.py first" >&2; exit 2; }
if [ -z "${DEVICE_CHECK:-}" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$P"/whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
else
    export PYTHONPATH=$PWD
fi
export CONTPROTO_E5_FILE=$P/e5-small.bin CONTPROTO_CACHE=/tmp/contproto-cache PYTHONUNBUFFERED=1
export TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1 PYTHONWARNINGS=ignore TOKENIZERS_PARALLELISM=false
data=/tmp/contproto-data/conll
python3 -c 'import lzma, sys; from pathlib import Path
for f in Path(sys.argv[1]).glob("*/*.xz"): d = Path(sys.argv[2])/f.parent.name; d.mkdir(parents=True, exist_ok=True); (d/f.stem).write_bytes(lzma.decompress(f.read_bytes()))' "$P/data/conll" "$data"
ARGS=(--data "$data" --src en --tgt de --epochs "$EPOCHS" --bs 16 --quiet ${LIMITS:-})
left() { echo $(( DEADLINE - ($(date +%s) - start) )); }
fit() { timeout --signal=INT --kill-after=20 "$(left)" python3 -c 'import sys; from contproto_fastai.cli import main; sys.argv[0] = "contproto-fit"; main()' "$@"; }

python3 -c 'import torch, transformers, fastai; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "transformers", transformers.__version__, "fastai", fastai.__version__)'
echo "[teacher] $(date -u +%T)"
fit "${ARGS[@]}" --epochs 0 --teacher-epochs "$EPOCHS" --out "$RUNS/teacher" > "$OUT/teacher.log" 2>&1
echo "teacher exit $? after $(( $(date +%s) - start )) s"; tail -3 "$OUT/teacher.log"
for row in vanilla contproto authors; do
    echo "[$row] $(date -u +%T)"
    fit "${ARGS[@]}" --ablation "$row" --teacher-from "$RUNS/teacher" --out "$RUNS/$row" > "$OUT/$row.log" 2>&1 &
done
wait
echo "students done after $(( $(date +%s) - start )) s"
python3 - "$RUNS" "$OUT" "$data" "${ARGS[*]}" <<'EOF'
import json, sys
from pathlib import Path
sys.path.insert(0, 'bench')
from reproduce import table
runs, out, data, args = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4].split()
load = lambda d: json.loads((runs/d/'results.json').read_text()) if (runs/d/'results.json').exists() else None
teacher, rows = load('teacher'), {r: load(r) for r in ('vanilla', 'contproto', 'authors')}
done = {r: v for r, v in rows.items() if v and 'student' in v}
print('not finished:', [r for r in rows if r not in done] or 'none', '; teacher', 'finished' if teacher else 'NOT finished')
if teacher and 'vanilla' in done: done['vanilla']['times']['teacher'] = teacher['times']['teacher']   # the teacher's own training time
gpu = (out/'gpu.txt').read_text().strip() if (out/'gpu.txt').exists() else 'no GPU (a check of the script)'
if done:
    md = table({0: done}, f"en-de-e5 at the paper's budget on {gpu}", args, 'bash bench/gpu_de.sh', 'de')
    md += "\nThe three students trained at the same time on the one GPU: each wall time is shared, not exclusive.\n"
    print(md); (out/'gpu_en-de-e5.md').write_text(md)
(out/'gpu_en-de-e5.json').write_text(json.dumps(dict(gpu=gpu, args=args, teacher=teacher, runs=rows), indent=1, default=str))
EOF
echo "total $(( $(date +%s) - start )) s"
