"""Render nbs/index.ipynb to README.md (what `nbdev_readme` does, without Quarto, which cannot be installed offline:
the PyPI `quarto-cli` sdist downloads its binary from GitHub at build time).
Markdown cells are copied (with the numbers and tables their `{{…}}` markers name filled in from bench/results/: see
`tools/fill.py`); code cells become ```python blocks; cells flagged `#| hide` are skipped.
`--check` exits 1 if README.md is not what index.ipynb renders to."""
import json, runpy, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
fill = runpy.run_path(str(Path(__file__).resolve().parent/'fill.py'))['fill']     # numbers from bench/results/

def render(nb_path=root/'nbs'/'index.ipynb'):
    nb = json.loads(Path(nb_path).read_text(encoding='utf-8'))
    parts = []
    for c in nb['cells']:
        src = ''.join(c['source']).strip()
        if not src or src.startswith('#| hide') or src.startswith('#|hide'): continue
        if c['cell_type'] == 'code': src = '\n'.join(l for l in src.split('\n') if not l.startswith('#|')).strip()
        parts.append(fill(src) if c['cell_type'] == 'markdown' else f"```python\n{src}\n```")
    return '<!-- Generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file. -->\n\n' + '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    text, readme = render(), root/'README.md'
    if '--check' in sys.argv:
        if not readme.exists() or readme.read_text(encoding='utf-8') != text:
            sys.exit("README.md is out of date: run `python tools/make_readme.py` and commit it")
        print("README.md matches nbs/index.ipynb")
    else: readme.write_text(text, encoding='utf-8'); print(f"wrote {readme}")
