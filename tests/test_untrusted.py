"""Nothing a user is given runs code, no typo destroys a file, every error is one line (issue 35). A crafted pickle
here writes a marker file when it is unpickled; each test checks that the marker stays absent."""
import json, shutil
from pathlib import Path
import pytest, torch
from contproto_fastai.testing import toy_files


class Crafted:
    "Unpickled, it creates the file `marker` (as any code could run)."
    def __init__(self, marker): self.marker = str(marker)
    def __reduce__(self): return (open, (self.marker, 'w'))


def _craft(path, marker, wrap=lambda x: {'model': x}):
    torch.save(wrap(Crafted(marker)), path)


def _files_args(f):
    return [a for k in ('src_train', 'src_dev', 'tgt_train', 'tgt_test') for a in (f"--{k.replace('_', '-')}", str(f[k]))]


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp('toy')
    files, model = toy_files(d, n_src=120, n_dev=30, n_tgt=60, n_test=30)
    return dict(files, model=model, dir=d)


@pytest.fixture(scope='module')
def finished(toy):
    "One finished ContProto run (teacher 1 epoch, student 1 epoch)."
    from contproto_fastai.cli import main
    out = toy['dir']/'run'
    main(argv=[*_files_args(toy), '--model', toy['model'], '--epochs', '1', '--teacher-epochs', '1', '--lr', '3e-3',
               '--dropout', '0.1', '--out', str(out), '--quiet'])
    return out


def _fit_fails(argv, capsys=None):
    from contproto_fastai.cli import main
    with pytest.raises(SystemExit) as ei: main(argv=[str(a) for a in argv])
    msg = str(ei.value.code)
    assert ei.value.code != 0 and msg.startswith('contproto-fit: ') and '\n' not in msg, msg
    return msg


# ---------------------------------------------------------------- 1: a run folder holds data, never code
def test_load_file_refuses_code(tmp_path):
    from contproto_fastai.io import load_file, ReadError
    _craft(tmp_path/'x.pt', tmp_path/'ran')
    with pytest.raises(ReadError) as ei: load_file(tmp_path/'x.pt')
    assert str(ei.value).startswith(f"{tmp_path/'x.pt'}: refused to load it") and '\n' not in str(ei.value)
    assert not (tmp_path/'ran').exists()
    for bad in (b'', b'garbage', (tmp_path/'x.pt').read_bytes()[:100]):
        (tmp_path/'y.pt').write_bytes(bad)
        with pytest.raises(ReadError, match='y.pt: not a readable torch file'): load_file(tmp_path/'y.pt')


def test_checkpoints_and_state_hold_plain_data(finished):
    "Everything a run writes loads with weights_only=True."
    for f in ('teacher_ckpt.pt', 'student_ckpt.pt', 'state.pt', 'pseudo_labels.pt', 'models/teacher.pth', 'models/student.pth'):
        torch.load(finished/f, weights_only=True)


@pytest.mark.parametrize('name', ['student_ckpt.pt', 'teacher_ckpt.pt'])
def test_resume_refuses_a_crafted_checkpoint(finished, tmp_path, name):
    d = tmp_path/'run'; shutil.copytree(finished, d)
    if name == 'teacher_ckpt.pt':        # the teacher not finished: resume trains it from its checkpoint
        (d/'pseudo_labels.pt').unlink()
    _craft(d/name, tmp_path/'ran')
    msg = _fit_fails(['--resume', d, '--quiet'])
    assert str(d/name) in msg and 'refused to load it' in msg and not (tmp_path/'ran').exists()


def test_teacher_from_refuses_a_crafted_teacher(finished, toy, tmp_path):
    d = tmp_path/'teacher'; shutil.copytree(finished, d)
    _craft(d/'models'/'teacher.pth', tmp_path/'ran', wrap=lambda x: x)
    msg = _fit_fails([*_files_args(toy), '--model', toy['model'], '--epochs', '1', '--teacher-from', d, '--out', tmp_path/'new', '--quiet'])
    assert str(d/'models'/'teacher.pth') in msg and 'refused to load it' in msg and not (tmp_path/'ran').exists()


@pytest.mark.parametrize('name', ['state.pt', 'student_ckpt.pt'])
def test_refinement_report_refuses_crafted_files(finished, tmp_path, name):
    from contproto_fastai.refinement import refinement_report
    from contproto_fastai.io import ReadError
    d = tmp_path/'run'; shutil.copytree(finished, d)
    (d/'diagnostics.json').unlink(missing_ok=True)
    _craft(d/name, tmp_path/'ran', wrap=(lambda x: {'model': x}) if name == 'student_ckpt.pt' else (lambda x: {'pseudo_labels': x}))
    with pytest.raises(ReadError, match='refused to load it') as ei: refinement_report(d, d)
    assert str(d/name) in str(ei.value) and not (tmp_path/'ran').exists()


