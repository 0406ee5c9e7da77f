"""The paper's student schedule (§4.1: 10 epochs, 1 warm-up + 9 with prototype refinement) with the default encoder,
refinement traced epoch by epoch, on German (4 seeds), Arabic and Chinese (seed 0), the three targets where the paper's
Fig. 3 shows pseudo-label F1 rising most. The grid is data (`GRID` below: the fields of a `RunConfig` each run sets,
made into `grid.Job`s by `jobs`); `grid.run_grid` runs each in its own folder and process, so the grid resumes where it
stopped (a finished run is skipped, an interrupted one resumed).

    python bench/schedule.py run [--workers 2] [--targets de,ar,zh]   # resumable; runs/schedule/en-<t>/seed<k>/<row>
    python bench/schedule.py tables                                   # bench/results/schedule_en-<t>.{md,json,_fig3.png,_fig3_rise.png}
    python bench/schedule.py repeat --runs A --again B --seed 2       # one seed run twice: schedule_repeat_en-de.{md,json}

German seeds 2 and 3 ran on one GPU (`bench/gpu_schedule.sh`: the grid's code and arguments, the two teachers and then
their twelve rows at once); the tables say which seed ran on which machine.

Two one-thread processes share the 2-core machine (1.31x the throughput of one two-thread process, measured for the
two-epoch grid); every row of a seed starts from that seed's teacher (`teacher_from`), which a teacher-only run
(`epochs=0`) trains first. The tables read only the runs' results.json: each student run records its trace (see
`contproto_fastai.diagnostics`), so nothing is re-encoded here.
"""
import argparse, json, shutil, statistics, sys
from pathlib import Path
from contproto_fastai.config import RunConfig, data_paths
from contproto_fastai.results import mean_std
from contproto_fastai.grid import (seed_jobs, run_grid, subprocess_runner, in_process, load_runs, job_key, tidy, where, machines,
                                   paired, PAPER, MOVES)

ROOT = Path(__file__).resolve().parent.parent
DATA = dict(conll=ROOT.parent/'shared'/'data'/'conll', wikiann=ROOT.parent/'shared'/'data'/'wikiann')
GRID = dict(
    # data sizes: see README ("The paper's student schedule"); every run of every target uses the same
    # (the teacher and ceiling with the options of the two-epoch grid, bench/grid.sh; one torch thread here)
    budget=dict(src_limit=2000, dev_limit=500, tgt_limit=400, bs=16, sortish=50),
    teacher=dict(teacher_epochs=3, epochs=0),
    student=dict(teacher_epochs=3, epochs=10, student_src_limit=400, student_init='teacher', trace_test=True, trace_test_limit=1000),
    targets=dict(de=dict(data='conll', seeds=[0, 1, 2, 3]),   # German 2, 3: on one GPU, bench/gpu_schedule.sh
                 ar=dict(data='wikiann', seeds=[0]), zh=dict(data='wikiann', seeds=[0])),
    rows={row: dict(ablation=row) for row in ('vanilla', 'contproto', 'no_proto', 'fixed_margin', 'authors', 'glode')},
    extra=dict(zh=dict(contproto_tgt8=dict(ablation='contproto', tgt_max_span_len=8))),   # seed 0 only
    plots={('de', 0, 'vanilla'), ('de', 0, 'contproto')},                                # t-SNE (Fig. 2)
)
# the paired differences "a − b" of the tables (positive: `a` scored higher), the questions of the item 7
DIFFS = [('contproto', 'vanilla'), ('contproto', 'no_proto'), ('contproto', 'fixed_margin'), ('glode', 'contproto'),
         ('authors', 'contproto')]


def base_config(t, spec, grid=GRID):
    """Target `t`'s data and the grid's budget: a data folder (`data`, language `lang`, default `t`), or four files
    (`files`: the smoke grid) with more fields (`config`); the spec's `budget` fields win over the grid's."""
    files = ({k: str(Path(v).resolve()) for k, v in spec['files'].items()} if 'files' in spec
             else data_paths(DATA[spec['data']], 'en', spec.get('lang', t)))
    return RunConfig(**{**files, **spec.get('config', {}), **grid['budget'], **spec.get('budget', {}), 'quiet': True})


