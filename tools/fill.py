"""Numbers and tables from committed result files, filled into markdown: README.md (`make_readme.py`) and the docs
chapters (`docs.py`) quote bench/results/ through these markers, never by hand, so they cannot drift from the files.

    {{pct FILE KEY}}      100 × the number at KEY (dotted path; list items by index) of the JSON FILE, 2 decimals
    {{num FILE KEY [D]}}  the number itself, D decimals (default 0), thousands separated by commas
    {{sgn FILE KEY}}      the number itself, signed, 2 decimals (e.g. a difference already in points)
    {{ratio FILE A B}}    the number at key A divided by the one at key B, 2 decimals (e.g. a speed-up)
    {{diff FILE A B}}     100 × (A − B), signed, 2 decimals (e.g. an F1 change in points)
    {{minus FILE A B}}    A − B, signed, 2 decimals (numbers already in points, e.g. F1 ×100)
    {{mean FILE KEY}}     the mean of the list at KEY, 2 decimals (the list's numbers as they are, e.g. F1 ×100 per seed)
    {{md FILE}}           the text of FILE (a committed markdown table), its headings two levels down (# → ###), so
                          that it sits under the section that includes it
    {{table FILE N}}      the N-th markdown table of FILE (1 = the first), alone

FILE is relative to the repository root. A missing file or key is an error naming the marker.

`unbacked(text)` lists the decimal numbers of a text's prose that no result file it names holds. It catches a number
typed from nowhere, not a wrong one: with every JSON value allowed ×1, ×100 or ×1000 to 0–2 decimals, a mistyped
number can match some other value by chance. Numbers that are computed (differences, ratios) belong in markers."""
import fnmatch, json, re
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r'\{\{(pct|num|sgn|mean|ratio|diff|minus|md|table) ([^}]+)\}\}')


@lru_cache(None)
def _json(f): return json.loads((ROOT/f).read_text(encoding='utf-8'))


def lookup(f, key):
    v = _json(f)
    for k in key.split('.'):
        v = v[int(k)] if isinstance(v, list) else v[k]
    return v


def _signed(x): return f"{x:+.2f}".replace('-', '−')      # the minus sign of the prose around it


def _one(m):
    kind, args = m.group(1), m.group(2).split()
    try:
        if kind == 'md': return re.sub(r'^#', '###', (ROOT/args[0]).read_text(encoding='utf-8').strip('\n'), flags=re.M)
        if kind == 'table': return tables((ROOT/args[0]).read_text(encoding='utf-8'))[int(args[1]) - 1]
        v = lookup(args[0], args[1])
        if kind == 'ratio': return f"{v / lookup(args[0], args[2]):.2f}"
        if kind == 'diff': return _signed(100 * (v - lookup(args[0], args[2])))
        if kind == 'minus': return _signed(v - lookup(args[0], args[2]))
        if kind == 'sgn': return _signed(v)
        if kind == 'mean': return f"{sum(v) / len(v):.2f}"
        return f"{100 * v:.2f}" if kind == 'pct' else f"{v:,.{int(args[2]) if len(args) > 2 else 0}f}"
    except (OSError, KeyError, IndexError, ValueError, TypeError) as e:
        raise ValueError(f"{m.group(0)}: {type(e).__name__}: {e}") from None


def fill(text):
    "`text` with every marker replaced by what it names."
    return MARKER.sub(_one, text)


def tables(text):
    "The markdown tables of `text`, each as its lines joined."
    return [m.group(0).strip('\n') for m in re.finditer(r'(?:^\|.*\|[ \t]*(?:\n|$))+', text, flags=re.M)]


def _numbers(f):
    "Every way a number of result file `f` may be quoted: as written in a markdown file; a JSON value as is, ×100 or ×1000, to 0–2 decimals."
    if f.suffix == '.md': return {n.replace(',', '') for n in re.findall(r'\d[\d,]*(?:\.\d+)?', f.read_text(encoding='utf-8'))}
    out = set()
    def walk(x):
        if isinstance(x, dict): [walk(v) for v in x.values()]
        elif isinstance(x, list): [walk(v) for v in x]
        elif isinstance(x, (int, float)) and not isinstance(x, bool):
            out.update(f'{abs(v):.{d}f}' for v in (x, 100 * x, 1000 * x) for d in (0, 1, 2))
    walk(_json(str(f.relative_to(ROOT))))
    return out


def unbacked(text, results='bench/results'):
    """Decimal numbers in the prose of `text` (outside code, markers and tables) that none of the result files it names
    (`bench/results/NAME…`, `<…>` a wildcard; the files of its markers too) holds in any of the ways `_numbers` allows."""
    names = re.findall(re.escape(results) + r'/([\w.\-<>{},]+)', text)
    stems = {re.sub(r'<[^>]*>', '*', re.split(r'[.{]', n)[0]) for n in names}
    files = [f for f in sorted((ROOT/results).iterdir()) if f.suffix in ('.md', '.json') and any(fnmatch.fnmatch(f.name, s + '*') for s in stems)]
    pool = set().union(*map(_numbers, files)) if files else set()
    prose = re.sub(r'```.*?```|\{\{.*?\}\}|`[^`]*`', '', text, flags=re.S)
    prose = re.sub(r'^\|.*\|[ \t]*$', '', prose, flags=re.M)
    return [n for n in re.findall(r'(?<![\w.])[+−-]?(\d[\d,]*\.\d+)', prose) if n.replace(',', '') not in pool]