def test_a_checkpoint_of_an_older_version_is_refused_in_one_line(finished, tmp_path):
    "An old checkpoint held fastcore's L (optimizer hypers) and numpy arrays: refused, naming the file and the object."
    from fastcore.foundation import L
    import numpy as np
    d = tmp_path/'run'; shutil.copytree(finished, d)
    ck = torch.load(d/'student_ckpt.pt', weights_only=True)
    ck['opt']['hypers'] = L(ck['opt']['hypers']); ck['rng']['numpy'] = np.random.get_state()
    torch.save(ck, d/'student_ckpt.pt')
    msg = _fit_fails(['--resume', d, '--quiet'])
    assert str(d/'student_ckpt.pt') in msg and 'fastcore.foundation.L' in msg and 'start the run again' in msg


# ---------------------------------------------------------------- 2, 3: contproto-predict never destroys a file
@pytest.fixture(scope='module')
def model(tmp_path_factory):
    from contproto_fastai.data import word_tokenizer, LabelSet
    from contproto_fastai.model import SpanNER, tiny_encoder
    from contproto_fastai.predict import SpanPredictor
    tok = word_tokenizer(['Anna', 'lebt', 'in', 'Paris', '.'])
    d = tmp_path_factory.mktemp('pred')/'model'
    SpanPredictor(SpanNER(tiny_encoder(len(tok), seed=0), 3), tok, LabelSet(['LOC', 'PER']), max_len=32).export(d)
    return d


def _snap(*dirs):
    return {str(p): p.read_bytes() for d in dirs for p in sorted(Path(d).rglob('*')) if p.is_file()}


def _predict_fails(*argv):
    from contproto_fastai.cli import predict_main
    with pytest.raises(SystemExit) as ei: predict_main([str(a) for a in argv])
    msg = str(ei.value.code)
    assert ei.value.code != 0 and msg.startswith('contproto-predict: ') and '\n' not in msg, msg
    return msg


@pytest.mark.parametrize('case', ['out=input', 'html=input', 'out=html', 'out in model', 'html in model', 'out=model', 'hard link'])
def test_predict_refuses_outputs_that_destroy_a_file(model, tmp_path, case):
    work = tmp_path/'w'; work.mkdir()
    inp = work/'in.txt'; inp.write_text('Anna lebt in Paris .\n', encoding='utf-8')
    link = work/'link.txt'; os_link = __import__('os').link; os_link(inp, link)
    x = work/'x.txt'; x.write_text('keep\n')
    args = {'out=input': ['--out', inp], 'html=input': ['--html', inp], 'out=html': ['--out', x, '--html', x],
            'out in model': ['--out', model/'config.json'], 'html in model': ['--html', model/'tokenizer.json'],
            'out=model': ['--out', model], 'hard link': ['--out', link]}[case]
    before = _snap(work, model)
    msg = _predict_fails(model, inp, *args)
    assert ('is the input file' in msg or 'both name' in msg or 'inside the model folder' in msg), msg
    assert _snap(work, model) == before


def test_html_page_is_written_atomically(model, tmp_path, monkeypatch):
    "A full disk while writing the page: the previous page stays whole, no cut-off page, one line."
    import errno, os
    inp = tmp_path/'in.txt'; inp.write_text('Anna lebt in Paris .\n', encoding='utf-8')
    page = tmp_path/'page.html'; page.write_text('<html>old</html>')
    real = os.write
    def write(fd, b):
        if os.readlink(f'/proc/self/fd/{fd}').endswith('.tmp'): raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, b)
    monkeypatch.setattr(os, 'write', write)
    msg = _predict_fails(model, inp, '--html', page)        # the CoNLL text to standard output
    assert str(page) in msg and 'no space left on device' in msg
    assert page.read_text() == '<html>old</html>' and not list(tmp_path.glob('*.tmp'))


