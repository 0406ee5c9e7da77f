"""Hostile but fair inputs (issue 24, defects 6-8): a full disk or a refused write, files in odd encodings, broken
predictor folders and raw text with blank lines. Each test fails on the code before the fix."""
import errno, inspect, json, os, shutil, stat, subprocess, sys
import pytest, torch


# ---------------------------------------------------------------- defect 6: full disk, atomic writes, the import circle
def _fill_disk(monkeypatch):
    "From now on `write(2)` fails with ENOSPC for every temporary file (`*.tmp`), as on a full disk; other writes go through."
    real = os.write
    def write(fd, b):
        if os.readlink(f'/proc/self/fd/{fd}').endswith('.tmp'): raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, b)
    monkeypatch.setattr(os, 'write', write)


@pytest.fixture
def full_disk(monkeypatch): _fill_disk(monkeypatch)


def test_full_disk_names_the_file_and_keeps_the_previous_one(tmp_path, full_disk):
    from contproto_fastai.checkpoint import atomic_save
    target = tmp_path/'checkpoint.pt'
    torch.save({'step': 1}, target)
    with pytest.raises(OSError) as ei: atomic_save({'step': 2, 'w': torch.zeros(10_000)}, target)
    msg = str(ei.value)
    assert str(target) in msg and 'no space left on device' in msg and 'free space' in msg
    assert 'unexpected pos' not in msg and '\n' not in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ['checkpoint.pt']         # no *.tmp left behind
    assert torch.load(target) == {'step': 1}


@pytest.mark.parametrize('err,words', [(errno.EACCES, 'permission denied'), (errno.EROFS, 'read-only file system')])
def test_refused_write_is_named(tmp_path, monkeypatch, err, words):
    "Creating the temporary file is refused (a folder not writable, a read-only mount; root ignores modes, hence simulated)."
    from contproto_fastai.checkpoint import atomic_save
    real = os.open
    def refuse(f, *a, **k):
        if str(f).endswith('.tmp'): raise OSError(err, os.strerror(err), str(f))
        return real(f, *a, **k)
    monkeypatch.setattr(os, 'open', refuse)
    with pytest.raises(OSError) as ei: atomic_save({'x': 1}, tmp_path/'results.pt')
    assert str(ei.value).startswith(f"{tmp_path/'results.pt'}: {words}; ") and 'write elsewhere' in str(ei.value)
    assert list(tmp_path.iterdir()) == []


def test_kernel_refuses_the_write(tmp_path):
    "A real failed write(2) in a child process (file size limit: EFBIG): named file, no temporary file, previous file intact."
    target = tmp_path/'state.pt'
    code = f"""
import resource, signal, sys, torch
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
from contproto_fastai.checkpoint import atomic_save
atomic_save({{'x': torch.ones(10)}}, {str(target)!r})
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
try: atomic_save({{'x': torch.ones(1_000_000)}}, {str(target)!r})
except Exception as e: print(str(e).replace(chr(10), ' ')); sys.exit(3)
"""
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 3, r.stderr[-2000:]
    assert str(target) in r.stdout and 'file too large' in r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ['state.pt']
    assert torch.equal(torch.load(target)['x'], torch.ones(10))


def test_fastai_best_model_file_is_written_atomically(tmp_path, monkeypatch):
    "`models/<fname>.pth` (fastai's SaveModelCallback writes it in place): a failed save leaves the previous best whole."
    from fastai.test_utils import synth_learner
    from contproto_fastai.checkpoint import AtomicSaveModelCallback
    learn = synth_learner(path=tmp_path)
    cb = AtomicSaveModelCallback(fname='best'); cb.learn = learn
    cb._save('best')                                                   # a good save first
    f = tmp_path/'models'/'best.pth'
    before = f.read_bytes()
    assert cb.last_saved_path == f and torch.load(f).keys() == learn.model.state_dict().keys()
    _fill_disk(monkeypatch)
    with torch.no_grad(): learn.model.a += 1
    with pytest.raises(OSError, match='no space left on device'): cb._save('best')
    assert f.read_bytes() == before and sorted(p.name for p in f.parent.iterdir()) == ['best.pth']


def test_checkpoint_and_pseudo_do_not_import_each_other():
    import contproto_fastai.checkpoint as ck, contproto_fastai.pseudo as ps, contproto_fastai.io as cio
    assert 'pseudo' not in inspect.getsource(ck)
    assert ps.atomic_save is cio.atomic_save and ck.atomic_save is cio.atomic_save


# ---------------------------------------------------------------- defect 7: encodings and line breaks
def test_a_stray_byte_is_an_error_at_its_line_and_column(tmp_path):
    from contproto_fastai.data import read_conll, DataFormatError
    p = tmp_path/'de.txt'
    p.write_bytes('Flüchtlinge\tO\nkamen\tO\n\nnach\tO\n'.encode() + b'M\xfcnchen\tB-LOC\n')
    with pytest.raises(DataFormatError) as ei: read_conll(p)
    assert str(ei.value).startswith(f"{p}:5:2: byte 0xfc is not valid UTF-8") and '--encoding cp1252' in str(ei.value)
    assert read_conll(p, encoding='utf-8:replace')[0].tokens == ['Flüchtlinge', 'kamen']      # asked for: no mojibake either


