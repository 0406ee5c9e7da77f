"Reliability: no training path reads target gold tags, and the same seed gives the same run (CPU)."
import random
import pytest, torch
from contproto_fastai.config import RunConfig
from contproto_fastai.run import Run
from contproto_fastai.data import read_conll
from contproto_fastai.testing import toy_sentences, save_tiny_model, write_conll


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp('leak')
    tgt = toy_sentences(60, 'tgt', 2, labelled=False)
    rng = random.Random(0)
    scrambled = [type(s)(s.tokens, None, s.path, s.line, [rng.choice(['O', 'B-PER', 'I-PER', 'B-LOC', 'B-ORG', 'I-ORG']) for _ in s.tokens])
                 for s in tgt]
    f = dict(src_train=write_conll(toy_sentences(120, 'src', 0), d/'src.txt'), src_dev=write_conll(toy_sentences(30, 'src', 1), d/'dev.txt'),
             tgt_train=write_conll(tgt, d/'tgt.txt'), tgt_test=write_conll(toy_sentences(30, 'tgt', 3), d/'test.txt'))
    scr = write_conll(scrambled, d/'tgt_scrambled.txt')
    words = [w for p in f.values() for s in read_conll(p) for w in s.tokens]
    return d, {k: str(v) for k, v in f.items()}, str(scr), save_tiny_model(d/'tiny', words)


def _run(d, f, model, name, **over):
    cfg = RunConfig(**{**f, **over}, model=model, epochs=2, teacher_epochs=2, lr=3e-3, dropout=0.1, seed=3,
                    out=str(d/name), quiet=True)
    res = Run(cfg).fit()
    weights = torch.load(d/name/'models'/'student.pth', weights_only=True)
    state = torch.load(d/name/'state.pt', weights_only=False)
    return res, weights, state


def _same_weights(a, b): return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_target_gold_never_trains_and_same_seed_same_run(files):
    d, f, scrambled, model = files
    a, wa, sa = _run(d, f, model, 'a')
    b, wb, sb = _run(d, f, model, 'b', tgt_train=scrambled)      # every target gold tag scrambled
    c, wc, sc = _run(d, f, model, 'c')                            # same seed again
    # scrambling the target gold changes the analysis number it feeds ...
    assert a['pseudo_label_f1'] != b['pseudo_label_f1']
    assert a['pseudo_label_f1_curve'] != b['pseudo_label_f1_curve']
    # ... and nothing that training produced: bit-identical weights, pseudo labels, prototypes, margins, scores
    assert _same_weights(wa, wb)
    assert torch.equal(sa['pseudo_labels']['probs'], sb['pseudo_labels']['probs'])
    assert torch.equal(sa['prototypes'], sb['prototypes']) and torch.equal(sa['margins'], sb['margins'])
    assert a['teacher'] == b['teacher'] and a['student'] == b['student']
    # the refined labels really moved after warm-up (so the comparison covers the refinement path)
    teacher_pl = torch.load(d/'a'/'pseudo_labels.pt', weights_only=True)['probs']
    assert not torch.equal(teacher_pl, sa['pseudo_labels']['probs'])
    # determinism: the same seed reproduces the run exactly
    assert _same_weights(wa, wc) and torch.equal(sa['pseudo_labels']['probs'], sc['pseudo_labels']['probs'])
    assert a['student'] == c['student'] and a['pseudo_label_f1_curve'] == c['pseudo_label_f1_curve']