@pytest.mark.parametrize('err', ['EACCES', 'EROFS'])
def test_refused_folder_is_one_line(model, tmp_path, monkeypatch, err):
    "A folder that refuses new files (read-only mount: even removing a missing file fails with EROFS) is one line naming the file."
    import errno, os
    inp = tmp_path/'in.txt'; inp.write_text('Anna lebt in Paris .\n', encoding='utf-8')
    code = getattr(errno, err)
    real_open, real_unlink = os.open, os.unlink
    def refuse_open(f, *a, **k):
        if str(f).endswith('.tmp'): raise OSError(code, os.strerror(code), str(f))
        return real_open(f, *a, **k)
    def refuse_unlink(f, *a, **k):
        if str(f).endswith('.tmp'): raise OSError(code, os.strerror(code), str(f))
        return real_unlink(f, *a, **k)
    monkeypatch.setattr(os, 'open', refuse_open); monkeypatch.setattr(os, 'unlink', refuse_unlink)
    for opt in ('--html', '--out'):
        msg = _predict_fails(model, inp, opt, tmp_path/'o')
        assert msg.startswith(f"contproto-predict: {tmp_path/'o'}: ") and ('permission denied' in msg or 'read-only' in msg), msg


# ---------------------------------------------------------------- 9: one-line errors
@pytest.mark.parametrize('bs', ['0', '-5'])
def test_predict_bad_batch_size(model, tmp_path, bs):
    inp = tmp_path/'in.txt'; inp.write_text('Anna\n')
    assert '--bs must be at least 1' in _predict_fails(model, inp, '--bs', bs)


def test_predict_missing_gpu(model, tmp_path):
    inp = tmp_path/'in.txt'; inp.write_text('Anna\n')
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert '--device cuda:7: this machine has' in _predict_fails(model, inp, '--device', f'cuda:{n + 7 - 7 if n > 7 else 7}')
    assert 'not a device name' in _predict_fails(model, inp, '--device', 'gpu0')


def test_predict_folder_as_input(model, tmp_path):
    assert f'{tmp_path}: is a folder, not a data file' in _predict_fails(model, tmp_path, '--conll')
    assert f'{tmp_path}: is a folder, not a text file' in _predict_fails(model, tmp_path)


def test_fit_folder_as_data_file(toy, tmp_path):
    msg = _fit_fails([*_files_args(dict(toy, src_dev=tmp_path)), '--model', toy['model'], '--out', tmp_path/'run', '--quiet'])
    assert f'{tmp_path}: is a folder' in msg


def test_ctrl_c_is_one_line_and_exit_130(model, toy, tmp_path, monkeypatch, capsys):
    import contproto_fastai.cli as cli
    from contproto_fastai.run import Run
    def interrupt(*a, **k): raise KeyboardInterrupt
    inp = tmp_path/'in.txt'; inp.write_text('Anna\n')
    monkeypatch.setattr(cli, 'load_predictor', interrupt)
    with pytest.raises(SystemExit) as ei: cli.predict_main([str(model), str(inp)])
    assert ei.value.code == 130 and capsys.readouterr().err.strip() == 'contproto-predict: interrupted; no output file was written or changed'
    monkeypatch.setattr(Run, 'fit', interrupt)
    with pytest.raises(SystemExit) as ei: cli.main([*_files_args(toy), '--model', toy['model'], '--out', str(tmp_path/'run'), '--quiet'])
    assert ei.value.code == 130 and capsys.readouterr().err.strip() == f"contproto-fit: interrupted; continue with --resume {tmp_path/'run'}"


# ---------------------------------------------------------------- 6: the input's layout and encoding
def test_conll_file_without_conll_is_refused(model, tmp_path):
    inp = tmp_path/'de.txt'; inp.write_text('-DOCSTART-\tO\n\nAnna\tB-PER\nlebt\tO\n', encoding='utf-8')
    msg = _predict_fails(model, inp)
    assert msg.startswith(f'contproto-predict: {inp}:1: this looks like a CoNLL file') and 'pass --conll' in msg
    inp.write_text('Anna B-PER\nlebt O\n\nParis B-LOC\n', encoding='utf-8')
    assert 'pass --conll' in _predict_fails(model, inp)


def test_utf16_input_is_read_as_utf16(model, tmp_path, capsys):
    from contproto_fastai.cli import predict_main
    inp = tmp_path/'u16.txt'; inp.write_bytes('Anna lebt in Paris .\n'.encode('utf-16'))
    predict_main([str(model), str(inp), '--out', str(tmp_path/'o.txt')])
    assert [l.split('\t')[0] for l in (tmp_path/'o.txt').read_text().split('\n') if l] == ['Anna', 'lebt', 'in', 'Paris', '.']


