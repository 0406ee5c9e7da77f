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
# The paper's data scale, for one GPU (`bench/gpu_factors.sh`): all English train, all German train but the 200 held-out
# sentences, the full dev and test sets; the rows the 400-sentence grid points to (`--rows`), from one teacher.
PAPER_SCALE = dict(GRID, budget=['--tgt-limit', '11952', '--bs', '16', '--sortish', '50'],
                   student=['--teacher-epochs', '3', '--epochs', '10', '--student-init', 'teacher', '--trace-test',
                            '--trace-test-limit', '1000', '--tgt-heldout', '200'],
                   targets=dict(de=dict(data='conll', seeds=[0])))
GRIDS = dict(factors=GRID, paper=PAPER_SCALE)

# the pairs "a − b" (a ContProto row against no_proto under the same factors)
PAIRS = [('contproto', 'no_proto'), ('contproto_pre', 'no_proto_pre'), ('authors_pre', 'no_proto_pre'),
         ('authors_pre_ds', 'no_proto_pre_ds'), ('contproto_pre', 'contproto'), ('authors_pre_ds', 'authors_pre')]


# ---- tables: one tidy record per target, seed, row and epoch; every table below is a pivot of it -------------------
EPOCH_KEYS = ('pseudo_f1', 'span_f1', 'span_precision', 'span_recall', 'test_f1', 'dev_f1', 'model_differs', 'model_toward_gold',
              'model_from_gold', 'nearest_differs', 'nearest_toward_gold', 'nearest_from_gold', 'train_spans', 'heldout_model_differs',
              'heldout_model_toward_gold', 'heldout_model_from_gold', 'heldout_spans', 'entity_to_o', 'o_to_entity', 'entity_to_entity')


def _epoch_record(e, hist):
    "The tidy fields of one trace entry `e` (after epoch `e['epoch']`; `hist`: the run's student history)."
    ag = e.get('agreement') or {}
    tr, ho = ag.get('train') or {}, ag.get('heldout') or {}
    return dict(refined=e.get('refined'), pseudo_f1=_dig(e, ('pseudo', 'f1')), span_f1=_dig(e, ('span', 'f1')),
                span_precision=_dig(e, ('span', 'precision')), span_recall=_dig(e, ('span', 'recall')), test_f1=_dig(e, ('test', 'f1')),
                dev_f1=hist[e['epoch']].get('span_f1') if len(hist) > e['epoch'] else None,
                **{f'model_{k}': _dig(tr, ('model', k)) for k in ('differs', 'toward_gold', 'from_gold')},
                **{f'nearest_{k}': _dig(tr, ('nearest', k)) for k in ('differs', 'toward_gold', 'from_gold')},
                train_spans=tr.get('spans'), heldout_spans=ho.get('spans'),
                **{f'heldout_model_{k}': _dig(ho, ('model', k)) for k in ('differs', 'toward_gold', 'from_gold')},
                **{k: _dig(e, ('moves', k, 'n')) for k in S.MOVES})


def _dig(d, keys):
    "d[k0][k1]…, None where a level is missing."
    for k in keys: d = d.get(k) if isinstance(d, dict) else None
    return d


def _mean(xs, scale=100, fmt='{:.1f}'):
    "Mean of `xs` × `scale` (None left out), '' when none."
    xs = [scale * x for x in xs if x is not None]
    return fmt.format(sum(xs) / len(xs)) if xs else ''


def tidy(runs, grid=GRID):
    """`(runs, epochs)`: one record per finished student run (target, seed, row, test F1 of the kept epoch, kept epoch,
    zero-shot F1, student CPU minutes) and one per run and epoch (epoch 0: the teacher's labels), `EPOCH_KEYS` each."""
    rr, ee = [], []
    for t in grid['targets']:
        for seed, rs in sorted(S.load_runs(Path(runs), t).items()):
            for row, r in rs.items():
                if not r.get('trace'): continue
                key = dict(target=t, seed=seed, row=row)
                rr.append(dict(key, kept=r['student']['f1'], kept_epoch=r.get('kept_epoch'), zero_shot=(rs.get('teacher') or {}).get('teacher', {}).get('f1'),
                               cpu_min=(r.get('cpu_times') or {}).get('student', 0) / 60 or None))
                st = r.get('trace_start') or {}
                ee.append(dict(key, epoch=0, **{**dict.fromkeys(EPOCH_KEYS), 'pseudo_f1': _dig(st, ('pseudo', 'f1')), 'span_f1': _dig(st, ('span', 'f1')),
                                                 'span_precision': _dig(st, ('span', 'precision')), 'span_recall': _dig(st, ('span', 'recall'))}))
                ee += [dict(key, epoch=e['epoch'] + 1, **_epoch_record(e, r.get('student_history') or [])) for e in r['trace']]
    return rr, ee


