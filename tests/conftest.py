"Shared fixtures: where the real corpora live (`../shared/data`), and settings that keep the suite fast on a busy CPU."
import os
from pathlib import Path

# One BLAS/OpenMP thread: on a 2-core machine shared with another job, torch's default thread pool is many times
# slower than a single thread for the tiny models used here. Must be set before torch is imported.
os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('MKL_NUM_THREADS', '1')
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')

import pytest
from hypothesis import settings

# No deadline: timings on a shared 2-core machine are noisy, and no test here is about speed.
settings.register_profile('contproto', deadline=None, max_examples=100, database=None)
settings.load_profile('contproto')

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='session')
def repo_root():
    return REPO_ROOT


@pytest.fixture(scope='session')
def shared_data():
    "`<repo>/../shared/data`, the real corpora (see ../shared/README.md); skips the test when it is absent."
    d = REPO_ROOT.parent/'shared'/'data'
    if not d.is_dir():
        pytest.skip(f"real data not available: {d} does not exist (the corpora live in ../shared/data, outside the repo)")
    return d


@pytest.fixture(scope='session')
def conll_file(shared_data):
    "`conll_file('en/train.txt')`: the path of one real CoNLL file, skipping the test when that file is absent."
    def get(rel):
        p = shared_data/'conll'/rel
        if not p.is_file(): pytest.skip(f"real data file not available: {p}")
        return p
    return get
