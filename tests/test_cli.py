"End to end through the `contproto-fit` console script on the toy task, and its handling of bad input."
import json, os, shutil, subprocess
import pytest
from contproto_fastai.data import read_conll, DataFormatError
from contproto_fastai.testing import toy_files
from contproto_fastai.results import Results


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    "Toy CoNLL files (source train/dev labelled, target train/test) and a tiny model over their words."
    d = tmp_path_factory.mktemp('toy')
    files, model = toy_files(d, n_src=200, n_dev=50, n_tgt=100, n_test=50)
    return dict(dir=d, model=model, **files)


@pytest.fixture(scope='module')
def script():
    exe = shutil.which('contproto-fit')
    if exe is None: pytest.skip("console script contproto-fit not on PATH (pip install -e . in the active environment)")
    return exe


def _env():
    return {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'OMP_NUM_THREADS': '1',
            'COLUMNS': '200', 'PYTHONWARNINGS': 'ignore'}


def _files_args(t, **over):
    f = {k: over.get(k, t[k]) for k in ('src_train', 'src_dev', 'tgt_train', 'tgt_test')}
    return ['--src-train', f['src_train'], '--src-dev', f['src_dev'], '--tgt-train', f['tgt_train'], '--tgt-test', f['tgt_test']]


def test_cli_end_to_end(toy, script, tmp_path):
    out = tmp_path/'run'
    cmd = [script, *_files_args(toy), '--model', toy['model'], '--max-span-len', '4', '--epochs', '2', '--lr', '3e-3',
           '--dropout', '0.1', '--out', str(out), '--quiet']
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    rj = out/'results.json'
    assert rj.exists()
    res = json.loads(rj.read_text())
    assert {'teacher', 'student', 'pseudo_label_f1', 'times', 'config'} <= set(res)
    assert res['student']['f1'] > 0.5
    assert res['labels'] == ['O', 'LOC', 'ORG', 'PER']
    # the reported numbers are what the saved artefacts give: the exported student rescored on the test file, and
    # the saved teacher pseudo labels scored against the gold tags kept aside in the target train file
    from seqeval.metrics import f1_score
    from seqeval.scheme import IOB2
    from contproto_fastai.predict import load_predictor
    from contproto_fastai.pseudo import PseudoLabels, pseudo_label_f1
    from contproto_fastai.data import encode
    pred = load_predictor(out/'model', device='cpu')
    test = read_conll(toy['tgt_test'])
    assert f1_score([s.tags for s in test], pred.tag([s.tokens for s in test]), mode='strict', scheme=IOB2) == pytest.approx(res['student']['f1'])
    tgt = read_conll(toy['tgt_train'], labelled=False)
    exs, _ = encode(tgt, pred.tokenizer, None, 4, 128)
    assert pseudo_label_f1(PseudoLabels.load(out/'pseudo_labels.pt'), exs, tgt, res['labels'], 4)['f1'] == pytest.approx(res['pseudo_label_f1'])
    # the options reached the model: span width and dropout of the exported predictor
    assert pred.model.max_span_len == 4 and pred.model.encoder.config.hidden_dropout_prob == 0.1
    assert {'data', 'teacher', 'pseudo_labels', 'student', 'total'} <= set(res['times'])
    assert len(res['teacher_history']) == len(res['student_history']) == 2
    assert (out/'pseudo_labels.pt').exists()
    assert 'F1' in r.stdout
    assert 'results.json' in r.stdout
    # a log (stdout is a pipe here) keeps the row names whole
    assert 'teacher (zero-shot)' in r.stdout and 'student (contproto)' in r.stdout


