"""Numbers and tables from committed result files, filled into markdown: README.md (`make_readme.py`) and the docs
chapters (`docs.py`) quote bench/results/ through these markers, never by hand, so they cannot drift from the files.

    {{pct FILE KEY}}      100 × the number at KEY (dotted path; list items by index) of the JSON FILE, 2 decimals
    {{num FILE KEY [D]}}  the number itself, D decimals (default 0)
    {{ratio FILE A B}}    the number at key A divided by the one at key B, 2 decimals (e.g. a speed-up)
    {{diff FILE A B}}     100 × (A − B), signed, 2 decimals (e.g. an F1 change in points)
    {{mean FILE KEY}}     the mean of the list at KEY, 2 decimals (the list's numbers as they are, e.g. F1 ×100 per seed)
    {{md FILE}}           the text of FILE (a committed markdown table), its headings two levels down (# → ###), so
                          that it sits under the section that includes it

FILE is relative to the repository root. A missing file or key is an error naming the marker."""
import json, re
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r'\{\{(pct|num|mean|ratio|diff|md) ([^}]+)\}\}')


@lru_cache(None)
def _json(f): return json.loads((ROOT/f).read_text(encoding='utf-8'))


def lookup(f, key):
    v = _json(f)
    for k in key.split('.'):
        v = v[int(k)] if isinstance(v, list) else v[k]
    return v


def _one(m):
    kind, args = m.group(1), m.group(2).split()
    try:
        if kind == 'md': return re.sub(r'^#', '###', (ROOT/args[0]).read_text(encoding='utf-8').strip('\n'), flags=re.M)
        v = lookup(args[0], args[1])
        if kind == 'ratio': return f"{v / lookup(args[0], args[2]):.2f}"
        if kind == 'diff': return f"{100 * (v - lookup(args[0], args[2])):+.2f}"
        if kind == 'mean': return f"{sum(v) / len(v):.2f}"
        return f"{100 * v:.2f}" if kind == 'pct' else f"{v:.{int(args[2]) if len(args) > 2 else 0}f}"
    except (OSError, KeyError, IndexError, ValueError, TypeError) as e:
        raise ValueError(f"{m.group(0)}: {type(e).__name__}: {e}") from None


def fill(text):
    "`text` with every marker replaced by what it names."
    return MARKER.sub(_one, text)