# ---------------------------------------------------------------- 9: a model folder's settings are checked when loaded
def _edited(model, tmp_path, **cfg):
    """A copy of the model folder with `cfg` written over its config.json (`labels`: as id2label and label2id, with
    labels_sha256 kept in step)."""
    from contproto_fastai.predict import labels_digest
    d = tmp_path/'m'; shutil.copytree(model, d)
    c = json.loads((d/'config.json').read_text())
    if 'labels' in cfg:
        labels = cfg.pop('labels')
        c.update(id2label={str(i): l for i, l in enumerate(labels)}, label2id={l: i for i, l in enumerate(labels)}, labels_sha256=labels_digest(labels))
    c.update(cfg)
    (d/'config.json').write_text(json.dumps(c))
    return d


@pytest.mark.parametrize('cfg, says', [(dict(max_len=True), "'max_len' must be a positive integer, not True"),
                                      (dict(tgt_max_span_len='4'), "'tgt_max_span_len' must be a positive integer, not '4'"),
                                      (dict(max_len=600), "'max_len' 600 exceeds the encoder's"),
                                      (dict(labels=['O', 'LOC', '<img/src=x/onerror=alert(1)>']), 'is not an entity type name')])
def test_model_folder_settings_are_checked(model, tmp_path, cfg, says):
    d = _edited(model, tmp_path, **cfg)         # the tiny encoder has 128 positions
    inp = tmp_path/'in.txt'; inp.write_text('Anna lebt in Paris .\n')
    msg = _predict_fails(d, inp)
    assert str(d/'config.json') in msg and says in msg, msg


def test_positions_of_roberta_start_after_padding():
    from contproto_fastai.predict import positions
    assert positions(dict(model_type='xlm-roberta', max_position_embeddings=514, pad_token_id=1)) == 512
    assert positions(dict(model_type='bert', max_position_embeddings=512)) == 512
    assert positions(dict(model_type='bert')) is None


# ---------------------------------------------------------------- 5: no script from a model folder reaches the page
def test_displacy_page_escapes_labels(tmp_path):
    pytest.importorskip('spacy')
    from contproto_fastai.view import entities_html, displacy_docs
    evil = '<img/src=x/onerror=alert(document.domain)>'
    page = entities_html(displacy_docs([['Anna', 'lebt']], [[f'B-{evil}', 'O']]), use_spacy=True)
    assert evil not in page and '&lt;img/src=x/onerror=alert(document.domain)&gt;' in page
    assert entities_html(displacy_docs([['Anna']], [['B-PER']]), use_spacy=True).count('PER') >= 1


# ---------------------------------------------------------------- 4: ONNX files: one writer at a time, read-only folders work
def test_atomic_writes_of_two_processes_do_not_collide(tmp_path):
    "Two writers of the same file at once (threads here, as two processes would): each on its own temporary name, both succeed, the file is whole."
    import threading, time
    from contproto_fastai.deploy import _atomic
    f, errors, started = tmp_path/'model.onnx', [], threading.Barrier(2)
    def write(p, b):
        with open(p, 'wb') as h:
            h.write(b[:4]); started.wait(); time.sleep(0.05); h.write(b[4:])
    def one(b):
        try: _atomic(f, lambda p: write(p, b))
        except Exception as e: errors.append(e)
    ts = [threading.Thread(target=one, args=(bytes([k]) * 100,)) for k in (1, 2)]
    for t in ts: t.start()
    for t in ts: t.join()
    assert not errors, errors
    assert f.read_bytes() in (bytes([1]) * 100, bytes([2]) * 100) and not list(tmp_path.glob('*.part'))


def test_export_lock_serialises_exports(tmp_path):
    import threading, time
    from contproto_fastai.deploy import _export_lock
    f, inside, most = tmp_path/'model.onnx', [0], [0]
    def one():
        with _export_lock(f):
            inside[0] += 1; most[0] = max(most[0], inside[0]); time.sleep(0.05); inside[0] -= 1
    ts = [threading.Thread(target=one) for _ in range(3)]
    for t in ts: t.start()
    for t in ts: t.join()
    assert most[0] == 1


def test_onnx_of_a_read_only_folder_goes_to_the_cache(model, tmp_path, monkeypatch):
    import contproto_fastai.deploy as D
    monkeypatch.setenv('CONTPROTO_CACHE', str(tmp_path/'cache'))
    monkeypatch.setattr(D, '_writable', lambda d: False)        # as a read-only mount (root ignores a folder's mode)
    f = D.onnx_file(model)
    assert f == tmp_path/'cache'/'onnx'/D.heads_fingerprint(model)/'model.onnx'
    monkeypatch.setattr(D, '_writable', lambda d: True)
    assert D.onnx_file(model) == model/'model.onnx'


