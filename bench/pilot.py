"""Why prototype refinement barely moves pseudo labels here: the pilot runs of issue 21 (German, the README command's
teacher and its pseudo labels on 1,000 German sentences, a student from the teacher's weights for 5 epochs: 1 warm-up +
4 refining) under different refinement choices, read from their results.json traces, and how confident the teacher's
soft labels are (how many labels any refinement schedule could change at all).

    python bench/pilot.py run               # the runs (resumable: two one-thread processes at a time), then the tables
    python bench/pilot.py                   # bench/results/pilot_refinement.{md,json}
"""
import argparse, json, math, sys
from dataclasses import replace
from pathlib import Path
from contproto_fastai.config import RunConfig, data_paths
from contproto_fastai.results import Results
from contproto_fastai.grid import Job, run_grid, subprocess_runner
import torch

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent/'shared'/'data'/'conll'


def jobs():
    """The pilot as `grid.Job`s: the README command's teacher (1,000 English sentences, 3 epochs, pseudo labels on 1,000
    German ones), then 5-epoch students (1 warm-up + 4 refining) from its weights under each refinement choice, and one
    from the pretrained encoder."""
    base = RunConfig(**data_paths(DATA, 'en', 'de'), teacher_epochs=3, src_limit=1000, dev_limit=500, tgt_limit=1000, sortish=50, quiet=True)
    student = replace(base, epochs=5, student_init='teacher')
    rows = dict(A_contproto=dict(ablation='contproto'), B_authors=dict(ablation='authors'),
                C_beta_schedule=dict(ablation='contproto', beta='0.95,0.8'), D_fresh_student=dict(ablation='contproto', student_init='pretrained'))
    return [Job('teacher', replace(base, epochs=0))] + [Job(name, replace(student, **f), after='teacher') for name, f in rows.items()]


def _sum(xs): return sum(xs) if xs else 0


def run_row(name, r):
    "One pilot's row: options, pseudo-label F1 per epoch, moves fixed/broken, gate and vote counts over the refining epochs."
    tr, st, cfg = r.get('trace') or [], r.get('trace_start') or {}, r['config']
    ref = [e for e in tr if e['refined']]
    moves = {k: [sum(e['moves'][k][q] for e in ref) for q in ('n', 'fixed', 'broken')] for k in ('o_to_entity', 'entity_to_o', 'entity_to_entity')}
    rs = lambda k: _sum([_sum(e['refine_stats'][k]) for e in ref if 'refine_stats' in e])
    vs = lambda k: _sum([_sum(e['votes'][k]) for e in ref if 'votes' in e]) if any('votes' in e for e in ref) else None
    opts = ', '.join(f"{k}={cfg[k]}" for k in ('ablation', 'beta', 'gate', 'margin_from', 'first_margin', 'student_init')
                     if cfg.get(k) not in (None, 'auto') and not (k == 'ablation' and cfg[k] == 'contproto') and not (k == 'student_init' and cfg[k] == 'teacher'))
    if r.get('unfinished') is not None: name = f"{name} (stopped after epoch {r['unfinished'] - 1})"
    return dict(name=name, options=opts or 'contproto (paper reading)', pseudo_f1=[st.get('pseudo', {}).get('f1')] + [e['pseudo']['f1'] for e in tr],
                pseudo_p=[e['pseudo']['precision'] for e in tr], pseudo_r=[e['pseudo']['recall'] for e in tr], moves=moves,
                differs=rs('differs'), passed=rs('passed'), held=rs('held'), model_differs=rs('model_differs'),
                votes=None if vs('pushed') is None else dict(pushed=vs('pushed'), toward_gold=vs('toward_gold'), from_gold=vs('from_gold')),
                margins_end=tr[-1].get('margins') if tr else None, flippable=st.get('flippable'),
                test_f1=r['student']['f1'] if 'student' in r else None, kept_epoch=r.get('kept_epoch'))


def read_run(d):
    """A pilot's results.json; for a run still going (or stopped), what its last checkpoint holds: config, the trace
    so far (`unfinished`: epochs done), no test score yet."""
    if (r := Results.read(d)) is not None and r.phase_done('student'): return r.to_dict()
    if not (d/'student_ckpt.pt').exists(): return None
    ck = torch.load(d/'student_ckpt.pt', weights_only=True, map_location='cpu')
    rec = ck['state']['records']                       # StudentRecords.state_dict()
    return dict(config=json.loads((d/'config.json').read_text()), trace=rec.get('trace'), trace_start=rec.get('trace_start'),
                unfinished=ck['epoch'])


