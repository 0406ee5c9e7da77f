"""The numerics guard: a small real run whose figures are committed, so that a change of the code's numerics fails CI.

`CONFIG` is the run: the default encoder (e5-small), CoNLL English → German, 200 source, 100 source-dev, 100 target and
200 target-test sentences, one teacher epoch and two ContProto student epochs (a warm-up and one of prototype
refinement), seed 0, one torch thread. `tests/test_guard.py`
reruns it in CI and compares its `figures` (losses, span F1 on the source dev set, zero-shot F1, the pseudo labels' F1
before and after refinement, student F1) with `bench/results/guard.json` within `TOLERANCE`. README's main-command run (`bench/readme.py`) records the guard's
figures of the code it ran at, and the test also checks that they are the committed ones: after a deliberate change of
the numerics, refresh both (`write` here, then `bench/readme.py`).

    python bench/guard.py check      # run it and compare with bench/results/guard.json
    python bench/guard.py write      # refresh bench/results/guard.json (the code's numerics changed on purpose)
    python bench/guard.py spread     # the run under each ATen CPU kernel set and 1 or 2 threads: the tolerance's evidence
    python bench/guard.py figures    # print the figures of this code and its commit as one JSON line (what bench/readme.py records)

`TOLERANCE` comes from `spread` (bench/results/guard.json, `spread`): the largest difference between those variants,
which stand in for other x86 machines (a CPU without AVX-512 runs other kernels of ATen, MKL and oneDNN, which add
floats in another order), with a margin; see `TOLERANCE`'s comment.
"""
import argparse, dataclasses, json, os, subprocess, sys, tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent/'shared'/'data'/'conll'
OUT = ROOT/'bench'/'results'/'guard.json'
COMMAND = 'python bench/guard.py write'
KEYS = ('teacher_train_loss', 'teacher_dev_span_f1', 'zero_shot_f1', 'pseudo_label_f1', 'refined_pseudo_label_f1',
        'student_train_loss', 'student_f1')
# each figure's allowed difference: relative for the losses, absolute (F1 as a fraction) for the F1s. `spread` (four
# variants: this CPU's best kernels, AVX2's, no-AVX's at one thread, the best at two threads) found the teacher's loss
# within 2.2e-7 (relative), the student's within 3.1e-6 at one thread and 9.5e-6 at two, the teacher's and pseudo
# labels' F1s equal and the student's F1 equal at one thread, 0.034 points apart at two (one test entity). The guard
# runs at one thread. Allowed: 3e-5 on the losses (10x the one-thread spread, 3x the two-thread one) and 0.2 points of
# F1 (6x the largest seen). At 1e-4 and half a point, reversing the prototype EMA's weights (eq. 8) passed: it moved the
# student's loss by 6.1e-5 and its F1 by 0.24 points; these bounds catch it.
TOLERANCE = dict(teacher_train_loss=3e-5, teacher_dev_span_f1=0.002, zero_shot_f1=0.002, pseudo_label_f1=0.002,
                 refined_pseudo_label_f1=0.002, student_train_loss=3e-5, student_f1=0.002)
RELATIVE = ('teacher_train_loss', 'student_train_loss')


def config(out):
    "The guard's `RunConfig`, writing to `out`."
    from contproto_fastai.config import RunConfig
    return RunConfig.from_data(DATA, 'en', 'de', teacher_epochs=1, epochs=2, src_limit=200, dev_limit=100, tgt_limit=100,
                               test_limit=200, student_init='teacher', sortish=50, seed=0, out=str(out), quiet=True)


def figures(res):
    "The guarded figures of a finished run's `Results`."
    return dict(teacher_train_loss=res.teacher_history[-1]['train_loss'], teacher_dev_span_f1=res.teacher_history[-1]['span_f1'],
                zero_shot_f1=res.teacher['f1'], pseudo_label_f1=res.pseudo_label_f1,
                refined_pseudo_label_f1=res.pseudo_label_f1_curve[-1],
                student_train_loss=res.student_history[-1]['train_loss'], student_f1=res.student['f1'])


