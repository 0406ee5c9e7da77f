"""Speed and memory of ContProto training and of inference (issue: speed and memory benchmarks).

Every training measurement runs in a fresh subprocess that builds the student learner on one fixed batch of real
sentences (source English, target German, from ../shared/data; toy sentences when absent) and times `--steps`
training steps after `--warmup` steps: median step time, and the process's peak resident memory (CPU) or peak CUDA
memory (GPU). Parts (`--parts`, default all):

- `callbacks`: vanilla (eq. 3), the second forward pass alone (DoubleForward, nothing back-propagated through it), the
  double-forward floor (two views, both back-propagated: DoubleForward + ConsistencyReg), full ContProto, full ContProto minus
  each callback (that callback's cost), and full ContProto with SupCon's O-span down-sampling (`o_keep`) or a cap on
  contrasted spans (`max_spans`); 16 + 16 sentences as they come.
- `scaling`: vanilla, floor, ContProto and ContProto with `max_spans` for sentences cut to 16/32/64 words (batch 8)
  and for batches of 4/8/16 sentences (32 words): spans grow as n·L.
- `supcon`: the contrastive loss (eq. 4) alone, forward and backward, on `n` random unit features (128-d, 90 % `O`):
  peak extra memory and time of `supcon_loss` as used in training (its default chunks keep each similarity matrix
  within 2^26 entries, recomputed in backward) against the same function forced to one n × n matrix, for n up to
  32,768 (a batch of 16 + 16 real sentences gives about 6,000 spans over two views); one matrix is not run above
  `--one-matrix-max` spans.
- `embeddings`: vanilla, the floor and full ContProto, each with the encoder's word embeddings frozen and trainable
  (for e5-small they are 96M of its 118M parameters; its recipe freezes them).
- `inference`: sentences per second of `SpanPredictor.tag` on the whole target test set (tokenising, encoding,
  decoding included).

    python bench/speed.py --model e5-small                   # the default encoder (offline), real CoNLL en->de, CPU or GPU
    python bench/speed.py                                    # MiniLM (offline)
    python bench/speed.py --model tiny --steps 2 --warmup 1  # smoke run (CI)

The span model is built with the encoder's recipe (`recipe(model)`: for e5-small LayerNorm on z and frozen word
embeddings) unless a configuration says otherwise. Prints tables and writes bench/results/speed.json for MiniLM,
bench/results/speed_<model>.json for another encoder (or --out), with the machine (CPU model, cores, torch version)."""
import argparse, json, resource, statistics, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent/'shared'/'data'/'conll'

# The floor: two dropout views, both back-propagated. DoubleForward alone runs the second forward pass but nothing
# reads `pred2`, so autograd skips its backward; the consistency term (a KL over the logits, negligible by itself) makes
# the second view's backward run, as it does in ContProto (the `no_proto_no_cl` preset).
FLOOR = ['DoubleForward', 'ConsistencyReg']

def full():
    from contproto_fastai.presets import PRESETS
    return list(PRESETS['contproto'].callbacks)     # the callback names (JSON: each spec goes to a subprocess)

