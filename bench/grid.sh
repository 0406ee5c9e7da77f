#!/usr/bin/env bash
# The six-target grid of issue 12 with the default encoder (e5-small): bench/results/reproduce_en-<tgt>-e5.{md,json,png}.
# Resumable: run the same command again and every finished run is skipped, an interrupted one resumed.
#
#   RUNS=runs/reproduce RESULTS=bench/results bash bench/grid.sh [STAGE...]     # stages: 1 2 3 (default: all, in order)
#
# One budget for every row of every target: 2,000 source sentences (CoNLL English or WikiAnn English train), 500 source
# dev sentences (model selection), 2,000 unlabelled target train sentences, the whole target test set, teacher 3 epochs,
# students 2 epochs (warm-up 1 + 1 epoch of refinement: the fewest that let prototypes refine anything), batches 16+16,
# length-grouped batches (--sortish 50), students start from their teacher, max span length 4 words (the authors'
# `max_spanLen=4` for every language). An epoch is one pass over the source sentences, so a larger source set costs
# teacher and students alike; 2,000 is what fits about 14 CPU-hours with the rows below.
#   stage 1: seed 0, zero-shot / vanilla / contproto / authors and the ceiling, for all six targets
#   stage 2: seeds 1 and 2 of the main rows for German and Hindi (the WikiAnn target with 3 seeds)
#   stage 3: the five Table 3 ablations on German, seeds 0 and 1
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs/reproduce}; RESULTS=${RESULTS:-bench/results}
BUDGET=(--src-limit 2000 --dev-limit 500 --tgt-limit 2000 --teacher-epochs 3 --epochs 2 --bs 16 --student-init teacher --sortish 50)
data() { case $1 in de|es|nl) echo ../shared/data/conll;; *) echo ../shared/data/wikiann;; esac; }
rep() {   # rep TGT REPRODUCE-OPTIONS...
    local t=$1; shift
    python bench/reproduce.py --name en-$t-e5 --runs "$RUNS" --results "$RESULTS" "$@" -- --data "$(data "$t")" --src en --tgt "$t" "${BUDGET[@]}"
}
stage() {
    case $1 in
        1) for t in de es nl ar hi zh; do rep "$t" --seeds 0 --rows vanilla,contproto,authors,ceiling; done;;
        2) for t in de hi; do rep "$t" --seeds 0,1,2 --rows vanilla,contproto,authors,ceiling; done;;
        3) rep de --seeds 0,1,2 --ablation-seeds 0,1 --rows vanilla,contproto,authors,ceiling,no_proto,no_proto_no_cl,no_reg,fixed_margin,proto_no_cl;;
        *) echo "unknown stage $1 (1, 2 or 3)" >&2; exit 2;;
    esac
}
stages=("$@"); [ ${#stages[@]} -gt 0 ] || stages=(1 2 3)
for s in "${stages[@]}"; do stage "$s"; done