def confidence(pseudo_labels, labels, schedules):
    "Per class of the teacher's argmax: spans, and how many could change argmax within each schedule (product K of its rates)."
    from contproto_fastai.diagnostics import flippable
    probs = torch.load(pseudo_labels, weights_only=True)['probs']
    return {name: flippable(probs, K) for name, K in schedules.items()}


def table(rows, conf, labels):
    f = lambda v: '' if v is None else f"{100 * v:.2f}"
    L = ["# Pilot: does prototype refinement act?", "",
         "German, the README command's teacher (1,000 English sentences, 3 epochs) and its pseudo labels on 1,000 German",
         "sentences; each student from the teacher's weights, 5 epochs (1 warm-up + 4 refining), everything else default.",
         "Against the German train gold tags, which training never reads. Runs: `bash bench/pilot.sh`; table: `python bench/pilot.py`.", "",
         "## How many labels can change at all", "",
         "A span's argmax can change within refining updates whose rates multiply to K only if its top − second soft-label",
         "probability is below (1 − K)/K (see `diagnostics.flippable`). Per class of the teacher's argmax, spans that could:", "",
         "| schedule | K | bound | " + ' | '.join(labels) + " |", "|---|---|---|" + "---|" * len(labels)]
    for name, x in conf.items():
        L.append(f"| {name} | {x['K']:.3f} | {x['bound']:.2f} | " + ' | '.join(f"{fl} of {n} ({100 * fl / max(1, n):.1f}%)" for n, fl in zip(x['spans'], x['flippable'])) + " |")
    L += ["", "## The pilot runs", "",
          "Pseudo-label F1 ×100 after each epoch (0: the teacher's labels); over the four refining epochs: argmax changes by",
          "kind (n: fixed / broken), spans whose closest prototype differs from their label (*differ*), of those let through by",
          "the margin gate (*passed*), all spans the gate held back (*held*); spans moved toward another class than their label",
          "and of those toward their gold class / away from a correct label (*votes*; recorded from the second round of pilots on);",
          "target test F1 of the kept epoch (source dev selection).", "",
          "| run | options | pseudo-label F1 per epoch | O→ent | ent→O | ent→ent | differ / passed / held | votes: toward gold / from gold | test F1 (kept epoch) |",
          "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mv = lambda k: f"{r['moves'][k][0]} ({r['moves'][k][1]} / {r['moves'][k][2]})"
        v = r['votes']
        votes = '' if v is None else f"{v['pushed']}: {v['toward_gold']} / {v['from_gold']}"
        kept = '' if r['test_f1'] is None else f"{f(r['test_f1'])} ({r['kept_epoch']})"
        L.append(f"| {r['name']} | {r['options']} | {' → '.join(f(x) for x in r['pseudo_f1'])} | {mv('o_to_entity')} | {mv('entity_to_o')} | "
                 f"{mv('entity_to_entity')} | {r['differs']} / {r['passed']} / {r['held']} | "
                 f"{votes} | {kept} |")
    return '\n'.join(L) + '\n'


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('what', nargs='?', choices=['run', 'tables'], default='tables')
    p.add_argument('--runs', default=str(ROOT/'runs'/'pilot')); p.add_argument('--results', default=str(ROOT/'bench'/'results'))
    a = p.parse_args(argv)
    runs = Path(a.runs)
    if a.what == 'run':
        try: run_grid(jobs(), runs, workers=2, runner=subprocess_runner, keep_checkpoints=True)
        except RuntimeError as e: sys.exit(str(e))
    rows = [run_row(d.name, r) for d in sorted(runs.iterdir()) if d.is_dir() and d.name != 'teacher' and (r := read_run(d))]
    labels = Results.read(runs/'teacher')['labels']
    sched = {'paper: β = 0.95, 4 refining epochs (the pilots)': 0.95 ** 4, 'paper: β = 0.95, 9 refining epochs (§4.1)': 0.95 ** 9,
             "authors: β 0.95 → 0.8, 4 of 5 epochs": math.prod(0.95 - 0.15 * e / 5 for e in range(1, 5)),
             "authors: β 0.95 → 0.8, 9 of 10 epochs": math.prod(0.95 - 0.15 * e / 10 for e in range(1, 10))}
    conf = confidence(runs/'teacher'/'pseudo_labels.pt', labels, sched)
    out = Path(a.results); out.mkdir(parents=True, exist_ok=True)
    (out/'pilot_refinement.md').write_text(table(rows, conf, labels))
    (out/'pilot_refinement.json').write_text(json.dumps(dict(rows=rows, confidence=conf, labels=labels), indent=1))
    print(table(rows, conf, labels))


if __name__ == '__main__': main()