def sentences(n, words=None, tgt=False):
    "`n` real sentences (toy ones without ../shared); with `words`, consecutive sentences joined and cut to exactly `words` words."
    from contproto_fastai.data import read_conll, Sentence
    from contproto_fastai.testing import toy_sentences
    if (DATA/'en'/'train.txt').exists():
        pool = read_conll(DATA/'de'/'train.txt', labelled=False) if tgt else read_conll(DATA/'en'/'train.txt')
    else: pool = toy_sentences(4 * n * max(1, (words or 8) // 8), 'tgt' if tgt else 'src', 0, labelled=not tgt)
    if words is None: return pool[:n]
    toks = [w for s in pool for w in s.tokens]; tags = None if tgt else [t for s in pool for t in s.tags]
    if len(toks) < n * words: raise ValueError(f"not enough words for {n} sentences of {words}")
    return [Sentence(toks[i*words:(i+1)*words], None if tgt else tags[i*words:(i+1)*words]) for i in range(n)]

def encoder_factory(model, words):
    "A function building the encoder (same weights every time) and its tokenizer."
    from contproto_fastai.model import load_encoder, tiny_encoder
    from contproto_fastai.data import word_tokenizer
    if model == 'tiny':
        tok = word_tokenizer(words)
        return (lambda: tiny_encoder(len(tok), hidden=64, seed=0)), tok
    enc, tok = load_encoder(model); sd = {k: v.clone() for k, v in enc.state_dict().items()}
    def make():
        e, _ = load_encoder(model); e.load_state_dict(sd); return e
    return make, tok

def peak_mb(device):
    import torch
    if device.startswith('cuda'): return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def run_one(spec, model, steps, warmup, device):
    """Time training steps of one configuration in this process. `spec`: `cbs` (callback names), `kw` (their keyword
    arguments by name), `n` (sentences per side), `words` (None: real sentences as they are)."""
    import torch
    from fastai.callback.progress import ProgressCallback
    from fastai.callback.core import CancelValidException
    from contproto_fastai.data import LabelSet, encode
    from contproto_fastai.model import SpanNER, recipe
    from contproto_fastai.pseudo import ContProtoState, teacher_pseudo_labels
    from contproto_fastai.learner import student_learner
    from contproto_fastai import contproto as cp
    torch.manual_seed(0)
    n, words = spec.get('n', 16), spec.get('words')
    src, tgt = sentences(n, words), sentences(n, words, tgt=True)
    make, tok = encoder_factory(model, [w for s in src + tgt for w in s.tokens])
    labels = LabelSet(['LOC', 'MISC', 'ORG', 'PER'])
    max_len = 512 if words else 128                     # scaling: keep each sentence whole
    src, tgt = encode(src, tok, labels, max_len=max_len)[0], encode(tgt, tok, None, max_len=max_len)[0]
    model_ = SpanNER(make(), len(labels), **{**recipe(model).model_kwargs(), **spec.get('model_kw', {})}).to(device)
    state = ContProtoState(teacher_pseudo_labels(model_, tgt, device=device), classes=labels.classes)
    cbs = [getattr(cp, c)(**spec.get('kw', {}).get(c, {})) for c in spec['cbs']]
    # every step sees the same whole batch on both sides (a sentence longer than max_len encodes as several examples,
    # so the sides may differ in length: with bs=n a second, one-example target batch would alternate with the full one)
    learn = student_learner(model_, src, tgt, src, state, bs=len(src), tgt_bs=len(tgt), lr=1e-5, cbs=cbs, device=device, max_len=max_len, select=None)   # no validation here: no best-epoch selection
    learn.remove_cb(ProgressCallback); learn.logger = lambda *a: None
    times, seen = [], set()
    sync = (lambda: torch.cuda.synchronize()) if device.startswith('cuda') else (lambda: None)
    class Timer(cp.Callback):
        order = 100
        def before_batch(self):
            if self.training: seen.add(int(sum(side['span_mask'].sum() for side in self.xb[0].values())))   # spans this step
            sync(); self.t = time.perf_counter()
        def after_batch(self):
            sync()
            if self.training: times.append(time.perf_counter() - self.t)
    class NoValid(cp.Callback):
        def before_validate(self): raise CancelValidException()
    if device.startswith('cuda'): torch.cuda.reset_peak_memory_stats()
    learn.fit(warmup + steps, 1e-5, cbs=[Timer(), NoValid()])   # one batch per epoch: len(src) == bs
    t = times[warmup:]
    n_spans = sum(len(e.word_spans) for e in src) + sum(len(e.word_spans) for e in tgt)
    return dict(spec, median_s=statistics.median(t), min_s=min(t), steps=len(t), times_s=t, peak_mb=peak_mb(device), spans=n_spans,
                spans_seen=sorted(seen))

def run_inference(model, device, predictor=None, bs=32, limit=None):
    "Sentences per second of `SpanPredictor.tag` over the target test set (an exported model, or `model` with an untrained head)."
    import torch
    from contproto_fastai.data import read_conll, LabelSet
    from contproto_fastai.model import SpanNER, recipe
    from contproto_fastai.predict import SpanPredictor, load_predictor
    path = DATA/'de'/'test.txt'
    sents = [s.tokens for s in (read_conll(path, labelled=False) if path.exists() else sentences(200, tgt=True))][:limit]
    if predictor: pred = load_predictor(predictor, device=device)
    else:
        torch.manual_seed(0)
        make, tok = encoder_factory(model, [w for s in sents for w in s])
        m = SpanNER(make(), 5, **recipe(model).model_kwargs()).to(device).eval()
        pred = SpanPredictor(m, tok, LabelSet(['LOC', 'MISC', 'ORG', 'PER']), device=device)
    pred.tag(sents[:bs], bs=bs)                                     # warm-up
    if device.startswith('cuda'): torch.cuda.synchronize()
    t = time.perf_counter(); tags = pred.tag(sents, bs=bs)
    if device.startswith('cuda'): torch.cuda.synchronize()
    dt = time.perf_counter() - t
    return dict(sentences=len(sents), words=sum(map(len, sents)), bs=bs, seconds=dt, sentences_per_s=len(sents) / dt,
                entities=sum(t.startswith('B-') for ts in tags for t in ts), source=str(path if path.exists() else 'toy'),
                predictor=predictor or f'{model} (untrained head)', peak_mb=peak_mb(device))

def run_supcon(n, one_matrix, seed=0):
    """Peak extra resident memory (MB) and seconds of `supcon_loss` forward + backward on `n` random unit features;
    `one_matrix`: force one n x n matrix (else the default chunking). Run it in a fresh process: the peak is the process's high-water mark."""
    import torch, torch.nn.functional as F
    from contproto_fastai.contproto import supcon_loss
    g = torch.Generator().manual_seed(seed)
    feats = F.normalize(torch.randn(n, 128, generator=g), dim=-1).requires_grad_()
    labels = torch.where(torch.rand(n, generator=g) < 0.9, 0, torch.randint(1, 5, (n,), generator=g))
    before = peak_mb('cpu'); t = time.perf_counter()
    supcon_loss(feats, labels, 0.07, chunk=n if one_matrix else None).backward()
    return dict(n=n, one_matrix=one_matrix, seconds=time.perf_counter() - t, extra_peak_mb=peak_mb('cpu') - before,
                dense_matrix_mb=n * n * 4 / 2**20)

def callback_specs(o_keep, max_spans):
    f = full()
    specs = {'vanilla': dict(cbs=[]), 'second_forward_only': dict(cbs=['DoubleForward']),
             'double_forward_floor': dict(cbs=FLOOR), 'contproto': dict(cbs=f)}
    # without c: c and any callback that needs it (ConsistencyReg without DoubleForward would refuse to run)
    from contproto_fastai.contproto import NEEDS
    specs.update({f'contproto_without_{c}': dict(cbs=[x for x in f if x != c and c not in NEEDS.get(x, ())]) for c in f})
    specs[f'contproto_o_keep_{o_keep}'] = dict(cbs=f, kw={'SupConLoss': {'o_keep': o_keep}})
    specs[f'contproto_max_spans_{max_spans}'] = dict(cbs=f, kw={'SupConLoss': {'max_spans': max_spans}})
    return specs

def embedding_specs():
    "Vanilla, floor and ContProto, each with frozen and with trainable word embeddings."
    base = {'vanilla': dict(cbs=[]), 'double_forward_floor': dict(cbs=FLOOR), 'contproto': dict(cbs=full())}
    return {f'{k}_{e}': dict(v, model_kw=dict(freeze_embeddings=e == 'frozen'), config=k, embeddings=e)
            for k, v in base.items() for e in ('frozen', 'trainable')}

def scaling_specs(max_spans, lengths=(16, 32, 64), batches=(4, 8, 16)):
    f, out = full(), {}
    configs = {'vanilla': dict(cbs=[]), 'floor': dict(cbs=FLOOR), 'contproto': dict(cbs=f),
               f'contproto_max_spans_{max_spans}': dict(cbs=f, kw={'SupConLoss': {'max_spans': max_spans}})}
    points = list(dict.fromkeys([(8, L) for L in lengths] + [(n, 32) for n in batches]))
    for n, L in points:
        for name, c in configs.items(): out[f'{name}_n{n}_L{L}'] = dict(c, n=n, words=L, config=name)
    return out

def in_subprocess(flag, payload, *args):
    "Run this script with `flag payload args` in a fresh process (its own peak memory); returns the JSON it prints last."
    cmd = [sys.executable, __file__, flag, json.dumps(payload), *args]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode: sys.exit(f"{payload} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])

def subprocess_run(spec, a, device):
    "`run_one` in a fresh process, or in this one with `--in-process` (smoke runs)."
    spec = dict(spec, n=spec.get('n', a.sentences))
    if a.in_process: return run_one(spec, a.model, a.steps, a.warmup, device)
    return in_subprocess('--one', spec, '--model', a.model, '--steps', str(a.steps), '--warmup', str(a.warmup), '--device', device)

def _ms(r): return f"{1000 * r['median_s']:,.0f}"

def tables(out):
    """The result tables of a speed run `out` (its JSON), as `(title, columns, rows)`: printed on the console while
    measuring and written as markdown (`speed*.md`) from the same rows."""
    m, tabs = out['machine'], []
    where = f"{m['model']}, {m['device']} ({m['cpu']}, {m['threads']} threads)"
    if 'results' in out:
        res, s = out['results'], out['summary']; floor = res['double_forward_floor']['median_s']
        tabs.append((f"Training step, {where}: median ms per step", ['configuration', 'spans', 'ms / step', '÷ floor', 'peak MB'],
                     [[k, f"{r['spans']:,}", _ms(r), f"{r['median_s'] / floor:.2f}", f"{r['peak_mb']:,.0f}"] for k, r in res.items()]))
        tabs.append(("Cost of each callback: ContProto minus ContProto without it", ['callback', 'ms / step'],
                     [[c, f"{1000 * v:,.0f}"] for c, v in s['callback_cost_s'].items()]))
    if 'embeddings' in out:
        res = out['embeddings']; rows = []
        for k in dict.fromkeys(r['config'] for r in res.values()):
            fr, tr = res[f'{k}_frozen'], res[f'{k}_trainable']
            rows.append([k, _ms(fr), _ms(tr), f"{tr['median_s'] / fr['median_s']:.2f}", f"{fr['peak_mb']:,.0f}", f"{tr['peak_mb']:,.0f}"])
        tabs.append((f"Word embeddings frozen vs trainable, {where}: median ms per step",
                     ['configuration', 'frozen ms / step', 'trainable ms / step', 'trainable ÷ frozen', 'frozen peak MB', 'trainable peak MB'], rows))
    if 'scaling' in out:
        res = out['scaling']; cfgs = list(dict.fromkeys(r['config'] for r in res.values())); rows = []
        for n, L in dict.fromkeys((r['n'], r['words']) for r in res.values()):
            rs = [res[f'{c}_n{n}_L{L}'] for c in cfgs]
            rows.append([f"{n} × {L}", f"{rs[0]['spans']:,}", *[_ms(r) for r in rs], *[f"{r['peak_mb']:,.0f}" for r in rs]])
        tabs.append((f"Scaling, {where}: ms per step and peak MB", ['sentences × words', 'spans'] + [f'{c} ms' for c in cfgs] + [f'{c} MB' for c in cfgs], rows))
    if 'supcon' in out:
        res = out['supcon']; rows = []
        for n in dict.fromkeys(r['n'] for r in res):
            ch, de = [next((r for r in res if r['n'] == n and r['one_matrix'] == d), None) for d in (False, True)]
            rows.append([f"{n:,}", f"{ch['dense_matrix_mb']:,.0f}", f"{ch['extra_peak_mb']:,.0f}", f"{de['extra_peak_mb']:,.0f}" if de else 'not run',
                         f"{ch['seconds']:.2f}", f"{de['seconds']:.2f}" if de else 'not run'])
        tabs.append(("SupCon (eq. 4) forward + backward alone: extra peak memory and time",
                     ['spans n', 'n × n matrix MB', 'chunked (default) MB', 'one matrix MB', 'chunked s', 'one matrix s'], rows))
    if 'inference' in out:
        r = out['inference']
        tabs.append((f"Inference, {where}", ['sentences', 'words', 'batch', 'seconds', 'sentences / s', 'peak MB'],
                     [[f"{r['sentences']:,}", f"{r['words']:,}", str(r['bs']), f"{r['seconds']:.1f}", f"{r['sentences_per_s']:.1f}", f"{r['peak_mb']:,.0f}"]]))
    return tabs

def markdown(out):
    "The tables of `out` as one markdown file, each under its title, with the commands that measured them."
    by = {}
    for part, c in out['commands'].items(): by.setdefault(c, []).append(part)
    parts = ['Measured by ' + '; '.join(f"`{c}` ({', '.join(ps)})" for c, ps in by.items()) + '.']
    for title, cols, rows in tables(out):
        parts.append(f"**{title}**\n\n| " + ' | '.join(cols) + ' |\n|' + '---|' * len(cols) + '\n' + '\n'.join('| ' + ' | '.join(r) + ' |' for r in rows))
    return '\n\n'.join(parts) + '\n'

def print_tables(console, out):
    from rich.table import Table
    for title, cols, rows in tables(out):
        tb = Table(title=title)
        for c in cols: tb.add_column(c, justify='right')
        for r in rows: tb.add_row(*r)
        console.print(tb)

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', default='minilm'); p.add_argument('--steps', type=int, default=10)
    p.add_argument('--warmup', type=int, default=2); p.add_argument('--device', default=None)
    p.add_argument('--parts', default='callbacks,embeddings,scaling,supcon,inference')
    p.add_argument('--o-keep', type=float, default=0.1); p.add_argument('--max-spans', type=int, default=2048)
    p.add_argument('--sentences', type=int, default=16, help='callbacks part: sentences per side')
    p.add_argument('--in-process', action='store_true', help='no subprocess per configuration (fast smoke runs; peak memory is then shared)')
    p.add_argument('--lengths', default='16,32,64', help='scaling: words per sentence (batch 8)')
    p.add_argument('--batches', default='4,8,16', help='scaling: sentences per batch (32 words)')
    p.add_argument('--predictor', default=None, help='exported model directory for the inference part (default: untrained head)')
    p.add_argument('--inference-limit', type=int, default=None, help='tag only this many test sentences')
    p.add_argument('--out', default=None, help='default: bench/results/speed.json (minilm), speed_<model>.json (others)')
    p.add_argument('--update', action='store_true', help='keep the parts of an existing --out that this run does not measure')
    p.add_argument('--supcon-sizes', default='2048,4096,8192,16384,32768', help='supcon: numbers of contrasted spans')
    p.add_argument('--one-matrix-max', type=int, default=16384, help='supcon: largest n run with one n x n matrix (32,768 needs ~16 GB)')
    p.add_argument('--tables', action='store_true', help='measure nothing: write the markdown tables of an existing --out (FILE.md)')
    p.add_argument('--one', default=None, help=argparse.SUPPRESS)
    p.add_argument('--one-supcon', default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    import torch
    device = a.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    a.out = a.out or str(ROOT/'bench'/'results'/('speed.json' if a.model == 'minilm' else f'speed_{Path(a.model).name}.json'))
    if a.tables:
        out = json.loads(Path(a.out).read_text()); Path(a.out).with_suffix('.md').write_text(markdown(out)); return out
    if a.one is not None:
        print(json.dumps(run_one(json.loads(a.one), a.model, a.steps, a.warmup, device))); return
    if a.one_supcon is not None:
        print(json.dumps(run_supcon(*json.loads(a.one_supcon)))); return
    from contproto_fastai.progress import machine_info
    from rich.console import Console
    console, parts = Console(), a.parts.split(',')
    command = ' '.join(['python', 'bench/speed.py'] + (argv if argv is not None else sys.argv[1:]))
    out = dict(machine=dict(machine_info(device), model=a.model), commands={})
    if a.update and Path(a.out).exists():
        old = json.loads(Path(a.out).read_text())
        if old.get('machine') != out['machine']: sys.exit(f"--update: {a.out} was measured on {old.get('machine')}, not {out['machine']}")
        out = old
    out['commands'].update({p_: command for p_ in parts})      # the command (steps, warm-up, options) that measured each part
    if 'callbacks' in parts:
        res = {}
        for name, spec in callback_specs(a.o_keep, a.max_spans).items():
            res[name] = subprocess_run(spec, a, device)
            console.print(f"{name:40s} {res[name]['median_s']*1000:9.1f} ms  peak {res[name]['peak_mb']:8.0f} MB", highlight=False)
        floor, fullt, f = res['double_forward_floor']['median_s'], res['contproto']['median_s'], full()
        summary = dict(contproto_over_floor=fullt / floor, contproto_over_vanilla=fullt / res['vanilla']['median_s'],
                       callback_cost_s={c: fullt - res[f'contproto_without_{c}']['median_s'] for c in f},
                       o_keep_over_floor=res[f'contproto_o_keep_{a.o_keep}']['median_s'] / floor,
                       max_spans_over_floor=res[f'contproto_max_spans_{a.max_spans}']['median_s'] / floor)
        out.update(results=res, summary=summary)
    if 'embeddings' in parts:
        res = {}
        for name, spec in embedding_specs().items():
            res[name] = subprocess_run(spec, a, device)
            console.print(f"{name:40s} {res[name]['median_s']*1000:9.1f} ms  peak {res[name]['peak_mb']:8.0f} MB", highlight=False)
        out['embeddings'] = res
    if 'scaling' in parts:
        res = {}
        for name, spec in scaling_specs(a.max_spans, [int(x) for x in a.lengths.split(',')], [int(x) for x in a.batches.split(',')]).items():
            res[name] = subprocess_run(spec, a, device)
            console.print(f"{name:44s} {res[name]['spans']:6d} spans {res[name]['median_s']*1000:9.1f} ms  peak {res[name]['peak_mb']:8.0f} MB", highlight=False)
        out['scaling'] = res
    if 'supcon' in parts:
        res = []
        for n in [int(x) for x in a.supcon_sizes.split(',')]:
            for one in (False, True)[:2 if n <= a.one_matrix_max else 1]:
                res.append(run_supcon(n, one) if a.in_process else in_subprocess('--one-supcon', [n, one]))
        out['supcon'] = res
    if 'inference' in parts:
        r = run_inference(a.model, device, a.predictor, limit=a.inference_limit)
        console.print(f"inference: {r['sentences']} sentences in {r['seconds']:.1f}s = {r['sentences_per_s']:.1f} sentences/s "
                      f"(batch {r['bs']}, {r['predictor']}, {device})", highlight=False)
        out['inference'] = r
    print_tables(console, out)
    console.print(f"machine: {out['machine']}", highlight=False)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True); Path(a.out).write_text(json.dumps(out, indent=2))
    Path(a.out).with_suffix('.md').write_text(markdown(out))
    console.print(f"written: {a.out} and its tables {Path(a.out).with_suffix('.md')}", highlight=False)
    return out

if __name__ == '__main__': main()
