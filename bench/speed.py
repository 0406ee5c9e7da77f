"""Per-step cost of ContProto's callbacks on one fixed batch (issue: speed and memory benchmarks).

For each configuration, a fresh subprocess builds the student learner on the same real batch (16 source + 16 target
sentences) and times `--steps` training steps after `--warmup` steps; the median step time and the process's peak
resident memory (CPU) or peak CUDA memory (GPU) are reported. Configurations: vanilla (eq. 3), the double-forward floor
(DoubleForward alone), full ContProto, and full ContProto minus each callback (that callback's cost).

    python bench/speed.py                      # MiniLM (offline), CPU, real CoNLL en->de batch from ../shared/data
    python bench/speed.py --model tiny --steps 3 --warmup 1   # smoke test (what CI runs)
Prints a table and writes bench/results/speed.json (or --out)."""
import argparse, json, resource, statistics, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {'vanilla': [], 'double_forward_floor': ['DoubleForward']}

def full(): 
    from contproto_fastai.contproto import PRESETS
    return PRESETS['contproto']

def batch_data(model, n=16, seed=0):
    "Encoded source/target examples (n each) and the encoder factory."
    from contproto_fastai.data import read_conll, LabelSet, encode, word_tokenizer
    from contproto_fastai.model import load_encoder, tiny_encoder
    from contproto_fastai.testing import toy_sentences
    data = ROOT.parent/'shared'/'data'/'conll'
    if (data/'en'/'train.txt').exists():
        src = read_conll(data/'en'/'train.txt')[:n]; tgt = read_conll(data/'de'/'train.txt', labelled=False)[:n]
    else: src, tgt = toy_sentences(n, 'src', seed), toy_sentences(n, 'tgt', seed, labelled=False)
    labels = LabelSet(['LOC', 'MISC', 'ORG', 'PER'])
    if model == 'tiny':
        tok = word_tokenizer([w for s in src + tgt for w in s.tokens])
        make = lambda: tiny_encoder(len(tok), hidden=64, seed=0)
    else:
        enc, tok = load_encoder(model); sd = {k: v.clone() for k, v in enc.state_dict().items()}
        def make():
            e, _ = load_encoder(model); e.load_state_dict(sd); return e
    return encode(src, tok, labels)[0], encode(tgt, tok, None)[0], labels, make

def run_one(cbs_names, model, steps, warmup, device):
    "Time one configuration in this process; returns dict."
    import torch
    from fastai.callback.progress import ProgressCallback
    from contproto_fastai.model import SpanNER
    from contproto_fastai.pseudo import ContProtoState, teacher_pseudo_labels
    from contproto_fastai.learner import student_learner
    from contproto_fastai import contproto as cp
    torch.manual_seed(0)
    src, tgt, labels, make = batch_data(model)
    model_ = SpanNER(make(), len(labels)).to(device)
    state = ContProtoState(teacher_pseudo_labels(model_, tgt, device=device), classes=labels.classes)
    cbs = [getattr(cp, n)() for n in cbs_names]
    learn = student_learner(model_, src, tgt, src, state, bs=len(src), lr=1e-5, cbs=cbs, device=device)
    learn.remove_cb(ProgressCallback)
    times = []
    class Timer(cp.Callback):
        order = 100
        def before_batch(self):
            if device.startswith('cuda'): torch.cuda.synchronize()
            self.t = time.perf_counter()
        def after_batch(self):
            if device.startswith('cuda'): torch.cuda.synchronize()
            if self.training: times.append(time.perf_counter() - self.t)
    from fastai.callback.core import CancelValidException
    class NoValid(cp.Callback):
        def before_validate(self): raise CancelValidException()
    if device.startswith('cuda'): torch.cuda.reset_peak_memory_stats()
    learn.fit(warmup + steps, 1e-5, cbs=[Timer(), NoValid()])   # one batch per epoch: len(src) == bs
    t = times[warmup:]
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith('cuda') else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n_spans = sum(len(e.word_spans) for e in src) + sum(len(e.word_spans) for e in tgt)
    return dict(callbacks=cbs_names, median_s=statistics.median(t), min_s=min(t), steps=len(t), peak_mb=peak, spans=n_spans)

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', default='minilm'); p.add_argument('--steps', type=int, default=15)
    p.add_argument('--warmup', type=int, default=3); p.add_argument('--device', default=None)
    p.add_argument('--out', default=str(ROOT/'bench'/'results'/'speed.json'))
    p.add_argument('--one', default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    import torch
    device = a.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if a.one is not None:
        print(json.dumps(run_one(json.loads(a.one), a.model, a.steps, a.warmup, device))); return
    f = full()
    configs = dict(CONFIGS, contproto=f, **{f'contproto_without_{n}': [c for c in f if c != n] for n in f})
    results = {}
    for name, cbs in configs.items():
        cmd = [sys.executable, __file__, '--one', json.dumps(cbs), '--model', a.model, '--steps', str(a.steps),
               '--warmup', str(a.warmup), '--device', device]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode: sys.exit(f"{name} failed:\n{r.stderr[-3000:]}")
        results[name] = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"{name:40s} {results[name]['median_s']*1000:9.1f} ms  peak {results[name]['peak_mb']:8.0f} MB", flush=True)
    floor, fullt = results['double_forward_floor']['median_s'], results['contproto']['median_s']
    summary = dict(contproto_over_floor=fullt / floor, contproto_over_vanilla=fullt / results['vanilla']['median_s'],
                   callback_cost_s={n: fullt - results[f'contproto_without_{n}']['median_s'] for n in f})
    from contproto_fastai.cli import machine_info
    machine = dict(machine_info(device), model=a.model)
    out = dict(machine=machine, steps=a.steps, warmup=a.warmup, results=results, summary=summary,
               command=' '.join(['python', 'bench/speed.py'] + sys.argv[1:]))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True); Path(a.out).write_text(json.dumps(out, indent=2))
    print(f"\nContProto / double-forward floor: {summary['contproto_over_floor']:.3f}   ContProto / vanilla: {summary['contproto_over_vanilla']:.3f}")
    for n, c in summary['callback_cost_s'].items(): print(f"  cost of {n:16s} {c*1000:8.1f} ms/step")
    print(f"machine: {machine}\nwritten: {a.out}")

if __name__ == '__main__': main()