def test_cli_bad_column_count(toy, script, tmp_path):
    "A source line with 3 columns among 2-column lines: non-zero exit, and the error names file:line."
    lines = open(toy['src_train'], encoding='utf-8').read().splitlines()
    k = next(i for i, l in enumerate(lines) if l and i > 10)  # a token line well inside the file
    tok, tag = lines[k].split('\t')
    lines[k] = f'{tok}\tNNP\t{tag}'
    bad = tmp_path/'bad_train.txt'
    bad.write_text('\n'.join(lines) + '\n', encoding='utf-8')
    cmd = [script, *_files_args(toy, src_train=str(bad)), '--model', toy['model'], '--epochs', '1', '--out', str(tmp_path/'run'), '--quiet']
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode != 0
    assert f'{bad}:{k + 1}' in r.stderr, r.stderr[-3000:]
    assert 'columns' in r.stderr
    assert not (tmp_path/'run'/'results.json').exists() and not (tmp_path/'run'/'config.json').exists()   # never trained: the folder stays free


def test_main_needs_data_or_files(capsys):
    from contproto_fastai.cli import main
    with pytest.raises(SystemExit) as ei:
        main(argv=[])
    assert ei.value.code == 2 and '--data' in capsys.readouterr().err


def test_main_names_missing_files(toy, capsys):
    from contproto_fastai.cli import main
    with pytest.raises(SystemExit) as ei:
        main(argv=[f"--src-train={toy['src_train']}", '--tgt-test', toy['tgt_test']])
    msg = capsys.readouterr().err
    assert ei.value.code == 2
    assert '--data' in msg and 'src_dev' in msg and 'tgt_train' in msg and 'src_train' not in msg.split('missing')[-1]


@pytest.mark.parametrize('content', ['', '\n\n', '-DOCSTART-\tO\n\n-DOCSTART-\tO\n'])
def test_empty_file_read(tmp_path, content):
    p = tmp_path/'empty.txt'
    p.write_text(content, encoding='utf-8')
    with pytest.raises(DataFormatError, match='no sentences') as ei:
        read_conll(p, labelled=False)
    assert ei.value.path == str(p)


def test_main_empty_target(toy, tmp_path):
    "Through the CLI entry point: an empty target train file stops the run with a one-line error naming it (no traceback)."
    from contproto_fastai.cli import main
    empty = tmp_path/'empty_tgt.txt'
    empty.write_text('', encoding='utf-8')
    with pytest.raises(SystemExit, match='no sentences') as ei:
        main(argv=[*_files_args(toy, tgt_train=str(empty)), '--model', toy['model'], '--out', str(tmp_path/'run'), '--quiet'])
    assert str(empty) in str(ei.value.code)
    assert not (tmp_path/'run'/'results.json').exists() and not (tmp_path/'run'/'config.json').exists()   # never trained: the folder stays free


@pytest.fixture(scope='module')
def teacher_run(toy, tmp_path_factory):
    "One finished run whose teacher and pseudo labels the preset runs reuse (--teacher-from)."
    from contproto_fastai.cli import main
    out = tmp_path_factory.mktemp('teacher')/'run'
    main(argv=[*_files_args(toy), '--model', toy['model'], '--epochs', '1', '--teacher-epochs', '3', '--lr', '3e-3',
               '--dropout', '0.1', '--ablation', 'vanilla', '--out', str(out), '--quiet'])
    return out