def _vals(recs, **where):
    "The records matching every `where` field."
    return [r for r in recs if all(r.get(k) == v for k, v in where.items())]


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


def tables(rr, ee, command='python bench/factors.py run', grid=GRID, commit=None):
    "Markdown per target: rows (mean ± std over seeds), the pairs of `PAIRS` by seed, and every row epoch by epoch."
    ms, out = S.ms, {}
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
        for a, b in PAIRS:
            both = sorted({r['seed'] for r in _vals(runs_t, row=a)} & {r['seed'] for r in _vals(runs_t, row=b)})
            if not both: continue
            k = lambda row, s: _vals(runs_t, row=row, seed=s)[0]['kept']
            d = lambda f: [None if f(a, s) is None or f(b, s) is None else f(a, s) - f(b, s) for s in both]
            L.append(f"| {a} − {b} | {len(both)} | {ms(d(k))} | {ms(d(lambda row, s: _at(ee, t, s, row, -1).get('test_f1')))} | "
                     f"{ms(d(lambda row, s: _rise(ee, t, s, row, 'pseudo_f1')))} | {ms(d(lambda row, s: _rise(ee, t, s, row, 'span_f1')))} |")
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
        per = lambda row, s: dict(kept=_vals(runs_t, row=row, seed=s)[0]['kept'], last=_at(ee, t, s, row, -1).get('test_f1'),
                                  rise_entity=_rise(ee, t, s, row, 'pseudo_f1'), rise_span=_rise(ee, t, s, row, 'span_f1'),
                                  heldout_differs=_share(_at(ee, t, s, row, -1), 'heldout_model_differs', 'heldout_spans'),
                                  train_differs=_share(_at(ee, t, s, row, -1), 'model_differs', 'train_spans'))
        seeds = lambda row: sorted({r['seed'] for r in _vals(runs_t, row=row)})
        rows = {row: dict(n=len(seeds(row)), **{k: pts(per(row, s)[k] for s in seeds(row)) for k in per(row, seeds(row)[0])})
                for row in grid['rows'] if seeds(row)}
        pairs = {}
        for a, b in PAIRS:
            both = sorted(set(seeds(a)) & set(seeds(b)))
            if both: pairs[f'{a}-{b}'] = dict(n=len(both), **{k: pts(None if per(a, s)[k] is None or per(b, s)[k] is None else per(a, s)[k] - per(b, s)[k]
                                                                       for s in both) for k in ('kept', 'last', 'rise_entity', 'rise_span')})
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
    if a.data: S.DATA['conll'] = Path(a.data)
    if a.what == 'run':      # German's two seeds at 400 sentences first, then the 4x-data rows (3 CPU-hours each)
        S.run_grid(Path(a.runs), a.workers, grid=grid, todo=todo(grid, a.targets and a.targets.split(','), a.rows and a.rows.split(','),
                                                                  a.extra.split(), a.student_extra.split()))
    write_tables(Path(a.runs), a.results, grid, commit=a.commit)


def todo(grid, targets=None, rows=None, extra=(), student_extra=()):
    """The grid's jobs, target by target (`targets`: these), teachers and `rows` (None: all), `extra` options added to
    each run, `student_extra` to each student."""
    out = []
    for t in targets or grid['targets']:
        for f, args, dep in S.jobs(grid, [t]):
            if dep is not None and rows is not None and f.name not in rows: continue
            cut = len(args) - 2 if dep is not None else len(args)       # students end in '--teacher-from', None
            out.append((f, args[:cut] + list(extra) + (list(student_extra) if dep is not None else []) + args[cut:], dep))
    return out


if __name__ == '__main__': main()