def jobs(grid=GRID, targets=None):
    """Every run of `grid` as a `Job`, in the order they should start: each target's first seed, then the other seeds.
    Per seed a teacher, on the first seed the ceiling (none if the grid says `ceiling=False`), and a student per row
    (the target's `rows` if it picks them, the grid's `extra` rows on the first seed) after that teacher. A target's
    `student` fields win over the grid's, a row's over both."""
    first, later = [], []
    for t, spec in grid['targets'].items():
        if targets and t not in targets: continue
        base = base_config(t, spec, grid)
        for k, seed in enumerate(spec['seeds']):
            rows = {r: grid['rows'][r] for r in spec['rows']} if 'rows' in spec else dict(grid['rows'])
            rows.update(grid.get('extra', {}).get(t, {}) if k == 0 else {})
            students = {row: {**grid['student'], **spec.get('student', {}), **f, 'plots': (t, seed, row) in grid.get('plots', ())}
                        for row, f in rows.items()}
            (first if k == 0 else later).extend(seed_jobs(f'en-{t}', seed, base, grid['teacher'], students,
                                                          ceiling=k == 0 and grid.get('ceiling', True)))
    return first + later


# ---- tables ---------------------------------------------------------------------------------------------------------
ms = mean_std


def by_target(runs):
    "{target: {seed: {row: results dict}}} of `runs` ({name: results}: `grid.load_runs`), seeds and rows in name order."
    out = {}
    for name, r in sorted(runs.items(), key=lambda x: Path(x[0]).parts):
        t, seed, row = job_key(name)
        out.setdefault(t, {}).setdefault(seed, {})[row] = r.to_dict()
    return out


def runs_tidy(by_seed, t):
    "`grid.tidy`'s detailed records of target `t`'s runs ({seed: {row: results}})."
    return tidy({f'en-{t}/seed{s}/{row}': r for s, rs in by_seed.items() for row, r in rs.items()}, detail=True)


def _epochs(ee, seed, row):
    "The tidy records of one run in epoch order (0: the teacher's labels); [] for a run without a trace."
    return sorted(where(ee, seed=seed, row=row), key=lambda x: x['epoch'])


def _end(ee, seed, row, key):
    "`key` of one run's last epoch (`test_f1`: on the trace's test subset); None without a trace."
    es = _epochs(ee, seed, row)
    return es[-1][key] if es else None


def _on_gpu(r):
    "Whether a run's results say it ran on a GPU."
    return str((r.get('machine') or {}).get('device', 'cpu')).startswith('cuda')


