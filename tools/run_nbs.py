"""Execute chapters in a Jupyter kernel and keep their outputs, as a reader running them would see them (fastai's
HTML training tables, figures). `nbdev_test` runs the same cells for testing and keeps nothing; this refreshes what
the docs show.

    python tools/run_nbs.py nbs/05_learner.ipynb nbs/07_contproto.ipynb    # no argument: every chapter but index
    nbdev_clean                                                            # then, as after any notebook edit

One torch thread (two kernels on two cores would otherwise oversubscribe), no Hugging Face progress bars or load
reports, no Python warnings: those are noise in a chapter. Output a cell writes to stderr that is left is dropped,
except the warnings our own code gives on purpose (e.g. a file read as Latin-1), which are the chapter's content.
Noise is dropped line by line and counted. A notebook whose run fails is left untouched and the error is printed."""
import os, re, sys, time
from pathlib import Path
import nbformat
from nbclient import NotebookClient

root = Path(__file__).resolve().parent.parent
ENV = dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', HF_HUB_DISABLE_PROGRESS_BARS='1', TRANSFORMERS_VERBOSITY='error',
           PYTHONWARNINGS='ignore', TOKENIZERS_PARALLELISM='false')
NOISE = re.compile(r'Loading weights|Writing model shards|LOAD REPORT|^Key +\||^-+\+-|^\S+ +\| *\w+ *\||Warning:|warnings\.warn\(|^\s*$')

def clean(out):
    """`out` without the stderr lines that are library noise (progress bars, Hugging Face load reports, Python warnings),
    line by line, so a message of ours in the same chunk survives; None when nothing is left. Returns (output, lines dropped)."""
    if out.get('output_type') != 'stream' or out.get('name') != 'stderr': return out, 0
    lines = [l for l in re.split(r'(?<=\n)', out['text'].replace('\r', '\n')) if l]
    kept = [l for l in lines if not NOISE.search(l)]
    out['text'] = ''.join(kept)
    return (out if out['text'].strip() else None), len(lines) - len(kept)

def run(path, timeout=1800):
    nb = nbformat.read(path, as_version=4)
    os.environ.update(ENV)
    t = time.time()
    NotebookClient(nb, timeout=timeout, kernel_name='python3', resources={'metadata': {'path': str(path.parent)}}).execute()
    dropped = 0
    for c in nb.cells:
        if c.cell_type != 'code': continue
        outs = []
        for o in c.outputs:
            o, n = clean(o); dropped += n
            if o is None: continue
            if 'text/html' in o.get('data', {}): o['data'].pop('text/markdown', None)   # fastprogress sends its table twice
            outs.append(o)
        c.outputs = outs
    nbformat.write(nb, path)
    if dropped: print(f"{path.name}: {dropped} lines of library noise dropped from stderr")
    return time.time() - t

if __name__ == '__main__':
    paths = [Path(p).resolve() for p in sys.argv[1:]] or sorted(p for p in (root/'nbs').glob('*.ipynb') if p.name != 'index.ipynb')
    failed = []
    for p in paths:
        try: print(f"{p.name}: {run(p):.0f} s", flush=True)
        except Exception as e: failed.append(p.name); print(f"{p.name}: FAILED, left as it was\n{e}", flush=True)
    sys.exit(f"failed: {', '.join(failed)}" if failed else 0)
