#!/usr/bin/env bash
# The refinement pilot (bench/pilot.py): the README command's teacher, then 5-epoch German students (1 warm-up + 4
# refining) under different refinement choices, two one-thread processes at a time. Resumable.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs/pilot}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
DATA=(--data ../shared/data/conll --src en --tgt de --teacher-epochs 3 --src-limit 1000 --dev-limit 500 --tgt-limit 1000 --sortish 50 --quiet)
run() {   # run NAME ARGS...: fit into $RUNS/NAME, resumed if interrupted, skipped if finished
    local name=$1; shift
    if [ -f "$RUNS/$name/results.json" ] && grep -q '"machine"' "$RUNS/$name/results.json"; then return; fi
    if [ -f "$RUNS/$name/config.json" ]; then contproto-fit --resume "$RUNS/$name" --quiet; else contproto-fit "${DATA[@]}" "$@" --out "$RUNS/$name"; fi > "$RUNS/$name.log" 2>&1
}
mkdir -p "$RUNS"
run teacher --epochs 0
S=(--epochs 5 --student-init teacher --teacher-from "$RUNS/teacher")
run A_contproto "${S[@]}" --ablation contproto & run B_authors "${S[@]}" --ablation authors & wait
run C_beta_schedule "${S[@]}" --ablation contproto --beta 0.95,0.8 & run D_fresh_student --epochs 5 --student-init pretrained --teacher-from "$RUNS/teacher" --ablation contproto & wait
python bench/pilot.py --runs "$RUNS"
