"""Peak memory of `contproto-predict` against the number of input lines (issue 35, item 8): tagged a chunk at a time
(the default) against the whole file at once (one chunk, as before), each run in a fresh process.

The input: the first 200 German test sentences of at most 10 words (`../shared/data/conll/de/test.txt`, words
joined by spaces) repeated to N lines, or, without `../shared`, one sentence written here. The model: `--model DIR` (an exported predictor), or by default
e5-small with untrained span heads (memory does not depend on the weights' values; its entities mean nothing).

    python bench/predict_memory.py                       # 500, 2,000, 8,000 lines
    python bench/predict_memory.py --lines 200,1000 --model runs/en-de/model

Prints a table and writes bench/results/predict_memory.{json,md} with the machine and the command."""
import argparse, json, subprocess, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from inference import ROOT, DATA, peak_mb

CHILD = """
import json, sys, time
from contproto_fastai.cli import _predict
from inference import peak_mb
t = time.time(); n = _predict(sys.argv[1], sys.argv[2], sys.argv[3], chunk=int(sys.argv[4]), device='cpu')
print(json.dumps(dict(peak_mb=peak_mb(), seconds=time.time() - t, sentences=n[0], entities=n[1])))
"""


def untrained_model(d):
    "e5-small with fresh span heads (PER, LOC, ORG, MISC), exported to `d`."
    from contproto_fastai.encoders import load_encoder
    from contproto_fastai.model import SpanNER
    from contproto_fastai.predict import SpanPredictor
    from contproto_fastai.corpus import LabelSet
    enc, tok = load_encoder('e5-small', dropout=None)
    return SpanPredictor(SpanNER(enc, 5), tok, LabelSet(['LOC', 'MISC', 'ORG', 'PER'])).export(Path(d)/'model')


def sentences(n=200, words=10):
    """The first `n` German test sentences of at most `words` words (joined by spaces), repeated by `main` to any
    number of lines: every size then holds the same longest sentence, so memory can only grow with the line count."""
    f = DATA/'conll'/'de'/'test.txt'
    if not f.exists(): return ['Angela Merkel besuchte gestern die Siemens AG in München .']
    from contproto_fastai.corpus import read_conll
    return [' '.join(s.tokens) for s in read_conll(f) if 0 < len(s.tokens) <= words][:n]


def write_md(out, path):
    "The table of `out` (what `main` measured) as Markdown in `path`; returns it."
    md = [f"# Peak memory of contproto-predict against input lines", "", f"Command: `{out['command']}`", "",
          f"Machine: {json.dumps(out['machine'])}; model: {out['model']}; each run a fresh process (peak RSS: VmHWM).",
          f"*chunked*: {out['chunk']} sentences tagged at a time (the default); *whole file*: one chunk (the earlier behaviour).",
          "Seconds: wall time of the run, for orientation only (other jobs may have shared the machine; not a speed measurement).", "",
          "| lines | mode | peak RSS MB | seconds |", "|---|---|---|---|"]
    md += [f"| {r['lines']:,} | {r['mode']} | {r['peak_mb']:.0f} | {r['seconds']:.0f} |" for r in out['rows']]
    Path(path).write_text('\n'.join(md) + '\n')
    return '\n'.join(md)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--lines', default='500,2000,8000'); p.add_argument('--model')
    p.add_argument('--out', default=str(ROOT/'bench'/'results'/'predict_memory.json'))
    p.add_argument('--tables', action='store_true', help='only rewrite the .md from the .json')
    a = p.parse_args(argv)
    if a.tables: return print(write_md(json.loads(Path(a.out).read_text()), Path(a.out).with_suffix('.md')))
    from contproto_fastai.cli import CHUNK
    from contproto_fastai.progress import machine_info
    tmp = Path(tempfile.mkdtemp(prefix='predict_memory_'))
    model = a.model or str(untrained_model(tmp))
    sents, rows = sentences(), []
    for n in map(int, a.lines.split(',')):
        inp = tmp/f'in{n}.txt'; inp.write_text(''.join(sents[k % len(sents)] + '\n' for k in range(n)), encoding='utf-8')
        for mode, chunk in (('chunked', CHUNK), ('whole file', n)):
            r = subprocess.run([sys.executable, '-c', CHILD, model, str(inp), str(tmp/'out.txt'), str(chunk)], capture_output=True, text=True,
                               cwd=str(Path(__file__).resolve().parent))
            if r.returncode: sys.exit(r.stderr)
            rows.append(dict(lines=n, mode=mode, chunk=chunk, **json.loads(r.stdout.strip().splitlines()[-1])))
            print(f"{n:>7,} lines  {mode:<10}  peak RSS {rows[-1]['peak_mb']:7.0f} MB  {rows[-1]['seconds']:6.0f} s", flush=True)
    cmd = 'python bench/predict_memory.py ' + ' '.join(argv if argv is not None else sys.argv[1:])
    out = dict(command=cmd.strip(), machine=machine_info(), model=a.model or 'e5-small, untrained span heads', chunk=CHUNK, rows=rows,
               date=time.strftime('%Y-%m-%d'))
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(write_md(out, Path(a.out).with_suffix('.md')))


if __name__ == '__main__': main()