def test_windows_ellipsis_and_unicode_line_separators_stay_inside_lines(tmp_path):
    from contproto_fastai.data import read_conll, DataFormatError
    (tmp_path/'ok.txt').write_bytes(b'Na\x85\tO\nja\tO\n')
    assert read_conll(tmp_path/'ok.txt', encoding='cp1252')[0].tokens == ['Na\u2026', 'ja']      # Windows-1252's ellipsis
    p = tmp_path/'cp.txt'
    p.write_bytes(b'Na\x85\tO\nja\tO\nx\tB_X\n')
    with pytest.raises(DataFormatError, match=r'cp\.txt:3: unknown tag'): read_conll(p, encoding='latin-1')
    u = tmp_path/'u.txt'
    u.write_text('a\u2028b\tO\nc\u0085\tO\nd\u2029e\tB-LOC\n', encoding='utf-8')
    s = read_conll(u)
    assert len(s) == 1 and s[0].tokens == ['a\u2028b', 'c\u0085', 'd\u2029e'] and s[0].spans == [(2, 2, 'LOC')]


@pytest.mark.parametrize('enc', ['utf-8', 'utf8', 'UTF-8', 'utf-8-sig', 'auto'])
def test_bom_is_dropped_under_every_utf8_name(tmp_path, enc):
    from contproto_fastai.data import read_conll
    p = tmp_path/'bom.txt'
    p.write_bytes(b'\xef\xbb\xbf' + '-DOCSTART-\tO\n\nParis\tB-LOC\n'.encode())
    assert [s.tokens for s in read_conll(p, encoding=enc)] == [['Paris']]


# ---------------------------------------------------------------- defect 8: predictor, model folders
@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    from contproto_fastai.data import word_tokenizer, LabelSet
    from contproto_fastai.model import SpanNER, tiny_encoder
    from contproto_fastai.predict import SpanPredictor
    tok = word_tokenizer(['Anna', 'lebt', 'in', 'Paris', '.'])
    pred = SpanPredictor(SpanNER(tiny_encoder(len(tok), seed=0), 3), tok, LabelSet(['LOC', 'PER']), max_len=32)
    d = tmp_path_factory.mktemp('pred')
    pred.export(d/'model')
    return pred, d/'model'


def _copy(src, tmp_path, change):
    dst = tmp_path/'model'; shutil.copytree(src, dst); change(dst); return dst


def _edit(**kw):
    def f(p):
        cfg = json.loads((p/'config.json').read_text()); cfg.update(kw); (p/'config.json').write_text(json.dumps(cfg))
    return f


def test_blank_lines_stay_sentences(exported):
    from contproto_fastai.predict import tag_lines, to_conll
    pred, _ = exported
    lines = ['Anna lebt in Paris .', '', ' \t ', 'Paris']
    sents, tags, offsets = tag_lines(pred, iter(lines))
    assert len(sents) == len(tags) == len(offsets) == 4 and sents[1] == sents[2] == [] and sents[3] == ['Paris']
    assert to_conll(sents, tags).split('\n')[5:9] == ['', '', '', f'Paris\t{tags[3][0]}']


def test_predict_and_tag_take_generators(exported):
    pred, _ = exported
    assert pred.predict(t for t in ['Anna lebt', 'Paris']) == pred.predict(['Anna lebt', 'Paris'])
    assert pred.tag(t for t in [['Anna'], ['Paris', '.']]) == pred.tag([['Anna'], ['Paris', '.']])


@pytest.mark.parametrize('rel', ['tokenizer.json', 'tokenizer_config.json', 'model.safetensors'])
def test_missing_file_is_named(exported, tmp_path, rel):
    from contproto_fastai.predict import load_predictor
    d = _copy(exported[1], tmp_path, lambda p: (p/rel).unlink())
    with pytest.raises(FileNotFoundError) as ei: load_predictor(d, device='cpu')
    assert str(ei.value).startswith(f"{d/rel}: missing") and '\n' not in str(ei.value)


def test_unknown_format_is_refused(exported, tmp_path):
    from contproto_fastai.predict import load_predictor
    d = _copy(exported[1], tmp_path, _edit(contproto_format=99))
    with pytest.raises(FileNotFoundError, match=r"format 99 is not one this version of contproto_fastai reads \(3\)"):
        load_predictor(d, device='cpu')


def test_reordered_labels_are_refused(exported, tmp_path):
    from contproto_fastai.predict import load_predictor
    d = _copy(exported[1], tmp_path, _edit(id2label={'0': 'O', '1': 'PER', '2': 'LOC'}, label2id={'O': 0, 'PER': 1, 'LOC': 2}))
    with pytest.raises(FileNotFoundError, match='restore the exported order'): load_predictor(d, device='cpu')


def test_exported_files_share_one_mode(exported):
    umask = os.umask(0o022); os.umask(umask)
    modes = {f.relative_to(exported[1]).as_posix(): stat.S_IMODE(f.stat().st_mode) for f in exported[1].rglob('*') if f.is_file()}
    assert 'model.safetensors' in modes and set(modes.values()) == {0o666 & ~umask}, modes


def test_export_is_swapped_in_whole(exported, tmp_path, monkeypatch):
    "A full disk while exporting (save_pretrained's files included): the error names the folder, the previous export stays whole, no temporary folder."
    pred, src = exported
    dst = tmp_path/'model'; shutil.copytree(src, dst)
    before = {str(p.relative_to(dst)): p.read_bytes() for p in dst.rglob('*') if p.is_file()}
    import transformers.modeling_utils as mu
    def full(*a, **k): raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(mu, 'safe_save_file', full)                  # what save_pretrained writes the weights with
    with pytest.raises(OSError) as ei: pred.export(dst)
    assert str(dst) in str(ei.value) and 'no space left on device' in str(ei.value)
    assert {str(p.relative_to(dst)): p.read_bytes() for p in dst.rglob('*') if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ['model']
    monkeypatch.undo()
    pred.export(dst)                                                  # and a later export replaces it whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ['model'] and (dst/'config.json').exists()
