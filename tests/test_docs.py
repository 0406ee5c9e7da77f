"""The docs site (tools/docs.py): Sphinx builds it from the notebooks with warnings as errors, every link between its
pages resolves, and the pages a reader opens first show their content."""
import importlib.util, re, runpy
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    for mod in ('sphinx', 'myst_nb'):
        if importlib.util.find_spec(mod) is None: pytest.skip(f"{mod} not installed (pip install -e '.[dev]')")
    spec = importlib.util.spec_from_file_location('docs_tool', ROOT/'tools'/'docs.py')
    tool = importlib.util.module_from_spec(spec); spec.loader.exec_module(tool)
    d = tmp_path_factory.mktemp('site')
    return tool.build(out=d/'html', src=d/'src')          # exits (fails the test) on a Sphinx warning or a broken link


def _text(html):
    "Visible text of a page, roughly: tags dropped, whitespace folded."
    html = re.sub(r'(?s)<(script|style).*?</\1>', ' ', html)
    return ' '.join(re.sub(r'<[^>]+>', ' ', html).split())


def test_link_check_finds_a_broken_link(site, tmp_path):
    "The link check itself: a missing page and a missing anchor are reported, good links are not."
    spec = importlib.util.spec_from_file_location('docs_tool2', ROOT/'tools'/'docs.py')
    tool = importlib.util.module_from_spec(spec); spec.loader.exec_module(tool)
    (tmp_path/'a.html').write_text('<a href="b.html#x">ok</a> <a href="b.html#nope">bad anchor</a> <a href="c.html">missing</a> <a href="https://x.org">ext</a>')
    (tmp_path/'b.html').write_text('<h1 id="x">x</h1>')
    assert sorted(str(l) for _, l in tool.broken_links(tmp_path)) == ['b.html#nope', 'c.html']


def test_home_page(site):
    t = _text((site/'index.html').read_text())
    assert 'contproto-fit' in t and 'ContProto (Zhou et al., ACL 2023) for cross-lingual NER' in t and 'German test F1' in t
    for chapter in ('00_data.html', '07_contproto.html', '10_tutorial.html', 'api/contproto.html'):
        assert f'href="{chapter}"' in (site/'index.html').read_text(), chapter


def test_api_page_of_contproto(site):
    html = (site/'api'/'contproto.html').read_text(); t = _text(html)
    for name in ('MarginRefiner', 'PrototypeEMA', 'SupConLoss', 'consistency_kl'):
        assert f'id="{name.lower().replace("_", "-")}"' in html or name in t, name
    assert 'Eq. (6)' in t and 'beta_at' in t                       # docstrings and methods are there
    assert 'href="../07_contproto.html"' in html                   # back to the chapter
    presets = (site/'api'/'presets.html').read_text()             # the callback lists live in their own module
    assert 'id="contproto-callbacks"' in presets or 'contproto_callbacks' in _text(presets)


def test_chapters_show_equations_and_no_directives(site):
    ch = (site/'07_contproto.html').read_text()
    assert 'class="math' in ch                                     # $…$ rendered by MathJax, not shown raw
    if (runpy.run_path(str(ROOT/'docs'/'conf.py'))['MATHJAX_DIR']/'MathJax.js').exists():   # libjs-mathjax (CI installs it): MathJax 2, local
        assert 'src="_static/mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML"' in ch and (site/'_static'/'mathjax'/'MathJax.js').exists()
        assert 'tex2jax_ignore' not in ch and 'window.MathJax' not in ch     # myst's v3-only settings would stop MathJax 2
    assert 'MarginRefiner' in _text(ch)
    for page in site.glob('*.html'):
        t = _text(page.read_text())
        assert '#| export' not in t and '#| hide' not in t and 'nbdev_export()' not in t, page.name


def test_tutorial_page(site):
    t = _text((site/'10_tutorial.html').read_text())
    assert 'Tutorial: English → German with ContProto' in t and 'fit_one_cycle' in t
    assert re.search(r'teacher German test F1: 0\.\d+', t) and re.search(r'contproto German test F1 0\.\d{4}', t)   # outputs, not the code


def test_chapters_carry_their_outputs(site):
    "Training tables (fastai's HTML table, inside a scrolling output box) and figures that exist in the site."
    ch = (site/'07_contproto.html').read_text()
    assert re.search(r'<th>cont_loss</th>.*?<th>r_PER</th>', ch, re.S) and "preset 'authors'" in _text(ch)
    assert 'overflow-x' in (site/'_static'/'custom.css').read_text()     # our stylesheet (alabaster links custom.css itself)
    for page, n in (('08a_plots.html', 3), ('10_tutorial.html', 2)):    # Fig. 3, Fig. 3 with seed bands, Fig. 2
        imgs = re.findall(r'<img [^>]*src="([^"]+\.png)"', (site/page).read_text())
        assert len(imgs) == n and all((site/i).stat().st_size > 10_000 for i in imgs), (page, imgs)
