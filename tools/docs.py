"""Build the docs site offline: the notebooks of nbs/ as chapters (as nbdev shows them: `#| hide` cells and the
`#|` directive lines dropped, outputs kept), one API page per module (signatures and docstrings of what it exports),
rendered by Sphinx + myst-nb with warnings as errors, then a check of every link between the pages (and its anchor).

    python tools/docs.py            # -> _site/index.html (open it in a browser)

`nbdev_docs` (Quarto) still works where Quarto is installed; this needs only packages from PyPI."""
import argparse, importlib, inspect, json, re, runpy, shutil, subprocess, sys
from html.parser import HTMLParser
from urllib.parse import unquote
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
fill = runpy.run_path(str(Path(__file__).resolve().parent/'fill.py'))['fill']     # numbers from bench/results/
_DIRECTIVE = re.compile(r'^\s*#\s*\|\s*(\S+)')


def _directives(src):
    return [m.group(1) for l in src.splitlines() if (m := _DIRECTIVE.match(l))]


def process_notebook(src, dst):
    "Copy one notebook for the site: drop hidden cells and the `default_exp` cell, strip `#|` lines from code cells, fill in the `{{…}}` markers of markdown cells (`tools/fill.py`)."
    nb = json.loads(Path(src).read_text())
    cells = []
    for c in nb['cells']:
        text = ''.join(c['source'])
        if c['cell_type'] == 'code':
            d = _directives(text)
            if 'hide' in d or any(x.startswith('default_exp') for x in d): continue
            text = '\n'.join(l for l in text.splitlines() if not _DIRECTIVE.match(l)).strip('\n')
            if not text: continue
        elif c['cell_type'] == 'markdown': text = fill(text)
        c = dict(c, source=text)
        cells.append(c)
    nb['cells'] = cells
    Path(dst).write_text(json.dumps(nb, indent=1))


def _sig(obj):
    "The call signature; for a class, that of its own `__init__` (not the one it inherits from fastai's `Callback`)."
    if inspect.isclass(obj) and '__init__' not in vars(obj) and not hasattr(obj, '__dataclass_fields__'): return '()'
    try: return str(inspect.signature(obj))
    except (TypeError, ValueError): return ''


def api_page(module, notebook):
    """Markdown for one module (written to `api/`, beside the chapters): each name in `__all__` with its signature and
    docstring (methods of classes too), and a link to its source `notebook`."""
    mod = importlib.import_module(f'contproto_fastai.{module}')
    lines = [f'# API: `contproto_fastai.{module}`', '', (inspect.getdoc(mod) or '').strip(), '',
             f'Source notebook: [{module}](../{notebook}.ipynb)', '']
    src, moved = inspect.getsource(mod), []
    for name in getattr(mod, '__all__', []):
        obj = getattr(mod, name)
        if not re.search(rf'^(?:def|class) {name}\b|^{name}\s*(?::[^=\n]*)?=', src, re.M):     # imported: documented where it lives
            home = getattr(obj, '__module__', '') or ''
            moved.append(f'[`{name}`]({home.split(".")[-1]}.md)' if home.startswith('contproto_fastai.') else f'`{name}`')
            continue
        kind = 'class' if inspect.isclass(obj) else 'function' if callable(obj) else 'value'
        if kind == 'value':     # a repr need not be Python (`<class …>`) and may be cut: shown as plain text
            r = repr(obj); lines += [f'## `{name}`', '', '```text', f"{name} = {r if len(r) <= 200 else r[:200] + ' …'}", '```', '']
        else: lines += [f'## `{name}`', '', '```python', f"{'class ' if kind == 'class' else ''}{name}{_sig(obj)}", '```', '']
        if kind != 'value': lines += [(inspect.getdoc(obj) or '').strip(), '']
        if kind == 'class':
            for m, f in vars(obj).items():
                if m.startswith('_') or not callable(f) or not getattr(f, '__doc__', None): continue
                lines += [f'### `{name}.{m}`', '', '```python', f'{m}{_sig(f)}', '```', '', inspect.getdoc(f).strip(), '']
    if moved: lines += ['## Also importable from here', '', 'Defined in another module and kept importable from this one: ' + ', '.join(moved) + '.', '']
    return '\n'.join(lines) + '\n'