@pytest.mark.parametrize('preset', ['contproto', 'no_proto', 'no_proto_no_cl', 'no_reg', 'fixed_margin', 'proto_no_cl', 'vanilla', 'authors'])
def test_cli_every_ablation(toy, teacher_run, tmp_path, preset):
    "Every Table 3 preset runs end to end from the console entry point and logs what it should."
    from contproto_fastai.cli import main
    from contproto_fastai.presets import PRESETS
    out = tmp_path/preset
    main(argv=[*_files_args(toy), '--model', toy['model'], '--epochs', '2', '--lr', '3e-3', '--dropout', '0.1',
               '--ablation', preset, '--teacher-from', str(teacher_run), '--out', str(out), '--quiet'])
    res = json.loads((out/'results.json').read_text())
    first = json.loads((teacher_run/'results.json').read_text())
    # the student trained on the teacher run's saved pseudo labels: only refinement moves them
    import torch
    from contproto_fastai.pseudo import PseudoLabels, ContProtoState
    moved = not torch.equal(ContProtoState.load(out/'state.pt').pseudo_labels.probs, PseudoLabels.load(teacher_run/'pseudo_labels.pt').probs)
    assert moved == ('MarginRefiner' in PRESETS[preset])
    assert res['pseudo_label_f1_curve'][0] == pytest.approx(first['pseudo_label_f1'])
    cols = set(res['student_history'][-1])
    assert ('cont_loss' in cols) == ('SupConLoss' in PRESETS[preset])
    assert ('reg_loss' in cols) == ('ConsistencyReg' in PRESETS[preset])
    assert ('r_PER' in cols) == ('MarginRefiner' in PRESETS[preset])
    assert len(res['pseudo_label_f1_curve']) == 3                     # before training and after each epoch
    if 'MarginRefiner' not in PRESETS[preset]: assert res['pseudo_label_f1_curve'][-1] == res['pseudo_label_f1']
    # refinement rate of the one refinement epoch (warm-up 1 of 2): the authors' moves linearly 0.95 -> 0.8 over the fit
    if 'MarginRefiner' in PRESETS[preset]: assert res['beta'] == pytest.approx([0.875 if preset == 'authors' else 0.95])


def test_cli_unknown_ablation(toy, tmp_path, capsys):
    "An option value the config does not allow is a usage error (exit code 2) naming the option, before any work."
    from contproto_fastai.cli import main
    for bad in (['--ablation', 'nope'], ['--bs', '0'], ['--lr', 'nan'], ['--epochs', '-1'], ['--max-span-len', '0']):
        with pytest.raises(SystemExit) as ei:
            main(argv=[*_files_args(toy), '--model', toy['model'], *bad, '--out', str(tmp_path/'x'), '--quiet'])
        assert ei.value.code == 2 and bad[0] in capsys.readouterr().err, bad
    assert not (tmp_path/'x').exists()


def test_cli_target_type_unknown_to_source(toy, tmp_path):
    "A target test file with an entity type the source never has stops with file, line and the type."
    from contproto_fastai.cli import main
    bad = tmp_path/'test_misc.txt'
    bad.write_text('Paris\tB-LOC\nist\tO\n\nDie\tO\nGrünen\tB-MISC\n', encoding='utf-8')
    with pytest.raises(SystemExit) as ei:
        main(argv=[*_files_args(toy, tgt_test=str(bad)), '--model', toy['model'], '--out', str(tmp_path/'x'), '--quiet'])
    msg = str(ei.value.code)
    assert f'{bad}:5:' in msg and "'MISC'" in msg and 'source label set' in msg


