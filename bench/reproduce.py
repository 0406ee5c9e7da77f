"""Reproduce the paper's comparison on real data: zero-shot teacher, vanilla self-training, ContProto and the five
Table 3 ablations, over several seeds, reported as mean ± std of target test entity F1 next to the paper's numbers.

    python bench/reproduce.py --name en-de-minilm --seeds 0,1,2 -- --data ../shared/data/conll --src en --tgt de \
        --model minilm --epochs 4 --teacher-epochs 3 --lr 1e-4 --src-limit 1000 --dev-limit 1000 --tgt-limit 1000 \
        --student-init teacher --sortish 50

Everything after `--` goes to every `contproto-fit` call. Per seed, the `vanilla` run trains the teacher (its zero-shot
score is the *zero-shot* row) and every other preset reuses that teacher and its pseudo labels (`--teacher-from`).
Runs go in `--runs/<name>/seed<k>/<preset>`; a finished run is skipped and an interrupted one resumed (`--resume`),
so the same command continues a grid across sessions. Order: vanilla and ContProto for every seed first, then the
ablations (`--order`); `--ablation-seeds` runs the ablation rows for fewer seeds (a smaller grid). After every run
the table is rewritten: bench/results/reproduce_<name>.{md,json} and the pseudo-label F1 per epoch (paper Fig. 3) as
reproduce_<name>_pseudo_f1.png. `--smoke` runs on toy files with a tiny encoder (what CI runs)."""
import argparse, json, shutil, statistics, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAIN, ABLATIONS = ['vanilla', 'contproto'], ['no_proto', 'no_proto_no_cl', 'no_reg', 'fixed_margin', 'proto_no_cl']
# paper (XLM-R large, 3 runs): Table 1/2 ContProto and Table 3 ablations; no span-based zero-shot or vanilla
# self-training number is reported there
PAPER = dict(de=dict(contproto=76.41, no_proto=74.87, no_proto_no_cl=74.17, no_reg=76.23, fixed_margin=74.65, proto_no_cl=72.59),
             es=dict(contproto=85.02, no_proto=84.08, no_proto_no_cl=84.47, no_reg=84.96, fixed_margin=84.49, proto_no_cl=81.18),
             nl=dict(contproto=83.69, no_proto=81.44, no_proto_no_cl=81.03, no_reg=83.56, fixed_margin=83.09, proto_no_cl=80.76),
             ar=dict(contproto=72.20, no_proto=71.49, no_proto_no_cl=70.40, no_reg=72.15, fixed_margin=69.19, proto_no_cl=69.72),
             hi=dict(contproto=83.45, no_proto=83.10, no_proto_no_cl=81.00, no_reg=83.21, fixed_margin=83.07, proto_no_cl=58.38),
             zh=dict(contproto=61.47, no_proto=59.57, no_proto_no_cl=56.30, no_reg=61.31, fixed_margin=60.61, proto_no_cl=53.52))

def done(out):
    f = Path(out)/'results.json'
    return f.exists() and 'student' in json.loads(f.read_text())

def run_preset(rest, preset, out, teacher_from=None, log=print):
    "One `contproto-fit` student run (resumed if interrupted, skipped if finished); returns its results.json."
    out = Path(out)
    if not done(out):
        exe = shutil.which('contproto-fit') or sys.exit("contproto-fit not found: pip install -e .")
        if (out/'config.json').exists(): cmd = [exe, '--resume', str(out), '--quiet']
        else: cmd = [exe, *rest, '--ablation', preset, '--out', str(out), '--quiet'] + (['--teacher-from', str(teacher_from)] if teacher_from else [])
        log(' '.join(cmd)); t = time.time()
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL)
        if r.returncode: sys.exit(f"{preset} failed (exit {r.returncode}): {' '.join(cmd)}")
        log(f"{preset}: {time.time() - t:.0f}s")
    return json.loads((out/'results.json').read_text())

