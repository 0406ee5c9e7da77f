"""Encoders other than BERT end to end: a RoBERTa-style (byte-level BPE) and an XLM-R-style (SentencePiece unigram)
tokenizer and model, built in-process, through load_encoder → encode → teacher → predict → export → load_predictor."""
import tempfile
from pathlib import Path
import pytest, torch
from fastai.callback.progress import ProgressCallback
from contproto_fastai.testing import toy_files
from contproto_fastai.model import load_encoder, Recipe
from contproto_fastai.pipeline import load_task, teacher_for, score_on_test
from contproto_fastai.predict import load_predictor

STYLES = {'roberta': 'Ġ', 'xlmr': '▁'}


@pytest.fixture(scope='module', params=list(STYLES))
def trained(request):
    style, d = request.param, Path(tempfile.mkdtemp())
    files, model_dir = toy_files(d, n_src=200, n_dev=40, n_tgt=20, n_test=40, seed=1, style=style)
    torch.manual_seed(0)
    enc, tok = load_encoder(model_dir, dropout=0.1)
    task = load_task(**files, tokenizer=tok)
    learn = teacher_for(task, enc, Recipe(lr=3e-3), dropout=0.1, path=d)
    learn.remove_cb(ProgressCallback)
    learn.fit_one_cycle(6, 3e-3)
    return style, files, tok, task, learn, d


def test_words_align_to_their_subwords(trained):
    "Every word's first..last subword spell that word, with the family's word-start marker (needs add_prefix_space for BPE)."
    style, files, tok, task, *_ = trained
    if style == 'roberta': assert tok.add_prefix_space is True
    s = task.src_train[0]; e = task.ex_src[0]
    pieces = tok.convert_ids_to_tokens(e.input_ids)
    single = [(a, b) for (a, b), (f, l) in zip(e.word_spans, e.sub_spans) if a == b]
    firsts = {a: f for (a, b), (f, l) in zip(e.word_spans, e.sub_spans) if a == b}
    lasts = {a: l for (a, b), (f, l) in zip(e.word_spans, e.sub_spans) if a == b}
    assert len(single) == len(s.tokens)
    for i, w in enumerate(s.tokens):
        got = ''.join(pieces[firsts[i]:lasts[i] + 1])
        assert got.replace(STYLES[style], '') == w and got.startswith(STYLES[style]), (i, w, got)


def test_padding_uses_the_encoders_pad_id(trained):
    style, files, tok, task, learn, d = trained
    assert tok.pad_token_id == 1 == learn.model.pad_id
    seen = {}
    h = learn.model.encoder.register_forward_pre_hook(lambda m, a, kw: seen.update(ids=kw['input_ids'], am=kw['attention_mask']), with_kwargs=True)
    try: learn.model.eval()(next(iter(learn.dls.valid))[0])
    finally: h.remove()
    ids, am = seen['ids'], seen['am']
    assert (am == 0).any(), "the batch has padding"
    assert (ids[am == 0] == tok.pad_token_id).all() and (ids[am == 1] != tok.pad_token_id).all()


def test_trains_predicts_and_exports(trained):
    style, files, tok, task, learn, d = trained
    res = score_on_test(learn.model, task)
    dev_f1 = learn.recorder.values[-1][list(learn.recorder.metric_names[1:]).index('span_f1')]
    assert dev_f1 > 0.5 and res['f1'] > 0.2, (dev_f1, res['f1'])   # learns the toy task (a random model scores ~0)
    raw = ' '.join(task.tgt_test[0].tokens)
    ents = learn.predict(raw)
    assert all(raw[e['char_start']:e['char_end']] == e['text'] for e in ents)
    learn.export('model')
    again = load_predictor(d/'model', device='cpu')
    assert again.predict(raw) == ents and again.tokenizer.pad_token_id == 1
    if style == 'roberta': assert again.tokenizer.add_prefix_space is True
