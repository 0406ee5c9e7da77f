"""One table over the six targets of the grid (bench/grid.sh): target test F1 (mean ± std over seeds) of the zero-shot
teacher, vanilla self-training, ContProto (paper preset), ContProto (authors' preset) and the supervised ceiling,
the differences that answer the paper's question, the share of the zero-shot → ceiling gap closed, and the paper's
ContProto number; then Table 3 on German (the ablations of stage 3, paired with ContProto by seed, and how many pairs
of rows keep the paper's order). Reads bench/results/reproduce_<name>.json, writes bench/results/summary_<suffix>.{md,json}.

    python bench/summary.py                       # the e5-small grid: en-{de,es,nl,ar,hi,zh}-e5
"""
import argparse, json, statistics
from pathlib import Path
from contproto_fastai.results import mean_std
from contproto_fastai.grid import PAPER, TABLE3, gap_closed, paired

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ['de', 'es', 'nl', 'ar', 'hi', 'zh']
ROWS = ['zero-shot', 'vanilla', 'contproto', 'authors', 'ceiling']


def _f1s(runs, row):
    "Target test F1 ×100 of every seed of `row` (zero-shot: the vanilla runs' teachers; ceiling: the teacher-only runs)."
    if row == 'zero-shot': return [100 * r['teacher']['f1'] for r in runs if r['row'] == 'vanilla']
    if row == 'ceiling': return [100 * r['teacher']['f1'] for r in runs if r['row'] == 'ceiling']
    return [100 * r['student']['f1'] for r in runs if r['row'] == row and r.get('student')]


def _ms(xs): return mean_std(xs, scale=1)


def _paired(runs, a, b):
    "F1(a) − F1(b) ×100 per seed where both finished (same teacher and pseudo labels): `grid.paired` of the grid's runs."
    return list(paired([dict(r, f1=100 * r['student']['f1']) for r in runs if r.get('student')], a, b, 'f1').values())


def table3(runs, tgt='de'):
    """Table 3 on `tgt` from its grid runs: ContProto and each ablation (F1 mean ± std over seeds, the paired difference
    to ContProto of the same seed and teacher; every row over the seeds that have ablation runs) beside the paper's, and
    whether the paper's ordering holds: how many pairs of rows our means order as the paper does. `(markdown lines,
    dict)`, or `([], None)` with fewer than 2 rows."""
    paper, rows = PAPER[tgt], ['contproto', *TABLE3]
    seeds = {r['seed'] for r in runs if r['row'] in TABLE3 and r.get('student')}
    runs = [r for r in runs if r['seed'] in seeds]          # ContProto over the ablations' seeds only: like with like
    f1 = {r: _f1s(runs, r) for r in rows}
    have = [r for r in rows if f1[r]]
    if len(have) < 2 or 'contproto' not in have: return [], None
    mean = {r: statistics.mean(f1[r]) for r in have}
    pairs = [(a, b) for i, a in enumerate(have) for b in have[i+1:]]
    agree = [(a, b) for a, b in pairs if (mean[a] - mean[b]) * (paper[a] - paper[b]) > 0]
    ours, theirs = sorted(have, key=lambda r: -mean[r]), sorted(have, key=lambda r: -paper[r])
    lines = ["", f"## Table 3 on {tgt}: the ablations", "", f"Seeds {', '.join(map(str, sorted(seeds)))}: the seeds with ablation runs, ContProto's included.", "",
             "| row | n | F1 | row − ContProto (paired by seed) | paper | paper row − ContProto |", "|---|---|---|---|---|---|"]
    for r in have:
        if r == 'contproto': lines.append(f"| {r} | {len(f1[r])} | {_ms(f1[r])} | | {paper[r]} | |"); continue
        lines.append(f"| {r} | {len(f1[r])} | {_ms(f1[r])} | {_ms(_paired(runs, r, 'contproto'))} | {paper[r]} | "
                     f"{paper[r] - paper['contproto']:+.2f} |")
    lines += ["", f"Ordering by mean F1, ours: {' > '.join(ours)}; the paper's: {' > '.join(theirs)}. "
              f"Pairs ordered as in the paper: {len(agree)} of {len(pairs)}."]
    return lines, dict(f1=f1, order=ours, paper_order=theirs, pairs_agreeing=len(agree), pairs=len(pairs))


def summarize(results_dir, suffix='e5'):
    rows, out = [], {}
    for t in TARGETS:
        f = Path(results_dir)/f'reproduce_en-{t}-{suffix}.json'
        if not f.exists(): continue
        runs = json.loads(f.read_text())['runs']
        f1 = {row: _f1s(runs, row) for row in ROWS}
        zs, top = (statistics.mean(f1[k]) if f1[k] else None for k in ('zero-shot', 'ceiling'))
        gap = lambda row: '—' if (g := gap_closed(statistics.mean(f1[row]) if f1[row] else None, zs, top)) is None else f"{100 * g:.0f}%"
        cv, ac = _paired(runs, 'contproto', 'vanilla'), _paired(runs, 'authors', 'contproto')
        out[t] = dict(f1=f1, contproto_minus_vanilla=cv, authors_minus_contproto=ac, paper_contproto=PAPER[t]['contproto'])
        rows.append(f"| {t} | {len(f1['vanilla'])} | {_ms(f1['zero-shot'])} | {_ms(f1['vanilla'])} | {_ms(f1['contproto'])} | "
                    f"{_ms(f1['authors'])} | {_ms(f1['ceiling'])} | {_ms(cv)} | {_ms(ac)} | {gap('vanilla')} | {gap('contproto')} | "
                    f"{gap('authors')} | {PAPER[t]['contproto']} |")
    md = ["# Six targets, e5-small (bench/grid.sh)", "",
          "Target test entity F1 ×100 (seqeval, strict), mean ± std over the seeds that finished (n). Differences are paired by",
          "seed (same teacher and pseudo labels). Gap closed: (row − zero-shot) / (ceiling − zero-shot). Paper: ContProto with",
          "XLM-R large, 10 epochs, full data (Tables 1–2). Per-run details: `reproduce_en-<target>-e5.md`.", "",
          "| target | n | zero-shot | vanilla | ContProto | authors | ceiling | ContProto − vanilla | authors − ContProto | "
          "gap closed: vanilla | ContProto | authors | paper ContProto |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|", *rows]
    de = Path(results_dir)/f'reproduce_en-de-{suffix}.json'
    if de.exists():
        t3, out['table3_de'] = table3(json.loads(de.read_text())['runs'], 'de')
        md += t3
    Path(results_dir, f'summary_{suffix}.md').write_text('\n'.join(md) + '\n')
    Path(results_dir, f'summary_{suffix}.json').write_text(json.dumps(out, indent=1))
    return '\n'.join(md)


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--results', default=str(ROOT/'bench'/'results')); p.add_argument('--suffix', default='e5')
    a = p.parse_args()
    print(summarize(a.results, a.suffix))
