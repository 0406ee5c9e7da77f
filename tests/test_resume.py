"Exact resume: a run killed with SIGKILL mid-epoch and resumed ends exactly where an uninterrupted run ends."
import os, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch
from contproto_fastai.checkpoint import atomic_save, Checkpoint

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
    assert ref['state']['records'] == res['state']['records']          # pseudo-label F1 curve, margins per epoch
    assert ref['values'] == res['values']                          # every logged metric of every epoch
    # the fit's seconds: the resumed process adds what the killed one had spent up to its checkpoint (wall and CPU)
    assert ref['carried'] == dict(wall=0., cpu=0.) and res['carried'] == killed_at['elapsed']
    assert res['elapsed']['wall'] > killed_at['elapsed']['wall'] > 1.0 and res['elapsed']['cpu'] > killed_at['elapsed']['cpu'] > 0


def test_resume_after_the_last_epoch(tmp_path):
    """Killed after the last epoch's checkpoint (while the run scores or pseudo-labels): the resumed fit runs no epoch and
    still restores the recorder, the shared state and the seconds the fit had taken."""
    ref = _run(tmp_path, 'full')
    ck = torch.load(tmp_path/'ckpt.pt', weights_only=False)
    assert ck['epoch'] == ck['n_epoch'] == 3 and ck['batches'] == 0
    ck['elapsed'] = dict(wall=1000., cpu=900.); torch.save(ck, tmp_path/'ckpt.pt')
    res = _run(tmp_path, 'resume')
    for k, v in ref['model'].items(): assert torch.equal(v, res['model'][k]), k
    for k in ('prototypes', 'margins'): assert torch.equal(ref['state'][k], res['state'][k]), k
    assert torch.equal(ref['state']['pseudo_labels']['probs'], res['state']['pseudo_labels']['probs'])
    assert ref['state']['records'] == res['state']['records'] and ref['values'] == res['values'] and len(res['values']) == 3
    assert res['carried'] == ck['elapsed'] and 1000. < res['elapsed']['wall'] < 1000. + 60


def test_atomic_save_keeps_last_good_checkpoint(tmp_path):
    path = tmp_path/'ck.pt'
    atomic_save({'step': 1}, path)
    class Boom:
        def __reduce__(self): raise RuntimeError("crash while saving")
    with pytest.raises(RuntimeError): atomic_save({'step': 2, 'x': Boom()}, path)
    assert torch.load(path) == {'step': 1}