def mean_std(xs):
    xs = [100 * x for x in xs if x is not None]
    if not xs: return ''
    return f"{statistics.mean(xs):.2f} ± {statistics.stdev(xs):.2f}" if len(xs) > 1 else f"{xs[0]:.2f}"

def _target(rest):
    "The target language given to contproto-fit (`--tgt xx`), for the paper column."
    for i, a in enumerate(rest):
        if a == '--tgt' and i + 1 < len(rest): return rest[i + 1]
        if a.startswith('--tgt='): return a.split('=', 1)[1]
    return 'de'

def table(runs, name, rest, command, tgt):
    "Markdown: one row per preset (mean ± std over seeds), plus the zero-shot teachers, the why-statistics and Fig. 3."
    paper = PAPER.get(tgt, {})
    any_run = next(r for rs in runs.values() for r in rs.values())
    lines = [f"# Reproduction: {name}", "", f"Command: `{command}`", "", f"Machine: {json.dumps(any_run['machine'])}", "",
             f"Target test set: seqeval entity micro F1 ×100, mean ± std over the seeds that finished (n). Paper: XLM-R large, {tgt}.", "",
             "| row | n | test F1 | P | R | pseudo-label F1 start → end | student wall time (s) | paper F1 |", "|---|---|---|---|---|---|---|---|"]
    teachers = [rs['vanilla']['teacher'] for rs in runs.values() if 'vanilla' in rs]
    if teachers:
        lines.append(f"| zero-shot (teacher) | {len(teachers)} | {mean_std([t['f1'] for t in teachers])} | {mean_std([t['precision'] for t in teachers])} | "
                     f"{mean_std([t['recall'] for t in teachers])} | | | |")
    for preset in MAIN + ABLATIONS:
        rs = [r[preset] for r in runs.values() if preset in r]
        if not rs: continue
        curves = [r.get('pseudo_label_f1_curve') or [] for r in rs]
        pf = f"{mean_std([c[0] for c in curves if c])} → {mean_std([c[-1] for c in curves if c])}"
        lines.append(f"| {preset} | {len(rs)} | {mean_std([r['student']['f1'] for r in rs])} | {mean_std([r['student']['precision'] for r in rs])} | "
                     f"{mean_std([r['student']['recall'] for r in rs])} | {pf} | {statistics.mean(r['times']['student'] for r in rs):.0f} | {paper.get(preset, '—')} |")
    lines += ["", "Why (per run): share of target spans whose pseudo label changed during self-training, share labelled as an",
              "entity by the teacher → at the end, last epoch's margins r_c (eq. 11), and the largest cosine between two",
              "prototypes (eq. 8).", "", "| seed | row | changed | entity share | margins | max prototype cosine (pair) |", "|---|---|---|---|---|---|"]
    for seed, rs in runs.items():
        for preset, r in rs.items():
            st, labels = r.get('pseudo_label_stats') or {}, r['labels']
            m = (r.get('margins') or [None])[-1]
            margins = ', '.join(f"{c} {v:.2f}" for c, v in zip(labels, m)) if m else ''
            cos, pair = '', ''
            if st.get('prototype_cosine'):
                C = len(labels)
                v, i, j = max((st['prototype_cosine'][i][j], i, j) for i in range(C) for j in range(i + 1, C))
                cos, pair = f"{v:.2f}", f" ({labels[i]}, {labels[j]})"
            ent = f"{100*st['entity_before']:.2f}% → {100*st['entity_after']:.2f}%" if st else ''
            lines.append(f"| {seed} | {preset} | {100*st['changed']:.2f}% | {ent} | {margins} | {cos}{pair} |" if st else f"| {seed} | {preset} | | | {margins} | |")
    return '\n'.join(lines) + '\n'

def plot(runs, path):
    "Fig. 3: pseudo-label F1 per epoch, mean over seeds, one line per preset."
    from contproto_fastai.predict import plot_pseudo_f1
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

