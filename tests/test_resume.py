"Exact resume: a run killed with SIGKILL mid-epoch and resumed ends exactly where an uninterrupted run ends."
import os, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch
from contproto_fastai.pseudo import atomic_save

WORKER = Path(__file__).with_name('resume_worker.py')
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore'}


def _run(out, mode, pause=0.):
    r = subprocess.run([sys.executable, str(WORKER), str(out), mode, str(pause)], capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return torch.load(out/'final.pt', weights_only=False)


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path):
    ref = _run(tmp_path/'ref', 'full')
    out = tmp_path/'killed'; out.mkdir()
    p = subprocess.Popen([sys.executable, str(WORKER), str(out), 'full', '0.3'], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ck, t0 = None, time.time()
    while time.time() - t0 < 300 and p.poll() is None:      # wait for a checkpoint in the middle of epoch 1 (after warm-up)
        if (out/'ckpt.pt').exists():
            ck = torch.load(out/'ckpt.pt', weights_only=False)
            if ck['epoch'] == 1 and ck['batches'] >= 2: break
        time.sleep(0.05)
    assert p.poll() is None, "worker finished before it could be killed"
    os.kill(p.pid, signal.SIGKILL); p.wait()
    assert not (out/'final.pt').exists()
    killed_at = torch.load(out/'ckpt.pt', weights_only=False)
    assert killed_at['epoch'] == 1 and 0 < killed_at['batches'] < 6
    res = _run(out, 'resume')
    for k, v in ref['model'].items(): assert torch.equal(v, res['model'][k]), k
    for k in ('prototypes', 'margins'): assert torch.equal(ref['state'][k], res['state'][k]), k
    assert torch.equal(ref['state']['pseudo_labels']['probs'], res['state']['pseudo_labels']['probs'])
    assert ref['state']['extra'] == res['state']['extra']          # pseudo-label F1 curve, margins per epoch
    assert ref['values'] == res['values']                          # every logged metric of every epoch


def test_atomic_save_keeps_last_good_checkpoint(tmp_path):
    path = tmp_path/'ck.pt'
    atomic_save({'step': 1}, path)
    class Boom:
        def __reduce__(self): raise RuntimeError("crash while saving")
    with pytest.raises(RuntimeError): atomic_save({'step': 2, 'x': Boom()}, path)
    assert torch.load(path) == {'step': 1}
