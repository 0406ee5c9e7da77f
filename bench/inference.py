"""CPU inference of an exported predictor with each engine (issue 23): PyTorch fp32 (`torch`), ONNX Runtime fp32
(`onnx`) and ONNX Runtime with the encoder's linear layers in int8 (`onnx-int8`), on the German CoNLL test set.

For each engine, in a fresh subprocess (so that its peak memory is its own): load time; sentences/s and words/s at
batch 32 (the whole test set in one `predict` call) and at batch 1 (one sentence per call); the latency of one
sentence (p50, p95 over the batch-1 calls); peak resident memory (RSS, with the RSS after the imports for
reference); the size of the weight files the engine loads; and entity-level test F1 (seqeval, strict BIO2) of the
batch-32 predictions. With `--wikiann-model`, also test F1 of that model on one WikiAnn target for every engine.
The ONNX files are exported first (once, beside the predictor's files; the time is recorded) when missing.
Tokenising, encoding and decoding are included in every number: they are what a user waits for.

    python bench/inference.py --model runs/en-de/model                      # ../shared/data/conll/de/test.txt
    python bench/inference.py --model runs/en-de/model --wikiann-model runs/en-hi/model --wikiann-lang hi
    python bench/inference.py --smoke                                       # toy files, tiny untrained model: seconds (CI)

Prints a table and writes bench/results/inference.json (with --smoke: a temporary file unless --out), with the
machine (`contproto_fastai.progress.machine_info`), the threads and the command."""
import argparse, json, os, resource, shlex, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent/'shared'/'data'
ENGINES = ('torch', 'onnx', 'onnx-int8')


def rss_mb():
    "Resident memory of this process now (MB)."
    for l in open('/proc/self/status'):
        if l.startswith('VmRSS:'): return int(l.split()[1]) / 1024
    return None