# ---------------------------------------------------------------- 10: a run that never trained does not claim its folder
def test_data_error_leaves_the_folder_free(toy, tmp_path):
    from contproto_fastai.cli import main
    bad = tmp_path/'dev.txt'; bad.write_text(Path(toy['src_dev']).read_text().replace('\tO\n', '\tOOPS\n', 1))
    out = tmp_path/'run'
    args = ['--model', toy['model'], '--epochs', '0', '--teacher-epochs', '1', '--out', out, '--quiet']
    msg = _fit_fails([*_files_args(dict(toy, src_dev=bad)), *args])
    assert f'{bad}:' in msg and 'OOPS' in msg
    assert not any((out/f).exists() for f in ('config.json', 'fingerprint.json', 'results.json'))
    main(argv=[str(a) for a in [*_files_args(toy), *args]])        # the corrected command runs in the same folder
    assert json.loads((out/'results.json').read_text())['status'] == 'finished'


def test_folder_of_an_older_failed_data_step_is_reused(toy, tmp_path):
    "A folder left by a version that claimed it before reading the data: config, fingerprint, results 'failed', no data phase."
    from contproto_fastai.cli import main
    out = tmp_path/'run'; out.mkdir()
    (out/'config.json').write_text(json.dumps(dict(src_train='x')))
    (out/'fingerprint.json').write_text(json.dumps(dict(data={})))
    (out/'results.json').write_text(json.dumps(dict(version=1, config=dict(src_train='x'), status='failed', phases={}, error='DataFormatError: x')))
    main(argv=[str(a) for a in [*_files_args(toy), '--model', toy['model'], '--epochs', '0', '--teacher-epochs', '1', '--out', out, '--quiet']])
    assert json.loads((out/'results.json').read_text())['status'] == 'finished'


def test_all_o_source_is_refused_before_training(toy, tmp_path):
    src = tmp_path/'train.txt'
    src.write_text('\n'.join(l.split('\t')[0] + '\tO' if l.strip() else l for l in Path(toy['src_train']).read_text().split('\n')))
    out = tmp_path/'run'
    msg = _fit_fails([*_files_args(dict(toy, src_train=src)), '--model', toy['model'], '--out', out, '--quiet'])
    assert msg.startswith(f'contproto-fit: {src}: no entity in the') and 'every tag is O' in msg
    assert not (out/'config.json').exists()


# ---------------------------------------------------------------- 8: large files are tagged a chunk at a time
def test_predict_in_chunks_is_the_same_and_an_interrupt_writes_nothing(model, tmp_path, monkeypatch):
    from contproto_fastai.cli import _predict
    import contproto_fastai.cli as cli
    inp = tmp_path/'in.txt'; inp.write_text(''.join(f'Anna lebt in Paris {k} .\n' + ('\n' if k % 3 == 0 else '') for k in range(11)))
    whole, parts = tmp_path/'whole.txt', tmp_path/'parts.txt'
    n = _predict(model, inp, whole, html=tmp_path/'whole.html')
    assert _predict(model, inp, parts, html=tmp_path/'parts.html', chunk=2) == n and n[0] == 15
    assert parts.read_bytes() == whole.read_bytes() and (tmp_path/'parts.html').read_bytes() == (tmp_path/'whole.html').read_bytes()
    calls, real = [0], cli.tag_lines
    def tag_then_interrupt(*a, **k):
        calls[0] += 1
        if calls[0] == 3: raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(cli, 'tag_lines', tag_then_interrupt)
    out = tmp_path/'o.txt'
    with pytest.raises(KeyboardInterrupt): _predict(model, inp, out, chunk=2)
    assert not out.exists() and not list(tmp_path.glob('*.tmp'))


def test_fit_max_len_beyond_the_encoders_positions_is_a_usage_error(toy, tmp_path, capsys):
    from contproto_fastai.cli import main
    with pytest.raises(SystemExit) as ei:
        main(argv=[str(a) for a in [*_files_args(toy), '--model', toy['model'], '--max-len', '200', '--out', tmp_path/'run', '--quiet']])
    err = capsys.readouterr().err
    assert ei.value.code == 2 and '--max-len 200: the encoder' in err and 'has 128 positions' in err, err
    assert not (tmp_path/'run'/'config.json').exists()