class _Links(HTMLParser):
    def __init__(self): super().__init__(); self.links, self.ids = [], set()
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get('id'): self.ids.add(a['id'])
        if tag == 'a' and a.get('name'): self.ids.add(a['name'])
        for k in ('href', 'src'):
            if a.get(k): self.links.append(a[k])


def broken_links(site):
    """Every link between the pages of `site` (relative `href`/`src`, with their `#anchor`s) that points to no file or
    to no element with that id; external (`http(s):`, `mailto:`) links are not followed (no network here)."""
    pages, bad = {}, []
    for f in Path(site).rglob('*.html'):
        p = _Links(); p.feed(f.read_text(errors='replace')); pages[f.resolve()] = p
    for f, p in pages.items():
        for link in p.links:
            if re.match(r'^(https?:|mailto:|data:|javascript:)', link): continue
            path, _, anchor = link.partition('#'); path = path.partition('?')[0]
            target = (f.parent/unquote(path)).resolve() if path else f
            if target.is_dir(): target = target/'index.html'
            if not target.exists(): bad.append((f.relative_to(Path(site).resolve()), link)); continue
            if anchor and target.suffix == '.html' and anchor not in pages[target].ids: bad.append((f.relative_to(Path(site).resolve()), link))
    return bad


def build(out=ROOT/'_site', src=ROOT/'docs'/'_src', check_links=True):
    "Process the notebooks, write the API pages and the index's table of contents, run Sphinx (-W), check links."
    if src.exists(): shutil.rmtree(src)
    src.mkdir(parents=True)
    nbs, notebook_of = sorted(p for p in (ROOT/'nbs').glob('*.ipynb')), {}
    for p in nbs:
        m = re.search(r'#\|\s*default_exp\s+([\w.]+)', p.read_text())
        if m: notebook_of[m.group(1)] = p.stem
        process_notebook(p, src/p.name)
    (src/'api').mkdir()
    modules = sorted(notebook_of)
    for m in modules: (src/'api'/f'{m}.md').write_text(api_page(m, notebook_of[m]))
    chapters = [p.stem for p in nbs if p.stem != 'index']
    toc = ['', '```{toctree}', ':caption: Chapters', ':maxdepth: 1', '', *chapters, '```', '',
           '```{toctree}', ':caption: API', ':maxdepth: 1', '', *[f'api/{m}' for m in modules], '```', '']
    idx = json.loads((src/'index.ipynb').read_text())
    idx['cells'].append(dict(cell_type='markdown', id='toc', metadata={}, source='\n'.join(toc)))
    (src/'index.ipynb').write_text(json.dumps(idx, indent=1))
    if out.exists(): shutil.rmtree(out)
    r = subprocess.run([sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-q', '-b', 'html', '-c', str(ROOT/'docs'), str(src), str(out)])
    if r.returncode: sys.exit(f"sphinx-build failed (warnings are errors): exit {r.returncode}")
    mj = runpy.run_path(str(ROOT/'docs'/'conf.py'))['MATHJAX_DIR']     # Debian's libjs-mathjax: equations render offline
    if (mj/'MathJax.js').exists():
        shutil.copytree(mj, out/'_static'/'mathjax', ignore=shutil.ignore_patterns('unpacked', 'test'), dirs_exist_ok=True)
    if check_links:
        bad = broken_links(out)
        if bad: sys.exit(f"{len(bad)} broken link(s) in {out}:\n" + '\n'.join(f"  {p}: {h}" for p, h in bad[:30]))
    return out


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', default=str(ROOT/'_site')); p.add_argument('--no-links', action='store_true')
    a = p.parse_args()
    print(f"site: {build(Path(a.out), check_links=not a.no_links)/'index.html'}")
