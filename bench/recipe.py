"""Which training recipe makes an encoder learn? Teachers only (zero-shot cross-lingual transfer), one row per recipe,
same data and budget for every row: source dev span F1 (model selection) and target test entity F1.

    python bench/recipe.py --name en-de -- --data ../shared/data/conll --src en --tgt de --teacher-epochs 3 \
        --src-limit 1000 --dev-limit 500 --test-limit 600 --tgt-limit 100 --sortish 50

Everything after `--` goes to every `contproto-fit --epochs 0` call (teacher only), after the row's own options
(so it can override them, e.g. `--model` in the CI smoke run). Rows are `ROWS` below (pick with
`--rows`), seeds with `--seeds`. Runs go in `runs/recipe/<name>/seed<k>/<row>` (`grid.Job`s, one at a time, each in a
process of its own, its output in `<row>.log` beside its folder); a finished run is skipped, so the
same command continues an interrupted comparison. After every run bench/results/recipe_<name>.{md,json} are
rewritten (mean ± std over the seeds that finished)."""
import argparse, json, statistics, sys
from pathlib import Path
from contproto_fastai.results import mean_std
from contproto_fastai.config import arg_parser, config_from_args
from contproto_fastai.grid import Job, run_grid, subprocess_runner, in_process, load_runs

ROOT = Path(__file__).resolve().parent.parent
# row: (what it is, contproto-fit options)
ROWS = {
    'minilm': ("English MiniLM, lr 1e-4 (its recipe)", ['--model', 'minilm', '--lr', '1e-4']),
    'e5-heads-1e-3': ("e5-small: LayerNorm on z, frozen word embeddings, lr 1e-4, heads 1e-3 (10x), 10% warm-up", ['--model', 'e5-small', '--head-lr', '1e-3']),
    'e5-minilm-recipe': ("e5-small with MiniLM's recipe (no norm, trainable embeddings, one rate 1e-4, 25% warm-up)",
                         ['--model', 'e5-small', '--norm', 'off', '--embeddings', 'trainable', '--lr', '1e-4', '--head-lr', '1e-4', '--pct-start', '0.25']),
    'e5-one-rate': ("as e5-heads-1e-3, heads at the encoder's rate 1e-4", ['--model', 'e5-small', '--head-lr', '1e-4']),
    'e5-heads-3e-3': ("as e5-heads-1e-3, heads at 3e-3 (30x): e5-small's default recipe", ['--model', 'e5-small', '--head-lr', '3e-3']),
    'e5-mlp': ("as e5-heads-1e-3, with the authors' MLP classifier", ['--model', 'e5-small', '--head', 'mlp', '--head-lr', '1e-3']),
    'e5-trainable-emb': ("as e5-heads-1e-3, word embeddings trained", ['--model', 'e5-small', '--embeddings', 'trainable', '--head-lr', '1e-3']),
    'e5-no-norm': ("as e5-heads-1e-3, without the LayerNorm on z", ['--model', 'e5-small', '--norm', 'off', '--head-lr', '1e-3']),
}

def jobs(rest, name, todo):
    """The `(seed, row)` runs of `todo` as teacher-only `grid.Job`s under `<name>/seed<k>/<row>`: the row's options, then
    `rest` (which may override them)."""
    fit = lambda args: config_from_args(arg_parser().parse_args(args))
    return [Job(f'{name}/seed{seed}/{row}', fit([*ROWS[row][1], *rest, '--seed', str(seed), '--epochs', '0', '--quiet']))
            for seed, row in dict.fromkeys(todo)]

ms = mean_std

def table(runs, name, command):
    "Markdown: one row per recipe, mean ± std over seeds."
    lines = [f"# Teacher recipes: {name}", "", f"`{command}`", "",
             "| row | recipe | seeds | source dev span F1 (best epoch) | target test F1 | P | R | teacher s |", "|---|---|---|---|---|---|---|---|"]
    for row, (what, _) in ROWS.items():
        rs = [r for (s, k), r in sorted(runs.items()) if k == row]
        if not rs: continue
        dev = [max(h['span_f1'] for h in r['teacher_history']) for r in rs]
        t = [r['teacher'] for r in rs]
        lines.append(f"| {row} | {what} | {len(rs)} | {ms(dev)} | {ms([x['f1'] for x in t])} | {ms([x['precision'] for x in t])} | "
                     f"{ms([x['recall'] for x in t])} | {statistics.mean(r['times']['teacher'] for r in rs):.0f} |")
    m = next(iter(runs.values()))['machine']
    lines += ["", f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, {m['threads']} threads, device {m['device']}."]
    return '\n'.join(lines) + '\n'

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--name', default='en-de'); p.add_argument('--seeds', default='0')
    p.add_argument('--rows', default=','.join(ROWS)); p.add_argument('--runs', default=str(ROOT/'runs'/'recipe'))
    p.add_argument('--more', default='', help="extra runs 'SEEDS:ROWS', e.g. '1,2:e5,e5-heads-3e-3' (more seeds for some rows)")
    p.add_argument('--results', default=str(ROOT/'bench'/'results'))
    p.add_argument('--in-process', action='store_true', help='run in this process (the CI smoke run), not a process per run')
    p.add_argument('rest', nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    rest = a.rest[1:] if a.rest[:1] == ['--'] else a.rest
    rows = [r for r in a.rows.split(',') if r]
    pairs = [(int(sd), r) for sd in a.seeds.split(',') for r in rows]
    if a.more:
        ms, mr = a.more.split(':')
        pairs += [(int(sd), r) for sd in ms.split(',') for r in mr.split(',') if r]
    bad = [r for _, r in pairs if r not in ROWS]
    if bad: sys.exit(f"unknown rows {bad}: choose from {list(ROWS)}")
    command = ' '.join(['python', 'bench/recipe.py'] + (argv if argv is not None else sys.argv[1:]))
    res, root, todo = Path(a.results), Path(a.runs), jobs(rest, a.name, pairs)
    res.mkdir(parents=True, exist_ok=True)
    def write():
        runs = {j.key[1:]: r.to_dict() for j in todo if (r := load_runs(root, [j]).get(j.name))}
        if not runs: return ''
        md = table(runs, a.name, command)
        (res/f'recipe_{a.name}.md').write_text(md)
        (res/f'recipe_{a.name}.json').write_text(json.dumps(dict(command=command, runs=[
            dict(seed=s, row=k, config=v['config'], recipe=v.get('recipe'), teacher_history=v['teacher_history'],
                 teacher=v['teacher'], wall_time_s=v['times'], machine=v['machine']) for (s, k), v in sorted(runs.items())]), indent=1))
        return md
    # one run at a time, each in a process of its own with the machine's threads, as the recipes were measured
    runner = in_process if a.in_process else (lambda cfg: subprocess_runner(cfg, threads=None))
    try: run_grid(todo, root, workers=1, runner=runner, after_each=write, keep_checkpoints=True)
    except RuntimeError as e: sys.exit(str(e))
    print(write())

if __name__ == '__main__': main()