def plan(seeds, rows, abl_seeds=None, order='main-first'):
    """The (seed, preset) runs in order: every seed's `vanilla` (it trains the seed's teacher) and main rows, the
    ablation rows for `abl_seeds` only; `main-first` runs the main rows of all seeds before any ablation."""
    abl_seeds = seeds if abl_seeds is None else abl_seeds
    want = lambda s, r: r == 'vanilla' or (r in rows and (r in MAIN or s in abl_seeds))
    if order == 'seed-first': return [(s, r) for s in seeds for r in MAIN + ABLATIONS if want(s, r)]
    return [(s, r) for s in seeds for r in MAIN if want(s, r)] + [(s, r) for s in seeds for r in ABLATIONS if want(s, r)]

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--name', default='en-de-minilm'); p.add_argument('--seeds', default='0,1,2')
    p.add_argument('--runs', default=None, help='run folders (default: runs/reproduce; with --smoke: a temporary folder)'); p.add_argument('--results', default=str(ROOT/'bench'/'results'))
    p.add_argument('--rows', default=','.join(MAIN + ABLATIONS), help='presets to run (vanilla always runs: it trains the teacher)')
    p.add_argument('--ablation-seeds', default=None, help='seeds for the five ablation rows (default: --seeds); a smaller grid')
    p.add_argument('--order', choices=['main-first', 'seed-first'], default='main-first')
    p.add_argument('--smoke', action='store_true', help='toy data and a tiny encoder in a temporary folder (CI)')
    p.add_argument('rest', nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    rest = a.rest[1:] if a.rest[:1] == ['--'] else a.rest
    if a.smoke:
        import tempfile
        a.runs = a.runs or tempfile.mkdtemp(); rest = smoke_args(Path(a.runs)/'toy') + rest
    a.runs = a.runs or str(ROOT/'runs'/'reproduce')
    seeds, rows = [int(s) for s in a.seeds.split(',')], [r for r in a.rows.split(',') if r]
    abl_seeds = seeds if a.ablation_seeds is None else [int(s) for s in a.ablation_seeds.split(',')]
    if set(abl_seeds) - set(seeds): sys.exit(f"--ablation-seeds {abl_seeds} must be among --seeds {seeds} (their teachers)")
    bad = [r for r in rows if r not in MAIN + ABLATIONS]
    if bad: sys.exit(f"unknown rows {bad}: choose from {MAIN + ABLATIONS}")
    jobs = plan(seeds, rows, abl_seeds, a.order)
    command = ' '.join(['python', 'bench/reproduce.py'] + (argv if argv is not None else sys.argv[1:]))
    runs, res_dir, tgt = {}, Path(a.results), _target(rest)
    res_dir.mkdir(parents=True, exist_ok=True)
    for seed, preset in jobs:
        d = Path(a.runs)/a.name/f'seed{seed}'
        r = run_preset(rest + ['--seed', str(seed)], preset, d/preset, None if preset == 'vanilla' else d/'vanilla',
                       log=lambda m: print(f"[seed {seed}] {m}", flush=True))
        runs.setdefault(seed, {})[preset] = r
        md = table(runs, a.name, rest, command, tgt)
        (res_dir/f'reproduce_{a.name}.md').write_text(md)
        (res_dir/f'reproduce_{a.name}.json').write_text(json.dumps(dict(command=command, runs=[
            dict(seed=s, row=k, config=v['config'], wall_time_s=v['times'], teacher=v['teacher'], student=v['student'],
                 pseudo_label_f1_curve=v.get('pseudo_label_f1_curve'), margins=v.get('margins'),
                 pseudo_label_stats=v.get('pseudo_label_stats'), machine=v['machine'])
            for s, rs in runs.items() for k, v in rs.items()]), indent=1))
        plot(runs, res_dir/f'reproduce_{a.name}_pseudo_f1.png')
    print(md)
    return runs

if __name__ == '__main__': main()
