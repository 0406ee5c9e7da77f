"""Which difference from the authors' setup lets prototype refinement move the pseudo labels (the paper's Fig. 3)?
One factor at a time, German, 10-epoch students (1 warm-up + 9 refining) at the 10-epoch grid's budget
(`bench/schedule.py`), each factor's ContProto row paired by seed with `no_proto` under the same factors:

- `contproto`, `no_proto`: the 10-epoch grid's rows again (student from the teacher, soft cross-entropy, 400 target
  and 400 source sentences per epoch), with the trace's new fields;
- `*_pre`: the student starts from the pretrained encoder (the authors' `BertNER.from_pretrained`);
- `*_pre_ds`: and the authors' double-softmax target loss (`--tgt-loss double_softmax`), which binds the student
  loosely to its labels; `authors_pre_ds` is the closest replica of their released run short of data and encoder;
- target `de4x`: 4x the target (1,600) and source sentences per epoch (the memorisation reading), seed 0.

Every student keeps 200 further German train sentences out of training (`--tgt-heldout 200`): the trace compares the
student with the teacher's labels on them, against the same on its train spans (does the student memorise?).

    python bench/factors.py run [--workers 2]      # resumable; runs/factors/en-<t>/seed<k>/<row>
    python bench/factors.py tables                 # bench/results/factors_en-de.{md,json}, factors_en-de_fig3*.png
"""
import argparse, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import schedule as S

ROOT = S.ROOT
PRE, DS = ['--student-init', 'pretrained'], ['--tgt-loss', 'double_softmax']
GRID = dict(
    budget=S.GRID['budget'], teacher=S.GRID['teacher'], ceiling=False,
    student=S.GRID['student'] + ['--tgt-heldout', '200'],
    rows=dict(contproto_pre=['--ablation', 'contproto', *PRE], no_proto_pre=['--ablation', 'no_proto', *PRE],
              authors_pre=['--ablation', 'authors', *PRE],
              authors_pre_ds=['--ablation', 'authors', *PRE, *DS], no_proto_pre_ds=['--ablation', 'no_proto', *PRE, *DS],
              contproto=['--ablation', 'contproto'], no_proto=['--ablation', 'no_proto']),
    targets=dict(de=dict(data='conll', seeds=[0, 1]),
                 de4x=dict(data='conll', lang='de', seeds=[0], budget=['--tgt-limit', '1600'], student=['--student-src-limit', '1600'],
                           rows=['contproto', 'no_proto'])),
)
# the pairs "a − b" (a ContProto row against no_proto under the same factors)
PAIRS = [('contproto', 'no_proto'), ('contproto_pre', 'no_proto_pre'), ('authors_pre', 'no_proto_pre'),
         ('authors_pre_ds', 'no_proto_pre_ds'), ('contproto_pre', 'contproto'), ('authors_pre_ds', 'authors_pre')]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('what', choices=['run', 'tables'])
    p.add_argument('--runs', default=str(ROOT/'runs'/'factors')); p.add_argument('--results', default=str(ROOT/'bench'/'results'))
    p.add_argument('--workers', type=int, default=2); p.add_argument('--targets', default=None)
    a = p.parse_args(argv)
    if a.what == 'run':      # German's two seeds at 400 sentences first, then the 4x-data rows (3 CPU-hours each)
        targets = a.targets.split(',') if a.targets else list(GRID['targets'])
        S.run_grid(Path(a.runs), a.workers, grid=GRID, todo=[j for t in targets for j in S.jobs(GRID, [t])])


if __name__ == '__main__': main()
