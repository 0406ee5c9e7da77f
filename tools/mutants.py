"""Mutation check of the suite: each mutant below is a one-line change to a notebook (the source), exported with
`nbdev_export`; the notebook's own tests (`nbdev_test`, slow cells included) must then fail. The notebook and the
library are restored after each mutant (also when interrupted).

    python tools/mutants.py            # prints one line per mutant: caught / NOT caught; exit 1 if any is not caught
"""
import json, shutil, subprocess, sys, tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# (name, notebook, text in one cell, replacement): the mutations the suite must catch
MUTANTS = [
    ('margin gate inverted (eq. 10)', '07_contproto', '> margins[c_star]', '< margins[c_star]'),
    ('warm-up off by one epoch', '07_contproto', 'self.base + self.epoch >= self.epochs', 'self.base + self.epoch > self.epochs'),
    ("prototype EMA's weights reversed (eq. 8)", '07_contproto', 'alpha ** (n_c[labels] - 1 - rank)', 'alpha ** rank'),
    ("SupCon positives keep the self-term (eq. 4)", '07_contproto', '((class_sum[labels] - features) * features)', '((class_sum[labels]) * features)'),
]

def mutate(nb, old, new):
    "Replace `old` by `new` in the one code cell of notebook `nb` that holds it."
    d = json.loads(nb.read_text())
    hits = [c for c in d['cells'] if old in ''.join(c['source'])]
    if len(hits) != 1 or ''.join(hits[0]['source']).count(old) != 1: sys.exit(f"{nb}: {old!r} is not in exactly one place")
    hits[0]['source'] = ''.join(hits[0]['source']).replace(old, new).splitlines(keepends=True)
    nb.write_text(json.dumps(d, indent=1, ensure_ascii=False) + '\n')

def main():
    lib, bad = ROOT/'contproto_fastai', 0
    keep = Path(tempfile.mkdtemp())/'lib'
    shutil.copytree(lib, keep)
    for name, nb_name, old, new in MUTANTS:
        nb = ROOT/'nbs'/f'{nb_name}.ipynb'; orig = nb.read_text()
        try:
            mutate(nb, old, new)
            subprocess.run(['nbdev_export'], cwd=ROOT, check=True, capture_output=True)
            r = subprocess.run(['nbdev_test', '--path', str(nb), '--flags', 'slow shared'], cwd=ROOT, capture_output=True)
            print(f"{name}: {'caught' if r.returncode else 'NOT caught'} by {nb.relative_to(ROOT)}", flush=True)
            bad += not r.returncode
        finally:
            nb.write_text(orig); shutil.rmtree(lib); shutil.copytree(keep, lib)
    sys.exit(1 if bad else 0)

if __name__ == '__main__': main()
