"""Reproduce the paper's comparison on real data: zero-shot teacher, vanilla self-training, ContProto, the authors'
released recipe (preset `authors`), the five Table 3 ablations and the supervised ceiling (the same budget trained on
the target's own gold train set), over several seeds, reported as mean ± std of target test entity F1 next to the
paper's numbers, with the share of the zero-shot → ceiling gap each row closes.

    python bench/reproduce.py --name en-de-minilm --seeds 0,1,2 -- --data ../shared/data/conll --src en --tgt de \
        --model minilm --epochs 4 --teacher-epochs 3 --lr 1e-4 --src-limit 1000 --dev-limit 1000 --tgt-limit 1000 \
        --student-init teacher --sortish 50

Everything after `--` goes to every `contproto-fit` call. Per seed, the `vanilla` run trains the teacher (its zero-shot
score is the *zero-shot* row) and every other preset reuses that teacher and its pseudo labels (`--teacher-from`).
Runs go in `--runs/<name>/seed<k>/<preset>` (`grid.Job`s, run one at a time by `grid.run_grid`, each in a process of
its own, its output in `<preset>.log` beside its folder); a finished run is skipped and an interrupted one resumed, so
the same command continues a grid across sessions. Order: vanilla, ContProto and authors for every seed first, then the
ceiling and the ablations (`--order`); `--ablation-seeds` runs the ablation rows for fewer seeds (a smaller grid) and
`--ceiling-seeds` the ceiling (default: the first seed). After every run
the table is rewritten: bench/results/reproduce_<name>.{md,json} and the pseudo-label F1 per epoch (paper Fig. 3) as
reproduce_<name>_pseudo_f1.png. `--smoke` runs on toy files with a tiny encoder (what CI runs). A finished run's resume
checkpoints are deleted once its diagnostics are cached (e5-small: 0.6 GB each; `--keep-checkpoints` keeps them)."""
import argparse, functools, json, statistics, sys
from pathlib import Path
from contproto_fastai.results import Results, mean_std as results_mean_std, finished
from contproto_fastai.config import arg_parser, config_from_args
from contproto_fastai.refinement import refinement_report
from contproto_fastai.grid import (Job, PAPER, TABLE3, gap_closed, prune, run_grid, subprocess_runner, in_process,
                                   machines as grid_machines)

ROOT = Path(__file__).resolve().parent.parent
MAIN, ABLATIONS = ['vanilla', 'contproto', 'authors'], list(TABLE3)
CEILING = 'ceiling'   # supervised on the target's own gold train set: the top of the zero-shot → supervised gap

done = finished        # whether the run in a folder has finished: its results.json says so

def fit_config(rest):
    "The `RunConfig` the `contproto-fit` arguments `rest` give (parsed by `contproto-fit`'s own parser)."
    return config_from_args(arg_parser().parse_args(rest))

def ceiling_args(rest):
    """`contproto-fit` arguments for the supervised ceiling: the same encoder, budget and test set, with the target's own
    gold train set as the labelled training data (its labels are read for this row only) and no student (`--epochs 0`)."""
    cfg = fit_config(rest)
    return [*rest, '--src-train', cfg.tgt_train, '--epochs', '0', '--teacher-epochs', str(cfg.teacher_epochs or cfg.epochs)]

@functools.lru_cache(maxsize=None)     # the table is rewritten after every run: read each test file once
def long_entity_share(test_file, max_span_len, encoding='auto'):
    "Share of the gold entities of `test_file` longer than `max_span_len` words: no span model can find them (a recall cap)."
    from contproto_fastai.data import read_conll, tags_to_spans
    ents = [e for s in read_conll(test_file, encoding=encoding) for e in tags_to_spans(s.tags)]
    return sum(e[1] - e[0] + 1 > max_span_len for e in ents) / max(1, len(ents))

diagnostics = refinement_report     # what refinement did in a finished student's folder (the library's; cached there)

def mean_std(xs): return results_mean_std(xs, empty='')

