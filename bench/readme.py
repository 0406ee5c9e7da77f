"""README's main command as README gives it (seed 0: what a first run prints) and again with `--seed 1` and `--seed 2`,
each in its own folder, with the machine's default threads (as a user runs it); then `bench/results/readme_en-de.json`:
seed 0's `results.json` (README's table), every seed's test F1s with their mean and standard deviation, the machine,
the commit, and the numerics guard's figures of this code (`bench/guard.py`), which `tests/test_guard.py` checks
against the committed guard: change the numerics and this run must be made again.

    python bench/readme.py [--seeds 0,1,2] [--runs runs/readme]     # resumable: a finished seed is kept, an interrupted one resumed

Each seed runs in a process of its own (`grid.run_grid`), its output in `runs/readme/seed<k>.log`.
"""
import argparse, contextlib, json, re, shlex, statistics, subprocess, sys
from pathlib import Path
from contproto_fastai.results import Results
from contproto_fastai.config import arg_parser, config_from_args
from contproto_fastai.progress import machine_info
from contproto_fastai.grid import Job, run_grid, subprocess_runner

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT/'bench'/'results'/'readme_en-de.json'


def readme_command(readme=ROOT/'README.md'):
    "The `contproto-fit` command of README's install line (what follows its `&&`)."
    m = re.search(r'&& (contproto-fit --data [^\n`]+)', readme.read_text(encoding='utf-8'))
    if not m: sys.exit(f"{readme}: no 'pip install ... && contproto-fit --data ...' line")
    return m.group(1).strip()


def seed_args(command, seed, out):
    "The command's arguments with `--seed` (none for seed 0: the command as README gives it) and `--out out`."
    a = shlex.split(command)[1:]
    i = a.index('--out'); a[i + 1] = str(out)
    return a + (['--seed', str(seed)] if seed else [])


def jobs(command, seeds):
    "README's command for each of `seeds` as a `grid.Job` in `seed<k>` (its paths read from the repository root, as README's are)."
    with contextlib.chdir(ROOT):
        return [Job(f'seed{s}', config_from_args(arg_parser().parse_args(seed_args(command, s, f'seed{s}')))) for s in seeds]


def guard_figures():
    "The commit of this code and the numerics guard's figures of it (`bench/guard.py figures`, in a process of its own)."
    r = subprocess.run([sys.executable, str(ROOT/'bench'/'guard.py'), 'figures'], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--seeds', default='0,1,2')
    p.add_argument('--runs', default='runs/readme', type=Path)
    a = p.parse_args(argv)
    command, seeds = readme_command(), [int(s) for s in a.seeds.split(',')]
    root = (ROOT/a.runs).resolve()
    # one seed at a time, each in a process of its own with the machine's threads (as a user runs it)
    run_grid(jobs(command, seeds), root, workers=1, runner=lambda cfg: subprocess_runner(cfg, threads=None), keep_checkpoints=True)
    runs = {s: Results.read(root/f'seed{s}') for s in seeds}
    pts = lambda key: [round(100 * runs[s][key]['f1'], 4) for s in seeds]       # test F1 in points, one per seed
    sd = lambda xs: round(statistics.stdev(xs), 4) if len(xs) > 1 else 0.
    zs, st = pts('teacher'), pts('student')
    g = guard_figures()
    out = dict(command=command, code=g['code'],
               note="seed 0 is the command as README gives it; the other seeds add --seed; each with the machine's default torch threads",
               machine=machine_info(), seeds=seeds, zero_shot=zs, student=st, zero_shot_std=sd(zs), student_std=sd(st),
               student_minus_zero_shot=[round(b - a, 4) for a, b in zip(zs, st)],
               guard=g['figures'], results=runs[0].to_dict() if 0 in runs else None)
    OUT.write_text(json.dumps(out, indent=2) + '\n')
    print(json.dumps({k: out[k] for k in ('seeds', 'zero_shot', 'student', 'zero_shot_std', 'student_std')}))


if __name__ == '__main__': main()