def target_table(t, by_seed, command, grid=GRID, ans=None):
    """Markdown for target `t`: main table, paired differences, per-epoch trace of every row, flippable labels.
    `ans`: this target's entry of `answer` when the caller has it already (the paired differences are read from it)."""
    rows = [r for r in list(grid['rows']) + list(grid['extra'].get(t, {})) if any(r in rs for rs in by_seed.values())]
    seeds = sorted(by_seed)
    paper = PAPER.get(t, {})
    d = ans or answer({t: by_seed}, grid)[t]
    ee = runs_tidy(by_seed, t)
    L = [f"# The paper's student schedule: en → {t}", "", f"Command: `{command}`", ""]
    L += ["Machine(s): " + '; '.join(f"seed{'s' * (len(ss) > 1)} {', '.join(map(str, ss))}: {m}" for m, ss in machines((s, r) for s, rs in by_seed.items() for r in rs.values()).items()), ""]
    if d['gpu_seeds']:
        L += ["Seeds on a GPU: one call of `bash bench/gpu_schedule.sh` trained their teachers, then all their rows at once, in FP32.",
              "GPU runs are not bit-reproducible: the same seed run twice gives other numbers (`schedule_repeat_en-*.md`).", ""]
    L += ["Target test entity F1 ×100 (seqeval), mean ± std over the seeds that finished (n). *kept*: the epoch chosen by",
          "source dev span F1 (what the run reports), on the whole test set; *last*: the last epoch's model, after every",
          "refining epoch, on the trace's fixed test subset (analysis only). Pseudo-label F1 (against the target train",
          "gold tags that training never reads): the teacher's labels → after the warm-up epoch → after the last epoch.", "",
          "| row | n | test F1 (kept) | P | R | kept epochs | test F1 (last) | pseudo-label F1 teacher → warm-up → end | paper |",
          "|---|---|---|---|---|---|---|---|---|"]
    teach = [rs['teacher']['teacher'] for rs in by_seed.values() if 'teacher' in rs]
    if teach:
        L.append(f"| zero-shot (teacher) | {len(teach)} | {ms([x['f1'] for x in teach])} | {ms([x['precision'] for x in teach])} | "
                 f"{ms([x['recall'] for x in teach])} | | | | — |")
    for row in rows:
        rs = [by_seed[s][row] for s in seeds if row in by_seed[s]]
        if not rs: continue
        st = [r['student'] for r in rs]
        last = [_end(ee, s, row, 'test_f1') for s in seeds if row in by_seed[s]]
        pf = [[x['pseudo_f1'] for x in _epochs(ee, s, row)] or [None] for s in seeds if row in by_seed[s]]
        pf_s = f"{ms([c[0] for c in pf])} → {ms([c[1] if len(c) > 1 else None for c in pf])} → {ms([c[-1] for c in pf])}"
        L.append(f"| {row} | {len(rs)} | {ms([x['f1'] for x in st])} | {ms([x['precision'] for x in st])} | {ms([x['recall'] for x in st])} | "
                 f"{', '.join(str(r.get('kept_epoch')) for r in rs)} | {ms(last)} | {pf_s} | {paper.get(row, '—')} |")
    ceil = [rs['ceiling']['teacher'] for rs in by_seed.values() if 'ceiling' in rs]
    if ceil:
        L.append(f"| ceiling (target gold train) | {len(ceil)} | {ms([x['f1'] for x in ceil])} | {ms([x['precision'] for x in ceil])} | "
                 f"{ms([x['recall'] for x in ceil])} | | | | — |")
    L += ["", "Paired by seed (same teacher and pseudo labels), F1 ×100 of the kept epoch and of the last epoch, and the",
          "rise of pseudo-label F1 over the refining epochs (end − after warm-up):", "",
          "| difference | n | kept | last | pseudo-label F1 rise (first row) | pseudo-label F1 rise (second row) |", "|---|---|---|---|---|---|"]
    for a, b in DIFFS:
        x = d['diffs'].get(f'{a} − {b}')
        if not x: continue
        rise = lambda row: [_rise(d['rows'][row][s]) for s in x]
        L.append(f"| {a} − {b} | {len(x)} | {ms([v['kept'] for v in x.values()])} | {ms([v['last'] for v in x.values()])} | "
                 f"{ms(rise(a))} | {ms(rise(b))} |")
    L += ["", "What each row costs (mean over its seeds): the widest target span in target tokens, the candidate spans of the",
          "target train sentences, the share of the target test set's gold entities no wider than that limit (the others",
          "no row can find), and the student's CPU minutes on the CPU machine (one torch thread; wall time shared the machine",
          "with the grid's other worker; runs on a GPU left out):", "",
          "| row | target span limit | target train spans | test entities within the limit | student CPU min |",
          "|---|---|---|---|---|"]
    for row in rows:
        rs = [by_seed[s][row] for s in seeds if row in by_seed[s]]
        sp = [r.get('target_spans') or {} for r in rs]
        cpu = [(r.get('cpu_times') or {}).get('student') for r in rs if 'student' not in (r.get('times_unknown') or []) and not _on_gpu(r)]
        L.append(f"| {row} | {'/'.join(sorted({str(x.get('max_span_len', '')) for x in sp}))} | "
                 f"{ms([x.get('train_spans') for x in sp], 1, '{:,.0f}')} | {ms([x.get('test_entities_covered') for x in sp], 100, '{:.1f}')}% | "
                 f"{ms(cpu, 1 / 60, '{:.0f}')} |")
    for row in rows:
        rs = [by_seed[s][row] for s in seeds if row in by_seed[s]]
        if not rs or not rs[0].get('trace'): continue
        labels = rs[0]['labels']
        L += ["", f"## {row}: epoch by epoch (mean over {len(rs)} seed{'s' * (len(rs) > 1)})", "",
              "Pseudo labels: entity P/R/F1 ×100 after decoding; span P/R: argmax of every span. Changes: span argmaxes the",
              "epoch changed, O→entity / entity→O / entity→entity, each *fixed / broken* against gold. Gate: spans whose",
              "closest prototype differs from their label (*differ*), of those let through (*passed*), and all spans the margin",
              "gate held back (*held*); spans moved toward another class than their label, and of those, toward their gold class",
              "/ away from a correct label; *model ≠ label*: spans whose model argmax differs from their pseudo label. Margins r_c",
              "(eq. 11) after the epoch. Test F1: the model after the epoch (analysis only); dev F1: source dev span F1 (selection).",
              "GLoDe (no gate, no margins): in the gate column its blend weight *w*, the soft labels its votes moved and the spans",
              "no class voted for; in the margins column its global-vote thresholds.", "",
              "| epoch | refined | pseudo P / R / F1 | span P / R | O→ent | ent→O | ent→ent | differ / passed / held | moved to other class: toward gold / from gold | model ≠ label | margins | test F1 | dev F1 |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        recs = sorted(where(ee, row=row), key=lambda x: x['seed'])          # the tidy records of this row, seed by seed
        for e in range(max(x['epoch'] for x in recs)):
            es = where(recs, epoch=e + 1)                                     # after student epoch e
            mean = lambda vs: statistics.mean(v for v in vs if v is not None) if any(v is not None for v in vs) else None
            m = lambda k: mean([x[k] for x in es])
            f = lambda v, k=100, d=1: '' if v is None else f"{k * v:.{d}f}"
            mv = lambda kind: '/'.join(f(m(f'{kind}_{q}'), 1, 0) for q in ('fixed', 'broken'))
            nmv = lambda kind: f(m(kind), 1, 0)
            gate = '' if m('gate_differs') is None else f"{f(m('gate_differs'), 1, 0)} / {f(m('gate_passed'), 1, 0)} / {f(m('gate_held'), 1, 0)}"
            if m('glode_weight') is not None:   # GLoDe has no gate (its base counts are not a gate's): its blend weight, labels its votes moved, spans without a vote
                gate = f"w {f(m('glode_weight'), 1, 3)}: {f(m('glode_moved'), 1, 0)} moved, {f(m('glode_no_vote'), 1, 0)} no vote"
            votes = '' if m('votes_pushed') is None else f"{f(m('votes_pushed'), 1, 0)}: {f(m('votes_toward_gold'), 1, 0)} / {f(m('votes_from_gold'), 1, 0)}"
            margins = ', '.join(f"{c} {f(mean([(x['margins'] or [None] * len(labels))[i] for x in es]), 1, 2)}" for i, c in enumerate(labels)) \
                if any(x['margins'] for x in es) else ''
            L.append(f"| {e} | {'yes' if es[0]['refining'] else 'no'} | {f(m('pseudo_precision'))} / {f(m('pseudo_recall'))} / "
                     f"{f(m('pseudo_f1'))} | {f(m('span_precision'))} / {f(m('span_recall'))} | "
                     f"{nmv('o_to_entity')} ({mv('o_to_entity')}) | {nmv('entity_to_o')} ({mv('entity_to_o')}) | "
                     f"{nmv('entity_to_entity')} ({mv('entity_to_entity')}) | {gate} | {votes} | {f(m('gate_model_differs'), 1, 0)} | {margins} | "
                     f"{f(m('test_f1'))} | {f(m('dev_f1'))} |")
        fl = [r['trace_start'].get('flippable') for r in rs if r.get('trace_start', {}).get('flippable')]
        if fl:
            x = fl[0]
            L += ["", f"Labels that can change at all under this row's refinement schedule (product of its rates K = {x['K']:.3f}: a",
                  f"span's argmax can move only if top − second < (1 − K)/K = {x['bound']:.2f}), seed {seeds[0]}, per class of the teacher's argmax: "
                  + ', '.join(f"{c} {fo} of {n}" for c, n, fo in zip(labels, x['spans'], x['flippable']))]
    return '\n'.join(L) + '\n'


def _rise(v):
    "Pseudo-label F1 rise of one run of `answer`: after the last epoch − after the warm-up epoch (None if either is unknown)."
    return None if None in v['pseudo_f1'] else v['pseudo_f1'][1] - v['pseudo_f1'][0]


def _points(xs):
    "Mean ×100 of `xs` (None left out; None if nothing is left)."
    xs = [x for x in xs if x is not None]
    return 100 * statistics.mean(xs) if xs else None


def answer(by_target, grid=GRID):
    """Per target, the numbers that answer "does refinement act, and does it pay": per row and seed the kept and last
    test F1, the pseudo-label F1 and span P/R after the warm-up and after the last epoch, the argmax changes of all
    refining epochs summed (n, fixed, broken by kind), the last margins; per difference of `DIFFS` the paired
    differences, one per seed where both rows finished. `mean` holds what the README's prose quotes, averaged over seeds,
    in points: each row's pseudo-label F1 rise, each difference (keys `a-b`, as the README's markers cannot hold
    spaces) with its n, and each row's argmax changes."""
    out = {}
    for t, by_seed in by_target.items():
        seeds = sorted(by_seed)
        ee = runs_tidy(by_seed, t)
        d = dict(seeds=seeds, zero_shot={s: by_seed[s]['teacher']['teacher']['f1'] for s in seeds if 'teacher' in by_seed[s]},
                 ceiling={s: by_seed[s]['ceiling']['teacher']['f1'] for s in seeds if 'ceiling' in by_seed[s]}, rows={}, diffs={},
                 gpu_seeds=[s for s in seeds if any(_on_gpu(r) for r in by_seed[s].values())])
        for row in list(grid['rows']) + list(grid['extra'].get(t, {})):
            per = {}
            for s in seeds:
                es = sorted(where(ee, seed=s, row=row), key=lambda x: x['epoch'])     # a traced student's epochs, 0: the teacher's labels
                if not es: continue
                r, warm, end = by_seed[s][row], es[1], es[-1]
                ends = lambda k: [warm[k], end[k]]
                total = lambda k: sum(x[k] for x in es[1:] if x[k] is not None)         # over all its epochs
                per[s] = dict(kept=r['student']['f1'], kept_epoch=r.get('kept_epoch'), last=end['test_f1'], pseudo_f1=ends('pseudo_f1'),
                              span_precision=ends('span_precision'), span_recall=ends('span_recall'),
                              moves={k: dict(n=total(k), fixed=total(f'{k}_fixed'), broken=total(f'{k}_broken')) for k in MOVES},
                              margins=dict(zip(r['labels'], end['margins'])) if end['margins'] else None)
            if per: d['rows'][row] = per
        recs = [dict(v, seed=seed, row=row) for row, per in d['rows'].items() for seed, v in per.items()]
        for a, b in DIFFS:
            kept, last = paired(recs, a, b, 'kept'), paired(recs, a, b, 'last')
            if kept: d['diffs'][f'{a} − {b}'] = {s: dict(kept=kept[s], last=last[s]) for s in kept}
        d['mean'] = dict(rise={row: _points(map(_rise, per.values())) for row, per in d['rows'].items()},
                         diffs={k.replace(' − ', '-'): dict(kept=_points(v['kept'] for v in x.values()), last=_points(v['last'] for v in x.values()),
                                                            n=len(x)) for k, x in d['diffs'].items()},
                         moves={row: {k: {q: statistics.mean(v['moves'][k][q] for v in per.values()) for q in ('n', 'fixed', 'broken')}
                                      for k in MOVES} for row, per in d['rows'].items()})
        out[t] = d
    return out


def answer_table(ans, command='python bench/schedule.py run'):
    "Markdown of `answer`: one line per target for the questions, one line per target and refining row for what refinement did."
    def sg(xs):
        "Signed mean ± std ×100 of `xs` (None left out)."
        xs = [100 * x for x in xs if x is not None]
        return '—' if not xs else f"{xs[0]:+.2f}" if len(xs) == 1 else f"{statistics.mean(xs):+.2f} ± {statistics.stdev(xs):.2f}"
    count = lambda x: f"{x:.1f}".removesuffix('.0')          # a mean count: 29, or 29.3 over seeds
    gpu = '; '.join(f"{t} {', '.join(map(str, d['gpu_seeds']))}" for t, d in ans.items() if d.get('gpu_seeds'))
    L = ["# The paper's student schedule: the answer, target by target", "", f"Runs: `{command}`; tables per target:",
         "`bench/results/schedule_en-<t>.md`." + (f" Seeds run on a GPU (`bash bench/gpu_schedule.sh`, not bit-reproducible:"
         f" `schedule_repeat_en-*.md`): {gpu}; the others on the 2-core CPU." if gpu else ''), "",
         "Target test F1 ×100 (zero-shot: the teachers; ceiling: trained on the target's gold train set). Each difference",
         "*a − b* is paired by seed (same teacher, same pseudo labels; positive: *a* is higher), mean ± std over the seeds",
         "where both rows finished (n), for the kept epoch (source dev selection, whole test set) / the last epoch (on the",
         "trace's fixed test subset, analysis only). Zero-shot over the seeds of the contproto column (n); ceiling: seed 0.",
         "Pseudo-label F1 rise: ContProto's pseudo labels after the last epoch − after the warm-up epoch (the paper's",
         "Fig. 3: 5–7 points on German, Arabic and Chinese).", "",
         "| target | n | zero-shot | ceiling | contproto kept / last | pseudo-label F1 rise | " + ' | '.join(f'{a} − {b}' for a, b in DIFFS) + " |",
         "|---|---|---|---|---|---|" + "---|" * len(DIFFS)]
    for t, d in ans.items():
        cp = d['rows'].get('contproto', {})
        cells, on = [], [s for s in d['seeds'] if s in cp] or d['seeds']     # the contproto column's seeds
        for a, b in DIFFS:
            x = d['diffs'].get(f'{a} − {b}', {})
            cells.append(f"{sg([v['kept'] for v in x.values()])} / {sg([v['last'] for v in x.values()])} ({len(x)})" if x else '—')
        L.append(f"| {t} | {len(cp)} | {ms([d['zero_shot'].get(s) for s in on])} | {ms([d['ceiling'].get(s) for s in on])} | {ms([v['kept'] for v in cp.values()])} / "
                 f"{ms([v['last'] for v in cp.values()])} | {sg([_rise(v) for v in cp.values()])} | " + ' | '.join(cells) + " |")
    L += ["", "What refinement did, mean over seeds (n): pseudo-label F1 and span precision / recall after the warm-up epoch →",
          "after the last; the span argmaxes all refining epochs changed, by kind, *n (fixed / broken)* against the target",
          "train gold tags (analysis only); the margins r_c (eq. 11) after the last epoch, O and the range over the entity",
          "classes and seeds",
          "(`fixed_margin`: r_c = 1; `authors`: none for O (shown as 0), as in the released code; `glode`: its global-vote thresholds,",
          "each class's mean similarity to its prototype).", "",
          "| target | row | n | pseudo-label F1 | span precision | span recall | entity → O | O → entity | entity → entity | margins: O; entities |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for t, d in ans.items():
        for row, per in d['rows'].items():
            if row == 'vanilla' or row == 'no_proto': continue        # their labels never change
            v = list(per.values())
            arrow = lambda k: f"{ms([x[k][0] for x in v])} → {ms([x[k][1] for x in v])}"
            mv = lambda k, m=d['mean']['moves'][row]: f"{count(m[k]['n'])} ({count(m[k]['fixed'])} / {count(m[k]['broken'])})"
            mg = [x['margins'] for x in v if x['margins']]
            o, ents = [x.get('O') for x in mg if x.get('O') is not None], [m for x in mg for c, m in x.items() if c != 'O' and m is not None]
            margins = f"{ms(o, 1, '{:.3f}', '—')}; {min(ents):.2f}–{max(ents):.2f}" if ents else '—'    # None: a class without spans
            L.append(f"| {t} | {row} | {len(v)} | {arrow('pseudo_f1')} | {arrow('span_precision')} | {arrow('span_recall')} | "
                     f"{mv('entity_to_o')} | {mv('o_to_entity')} | {mv('entity_to_entity')} | {margins} |")
    return '\n'.join(L) + '\n'


def write_tables(runs, results, command='python bench/schedule.py run', grid=GRID):
    "Rewrite every target's markdown, JSON and Fig. 3 (one line per row, mean over seeds, min–max band) from the runs."
    from contproto_fastai.plots import plot_pseudo_f1
    results = Path(results); results.mkdir(parents=True, exist_ok=True)
    found = by_target(load_runs(runs))
    by_target_ = {t: found[t] for t in grid['targets'] if t in found}
    ans = answer(by_target_, grid)
    for t, by_seed in by_target_.items():
        (results/f'schedule_en-{t}.md').write_text(target_table(t, by_seed, command, grid, ans[t]))
        keep = ('config', 'teacher', 'student', 'kept_epoch', 'student_history', 'trace_start', 'trace', 'target_spans', 'times',
                'cpu_times', 'times_unknown', 'machine', 'labels')
        (results/f'schedule_en-{t}.json').write_text(json.dumps(dict(command=command, runs=[
            dict(seed=s, row=row, **{k: r.get(k) for k in keep}) for s, rs in sorted(by_seed.items()) for row, r in rs.items()]), indent=1))
        seeds = sorted(s for s in by_seed if all(r in by_seed[s] for r in grid['rows'] if any(r in v for v in by_seed.values())))
        ee = runs_tidy(by_seed, t)
        curves = {row: [[x['pseudo_f1'] for x in _epochs(ee, s, row)] for s in seeds] for row in list(grid['rows']) + list(grid['extra'].get(t, {}))
                  if seeds and all(row in by_seed[s] and by_seed[s][row].get('trace') for s in seeds)}
        if curves:
            plot_pseudo_f1(curves, results/f'schedule_en-{t}_fig3.png', title=f'Pseudo-label F1, en → {t} (Fig. 3)')
            # the seeds' teachers differ by more than refinement moves their labels: each seed's rise, on one scale
            plot_pseudo_f1({row: [[None if v is None or c[0] is None else v - c[0] for v in c] for c in cs] for row, cs in curves.items()},
                           results/f'schedule_en-{t}_fig3_rise.png', title=f"Pseudo-label F1 − the teacher's, en → {t}",
                           ylabel="pseudo-label F1 − teacher's (points)")
        for (tt, s, row) in grid['plots']:
            png = Path(runs)/f'en-{tt}'/f'seed{s}'/row/'tsne.png'
            if tt == t and png.exists(): shutil.copy(png, results/f'schedule_en-{t}_tsne_{row}.png')
    if by_target_:
        (results/'schedule_summary.json').write_text(json.dumps(dict(command=command, targets=ans), indent=1))
        (results/'schedule_summary.md').write_text(answer_table(ans, command))


def repeat_table(a, b, t, seed, names=('schedule', 'again'), rows=('teacher', *GRID['rows']), note=''):
    """Markdown and JSON: one seed of target `t` run twice, `a` and `b` (`{row: results}`: the same commands on the same
    kind of machine, `names` their runs folders, `note` how they were run), each row's F1 in both and their
    difference, and each paired difference of `DIFFS` in both."""
    f1 = lambda r: (r.get('student') or r.get('teacher') or {}).get('f1')
    ea, eb = runs_tidy({seed: a}, t), runs_tidy({seed: b}, t)
    last = lambda ee, row: _end(ee, seed, row, 'test_f1')
    pseudo_end = lambda ee, row: _end(ee, seed, row, 'pseudo_f1')
    sub = lambda u, v: None if u is None or v is None else u - v
    both = [row for row in rows if row in a and row in b]
    js = dict(target=t, seed=seed, runs=list(names), note=note, machines=[a[both[0]].get('machine'), b[both[0]].get('machine')] if both else [],
              rows={row: dict(kept=[f1(a[row]), f1(b[row])], last=[last(ea, row), last(eb, row)], kept_epoch=[a[row].get('kept_epoch'), b[row].get('kept_epoch')],
                              pseudo_end=[pseudo_end(ea, row), pseudo_end(eb, row)]) for row in both},
              diffs={f'{x}-{y}': dict(kept=[sub(f1(r[x]), f1(r[y])) for r in (a, b)], last=[sub(last(ee, x), last(ee, y)) for ee in (ea, eb)])
                     for x, y in DIFFS if all(k in r for r in (a, b) for k in (x, y))})
    pt = lambda v, f='{:.2f}': '—' if v is None else f.format(100 * v)
    dv = lambda u, v: '—' if sub(v, u) is None else f"{100 * sub(v, u):+.2f}"
    sp = lambda v: '—' if v is None else f"{100 * v:+.2f}"
    L = [f"# One seed run twice: en → {t}, seed {seed}", "",
         f"The rows of seed {seed} run twice with the same commands, each run training its own teacher: *grid* (the runs in",
         f"the grid's folder `{names[0]}`) and *again* (`{names[1]}`). {note}".rstrip(),
         f"Table: `python bench/schedule.py repeat --runs … --again … --target {t} --seed {seed}`. Machine: "
         + ('; '.join(sorted({json.dumps(m) for m in js['machines']})) or '—'), "",
         "Target test entity F1 ×100: *kept* (the epoch chosen by source dev span F1, whole test set) and *last* (the last",
         "epoch, the trace's test subset); pseudo-label F1 after the last epoch.", "",
         "| row | kept: grid | again | again − grid | kept epochs | last: grid | again | again − grid | pseudo-label F1 end: grid | again |",
         "|---|---|---|---|---|---|---|---|---|---|"]
    for row, v in js['rows'].items():
        L.append(f"| {row} | {pt(v['kept'][0])} | {pt(v['kept'][1])} | {dv(*v['kept'])} | {', '.join(str(e) for e in v['kept_epoch'] if e is not None)} | "
                 f"{pt(v['last'][0])} | {pt(v['last'][1])} | {dv(*v['last'])} | {pt(v['pseudo_end'][0])} | {pt(v['pseudo_end'][1])} |")
    L += ["", "Paired differences within each run, F1 ×100:", "", "| difference | kept: grid | again | last: grid | again |", "|---|---|---|---|---|"]
    L += [f"| {k.replace('-', ' − ')} | {sp(v['kept'][0])} | {sp(v['kept'][1])} | {sp(v['last'][0])} | {sp(v['last'][1])} |"
          for k, v in js['diffs'].items()]
    return '\n'.join(L) + '\n', js


def smoke_grid(tmp):
    "A seconds-long grid on toy files with a tiny saved encoder (CI): one target, two seeds, three rows, 3 student epochs."
    from contproto_fastai.testing import toy_files
    files, tiny = toy_files(Path(tmp)/'toy', n_src=48, n_dev=16, n_tgt=32, n_test=16)
    return dict(budget=dict(bs=16), teacher=dict(teacher_epochs=2, epochs=0),
                student=dict(teacher_epochs=2, epochs=3, student_src_limit=32, student_init='teacher', trace_test=True, trace_test_limit=8),
                targets=dict(toy=dict(files=files, config=dict(model=str(tiny), lr=3e-3, dropout=0.1), seeds=[0, 1])),
                rows={row: dict(ablation=row) for row in ('vanilla', 'contproto', 'glode')},
                extra=dict(toy=dict(contproto_wide=dict(ablation='contproto', tgt_max_span_len=5))), plots=set())

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('what', choices=['run', 'tables', 'repeat'])
    p.add_argument('--again', help='repeat: a second runs folder holding the same seed run again')
    p.add_argument('--target', default='de'); p.add_argument('--seed', type=int, default=2)
    p.add_argument('--note', default='', help='repeat: how the two runs were made (goes into the table)')
    p.add_argument('--runs', default=str(ROOT/'runs'/'schedule')); p.add_argument('--results', default=str(ROOT/'bench'/'results'))
    p.add_argument('--workers', type=int, default=2); p.add_argument('--targets', default=None)
    p.add_argument('--smoke', action='store_true', help='toy data and a tiny encoder (CI); --runs should then be a temporary folder')
    a = p.parse_args(argv)
    targets = a.targets.split(',') if a.targets else None
    grid = smoke_grid(a.runs) if a.smoke else GRID
    if a.what == 'repeat':
        again = a.again or p.error('repeat needs --again')
        md, js = repeat_table(*(by_target(load_runs(x)).get(a.target, {}).get(a.seed, {}) for x in (a.runs, again)), a.target, a.seed,
                              (Path(a.runs).name, Path(again).name), note=a.note)
        out = Path(a.results)/f'schedule_repeat_en-{a.target}'
        out.with_suffix('.md').write_text(md); out.with_suffix('.json').write_text(json.dumps(js, indent=1)); print(md)
        return
    if a.what == 'run':         # the smoke grid in this process; a real one a process per run, tables rewritten after each
        try: run_grid(jobs(grid, targets), a.runs, a.workers, in_process if a.smoke else subprocess_runner,
                      after_each=lambda: write_tables(a.runs, a.results, grid=grid))
        except RuntimeError as e: sys.exit(str(e))
    write_tables(a.runs, a.results, grid=grid)


if __name__ == '__main__': main()