def measure(threads=1):
    "Run the guard (in this process, `threads` torch threads) and return its `figures`."
    import torch
    from contproto_fastai.run import Run
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with tempfile.TemporaryDirectory() as d: return figures(Run(config(Path(d)/'run')).fit())
    finally: torch.set_num_threads(before)


def differences(got, want, tolerance=TOLERANCE):
    "The figures of `got` that differ from `want` by more than `tolerance`, as lines saying by how much."
    bad = []
    for k in KEYS:
        d = abs(got[k] - want[k]) / (abs(want[k]) if k in RELATIVE else 1)
        if d > tolerance[k]: bad.append(f"{k}: {got[k]:.6f}, committed {want[k]:.6f} ({'relative ' if k in RELATIVE else ''}difference {d:.2g} > {tolerance[k]:g})")
    return bad


def code_commit():
    "The commit the library's code is at, and whether the working tree's library differs from it."
    git = lambda *a: subprocess.run(['git', *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = git('status', '--porcelain', '--', 'contproto_fastai')
    return f"commit {git('rev-parse', '--short', 'HEAD')}" + (' with uncommitted changes to contproto_fastai/' if dirty else '')


def committed(path=OUT): return json.loads(Path(path).read_text())


# what a CPU without AVX-512 (avx2) or without AVX (default) runs: ATen's kernels, MKL's and oneDNN's code paths
ISA = dict(avx2=dict(ATEN_CPU_CAPABILITY='avx2', MKL_ENABLE_INSTRUCTIONS='AVX2', ONEDNN_MAX_CPU_ISA='AVX2'),
           default=dict(ATEN_CPU_CAPABILITY='default', MKL_ENABLE_INSTRUCTIONS='SSE4_2', ONEDNN_MAX_CPU_ISA='SSE41'))

def _variant(capability, threads):
    "The guard's figures in a fresh process with the `capability` code paths (`ISA`; None: this CPU's best) and `threads` threads."
    env = dict(os.environ, **ISA.get(capability, {}))
    code = f"import json, sys; sys.path.insert(0, {str(ROOT/'bench')!r}); import guard; print(json.dumps(guard.measure({threads})))"
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def spread(variants=((None, 1), ('avx2', 1), ('default', 1), (None, 2))):
    "The guard under each of `variants` (ATen CPU kernels, threads), and each figure's largest difference from the first."
    runs = [dict(capability=c or 'best', threads=t, figures=_variant(c, t)) for c, t in variants]
    ref = runs[0]['figures']
    diff = {k: max(abs(r['figures'][k] - ref[k]) / (abs(ref[k]) if k in RELATIVE else 1) for r in runs) for k in KEYS}
    return dict(variants=runs, largest_difference=diff)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('what', choices=('check', 'write', 'spread', 'figures'))
    a = p.parse_args(argv)
    from contproto_fastai.progress import machine_info
    from contproto_fastai.config import FILES
    if a.what == 'spread':
        s = spread()
        for r in s['variants']: print(r['capability'], r['threads'], json.dumps(r['figures']))
        print('largest difference:', json.dumps(s['largest_difference']))
        d = committed() if OUT.exists() else {}
        OUT.write_text(json.dumps(dict(d, spread=dict(s, machine=machine_info())), indent=2) + '\n')
        return
    got = measure()
    if a.what == 'figures': print(json.dumps(dict(code=code_commit(), figures=got))); return
    if a.what == 'write':
        d = committed() if OUT.exists() else {}
        OUT.write_text(json.dumps(dict(d, command=COMMAND, code=code_commit(),
                                       machine=dict(machine_info(), threads=1), config={k: v for k, v in dataclasses.asdict(config('run')).items()
                                                                      if k not in FILES + ('out',)}, figures=got), indent=2) + '\n')
        print(json.dumps(got, indent=2))
        return
    bad = differences(got, committed()['figures'])
    print(json.dumps(got, indent=2)); print('\n'.join(bad) or 'the guard holds')
    sys.exit(1 if bad else 0)


if __name__ == '__main__': main()
