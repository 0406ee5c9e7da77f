"""tools/fill.py: the markers that quote committed result files in README and the docs, and the check that the results
chapter's prose quotes no decimal number that its result files do not hold."""
import importlib.util, json
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location('fill', ROOT/'tools'/'fill.py')
fill = importlib.util.module_from_spec(spec); spec.loader.exec_module(fill)


@pytest.fixture
def results(tmp_path, monkeypatch):
    (tmp_path/'r').mkdir()
    (tmp_path/'r'/'a.json').write_text(json.dumps({'f1': [0.5, 0.625], 'x': {'fast': 3.0, 'slow': 1.5}, 'pts': [70.0, 68.25]}))
    (tmp_path/'r'/'t.md').write_text('# T\n\n| a | b |\n|---|---|\n| 1 | 2.5 |\n\nprose\n\n| c |\n|---|\n| 7.25 |\n')
    monkeypatch.setattr(fill, 'ROOT', tmp_path); fill._json.cache_clear()
    yield tmp_path
    fill._json.cache_clear()


def test_markers(results):
    f = fill.fill
    assert f('{{pct r/a.json f1.1}}') == '62.50' and f('{{num r/a.json x.fast 1}}') == '3.0'
    assert f('{{ratio r/a.json x.fast x.slow}}') == '2.00' and f('{{diff r/a.json f1.1 f1.0}}') == '+12.50'
    assert f('{{minus r/a.json pts.1 pts.0}}') == '−1.75' and f('{{sgn r/a.json pts.1}}') == '+68.25' and f('{{mean r/a.json pts}}') == '69.12'
    assert f('{{num r/a.json x.fast 0}}') == '3' and f('{{num r/a.json pts.1 2}}') == '68.25'
    assert f('{{table r/t.md 2}}') == '| c |\n|---|\n| 7.25 |' and f('{{md r/t.md}}').startswith('### T')
    with pytest.raises(ValueError, match=r'\{\{num r/a.json nope\}\}: KeyError'): f('{{num r/a.json nope}}')


def test_unbacked(results):
    text = 'From `r/a.json`: {{pct r/a.json f1.0}} and 62.50 and 3.0 s; the table 7.25; not 4.75 nor 62.51.'
    assert fill.unbacked(text.replace('r/a.json', 'r/a.json and r/t.md'), results='r') == ['4.75', '62.51']
    assert fill.unbacked('| 4.75 |\n`9.99` ```\n1.23\n``` {{num r/a.json x 9.5}}', results='r') == []   # tables, code, markers
    assert fill.unbacked('62.50 without naming a file', results='r') == ['62.50']


def test_results_chapter_prose_is_backed():
    """Every decimal number in the results chapter's prose is held by a result file the same section names: catches a
    number typed from nowhere (not a mistyped one that matches another value by chance; computed numbers are markers)."""
    nb = json.loads((ROOT/'nbs'/'11_results.ipynb').read_text())
    bad = {c['id']: u for c in nb['cells'] if c['cell_type'] == 'markdown' and (u := fill.unbacked(''.join(c['source'])))}
    assert not bad, f"numbers typed by hand, not found in the result files their section names: {bad}"
