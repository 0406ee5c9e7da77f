"""A run folder is the unit (issue: runs that cannot be mixed up): resume by folder wherever it was moved or copied, a
fingerprint checked on resume and by --teacher-from, an exclusive lock, options and folders checked before any work."""
import hashlib, json, os, shutil, signal, subprocess, time
from pathlib import Path
import pytest, torch
from contproto_fastai.config import RunConfig
from contproto_fastai.run import Run
from contproto_fastai.run_folder import RunLock, RunFolderError
from contproto_fastai.results import Results
from contproto_fastai.testing import toy_files

ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'OMP_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore'}


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp('folder')
    files, tiny = toy_files(d, n_src=160, n_dev=40, n_tgt=80, n_test=40)
    return d, files, tiny


def _cfg(toy, out, **kw):
    d, files, tiny = toy
    return RunConfig(**{**dict(files, model=tiny, epochs=3, teacher_epochs=2, lr=3e-3, dropout=0.1, quiet=True, out=str(out)), **kw})


def _snapshot(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).rglob('*')) if p.is_file()}


def _args(cfg):
    return [a for k in ('src_train', 'src_dev', 'tgt_train', 'tgt_test') for a in (f"--{k.replace('_', '-')}", getattr(cfg, k))]


def test_copied_folder_resumes_bit_identically_without_touching_the_original(toy, tmp_path):
    "Kill a run during its student phase, copy its folder, resume the copy: the result is the uninterrupted run's, the original unchanged."
    ref = Run(_cfg(toy, tmp_path/'ref')).fit()
    cfg = _cfg(toy, tmp_path/'B')
    exe = shutil.which('contproto-fit') or pytest.skip('contproto-fit not on PATH')
    p = subprocess.Popen([exe, *_args(cfg), '--model', cfg.model, '--epochs', '3', '--teacher-epochs', '2', '--lr', '3e-3', '--dropout', '0.1',
                          '--checkpoint-every', '1', '--quiet', '--out', 'B'], cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.time()
    while p.poll() is None and time.time() - t0 < 600:
        ck = tmp_path/'B'/'student_ckpt.pt'
        if ck.exists():
            try:
                if torch.load(ck, weights_only=False)['epoch'] >= 1: break
            except Exception: pass          # being replaced: look again
        time.sleep(0.05)
    assert p.poll() is None, "the run finished before it could be killed"
    os.kill(p.pid, signal.SIGKILL); p.wait()
    assert not Results.read(tmp_path/'B').finished
    shutil.copytree(tmp_path/'B', tmp_path/'D')
    before = _snapshot(tmp_path/'B')
    elsewhere = tmp_path/'elsewhere'; elsewhere.mkdir()
    r = subprocess.run([exe, '--resume', str(tmp_path/'D'), '--quiet'], cwd=elsewhere, env=ENV,   # from another working
                       capture_output=True, text=True, timeout=600)                                 # directory: B's relative --out means nothing there
    assert r.returncode == 0, r.stderr[-3000:]
    res = Results.read(tmp_path/'D')
    assert _snapshot(tmp_path/'B') == before             # nothing of the original read-write
    assert res['student'] == ref['student'] and res['teacher'] == ref['teacher'] and res['student_history'] == ref['student_history']
    from safetensors.torch import load_file
    a, b = load_file(tmp_path/'ref'/'model'/'model.safetensors'), load_file(tmp_path/'D'/'model'/'model.safetensors')
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((tmp_path/'D'/'config.json').read_text())['out'] == str(tmp_path/'D')
    assert not list(elsewhere.iterdir())                  # nothing written where the resume was started


def test_resume_refuses_other_data_or_options(toy, tmp_path):
    d, files, tiny = toy
    cfg = _cfg(toy, tmp_path/'run', epochs=0)
    Run(cfg).fit()
    c = json.loads((tmp_path/'run'/'config.json').read_text())
    (tmp_path/'run'/'config.json').write_text(json.dumps({**c, 'tgt_test': files['src_dev']}))
    with pytest.raises(RunFolderError, match=r'cannot resume.*tgt_test'): Run.resume(tmp_path/'run').fit()
    (tmp_path/'run'/'config.json').write_text(json.dumps(c))
    changed = tmp_path/'tgt_test.txt'; shutil.copy(files['tgt_test'], changed)
    (tmp_path/'run'/'config.json').write_text(json.dumps({**c, 'tgt_test': str(changed)}))
    with pytest.raises(RunFolderError, match='tgt_test'): Run.resume(tmp_path/'run').fit()   # same content, other path: an option
    (tmp_path/'run'/'config.json').write_text(json.dumps(c))
    Run.resume(tmp_path/'run').fit()                       # as it was: resumes (nothing left to do)


def test_teacher_from_rescores_on_another_test_set(toy, tmp_path):
    "--teacher-from with another target test set scores the teacher again instead of copying its old score."
    t = Run(_cfg(toy, tmp_path/'t20', epochs=0, test_limit=20)).fit()
    fresh = Run(_cfg(toy, tmp_path/'t40', epochs=0, test_limit=40)).fit()        # the same teacher (same seed), scored on 40
    s = Run(_cfg(toy, tmp_path/'s', epochs=1, test_limit=40, ablation='vanilla', teacher_from=str(tmp_path/'t20'))).fit()
    assert t['teacher'] != fresh['teacher'] and s['teacher'] == fresh['teacher']
    s2 = Run(_cfg(toy, tmp_path/'s2', epochs=1, test_limit=20, ablation='vanilla', teacher_from=str(tmp_path/'t20'))).fit()
    assert s2['teacher'] == t['teacher']                   # the same test set: the score is reused


def test_teacher_from_refuses_other_target_text(toy, tmp_path):
    d, files, tiny = toy
    Run(_cfg(toy, tmp_path/'t', epochs=0)).fit()
    with pytest.raises(RunFolderError, match=r'teacher-from.*tgt_limit'):
        Run(_cfg(toy, tmp_path/'s', epochs=1, tgt_limit=50, teacher_from=str(tmp_path/'t'))).fit()


def test_second_writer_is_refused(toy, tmp_path, capsys):
    from contproto_fastai.cli import main
    (tmp_path/'busy').mkdir()
    cfg = _cfg(toy, tmp_path/'busy')
    with RunLock(tmp_path/'busy'):
        with pytest.raises(SystemExit) as ei:
            main([*_args(cfg), '--model', cfg.model, '--epochs', '1', '--out', str(tmp_path/'busy'), '--quiet'])
        assert 'in use by process' in str(ei.value.code) and str(os.getpid()) in str(ei.value.code)
    assert not (tmp_path/'busy'/'config.json').exists()


def test_new_run_into_a_run_folder_is_refused(toy, tmp_path):
    Run(_cfg(toy, tmp_path/'r', epochs=0)).fit()
    with pytest.raises(RunFolderError, match='already holds a run.*--resume'): Run(_cfg(toy, tmp_path/'r', epochs=0, seed=1)).fit()


def test_out_and_model_checked_before_work(toy, tmp_path, capsys):
    from contproto_fastai.cli import main
    cfg = _cfg(toy, tmp_path/'x')
    (tmp_path/'afile').write_text('x')
    with pytest.raises(SystemExit) as ei: main([*_args(cfg), '--model', cfg.model, '--out', str(tmp_path/'afile'), '--quiet'])
    assert 'is a file' in str(ei.value.code)
    (tmp_path/'empty_model').mkdir()
    with pytest.raises(SystemExit) as ei: main([*_args(cfg), '--model', str(tmp_path/'empty_model'), '--out', str(tmp_path/'y')])
    assert ei.value.code == 2 and '--model names a folder without config.json' in capsys.readouterr().err
    assert not (tmp_path/'y').exists()