def test_contproto_predict_script(toy, tmp_path):
    "Train, export, then tag a raw text file with the contproto-predict console script (a new process, offline)."
    from contproto_fastai.cli import main
    out = tmp_path/'run'
    main(argv=[*_files_args(toy), '--model', toy['model'], '--epochs', '1', '--teacher-epochs', '3', '--lr', '3e-3',
               '--dropout', '0.1', '--ablation', 'vanilla', '--student-init', 'teacher', '--out', str(out), '--quiet'])
    exe = shutil.which('contproto-predict')
    if exe is None: pytest.skip("contproto-predict not on PATH")
    (tmp_path/'raw.txt').write_text("Maria Schmidt arbeitet bei Airbus .\n\nAnna besuchte gestern Oslo .\n", encoding='utf-8')
    r = subprocess.run([exe, str(out/'model'), str(tmp_path/'raw.txt'), '--out', str(tmp_path/'tagged.txt')],
                       capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    sents = read_conll(tmp_path/'tagged.txt')
    assert [s.tokens for s in sents] == [['Maria', 'Schmidt', 'arbeitet', 'bei', 'Airbus', '.'], ['Anna', 'besuchte', 'gestern', 'Oslo', '.']]
    from contproto_fastai.predict import load_predictor
    assert [s.tags for s in sents] == load_predictor(out/'model').tag([s.tokens for s in sents])   # same as in-process
    assert (0, 1, 'PER') in sents[0].spans and (0, 0, 'PER') in sents[1].spans
    r = subprocess.run([exe, str(tmp_path), str(tmp_path/'raw.txt')], capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode != 0 and 'not a directory written by export' in r.stderr


def test_relative_out_and_printed_predict_command(toy, script, tmp_path):
    """A relative `--out` (as in README's main command): the predictor lands in OUT/model, where the log says, and the
    `contproto-predict` command the run prints works as printed, from the same directory."""
    cmd = [script, *_files_args(toy), '--model', toy['model'], '--epochs', '1', '--teacher-epochs', '1', '--lr', '3e-3',
           '--out', 'runs/rel']
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path/'runs'/'rel'/'model'/'config.json').exists()
    assert not (tmp_path/'runs'/'rel'/'runs').exists()
    log = ' '.join((r.stderr + r.stdout).split())
    assert 'contproto-predict runs/rel/model FILE' in log
    (tmp_path/'raw.txt').write_text("Anna arbeitet bei Siemens .\n")
    p = subprocess.run([shutil.which('contproto-predict'), 'runs/rel/model', 'raw.txt'], capture_output=True, text=True,
                       env=_env(), timeout=300, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.split('\n')[0].startswith('Anna\t')
    # --conll: a file of tokens alone, and a tagged file (its tags ignored), give the same CoNLL output
    (tmp_path/'tokens.txt').write_text("Anna\narbeitet\nbei\nSiemens\n.\n\nPeter\nlacht\n")
    (tmp_path/'tagged.txt').write_text("Anna\tO\narbeitet\tO\nbei\tO\nSiemens\tO\n.\tO\n\nPeter\tO\nlacht\tO\n")
    outs = []
    for f in ('tokens.txt', 'tagged.txt'):
        q = subprocess.run([shutil.which('contproto-predict'), 'runs/rel/model', f, '--conll', '--out', f'{f}.out'],
                           capture_output=True, text=True, env=_env(), timeout=300, cwd=tmp_path)
        assert q.returncode == 0, q.stderr[-3000:]
        outs.append(read_conll(tmp_path/f'{f}.out'))
    assert [s.tokens for s in outs[0]] == [['Anna', 'arbeitet', 'bei', 'Siemens', '.'], ['Peter', 'lacht']]
    assert [s.tags for s in outs[0]] == [s.tags for s in outs[1]]


def test_cli_target_span_limit_and_trace(toy, script, tmp_path):
    "`--tgt-max-span-len`: wider target spans than source ones; a teacher reused from a run with the source limit relabels."
    base = [script, *_files_args(toy), '--model', toy['model'], '--max-span-len', '3', '--lr', '3e-3', '--dropout', '0.1', '--quiet']
    r = subprocess.run([*base, '--epochs', '0', '--teacher-epochs', '1', '--out', str(tmp_path/'t')], capture_output=True, text=True,
                       env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path/'s'
    r = subprocess.run([*base, '--epochs', '2', '--teacher-from', str(tmp_path/'t'), '--tgt-max-span-len', '5', '--trace-test',
                        '--out', str(out)], capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out/'results.json').read_text())
    from contproto_fastai.data import encode
    from contproto_fastai.predict import load_predictor
    from contproto_fastai.pseudo import PseudoLabels
    pred = load_predictor(out/'model', device='cpu')
    assert pred.model.max_span_len == 3 and pred.max_span_len == 5          # width buckets from the source, spans to 5
    tgt = read_conll(toy['tgt_train'], labelled=False)
    exs, _ = encode(tgt, pred.tokenizer, None, 5, 128)
    n5 = sum(len(e.word_spans) for e in exs)
    assert res['target_spans']['train_spans'] == n5 > sum(len(e.word_spans) for e in encode(tgt, pred.tokenizer, None, 3, 128)[0])
    assert len(PseudoLabels.load(tmp_path/'t'/'pseudo_labels.pt').probs) < n5
    ents = [b - a + 1 for s in read_conll(toy['tgt_test']) for a, b, _ in s.spans]
    assert res['target_spans']['test_entities_covered'] == pytest.approx(sum(w <= 5 for w in ents) / len(ents))
    # the per-epoch trace: one entry per epoch, the test scores of every epoch, the kept epoch's equal to the final score
    tr = res['trace']
    assert [e['epoch'] for e in tr] == [0, 1] and [e['refined'] for e in tr] == [False, True]
    assert res['kept_epoch'] in (0, 1)
    assert tr[res['kept_epoch']]['test']['f1'] == pytest.approx(res['student']['f1'])
    assert set(res['trace_start']) >= {'pseudo', 'span', 'flippable'}


def test_raw_target_text_without_test_set(toy, tmp_path, capsys):
    """The practitioner's path: a CoNLL source file, raw target sentences (one per line, no gold) and no target test set:
    the run trains teacher and student, reports source dev scores and pseudo-label statistics, says target F1 is
    unknown, and exports a model that tags raw text."""
    from contproto_fastai.cli import main, predict_main
    from contproto_fastai.predict import load_predictor, simple_tokenize
    raw = tmp_path/'raw_de.txt'
    raw.write_text(''.join(' '.join(s.tokens) + '\n' for s in read_conll(toy['tgt_train'], labelled=False)), encoding='utf-8')
    out = tmp_path/'run'
    main(argv=['--src-train', toy['src_train'], '--src-dev', toy['src_dev'], '--tgt-train', str(raw), '--model', toy['model'],
               '--epochs', '1', '--teacher-epochs', '3', '--lr', '3e-3', '--dropout', '0.1', '--student-init', 'teacher',
               '--out', str(out), '--quiet'])
    printed = capsys.readouterr().out
    res = Results.read(out)
    assert res.status == 'finished' and res.teacher is None and res.student is None and res.pseudo_label_f1 is None
    assert res.teacher_dev['f1'] > 0.5 and res.student_dev['f1'] > 0.5 and res.trace is None
    assert res.pseudo_labels['teacher']['sentences'] == 100 and sum(res.pseudo_labels['teacher']['entities'].values()) > 0
    assert 0 < res.pseudo_labels['refined']['mean_confidence'] <= 1 and res.pseudo_label_stats['changed_spans'] >= 0
    assert res.config['tgt_test'] is None and res.target_spans['test_entities_covered'] is None
    assert 'target F1 unknown' in printed and 'Source dev set' in printed and 'pseudo labels (teacher)' in printed
    assert 'Target F1 unknown' in (out/'model'/'README.md').read_text()
    lines = ['Maria Schmidt arbeitet bei Airbus.', '', 'Anna besuchte gestern Oslo.']
    (tmp_path/'new.txt').write_text('\n'.join(lines) + '\n', encoding='utf-8')
    predict_main([str(out/'model'), str(tmp_path/'new.txt'), '--out', str(tmp_path/'tagged.txt')])
    sents = read_conll(tmp_path/'tagged.txt')
    assert [s.tokens for s in sents] == [simple_tokenize(l)[0] for l in lines if l]
    assert (0, 1, 'PER') in sents[0].spans and sents[0].tags == load_predictor(out/'model').tag([sents[0].tokens])[0]
    # a Hugging Face model folder: no pickle in it, from_pretrained loads it, huggingface_hub reads its card
    from transformers import AutoModel
    from huggingface_hub import ModelCard
    assert not [f.name for f in (out/'model').rglob('*') if f.suffix in ('.pt', '.pth', '.bin', '.pkl', '.pickle')]
    assert AutoModel.from_pretrained(out/'model').config.labels == load_predictor(out/'model').labels.classes
    assert ModelCard.load(out/'model'/'README.md').data.pipeline_tag == 'token-classification'
    hf = load_predictor(out/'model').predict(lines[0], format='hf')    # the transformers NER pipeline's shape
    assert hf and all(set(e) == {'entity_group', 'score', 'word', 'start', 'end'} and lines[0][e['start']:e['end']] == e['word'] for e in hf)
