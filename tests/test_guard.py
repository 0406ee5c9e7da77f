"""The numerics guard (`bench/guard.py`): a small real run of the default encoder whose figures are committed. A change
of the code's numerics fails here until `python bench/guard.py write` and `python bench/readme.py` have refreshed the
committed figures, the guard's and README's main command's."""
import json, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'bench'))
import guard

needs_data = pytest.mark.skipif(not guard.DATA.exists(), reason=f'needs the CoNLL data at {guard.DATA}')


def test_differences_name_what_moved():
    want = guard.committed()['figures']
    assert guard.differences(dict(want), want) == []
    moved = dict(want, student_train_loss=want['student_train_loss'] * (1 + 3 * guard.TOLERANCE['student_train_loss']),
                 zero_shot_f1=want['zero_shot_f1'] + 0.5 * guard.TOLERANCE['zero_shot_f1'])
    bad = guard.differences(moved, want)
    assert len(bad) == 1 and bad[0].startswith('student_train_loss'), bad


@needs_data
def test_the_guard_run_gives_the_committed_figures():
    got = guard.measure()
    bad = guard.differences(got, guard.committed()['figures'])
    assert not bad, ("the code's numerics changed (bench/guard.py): " + '; '.join(bad) + ". If on purpose, refresh the "
                     "committed figures: python bench/guard.py write && python bench/readme.py")


def test_readme_run_is_of_the_committed_numerics():
    "README's table comes from a run of code whose guard figures are the committed ones (not an older code's)."
    readme = json.loads((ROOT/'bench'/'results'/'readme_en-de.json').read_text())
    bad = guard.differences(readme['guard'], guard.committed()['figures'])
    assert not bad, "README's run (bench/results/readme_en-de.json) is of other numerics: rerun python bench/readme.py; " + '; '.join(bad)
    from readme import readme_command
    assert readme['command'] == readme_command(), "README's main command changed since its run: rerun python bench/readme.py"