def test_cli_resume_after_sigkill(tmp_path):
    "contproto-fit killed during the student, then `contproto-fit --resume OUT`, ends with the uninterrupted run's results."
    import json, shutil
    from contproto_fastai.testing import toy_files
    exe = shutil.which('contproto-fit')
    if exe is None: pytest.skip("contproto-fit not on PATH")
    f, model = toy_files(tmp_path, n_src=400, n_dev=30, n_tgt=200, n_test=30)
    args = ['--src-train', str(f['src_train']), '--src-dev', str(f['src_dev']), '--tgt-train', str(f['tgt_train']),
            '--tgt-test', str(f['tgt_test']), '--model', model, '--epochs', '3', '--teacher-epochs', '1', '--lr', '3e-3',
            '--dropout', '0.1', '--checkpoint-every', '1', '--quiet']
    r = subprocess.run([exe, *args, '--out', str(tmp_path/'ref')], capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    out = tmp_path/'run'
    p = subprocess.Popen([exe, *args, '--out', str(out)], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while p.poll() is None and time.time() - t0 < 300:
        if (out/'student_ckpt.pt').exists():
            if torch.load(out/'student_ckpt.pt', weights_only=False)['epoch'] >= 1: break
        time.sleep(0.02)
    assert p.poll() is None, "the run finished before it could be killed"
    os.kill(p.pid, signal.SIGKILL); p.wait()
    mid, ck = json.loads((out/'results.json').read_text()), torch.load(out/'student_ckpt.pt', weights_only=False)
    assert mid.get('machine') is None and mid['status'] == 'running' and all(mid[kind][k] > 0 for kind in ('times', 'cpu_times') for k in ('teacher', 'pseudo_labels'))
    assert ck['elapsed']['wall'] > 0 and ck['elapsed']['cpu'] > 0
    # mark what the killed process recorded (its teacher's and pseudo-labelling seconds, its student fit's up to the
    # checkpoint) with large values, to see exactly that the resumed run adds them to its own
    mark = dict(teacher=500., pseudo_labels=300., student=1000.)
    for kind in ('times', 'cpu_times'): mid[kind].update(teacher=mark['teacher'], pseudo_labels=mark['pseudo_labels'])
    (out/'results.json').write_text(json.dumps(mid)); ck['elapsed'] = dict(wall=mark['student'], cpu=mark['student'])
    torch.save(ck, out/'student_ckpt.pt')
    t0 = time.time()
    r = subprocess.run([exe, '--resume', str(out)], capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    took = time.time() - t0
    ref, res = json.loads((tmp_path/'ref'/'results.json').read_text()), json.loads((out/'results.json').read_text())
    assert ref['times_unknown'] == res['times_unknown'] == []
    for kind in ('times', 'cpu_times'):
        for k, v in mark.items(): assert v < res[kind][k] < v + took * (1 if kind == 'times' else os.cpu_count()), (kind, k)
        assert res[kind]['total'] >= sum(res[kind][k] for k in ('data', 'teacher', 'pseudo_labels', 'student'))
    assert res['student'] == ref['student'] and res['teacher'] == ref['teacher']
    assert res['student_history'] == ref['student_history'] and res['pseudo_label_f1_curve'] == ref['pseudo_label_f1_curve']
    a, b = torch.load(tmp_path/'ref'/'state.pt', weights_only=False), torch.load(out/'state.pt', weights_only=False)
    assert torch.equal(a['pseudo_labels']['probs'], b['pseudo_labels']['probs']) and torch.equal(a['prototypes'], b['prototypes'])


def test_checkpoint_size(tmp_path):
    """`size='trainable'` (the default) leaves the frozen word embeddings out (the resumed model has them from the model
    it is rebuilt from) and still resumes exactly; `'weights'` also drops the optimizer state (smaller, resumes, not
    exactly); `'full'` keeps everything."""
    import shutil
    from fastai.callback.core import Callback
    from fastai.callback.progress import ProgressCallback
    from fastai.torch_core import set_seed
    from contproto_fastai.testing import toy_task
    from contproto_fastai.model import SpanNER, tiny_encoder
    from contproto_fastai.learner import teacher_learner
    task = toy_task(n_src=48, n_tgt=8, n_dev=16, seed=2)

    class CopyAfterFirstEpoch(Callback):
        order = Checkpoint.order + 1
        def __init__(self, src, dst): self.src, self.dst = src, dst
        def after_epoch(self):
            if self.epoch == 0: shutil.copy(self.src, self.dst)

    def run(size, resume_from=None):
        set_seed(0, reproducible=True)
        model = SpanNER(tiny_encoder(len(task.tokenizer), hidden=32, seed=0), len(task.labels), max_span_len=task.max_span_len,
                        dropout=0.1, freeze_embeddings=True)
        ck = tmp_path/f'{size}.pt'
        learn = teacher_learner(model, task.src_train, task.src_dev, bs=16, lr=3e-3, path=tmp_path, select=None,
                                cbs=[Checkpoint(ck, size=size), CopyAfterFirstEpoch(ck, tmp_path/f'{size}-epoch1.pt')])
        learn.remove_cb(ProgressCallback)
        if resume_from: learn.resume(resume_from)
        learn.fit_one_cycle(2, 3e-3)
        run.carried = learn.checkpoint.carried
        return {k: v.clone() for k, v in learn.model.state_dict().items()}, {n for n, p in model.named_parameters() if not p.requires_grad}

    ref, frozen = run('full')
    assert frozen and all('embeddings' in n for n in frozen)
    sizes = {}
    for size in ('full', 'trainable', 'weights'):
        if size != 'full': run(size)
        ck = torch.load(tmp_path/f'{size}-epoch1.pt', weights_only=False)
        sizes[size] = (tmp_path/f'{size}-epoch1.pt').stat().st_size
        assert (set(ck['model']) & frozen) == (frozen if size == 'full' else set()), size
        assert (ck['opt'] is None) == (size == 'weights'), size
        resumed, _ = run(size, tmp_path/f'{size}-epoch1.pt')
        exact = all(torch.equal(v, resumed[k]) for k, v in ref.items())
        assert exact == (size != 'weights'), size          # without AdamW's moments the second epoch differs
    assert sizes['full'] > sizes['trainable'] > sizes['weights'], sizes
    # a checkpoint written before checkpoints kept the fit's seconds resumes exactly; what it had spent is unknown (None)
    old = torch.load(tmp_path/'trainable-epoch1.pt', weights_only=False); assert old.pop('elapsed')['wall'] > 0
    torch.save(old, tmp_path/'old.pt')
    assert all(torch.equal(v, run('trainable', tmp_path/'old.pt')[0][k]) for k, v in ref.items()) and run.carried is None
    # a checkpoint from a model with other trainable weights is refused, naming them
    bad = torch.load(tmp_path/'trainable-epoch1.pt', weights_only=False)
    bad['model'].pop(next(k for k in bad['model'] if 'classifier' in k)); torch.save(bad, tmp_path/'bad.pt')
    with pytest.raises(ValueError, match="missing trainable weights"): run('trainable', tmp_path/'bad.pt')