def _target(rest):
    "The target language given to contproto-fit (`--tgt xx`), for the paper column."
    return arg_parser().parse_args(rest).tgt

def seconds(rs, phase, kind='times'):
    """Mean wall (`kind='times'`) or CPU (`'cpu_times'`) seconds of `phase` over the runs `rs` whose time is known whole:
    "(k of n)" when fewer than all, n/a when none; runs with different torch thread counts are averaged apart, one
    mean per count ("596 (2 threads) · 910 (1 thread)"), since a run's wall time depends on it."""
    def one(rs):
        xs = [r[kind][phase] for r in rs if phase not in r.get('times_unknown', []) and r.get(kind, {}).get(phase) is not None]
        return 'n/a' if not xs else f"{statistics.mean(xs):.0f}" + (f" ({len(xs)} of {len(rs)})" if len(xs) < len(rs) else '')
    by = {}
    for r in rs: by.setdefault(r.get('machine', {}).get('threads'), []).append(r)
    if len(by) < 2: return one(rs)
    return ' · '.join(f"{one(g)} ({t} thread{'s' * (t != 1)})" for t, g in sorted(by.items(), key=lambda kv: -(kv[0] or 0)))

def kept_epoch(history, monitor='span_f1'):
    """The student epoch whose weights a run kept and scored (`BestEpoch`/`SaveModelCallback`): the first with the
    highest source dev `monitor`, since a later epoch must beat it; None without a history."""
    xs = [h.get(monitor) for h in history or []]
    if not xs or None in xs: return None
    return max(range(len(xs)), key=lambda i: (xs[i], -i))

def machines(runs):
    "The machine line of a table: the one machine every run reports, or each distinct one with its number of runs (most first)."
    ms = grid_machines(enumerate(r for rs in runs.values() for r in rs.values()))     # in the order the runs came
    if len(ms) == 1: return f"Machine: {next(iter(ms))}"
    return "Machines (runs): " + '; '.join(f"{m} ({len(ns)})" for m, ns in sorted(ms.items(), key=lambda x: -len(x[1])))