def peak_mb():
    "Peak resident memory of this process (MB): VmHWM, which starts afresh at exec (ru_maxrss would carry the parent's peak over)."
    for l in open('/proc/self/status'):
        if l.startswith('VmHWM:'): return int(l.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def weights_mb(model, engine):
    "Size (MB) of the weight files `engine` loads from the predictor folder `model`."
    from contproto_fastai.deploy import onnx_file
    m = Path(model)
    if engine == 'torch':
        files = [m/'model.safetensors']
    else: files = [onnx_file(m, engine == 'onnx-int8')]
    return sum(f.stat().st_size for f in files) / 2**20


def read_test(path, wikiann=False):
    from contproto_fastai.data import read_conll, read_wikiann
    return (read_wikiann if wikiann else read_conll)(path)


def f1_of(pred, sents, ents):
    "Entity-level scores of the predictor's entities `ents` of `sents` (as `evaluate.score`: seqeval strict BIO2)."
    from contproto_fastai.evaluate import score
    preds = [[(e['start'], e['end'] - 1, pred.labels.o2i[e['type']], e['prob']) for e in es] for es in ents]
    r = score(sents, preds, pred.labels, pred.max_span_len)
    return dict(f1=r['f1'], precision=r['precision'], recall=r['recall'], per_type={k: v['f1'] for k, v in r['per_type'].items()})


def measure(engine, model, test, threads, limit=None, latency_n=None, wikiann_model=None, wikiann_test=None):
    "Every number of one engine (run it in a fresh process for its own peak memory)."
    import torch
    torch.set_num_threads(threads)
    from contproto_fastai.predict import load_predictor
    sents = read_test(test)[:limit]
    toks = [s.tokens for s in sents]
    rss0 = rss_mb()
    t = time.perf_counter(); pred = load_predictor(model, device='cpu', engine=engine); load_s = time.perf_counter() - t
    pred.predict(toks[:8], bs=8)                                              # warm-up
    t = time.perf_counter(); ents = pred.predict(toks, bs=32); dt32 = time.perf_counter() - t
    lat, ents1 = [], []
    for tk in toks[:latency_n]:
        t = time.perf_counter(); ents1.append(pred.predict([tk], bs=1)[0]); lat.append(time.perf_counter() - t)
    n, words, n1 = len(toks), sum(map(len, toks)), len(lat)
    key = lambda es: [(e['start'], e['end'], e['type']) for e in es]
    q = statistics.quantiles(lat, n=20) if n1 > 1 else lat * 19
    r = dict(engine=engine, load_s=load_s, weights_mb=weights_mb(model, engine),
             bs32=dict(seconds=dt32, sentences_per_s=n / dt32, words_per_s=words / dt32),
             bs1=dict(sentences=n1, seconds=sum(lat), sentences_per_s=n1 / sum(lat), words_per_s=sum(map(len, toks[:n1])) / sum(lat)),
             latency_ms=dict(p50=1000 * statistics.median(lat), p95=1000 * q[18], mean=1000 * statistics.mean(lat)),
             bs1_same_entities=sum(key(a) == key(b) for a, b in zip(ents1, ents)) / max(1, n1),
             rss_after_imports_mb=rss0, peak_rss_mb=peak_mb(), test=f1_of(pred, sents, ents))
    if wikiann_model:
        del pred
        w = read_test(wikiann_test, wikiann=True)[:limit]
        wp = load_predictor(wikiann_model, device='cpu', engine=engine)
        r['wikiann'] = dict(sentences=len(w), **f1_of(wp, w, wp.predict([s.tokens for s in w], bs=32)))
    return r


def smoke_setup(d):
    "Toy files and an untrained tiny predictor exported under `d`: `(model folder, test file)`."
    import torch
    from contproto_fastai.testing import toy_files
    from contproto_fastai.model import SpanNER, load_encoder
    from contproto_fastai.data import LabelSet
    from contproto_fastai.predict import SpanPredictor
    files, tiny = toy_files(d, n_src=20, n_dev=10, n_tgt=10, n_test=40, hidden=32)
    enc, tok = load_encoder(tiny, dropout=None)
    torch.manual_seed(0)
    SpanPredictor(SpanNER(enc, 4, norm=True).eval(), tok, LabelSet(['LOC', 'ORG', 'PER']), max_len=64).export(Path(d)/'model')
    return str(Path(d)/'model'), files['tgt_test']


def table(res):
    rows = [('engine', 'sent/s bs32', 'words/s bs32', 'sent/s bs1', 'words/s bs1', 'p50 ms', 'p95 ms', 'peak RSS MB', 'weights MB', 'test F1')
            + (('WikiAnn F1',) if res.get('wikiann_model') else ())]
    for e, r in res['engines'].items():
        rows.append((e, f"{r['bs32']['sentences_per_s']:.1f}", f"{r['bs32']['words_per_s']:.0f}", f"{r['bs1']['sentences_per_s']:.1f}",
                     f"{r['bs1']['words_per_s']:.0f}", f"{r['latency_ms']['p50']:.1f}", f"{r['latency_ms']['p95']:.1f}",
                     f"{r['peak_rss_mb']:.0f}", f"{r['weights_mb']:.1f}", f"{100 * r['test']['f1']:.2f}")
                    + ((f"{100 * r['wikiann']['f1']:.2f}",) if 'wikiann' in r else ()))
    w = [max(len(x[i]) for x in rows) for i in range(len(rows[0]))]
    line = lambda x: '| ' + ' | '.join(c.rjust(w[i]) if i else c.ljust(w[i]) for i, c in enumerate(x)) + ' |'
    return '\n'.join([line(rows[0]), '|' + '|'.join('-' * (n + 2) for n in w) + '|', *map(line, rows[1:])])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', help='exported predictor folder (contproto-fit --out X: X/model)')
    p.add_argument('--test', default=str(DATA/'conll'/'de'/'test.txt'), help='labelled test file (default: German CoNLL test)')
    p.add_argument('--wikiann-model', default=None, help='a predictor trained for a WikiAnn target: its test F1 per engine')
    p.add_argument('--wikiann-lang', default='hi', help='WikiAnn target of --wikiann-model (ar, hi, zh)')
    p.add_argument('--wikiann-test', default=None, help='default: ../shared/data/wikiann/<lang>/test.txt')
    p.add_argument('--engines', default=','.join(ENGINES))
    p.add_argument('--threads', type=int, default=os.cpu_count(), help='torch and ONNX Runtime threads (default: all cores)')
    p.add_argument('--limit', type=int, default=None, help='only the first N test sentences')
    p.add_argument('--latency-n', type=int, default=None, help='batch-1 calls on the first N sentences only (default: all)')
    p.add_argument('--in-process', action='store_true', help='no subprocess per engine (peak memory is then shared)')
    p.add_argument('--smoke', action='store_true', help='toy files and an untrained tiny model, in process: seconds')
    p.add_argument('--out', default=None, help='default: bench/results/inference.json')
    p.add_argument('--one', default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    wtest = a.wikiann_test or str(DATA/'wikiann'/a.wikiann_lang/'test.txt')
    if a.one:                                     # child: one engine, JSON on the last line of stdout
        print(json.dumps(measure(a.one, a.model, a.test, a.threads, a.limit, a.latency_n, a.wikiann_model, wtest)))
        return
    tmp = None
    if a.smoke:
        tmp = tempfile.mkdtemp(prefix='inference_smoke_')
        a.model, a.test = smoke_setup(tmp)
        a.wikiann_model, wtest, a.in_process, a.threads = a.model, a.test, True, 1
        a.out = a.out or str(Path(tmp)/'inference.json')
    if not a.model: p.error('--model is required (or --smoke)')
    engines = a.engines.split(',')
    if bad := [e for e in engines if e not in ENGINES]: p.error(f"unknown engine(s) {bad}: choose from {', '.join(ENGINES)}")
    os.environ['OMP_NUM_THREADS'] = os.environ['MKL_NUM_THREADS'] = str(a.threads)
    from contproto_fastai.progress import machine_info
    from contproto_fastai.deploy import export_onnx, onnx_file
    res = dict(command=' '.join(shlex.quote(x) for x in ['python', 'bench/inference.py', *(sys.argv[1:] if argv is None else argv)]),
               machine=dict(machine_info('cpu'), threads=a.threads), model=a.model, test=a.test, smoke=a.smoke,
               wikiann_model=a.wikiann_model, wikiann_test=wtest if a.wikiann_model else None, export_s={}, engines={})
    for e in engines:                              # export the ONNX files first: not part of any engine's numbers
        if e == 'torch': continue
        for m in [a.model] + ([a.wikiann_model] if a.wikiann_model and a.wikiann_model != a.model else []):
            if onnx_file(m, e == 'onnx-int8').exists(): continue
            t = time.perf_counter(); export_onnx(m, quantize=e == 'onnx-int8'); res['export_s'][f'{m}:{e}'] = time.perf_counter() - t
    for e in engines:
        if a.in_process: r = measure(e, a.model, a.test, a.threads, a.limit, a.latency_n, a.wikiann_model, wtest)
        else:
            cmd = [sys.executable, __file__, '--one', e, '--model', a.model, '--test', a.test, '--threads', str(a.threads), '--wikiann-test', wtest]
            for k in ('limit', 'latency_n', 'wikiann_model'):
                if getattr(a, k) is not None: cmd += [f"--{k.replace('_', '-')}", str(getattr(a, k))]
            out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
            if out.returncode: sys.exit(f"{e}: failed\n{out.stderr[-3000:]}")
            r = json.loads(out.stdout.strip().splitlines()[-1])
        res['engines'][e] = r
        print(f"{e}: {r['bs32']['sentences_per_s']:.1f} sentences/s at batch 32, test F1 {100 * r['test']['f1']:.2f}", flush=True)
    res['sentences'], res['words'] = len(read_test(a.test)[:a.limit]), sum(len(s.tokens) for s in read_test(a.test)[:a.limit])
    print(table(res))
    print(f"machine: {res['machine']}")
    out = Path(a.out or ROOT/'bench'/'results'/'inference.json')
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    f1 = lambda e, k: f"{100 * (res['engines'][e][k]['f1'] - res['engines']['torch'][k]['f1']):+.2f}"
    diffs = [f"{e} − torch: German {f1(e, 'test')}" + (f", WikiAnn {f1(e, 'wikiann')}" if 'wikiann' in res['engines'][e] else '')
             for e in res['engines'] if e != 'torch' and 'torch' in res['engines']]
    out.with_suffix('.md').write_text('\n'.join([
        '# CPU inference: PyTorch fp32, ONNX Runtime fp32 and int8', '', f"Command: `{res['command']}`", '',
        f"Machine: {json.dumps(res['machine'])}", '',
        f"Test set: `{res['test']}` ({res['sentences']:,} sentences, {res['words']:,} words); tokenising, encoding and decoding "
        "included; each engine in a fresh process. F1: entity-level (seqeval) on the batch-32 predictions"
        + (f"; WikiAnn F1: `{res['wikiann_model']}` on `{res['wikiann_test']}`." if res.get('wikiann_model') else '.'), '',
        table(res), '', 'F1 change against PyTorch fp32 (points): ' + ('; '.join(diffs) or 'n/a') + '.']) + '\n')
    print(f"written: {out} and {out.with_suffix('.md')}")
    if tmp and a.out and not Path(a.out).resolve().is_relative_to(Path(tmp).resolve()): shutil.rmtree(tmp, ignore_errors=True)
    return res


if __name__ == '__main__':
    main()
