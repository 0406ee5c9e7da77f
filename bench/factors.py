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
    bash bench/gpu_factors.sh                      # the paper's data scale on one GPU (see its head)
"""
import argparse, json, sys
from dataclasses import replace
from pathlib import Path
from contproto_fastai.config import RunConfig, data_paths
from contproto_fastai.results import mean_std as ms
from contproto_fastai.grid import seed_jobs, options, run_grid, subprocess_runner, load_runs, tidy as tidy_epochs, run_records, where, paired

ROOT = Path(__file__).resolve().parent.parent
DATA = dict(conll=ROOT.parent/'shared'/'data'/'conll')
PRE, DS = dict(student_init='pretrained'), dict(tgt_loss='double_softmax')
# the 10-epoch grid's budget, teacher and students (bench/schedule.py's GRID; tests/test_bench.py checks they agree)
BUDGET = dict(src_limit=2000, dev_limit=500, tgt_limit=400, bs=16, sortish=50)
TEACHER = dict(teacher_epochs=3, epochs=0)
STUDENT = dict(teacher_epochs=3, epochs=10, student_src_limit=400, student_init='teacher', trace_test=True, trace_test_limit=1000)
GRID = dict(
    budget=BUDGET, teacher=TEACHER, ceiling=False,
    student=dict(STUDENT, tgt_heldout=200),
    rows=dict(contproto_pre=dict(ablation='contproto', **PRE), no_proto_pre=dict(ablation='no_proto', **PRE),
              authors_pre=dict(ablation='authors', **PRE),
              authors_pre_ds=dict(ablation='authors', **PRE, **DS), no_proto_pre_ds=dict(ablation='no_proto', **PRE, **DS),
              contproto=dict(ablation='contproto'), no_proto=dict(ablation='no_proto')),
    targets=dict(de=dict(data='conll', seeds=[0, 1]),
                 de4x=dict(data='conll', lang='de', seeds=[0], budget=dict(tgt_limit=1600), student=dict(student_src_limit=1600),
                           rows=['contproto', 'no_proto'])),
)
# The paper's data scale, for one GPU (`bench/gpu_factors.sh`): all English train, all German train but the 200 held-out
# sentences, the full dev and test sets; the rows the 400-sentence grid points to (`--rows`), from one teacher.
PAPER_SCALE = dict(GRID, budget=dict(tgt_limit=11952, bs=16, sortish=50),
                   student=dict(teacher_epochs=3, epochs=10, student_init='teacher', trace_test=True, trace_test_limit=1000, tgt_heldout=200),
                   targets=dict(de=dict(data='conll', seeds=[0])))
GRIDS = dict(factors=GRID, paper=PAPER_SCALE)


def jobs(grid, t):
    "Target `t`'s runs as `grid.Job`s: per seed (the first first) its teacher and a student per row (the target's own `rows`, if it names them) after it."
    spec = grid['targets'][t]
    base = RunConfig(**{**data_paths(DATA[spec['data']], 'en', spec.get('lang', t)), **grid['budget'], **spec.get('budget', {}), 'quiet': True})
    rows = {r: grid['rows'][r] for r in spec.get('rows', grid['rows'])}
    students = {row: {**grid['student'], **spec.get('student', {}), **f} for row, f in rows.items()}
    return [j for seed in spec['seeds'] for j in seed_jobs(f'en-{t}', seed, base, grid['teacher'], students)]


# the pairs "a − b" (a ContProto row against no_proto under the same factors)
PAIRS = [('contproto', 'no_proto'), ('contproto_pre', 'no_proto_pre'), ('authors_pre', 'no_proto_pre'),
         ('authors_pre_ds', 'no_proto_pre_ds'), ('contproto_pre', 'contproto'), ('authors_pre_ds', 'authors_pre')]


# ---- tables: one tidy record per target, seed, row and epoch (`grid.tidy`); every table below is a pivot of it ----------
def _mean(xs, scale=100, fmt='{:.1f}'):
    "Mean of `xs` × `scale` (None left out), '' when none."
    xs = [scale * x for x in xs if x is not None]
    return fmt.format(sum(xs) / len(xs)) if xs else ''


def tidy(runs, grid=GRID):
    """`(runs, epochs)` of the finished students under `runs` of `grid`'s targets: one record per run (`grid.run_records`)
    and one per run and epoch (`grid.tidy`; epoch 0: the teacher's labels)."""
    found = {n: r for n, r in load_runs(runs).items() if Path(n).parts[0].split('-', 1)[-1] in grid['targets']}
    return run_records(found), tidy_epochs(found)


_vals = where


def _at(ee, t, s, row, epoch):
    "The epoch record of one run (`epoch` -1: its last), or {}."
    rs = _vals(ee, target=t, seed=s, row=row)
    return (rs[epoch] if epoch < 0 else next((r for r in rs if r['epoch'] == epoch), {})) if rs else {}


def _rise(ee, t, s, row, key):
    "Rise of `key` over the refining epochs of one run: after the last epoch − after the warm-up epoch (epoch 1)."
    a, b = _at(ee, t, s, row, 1).get(key), _at(ee, t, s, row, -1).get(key)
    return None if a is None or b is None else b - a


def _share(r, k, n):
    return None if r.get(k) is None or not r.get(n) else r[k] / r[n]


PER_RUN = ('kept', 'last', 'rise_entity', 'rise_span', 'heldout_differs', 'train_differs')

def per_run(runs_t, ee, t):
    """One record per run of target `t` (`runs_t`: its run records), in seed order: kept and last test F1, both metrics'
    rise over the refining epochs, the held-out and train model ≠ label shares after the last epoch (`PER_RUN`)."""
    out = []
    for r in sorted(runs_t, key=lambda r: r['seed']):
        s, row, last = r['seed'], r['row'], _at(ee, t, r['seed'], r['row'], -1)
        out.append(dict(seed=s, row=row, kept=r['kept'], last=last.get('test_f1'), rise_entity=_rise(ee, t, s, row, 'pseudo_f1'),
                        rise_span=_rise(ee, t, s, row, 'span_f1'), heldout_differs=_share(last, 'heldout_model_differs', 'heldout_spans'),
                        train_differs=_share(last, 'model_differs', 'train_spans')))
    return out


def tables(rr, ee, command='python bench/factors.py run', grid=GRID, commit=None):
    "Markdown per target: rows (mean ± std over seeds), the pairs of `PAIRS` by seed, and every row epoch by epoch."
    out = {}
    for t in grid['targets']:
        runs_t = _vals(rr, target=t)
        if not runs_t: continue
        rows = [r for r in grid['rows'] if _vals(runs_t, row=r)]
        L = [f"# Which factor lets refinement move the pseudo labels: en → {t}", "", f"Command: `{command}`" + (f", code at commit {commit}" if commit else ''), "",
             "Two metrics of the pseudo labels, against the target train gold tags that training never reads:",
             "*entity F1* (seqeval, after the overlap decoding: what a tagger of these labels would score) and",
             "*span F1* (the argmax of every enumerated span, undecoded: **the metric of the paper's Fig. 3**, without its",
             "padding positions). Rise: after the last epoch − after the warm-up epoch (the 9 refining epochs). Test F1",
             "×100: *kept* (the epoch chosen on source dev, whole test set), *last* (the last epoch, the trace's 1,000",
             "test sentences). *model ≠ label*: target spans whose eval-mode model argmax differs from their label after the",
             "last epoch, as a share of the spans: on the train spans (against the refined table) and on 200 held-out",
             "target sentences never trained on (against the teacher's labels).", "",
             "| row | n | test F1 kept | last | entity F1 warm-up → end | rise | span F1 warm-up → end | rise | model ≠ label: train | held-out | student CPU min |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
        for row in rows:
            rs = _vals(runs_t, row=row); seeds = [r['seed'] for r in rs]
            last = [_at(ee, t, s, row, -1) for s in seeds]; warm = [_at(ee, t, s, row, 1) for s in seeds]
            L.append(f"| {row} | {len(rs)} | {ms([r['kept'] for r in rs])} | {ms([x.get('test_f1') for x in last])} | "
                     f"{ms([x.get('pseudo_f1') for x in warm])} → {ms([x.get('pseudo_f1') for x in last])} | {ms([_rise(ee, t, s, row, 'pseudo_f1') for s in seeds])} | "
                     f"{ms([x.get('span_f1') for x in warm])} → {ms([x.get('span_f1') for x in last])} | {ms([_rise(ee, t, s, row, 'span_f1') for s in seeds])} | "
                     f"{ms([_share(x, 'model_differs', 'train_spans') for x in last], 100, '{:.2f}')}% | "
                     f"{ms([_share(x, 'heldout_model_differs', 'heldout_spans') for x in last], 100, '{:.2f}')}% | {ms([r['cpu_min'] for r in rs], 1, '{:.0f}')} |")
        L += ["", "Paired by seed (same teacher and pseudo labels), *a − b* ×100 (positive: *a* higher), mean ± std over the",
              "seeds where both finished (n):", "",
              "| a − b | n | test F1 kept | last | entity F1 rise | span F1 rise |", "|---|---|---|---|---|---|"]
        per = per_run(runs_t, ee, t)
        for a, b in PAIRS:
            d = lambda k: list(paired(per, a, b, k).values())
            if not d('kept'): continue
            L.append(f"| {a} − {b} | {len(d('kept'))} | {ms(d('kept'))} | {ms(d('last'))} | {ms(d('rise_entity'))} | {ms(d('rise_span'))} |")
        for row in rows:
            seeds = [r['seed'] for r in _vals(runs_t, row=row)]
            L += ["", f"## {row}: epoch by epoch (mean over {len(seeds)} seed{'s' * (len(seeds) > 1)})", "",
                  "Epoch 0: the teacher's labels. Changes: span argmaxes the epoch changed. *nearest ≠ label*: train spans whose",
                  "nearest prototype (eval mode, after the epoch) differs from their label, and of those how many point to the",
                  "gold class / away from a correct label; *model ≠ label* the same for the model's argmax; held-out: the model",
                  "against the teacher's labels on sentences never trained on.", "",
                  "| epoch | entity F1 | span F1 (paper) | span P / R | O→ent / ent→O / ent→ent | nearest ≠ label: toward / from gold | model ≠ label: toward / from gold | held-out model ≠ label: toward / from gold | test F1 | dev F1 |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
            n_ep = max(r['epoch'] for r in _vals(ee, target=t, row=row))
            for ep in range(n_ep + 1):
                es = [_at(ee, t, s, row, ep) for s in seeds]
                m = lambda k, sc=100, fmt='{:.1f}': _mean([x.get(k) for x in es], sc, fmt)
                trio = lambda p: f"{m(p + 'differs', 1, '{:.0f}')}: {m(p + 'toward_gold', 1, '{:.0f}')} / {m(p + 'from_gold', 1, '{:.0f}')}" if m(p + 'differs', 1) else ''
                L.append(f"| {ep} | {m('pseudo_f1')} | {m('span_f1')} | {m('span_precision')} / {m('span_recall')} | "
                         f"{m('o_to_entity', 1, '{:.0f}')} / {m('entity_to_o', 1, '{:.0f}')} / {m('entity_to_entity', 1, '{:.0f}')} | "
                         f"{trio('nearest_')} | {trio('model_')} | {trio('heldout_model_')} | {m('test_f1')} | {m('dev_f1')} |")
        out[t] = '\n'.join(L) + '\n'
    return out


def write_tables(runs, results, grid=GRID, command='python bench/factors.py run', commit=None):
    "`factors_en-<t>.md`, one JSON of every tidy record, and Fig. 3 in both metrics per target."
    from contproto_fastai.plots import plot_pseudo_f1
    results = Path(results); results.mkdir(parents=True, exist_ok=True)
    rr, ee = tidy(runs, grid)
    old = results/'factors.json'          # runs recorded there whose folders are gone (another machine, a lost disk) stay
    if old.exists():
        prev, have = json.loads(old.read_text()), {(r['target'], r['seed'], r['row']) for r in rr}
        key = lambda r: (r['target'], r['seed'], r['row'])
        rr += [r for r in prev['runs'] if key(r) not in have]; ee += [r for r in prev['epochs'] if key(r) not in have]
        commit = commit or prev.get('commit')
    for t, md in tables(rr, ee, command, grid, commit).items():
        (results/f'factors_en-{t}.md').write_text(md)
        for key, name, what in (('pseudo_f1', 'fig3', 'entity F1, decoded'), ('span_f1', 'fig3_span', "span F1, undecoded: the paper's Fig. 3 metric")):
            curves = {row: [[x[key] for x in sorted(_vals(ee, target=t, seed=s, row=row), key=lambda x: x['epoch'])] for s in sorted({x['seed'] for x in _vals(ee, target=t, row=row)})]
                      for row in grid['rows'] if _vals(ee, target=t, row=row)}
            plot_pseudo_f1(curves, results/f'factors_en-{t}_{name}.png', title=f'Pseudo labels, en → {t}: {what}', ylabel=key.replace('_', ' '))
    (results/'factors.json').write_text(json.dumps(dict(command=command, commit=commit, summary=summary(rr, ee, grid), runs=rr, epochs=ee), indent=0))


def summary(rr, ee, grid=GRID):
    """What README and the results chapter quote (means over seeds, in points): per target and row its n, kept and
    last test F1, both metrics' rise over the refining epochs and the held-out / train model ≠ label shares after the
    last epoch; per pair of `PAIRS` (key 'a-b') the paired differences of those over the seeds where both finished."""
    pts = lambda xs: (lambda v: 100 * sum(v) / len(v) if v else None)([x for x in xs if x is not None])
    out = {}
    for t in grid['targets']:
        runs_t = _vals(rr, target=t)
        if not runs_t: continue
        per = per_run(runs_t, ee, t)
        seeds = lambda row: [r['seed'] for r in _vals(per, row=row)]
        rows = {row: dict(n=len(seeds(row)), **{k: pts(r[k] for r in _vals(per, row=row)) for k in PER_RUN})
                for row in grid['rows'] if seeds(row)}
        pairs = {}
        for a, b in PAIRS:
            d = {k: paired(per, a, b, k) for k in ('kept', 'last', 'rise_entity', 'rise_span')}
            if d['kept']: pairs[f'{a}-{b}'] = dict(n=len(d['kept']), **{k: pts(v.values()) for k, v in d.items()})
        out[t] = dict(rows=rows, pairs=pairs)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('what', choices=['run', 'tables'])
    p.add_argument('--runs', default=str(ROOT/'runs'/'factors')); p.add_argument('--results', default=str(ROOT/'bench'/'results'))
    p.add_argument('--workers', type=int, default=2); p.add_argument('--targets', default=None)
    p.add_argument('--commit', help="tables: the commit the runs' code was at (named in each table)")
    p.add_argument('--grid', choices=list(GRIDS), default='factors', help="'factors' (400 sentences, CPU) or 'paper' (the paper's data scale, GPU)")
    p.add_argument('--rows', help='run: only these rows (comma-separated; teachers always)')
    p.add_argument('--extra', default='', help="run: options added to every run (e.g. '--bs 32', or tiny limits for a check)")
    p.add_argument('--data', help='the CoNLL data folder (default: ../shared/data/conll)')
    p.add_argument('--student-extra', default='', help="run: options added to every student (e.g. '--epochs 2' for a check)")
    a = p.parse_args(argv)
    grid = GRIDS[a.grid]
    if a.data: DATA['conll'] = Path(a.data)
    if a.what == 'run':      # German's two seeds at 400 sentences first, then the 4x-data rows (3 CPU-hours each)
        try: run_grid(todo(grid, a.targets and a.targets.split(','), a.rows and a.rows.split(','), a.extra.split(), a.student_extra.split()),
                      a.runs, a.workers, subprocess_runner)
        except RuntimeError as e: sys.exit(str(e))
    write_tables(Path(a.runs), a.results, grid, commit=a.commit)


def todo(grid, targets=None, rows=None, extra=(), student_extra=()):
    """The grid's jobs, target by target (`targets`: these), teachers and `rows` (None: all), the fields of the
    `contproto-fit` options `extra` set in each run, those of `student_extra` in each student."""
    extra, student_extra = options(extra), options(student_extra)
    return [replace(j, config=replace(j.config, **{**extra, **(student_extra if j.after else {})}))
            for t in targets or grid['targets'] for j in jobs(grid, t) if j.after is None or rows is None or j.key[2] in rows]


if __name__ == '__main__': main()