def table(runs, name, rest, command, tgt):
    "Markdown: one row per preset (mean ± std over seeds), plus the zero-shot teachers, the why-statistics and Fig. 3."
    paper = PAPER.get(tgt, {})
    any_run = next(r for rs in runs.values() for r in rs.values())
    L, test = any_run['config']['max_span_len'], fit_config(rest).tgt_test
    cap = f" {100 * long_entity_share(test, L, any_run['config']['encoding']):.1f}% of its gold entities are longer than max_span_len={L} words: no row can find them." if test and Path(test).exists() else ''
    lines = [f"# Reproduction: {name}", "", f"Command: `{command}`", "", machines(runs), "",
             f"Target test set: seqeval entity micro F1 ×100, mean ± std over the seeds that finished (n). Paper: XLM-R large, {tgt}.{cap}",
             "Gap closed: (row − zero-shot) / (ceiling − zero-shot), from the means. Wall and CPU time (CPU: all threads, in",
             "core-seconds): the teacher's for the zero-shot and ceiling rows (training and target test F1), the student's",
             "(training only) for the others; mean over the runs whose time is known whole (a run resumed after an interruption",
             "counts what the killed process had recorded; phases that lack that record (`times_unknown`) are left out; \"(k of n)\":",
             "the mean is over k runs of n; n/a: over none).", "",
             "| row | n | test F1 | P | R | gap closed | pseudo-label F1 start → end | wall time (s) | CPU time (core-s) | paper F1 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    f1s = lambda rs, k: [r[k]['f1'] for r in rs]
    mean = lambda xs: statistics.mean(xs) if xs else None
    teachers = [rs['vanilla'] for rs in runs.values() if 'vanilla' in rs]
    ceilings = [rs[CEILING] for rs in runs.values() if CEILING in rs]
    zs, top = mean(f1s(teachers, 'teacher')), mean(f1s(ceilings, 'teacher'))
    gap = lambda f: '' if (g := gap_closed(f, zs, top)) is None else f"{100 * g:.0f}%"
    def row(label, rs, key, pf, phase):
        return (f"| {label} | {len(rs)} | {mean_std(f1s(rs, key))} | {mean_std([r[key]['precision'] for r in rs])} | "
                f"{mean_std([r[key]['recall'] for r in rs])} | {gap(mean(f1s(rs, key)))} | {pf} | {seconds(rs, phase)} | "
                f"{seconds(rs, phase, 'cpu_times')} | {paper.get(label, '—')} |")
    if teachers: lines.append(row('zero-shot (teacher)', teachers, 'teacher', '', 'teacher'))
    for preset in MAIN + ABLATIONS:
        rs = [r[preset] for r in runs.values() if preset in r]
        if not rs: continue
        curves = [r.get('pseudo_label_f1_curve') or [] for r in rs]
        pf = f"{mean_std([c[0] for c in curves if c])} → {mean_std([c[-1] for c in curves if c])}"
        lines.append(row(preset, rs, 'student', pf, 'student'))
    if ceilings: lines.append(row(f'{CEILING} (target gold train)', ceilings, 'teacher', '', 'teacher'))
    lines += ["", "Why (per run), against the target gold tags that training never reads: spans whose argmax pseudo label changed",
              "during self-training (fixed: now gold, was not; broken: was gold, now not; and by direction), span-level entity",
              "precision and recall of the argmax pseudo labels (no decoding) before → after, and for runs with prototypes:",
              "how often the nearest final prototype (eq. 8) is the gold class of a gold entity span (the model's argmax in",
              "brackets), the share of gold entity spans whose nearest prototype is right *and* clears its margin (eq. 10, so",
              "refinement may move them toward the truth), the share of gold O spans that refinement may move to an entity,",
              "the mean similarity of gold entity spans to their own class prototype, the last margins r_c (eq. 11), and the",
              "largest cosine between two prototypes. Kept epoch: the student epoch whose weights were scored, the best by",
              "source dev F1 (per epoch in brackets); with warm-up epoch 0 kept, refinement never touched the scored model.", "",
              "| seed | row | kept epoch (dev F1) | changed | fixed / broken | ent→O / O→ent / ent→ent | span P | span R | proto acc. entities (model) | "
              "entities movable to truth | O movable to entity | sim. to own prototype | margins | max prototype cosine |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    pc = lambda x: f"{100*x:.1f}"
    for seed, rs in runs.items():
        for preset, r in rs.items():
            if preset == CEILING: continue
            d, st, labels = r.get('diagnostics'), r.get('pseudo_label_stats') or {}, r['labels']
            if not d: continue
            cos = ''
            if st.get('prototype_cosine'):
                C = len(labels)
                v, i, j = max((st['prototype_cosine'][i][j], i, j) for i in range(C) for j in range(i + 1, C))
                cos = f"{v:.2f} ({labels[i]}, {labels[j]})"
            proto = 'prototype_accuracy_entity' in d
            sims = ', '.join(f"{c} {v:.2f}" for c, v in d['gold_sim_to_own_prototype'].items() if c != 'O') if proto else ''
            margins = ', '.join(f"{c} {v:.2f}" for c, v in d['margins'].items() if c != 'O') if proto else ''
            h = r.get('student_history') or []; k = kept_epoch(h)
            kept = '' if k is None else f"{k} ({', '.join(pc(e['span_f1']) for e in h)})"
            lines.append(f"| {seed} | {preset} | {kept} | {d['changed']} of {d['spans']} | {d['fixed']} / {d['broken']} | "
                         f"{d['entity_to_o']} / {d['o_to_entity']} / {d['entity_to_entity']} | "
                         f"{pc(d['span_precision_before'])} → {pc(d['span_precision_after'])} | {pc(d['span_recall_before'])} → {pc(d['span_recall_after'])} | "
                         + (f"{pc(d['prototype_accuracy_entity'])} ({pc(d['model_accuracy_entity'])}) | {pc(d['gold_entity_nearest_clears_margin'])} | "
                            f"{pc(d['gold_o_nearest_entity_clears_margin'])} | {sims} | {margins} | {cos} |" if proto else "| | | | | |"))
    return '\n'.join(lines) + '\n'

def plot(runs, path):
    "Fig. 3: pseudo-label F1 per epoch, mean over seeds, one line per preset."
    from contproto_fastai.plots import plot_pseudo_f1
    curves = {}
    for preset in MAIN + ABLATIONS:
        cs = [r[preset]['pseudo_label_f1_curve'] for r in runs.values() if preset in r and r[preset].get('pseudo_label_f1_curve')]
        cs = [c for c in cs if c[0] is not None]
        if cs: curves[preset] = [statistics.mean(p) for p in zip(*cs)]
    if curves: plot_pseudo_f1(curves, path)

def smoke_args(tmp):
    "Toy files and a tiny saved encoder: the arguments for a seconds-long grid."
    from contproto_fastai.testing import toy_files
    files, tiny = toy_files(Path(tmp), n_src=64, n_dev=16, n_tgt=32, n_test=16)
    return [x for k, v in files.items() for x in (f'--{k}', str(v))] + ['--model', str(tiny), '--epochs', '2', '--lr', '3e-3', '--dropout', '0.1', '--bs', '16']

def plan(seeds, rows, abl_seeds=None, order='main-first', ceiling_seeds=None):
    """The (seed, row) runs in order: every seed's `vanilla` (it trains the seed's teacher) and main rows, the
    `ceiling` row (if asked) for `ceiling_seeds` (default: the first seed), the ablation rows for `abl_seeds` only;
    `main-first` runs the main rows of all seeds before any ceiling or ablation."""
    abl_seeds = seeds if abl_seeds is None else abl_seeds
    ceiling_seeds = seeds[:1] if ceiling_seeds is None else ceiling_seeds
    want = lambda s, r: r == 'vanilla' or (r in rows and (r in MAIN or (r == CEILING and s in ceiling_seeds) or (r in ABLATIONS and s in abl_seeds)))
    if order == 'seed-first': return [(s, r) for s in seeds for r in MAIN + [CEILING] + ABLATIONS if want(s, r)]
    return [(s, r) for s in seeds for r in MAIN if want(s, r)] + [(s, r) for s in seeds for r in [CEILING] + ABLATIONS if want(s, r)]

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--name', default='en-de-minilm'); p.add_argument('--seeds', default='0,1,2')
    p.add_argument('--runs', default=None, help='run folders (default: runs/reproduce; with --smoke: a temporary folder)'); p.add_argument('--results', default=str(ROOT/'bench'/'results'))
    p.add_argument('--rows', default=','.join(MAIN + [CEILING] + ABLATIONS), help='rows to run (vanilla always runs: it trains the teacher)')
    p.add_argument('--ablation-seeds', default=None, help='seeds for the five ablation rows (default: --seeds); a smaller grid')
    p.add_argument('--ceiling-seeds', default=None, help='seeds for the ceiling row (default: the first of --seeds)')
    p.add_argument('--order', choices=['main-first', 'seed-first'], default='main-first')
    p.add_argument('--smoke', action='store_true', help='toy data and a tiny encoder in a temporary folder (CI)')
    p.add_argument('--keep-checkpoints', action='store_true', help="keep finished runs' resume checkpoints (e5-small: 0.6 GB each)")
    p.add_argument('rest', nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    rest = a.rest[1:] if a.rest[:1] == ['--'] else a.rest
    if a.smoke:
        import tempfile
        a.runs = a.runs or tempfile.mkdtemp(); rest = smoke_args(Path(a.runs)/'toy') + rest
    a.runs = a.runs or str(ROOT/'runs'/'reproduce')
    seeds, rows = [int(s) for s in a.seeds.split(',')], [r for r in a.rows.split(',') if r]
    abl_seeds = seeds if a.ablation_seeds is None else [int(s) for s in a.ablation_seeds.split(',')]
    ceiling_seeds = None if a.ceiling_seeds is None else [int(s) for s in a.ceiling_seeds.split(',')]
    if set(abl_seeds) - set(seeds): sys.exit(f"--ablation-seeds {abl_seeds} must be among --seeds {seeds} (their teachers)")
    bad = [r for r in rows if r not in MAIN + [CEILING] + ABLATIONS]
    if bad: sys.exit(f"unknown rows {bad}: choose from {MAIN + [CEILING] + ABLATIONS}")
    todo = jobs(rest, a.name, plan(seeds, rows, abl_seeds, a.order, ceiling_seeds))
    command = ' '.join(['python', 'bench/reproduce.py'] + (argv if argv is not None else sys.argv[1:]))
    root, res_dir = Path(a.runs), Path(a.results)
    res_dir.mkdir(parents=True, exist_ok=True)
    write = lambda: write_tables(todo, root, res_dir, a.name, rest, command, a.keep_checkpoints)
    # one run at a time, each in a process of its own with the machine's threads (the smoke grid: in this process);
    # checkpoints pruned once diagnosed
    runner = in_process if a.smoke else (lambda cfg: subprocess_runner(cfg, threads=None))
    try: run_grid(todo, root, workers=1, runner=runner, after_each=write, keep_checkpoints=True)
    except RuntimeError as e: sys.exit(str(e))
    runs, md = write()
    print(md)
    return runs

def jobs(rest, name, runs):
    """The `(seed, row)` runs of `plan` as `grid.Job`s under `<name>/seed<k>/<row>`: the `contproto-fit` options `rest`
    and the row's preset, each preset after the seed's `vanilla` run (its teacher); the ceiling on its own."""
    out = []
    for seed, row in runs:
        d, args = f'{name}/seed{seed}', [*rest, '--seed', str(seed)]
        if row == CEILING: out.append(Job(f'{d}/{row}', fit_config([*ceiling_args(args), '--quiet'])))
        else: out.append(Job(f'{d}/{row}', fit_config([*args, '--ablation', row, '--quiet']), None if row == 'vanilla' else f'{d}/vanilla'))
    return out

def write_tables(todo, root, res_dir, name, rest, command, keep_checkpoints=False):
    """`reproduce_<name>.{md,json}` and Fig. 3 from the finished runs of `todo` under `root` (each student's diagnostics
    cached in its folder first, then its checkpoints deleted unless `keep_checkpoints`): `(runs, markdown)`."""
    runs = {}
    for j in todo:
        out = root/j.name
        if not done(out): continue
        (_, seed, row), r = j.key, Results.read(out).to_dict()
        if row != CEILING: r['diagnostics'] = diagnostics(out, out.parent/'vanilla')
        if not keep_checkpoints: prune(out)
        runs.setdefault(seed, {})[row] = r
    if not runs: return runs, ''
    md = table(runs, name, rest, command, _target(rest))
    (res_dir/f'reproduce_{name}.md').write_text(md)
    (res_dir/f'reproduce_{name}.json').write_text(json.dumps(dict(command=command, runs=[
        dict(seed=s, row=k, config=v['config'], wall_time_s=v['times'], cpu_time_s=v.get('cpu_times'),
             times_unknown=v.get('times_unknown', []), times_note=v.get('times_note'), teacher=v['teacher'], student=v.get('student'),
             pseudo_label_f1_curve=v.get('pseudo_label_f1_curve'), margins=v.get('margins'),
             pseudo_label_stats=v.get('pseudo_label_stats'), diagnostics=v.get('diagnostics'), machine=v['machine'])
        for s, rs in runs.items() for k, v in rs.items()]), indent=1))
    plot(runs, res_dir/f'reproduce_{name}_pseudo_f1.png')
    return runs, md

if __name__ == '__main__': main()
