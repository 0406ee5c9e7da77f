"The run (`Run`, `RunConfig`) on the toy task with a tiny encoder: teacher reuse, student initialisation, teacher-only runs, export."
import json
import pytest, torch
from fastcore.test import test_eq as eq, test_close as close
from contproto_fastai.config import RunConfig
from contproto_fastai.run import Run
from contproto_fastai.results import Results
from contproto_fastai.pseudo import PseudoLabels, ContProtoState
from contproto_fastai.data import read_conll
from contproto_fastai.predict import load_predictor
from contproto_fastai.cli import _predict
from contproto_fastai.testing import toy_files


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp('run')
    files, tiny = toy_files(d, n_src=160, n_dev=40, n_tgt=80, n_test=40)
    return d, files, tiny


def test_run_reuse_and_export(toy):
    "A ContProto run; a vanilla run and a teacher-initialised run on its teacher; the exported student tags raw text."
    d, files, tiny = toy
    cfg = RunConfig(**files, model=tiny, epochs=3, lr=3e-3, dropout=0.1, out=str(d/'run'), quiet=True, plots=True)
    res = Run(cfg).fit()
    eq(len(res['pseudo_label_f1_curve']), 4); eq(len(res['margins']), 3)
    st = res['pseudo_label_stats']                      # refinement moved some labels; prototypes are unit vectors
    assert 0 < st['changed'] < 1, st; close(torch.tensor(st['prototype_cosine']).diagonal(), torch.ones(len(res['labels'])), eps=1e-4)
    eq(Results.read(d/'run').status, 'finished')
    res2 = Run(RunConfig(**{**cfg.__dict__, 'ablation': 'vanilla', 'epochs': 1, 'teacher_from': cfg.out, 'out': str(d/'run2')})).fit()
    pl1 = PseudoLabels.load(d/'run'/'pseudo_labels.pt').probs           # run2 trained on run's saved pseudo labels (vanilla never edits them),
    eq(ContProtoState.load(d/'run2'/'state.pt').pseudo_labels.probs, pl1)   # not on labels of a teacher of its own (1 epoch, not 3)
    eq(res2['pseudo_label_f1'], res['pseudo_label_f1'])                      # recomputed from those labels
    eq(res2['pseudo_label_stats']['changed'], 0.); eq(res2['pseudo_label_stats']['prototype_cosine'], None)  # vanilla: labels fixed
    # a student initialised from the teacher starts where the teacher ended (its first-epoch dev F1 is already high)
    res3 = Run(RunConfig(**{**cfg.__dict__, 'epochs': 1, 'lr': 1e-9, 'teacher_from': cfg.out, 'student_init': 'teacher', 'out': str(d/'run3')})).fit()
    close(res3['student_history'][0]['span_f1'], res['teacher_history'][-1]['span_f1'], eps=0.02)
    # the exported student tags a raw text file
    (d/'raw.txt').write_text("Anna arbeitet bei Siemens .\nPeter besuchte gestern Madrid .\n")
    _predict(str(d/'run'/'model'), str(d/'raw.txt'), str(d/'tagged.txt'))
    tagged = read_conll(d/'tagged.txt')
    eq(tagged[1].tags, ['B-PER', 'O', 'O', 'B-LOC', 'O'])
    eq(tagged[0].tokens, ['Anna', 'arbeitet', 'bei', 'Siemens', '.'])
    assert res['student']['f1'] > 0.5 and res['teacher']['f1'] > 0.5, res
    assert (d/'run'/'results.json').exists() and (d/'run'/'pseudo_labels.pt').exists() and (d/'run'/'models'/'student.pth').exists()
    assert (d/'run'/'tsne.png').exists() and (d/'run'/'pseudo_f1.png').exists()
    # what refinement did, from the finished folder, against the gold tags training never read
    from contproto_fastai.refinement import refinement_report
    rep = refinement_report(d/'run', d/'run')
    eq(rep['changed'], round(st['changed'] * st['spans'])); eq(rep['spans'], st['spans'])
    assert rep['fixed'] + rep['broken'] <= rep['changed'] and 0 <= rep['prototype_accuracy_entity'] <= 1
    eq(refinement_report(d/'run', d/'run'), rep)           # cached in the folder


def test_teacher_only_run(toy):
    "`epochs=0`: the teacher alone, with the recipe options set explicitly, exported with them."
    d, files, tiny = toy
    cfg4 = RunConfig(**files, model=tiny, epochs=0, teacher_epochs=2, lr=3e-3, head_lr=1e-2, head='mlp', norm='on', embeddings='frozen',
                     dropout=0.1, out=str(d/'run4'), quiet=True)
    res4 = Run(cfg4).fit()
    assert 'teacher' in res4 and 'student' not in res4 and len(res4['teacher_history']) == 2
    eq((res4.status, res4.phase_done('teacher'), res4.phase_done('student')), ('finished', True, False))
    eq(res4['recipe']['lr_max'], [3e-3, 1e-2]); eq(res4['recipe']['head'], 'mlp')
    saved = json.loads((d/'run4'/'model'/'config.json').read_text())
    eq((saved['head'], saved['norm'], saved['freeze_embeddings']), ('mlp', True, True))
    p4 = load_predictor(d/'run4'/'model')
    eq(p4.model.options, {k: saved[k] for k in p4.model.options})


def test_failed_run_says_so(toy, tmp_path):
    "A run that fails records status 'failed' and the error in its results.json."
    d, files, tiny = toy
    cfg = RunConfig(**files, model=tiny, epochs=1, teacher_from=str(tmp_path/'nowhere'), out=str(tmp_path/'run'), quiet=True)
    with pytest.raises(FileNotFoundError): Run(cfg).fit()
    r = Results.read(tmp_path/'run')
    eq((r.status, r.phases['data']), ('failed', 'finished')); assert 'nowhere' in r.error


def test_output_options_do_not_change_the_model(toy):
    "Two runs that differ only in what they show (`quiet`, `plots`, hence the progress display) train bit-identical weights."
    from safetensors.torch import load_file
    d, files, tiny = toy
    base = dict(**files, model=tiny, epochs=2, teacher_epochs=2, lr=3e-3, dropout=0.1)
    Run(RunConfig(**base, out=str(d/'shown'), quiet=False, plots=True)).fit()
    Run(RunConfig(**base, out=str(d/'quiet'), quiet=True, plots=False)).fit()
    a, b = load_file(d/'shown'/'model'/'model.safetensors'), load_file(d/'quiet'/'model'/'model.safetensors')
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (d/'shown'/'tsne.png').exists() and not (d/'quiet'/'tsne.png').exists()
